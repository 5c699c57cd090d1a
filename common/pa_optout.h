/*
 * Members' opt-outs from Provider Access, as the payer records them by hand
 * or through its member-facing system (pa-admin optout, POST /fhir/Consent).
 * Whether one is in force is PA_SQL_OPTED_OUT, the one definition.
 */
#ifndef PA_OPTOUT_H
#define PA_OPTOUT_H

#include <libpq-fe.h>

#include "pa_err.h"

/*
 * SQL: is an opt-out of member PATIENT in force today against the provider
 * NPI or its organization ORG (SQL expressions)?  A global opt-out binds every
 * provider.  An opt-out gives way to a later record of the member's: a permit
 * (table opt_in) for every provider, for its provider, or (of a global
 * opt-out) for this provider, whose period starts after it (or as late,
 * recorded after it), by today: the latest record decides.  The one definition of
 * "opted out", used at search, match and export.
 */
/* clang-format off */
#define PA_SQL_OPTED_OUT(PATIENT, NPI, ORG)                                                          \
    "EXISTS (SELECT 1 FROM opt_out o WHERE o.patient_id = " PATIENT                                   \
    " AND (o.scope = 'global' OR o.npi IN (nullif(" NPI ", ''), nullif(" ORG ", '')))"               \
    " AND " PA_SQL_OPTOUT_IN_FORCE("o", NPI, ORG) ")"
/* clang-format on */

/* SQL: the opt_out row O is in force today against NPI or ORG, as
 * PA_SQL_OPTED_OUT says (whom it names is the caller's condition). */
/* clang-format off */
#define PA_SQL_OPTOUT_IN_FORCE(O, NPI, ORG)                                                          \
    "NOT " O ".revoked AND " O ".period_start <= current_date"                                      \
    " AND (" O ".period_end IS NULL OR " O ".period_end >= current_date)"                           \
    " AND NOT EXISTS (SELECT 1 FROM opt_in i WHERE i.patient_id = " O ".patient_id"                  \
    "  AND (i.npi IN ('', " O ".npi) OR (" O ".scope = 'global' AND i.npi IN (" NPI ", " ORG ")))"   \
    "  AND i.period_start <= current_date"                                                          \
    "  AND (i.period_start, i.recorded_at) > (" O ".period_start, " O ".recorded_at))"
/* clang-format on */

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
