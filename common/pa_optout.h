/*
 * Members' opt-outs from Provider Access, as the payer records them by hand
 * or through its member-facing system (pa-admin optout, POST /fhir/Consent).
 * Whether one is in force is PA_SQL_OPTED_OUT (pa_db.h).
 */
#ifndef PA_OPTOUT_H
#define PA_OPTOUT_H

#include <libpq-fe.h>

#include "pa_err.h"

/*
 * Opts member patient out (deny) against the providers npis, a PostgreSQL
 * text[] literal ("{}": every provider, the global opt-out), from start
 * (NULL: today) to end (NULL: open-ended); or revokes (!deny) the opt-outs
 * in force against those providers.  *member is 0 when patient is no member
 * of the plan (and nothing changed); *changed counts the opt-outs written or
 * revoked.
 */
int pa_optout_set(PGconn *db, const char *patient, const char *npis, int deny, const char *start, const char *end,
                  const char *reason, long *member, long *changed, pa_err *err);

#endif
