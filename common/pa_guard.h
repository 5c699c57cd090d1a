/*
 * pa_guard: the member-match enumeration guard (HRex: a payer SHALL guard
 * against providers guessing member ids).  Each client has a budget of
 * unmatched members per window: every member no member of the plan matched
 * costs 1, and one whose demographics the client already sent in the window
 * with other coverage ids costs match_repeat_weight.  Past the budget its
 * matches are refused (429) until the window ends, and the client is flagged
 * (pa-admin client list; pa-admin client unflag clears it).
 */
#ifndef PA_GUARD_H
#define PA_GUARD_H

#include <json-c/json.h>
#include <libpq-fe.h>

#include "pa_config.h"
#include "pa_err.h"
#include "pa_redis.h"

/* 1 (and *retry_after, seconds) when client has spent its budget, else 0;
 * a negative code when Redis could not tell. */
int pa_guard_over(pa_redis *r, const pa_config *cfg, const char *client, long *retry_after, pa_err *err);

/*
 * Charges client for misses (an array of [demographics key, coverage id] of
 * the members nothing matched, from pa_match_run) and, when that spends its
 * budget, flags it in PostgreSQL (db may be NULL: flagged at its next
 * refusal).  *over is 1 when the budget is spent.
 */
int pa_guard_charge(pa_redis *r, PGconn *db, const pa_config *cfg, const char *client, json_object *misses, int *over,
                    pa_err *err);

/* Flags client (once: the first time is kept) with a reason for the payer. */
int pa_guard_flag(PGconn *db, const char *client, const char *reason, pa_err *err);

/* Clears client's flag and its spent budget. */
int pa_guard_clear(pa_redis *r, PGconn *db, const char *client, pa_err *err);

#endif
