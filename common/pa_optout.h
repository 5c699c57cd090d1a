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
 * (NULL: today) to end (NULL: open-ended); or records a permit (!deny) for
 * those providers ("{}": every one) from start, which ends the opt-outs
 * before it that it concerns (the latest record decides: PA_SQL_OPTED_OUT).
 * *member is 0 when patient is no member of the plan (and nothing changed);
 * *changed counts the opt-outs written, or those in force a permit ends.
 */
int pa_optout_set(PGconn *db, const char *patient, const char *npis, int deny, const char *start, const char *end,
                  const char *reason, long *member, long *changed, pa_err *err);

#endif
