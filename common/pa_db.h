/*
 * pa_db: PostgreSQL connections and the schema version guard.  Programs
 * refuse to work against a schema older than PA_SCHEMA_VERSION; pa-admin
 * migrate brings it up to date from the numbered files in sql/.
 */
#ifndef PA_DB_H
#define PA_DB_H

#include <libpq-fe.h>

#include "pa_config.h"
#include "pa_err.h"

/* The schema version this build needs (the highest sql/NNN_*.sql). */
#define PA_SCHEMA_VERSION 15

/*
 * SQL: is an opt-out of member PATIENT in force today against the provider
 * NPI or its organization ORG (SQL expressions)?  A global opt-out binds every
 * provider.  An opt-out gives way to a later record of the member's: a permit
 * (table opt_in) for every provider, for its provider, or (of a global
 * opt-out) for this provider, whose period starts after it (or as late,
 * recorded after it), by today: the latest record decides.  The one definition of
 * "opted out", used at search, match and export.
 */
#define PA_SQL_OPTED_OUT(PATIENT, NPI, ORG)                                                          \
    "EXISTS (SELECT 1 FROM opt_out o WHERE o.patient_id = " PATIENT                                   \
    " AND (o.scope = 'global' OR o.npi IN (nullif(" NPI ", ''), nullif(" ORG ", '')))"               \
    " AND " PA_SQL_OPTOUT_IN_FORCE("o", NPI, ORG) ")"

/* SQL: the opt_out row O is in force today against NPI or ORG, as
 * PA_SQL_OPTED_OUT says (whom it names is the caller's condition). */
#define PA_SQL_OPTOUT_IN_FORCE(O, NPI, ORG)                                                          \
    "NOT " O ".revoked AND " O ".period_start <= current_date"                                      \
    " AND (" O ".period_end IS NULL OR " O ".period_end >= current_date)"                           \
    " AND NOT EXISTS (SELECT 1 FROM opt_in i WHERE i.patient_id = " O ".patient_id"                  \
    "  AND (i.npi IN ('', " O ".npi) OR (" O ".scope = 'global' AND i.npi IN (" NPI ", " ORG ")))"   \
    "  AND i.period_start <= current_date"                                                          \
    "  AND (i.period_start, i.recorded_at) > (" O ".period_start, " O ".recorded_at))"

/* SQL: the ATR changeType of a roster member that an INSERT ... ON CONFLICT DO
 * UPDATE adds again, T its row as it was: a member dropped before is new
 * again, one whose period moves changed. */
#define PA_SQL_MEMBER_CHANGE(T)                                                                      \
    "CASE WHEN " T ".inactive THEN 'new' WHEN (" T ".period_start, " T ".period_end) IS DISTINCT FROM"  \
    " (EXCLUDED.period_start, EXCLUDED.period_end) THEN 'changed' ELSE 'nochange' END"

/* SQL: the payer has the patient whose id is the expression ID (its Patient
 * resource, or a member row). */
#define PA_SQL_PAYER_HAS_PATIENT(ID)                                                                 \
    "(EXISTS (SELECT 1 FROM resource hp WHERE hp.type = 'Patient' AND hp.id = " ID ")"               \
    " OR EXISTS (SELECT 1 FROM member hm WHERE hm.patient_id = " ID "))"

/* Connects with cfg->pg_conninfo. */
int pa_db_connect(const pa_config *cfg, PGconn **out, pa_err *err);

/* Connects with a libpq connection string (the session settings as
 * pa_db_connect's). */
int pa_db_connect_to(const char *conninfo, PGconn **out, pa_err *err);

/* Reconnects if the connection was lost. */
int pa_db_ensure(PGconn **conn, const pa_config *cfg, pa_err *err);

/* Reads the applied schema version (0 when none is). */
int pa_db_schema_version(PGconn *conn, int *version, pa_err *err);

/* PA_ESCHEMA with a message saying to run `pa-admin migrate` if too old. */
int pa_db_check_schema(PGconn *conn, pa_err *err);

/* Sets err from a failed statement's result (res may be NULL): PA_EDB when
 * the connection or the server failed (worth another try), PA_EDBQUERY when
 * PostgreSQL refused the statement itself.  Returns the code. */
int pa_db_result_error(PGconn *conn, const PGresult *res, pa_err *err);

/* Runs a statement expecting no rows; err holds the server's message. */
int pa_db_exec(PGconn *conn, pa_err *err, const char *sql);

/* Runs a parameterized statement whose result is not needed. */
int pa_db_exec_params(PGconn *conn, pa_err *err, const char *sql, int nparams,
                      const char *const *values);

/* Runs a parameterized statement; returns the result (PQclear it) or NULL
 * with err set (pa_db_result_error) when it did not succeed.  A statement
 * sent outside a transaction on a connection found broken (its server
 * restarted) is sent once more on a fresh one: the session's prepared
 * statements and SET values are gone then (PQbackendPID tells). */
PGresult *pa_db_query(PGconn *conn, pa_err *err, const char *sql, int nparams,
                      const char *const *values);

#endif
