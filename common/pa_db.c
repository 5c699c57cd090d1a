#include "pa_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_util.h"

/* The connection's last error message without libpq's trailing newline. */
static void last_message(PGconn *conn, char *out, size_t size)
{
    size_t n;

    snprintf(out, size, "%s", PQerrorMessage(conn));
    n = strlen(out);
    while(n && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
}

int pa_db_connect(const pa_config *cfg, PGconn **out, pa_err *err)
{
    return pa_db_connect_to(cfg->pg_conninfo, out, err);
}

int pa_db_connect_to(const char *conninfo, PGconn **out, pa_err *err)
{
    /* No JIT: its compile time (most of a second) far exceeds what it saves on
     * these short statements, and it is chosen from cost estimates that
     * batched unnest() look-ups inflate.  work_mem: an export chunk's sort
     * (a few MB of NDJSON lines) stays in memory instead of spilling to disk.
     * An `options` in pg_conninfo wins. */
    static const char *const keys[] = { "options", "dbname", NULL };
    const char *values[] = { "-c jit=off -c work_mem=32MB", conninfo, NULL };
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    char msg[400];

    *out = NULL;
    if(!conn)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    if(PQstatus(conn) != CONNECTION_OK) {
        last_message(conn, msg, sizeof(msg));
        PQfinish(conn);
        return pa_err_set(err, PA_EDB, "cannot connect to PostgreSQL: %s", msg);
    }
    *out = conn;
    return PA_OK;
}

int pa_db_ensure(PGconn **conn, const pa_config *cfg, pa_err *err)
{
    if(*conn && PQstatus(*conn) == CONNECTION_OK)
        return PA_OK;
    if(*conn) {
        PQreset(*conn);
        if(PQstatus(*conn) == CONNECTION_OK)
            return PA_OK;
        PQfinish(*conn);
        *conn = NULL;
    }
    return pa_db_connect(cfg, conn, err);
}

int pa_db_result_error(PGconn *conn, const PGresult *res, pa_err *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char msg[400];
    int code = PA_EDB;

    last_message(conn, msg, sizeof(msg));
    /* A statement PostgreSQL refused (bad data, a missing object) fails the
     * same way every time; only a lost or overloaded server is worth another
     * try: connection (08), resources (53), operator intervention (57, a
     * restart or pg_terminate_backend), system (58), and transaction
     * rollbacks (40, deadlocks and serialization). */
    if(PQstatus(conn) == CONNECTION_OK && state && strncmp(state, "08", 2) && strncmp(state, "53", 2) &&
       strncmp(state, "57", 2) && strncmp(state, "58", 2) && strncmp(state, "40", 2))
        code = PA_EDBQUERY;
    return pa_err_set(err, code, "PostgreSQL: %s", msg);
}

PGresult *pa_db_query(PGconn *conn, pa_err *err, const char *sql, int nparams, const char *const *values)
{
    /* Only outside a transaction can a statement be sent again on a new
     * connection: inside one, what came before it is gone with the old. */
    int idle = PQtransactionStatus(conn) == PQTRANS_IDLE;
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    if(st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && idle && PQstatus(conn) == CONNECTION_BAD) {
        /* PQstatus said OK to a connection whose server had restarted (or
         * ended it): reconnect and try once more before calling it down */
        PQclear(res);
        PQreset(conn);
        res = PQexecParams(conn, sql, nparams, NULL, values, NULL, NULL, 0);
        st = PQresultStatus(res);
    }
    if(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return res;
    pa_db_result_error(conn, res, err);
    PQclear(res);
    return NULL;
}

int pa_db_exec(PGconn *conn, pa_err *err, const char *sql)
{
    PGresult *res = pa_db_query(conn, err, sql, 0, NULL);

    if(!res)
        return PA_EDB;
    PQclear(res);
    return PA_OK;
}

int pa_db_exec_params(PGconn *conn, pa_err *err, const char *sql, int nparams, const char *const *values)
{
    PGresult *res = pa_db_query(conn, err, sql, nparams, values);

    if(!res)
        return PA_EDB;
    PQclear(res);
    return PA_OK;
}

int pa_db_schema_version(PGconn *conn, int *version, pa_err *err)
{
    PGresult *res;
    long v = 0;
    int exists;

    *version = 0;
    res = pa_db_query(conn, err, "SELECT to_regclass('schema_version') IS NOT NULL", 0, NULL);
    if(!res)
        return PA_EDB;
    exists = !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    if(!exists)
        return PA_OK;
    res = pa_db_query(conn, err, "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL);
    if(!res)
        return PA_EDB;
    pa_parse_long(PQgetvalue(res, 0, 0), &v);
    *version = (int)v;
    PQclear(res);
    return PA_OK;
}

int pa_db_check_schema(PGconn *conn, pa_err *err)
{
    int v;
    int rc = pa_db_schema_version(conn, &v, err);

    if(rc)
        return rc;
    if(v < PA_SCHEMA_VERSION)
        return pa_err_set(err, PA_ESCHEMA,
                          "database schema is at version %d, this build needs %d: run 'pa-admin migrate'", v,
                          PA_SCHEMA_VERSION);
    return PA_OK;
}
