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

/* SQL: the payer has the patient whose id is the expression ID (its Patient
 * resource, or a member row). */
/* clang-format off */
#define PA_SQL_PAYER_HAS_PATIENT(ID)                                                                 \
    "(EXISTS (SELECT 1 FROM resource hp WHERE hp.type = 'Patient' AND hp.id = " ID ")"               \
    " OR EXISTS (SELECT 1 FROM member hm WHERE hm.patient_id = " ID "))"
/* clang-format on */

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
int pa_db_exec_params(PGconn *conn, pa_err *err, const char *sql, int nparams, const char *const *values);

/* Runs a parameterized statement; returns the result (PQclear it) or NULL
 * with err set (pa_db_result_error) when it did not succeed.  A statement
 * sent outside a transaction on a connection found broken (its server
 * restarted) is sent once more on a fresh one: the session's prepared
 * statements and SET values are gone then (PQbackendPID tells). */
PGresult *pa_db_query(PGconn *conn, pa_err *err, const char *sql, int nparams, const char *const *values);

#endif
