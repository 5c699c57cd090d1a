/*
 * Storing the loader's batches (load.c builds them): sender threads, each
 * with a connection of its own, store batches side by side while the
 * loader reads and checks the lines of the next.  One batch is one
 * transaction: a binary COPY (copybin.c) straight into `resource` while
 * the store was empty (a direct batch), else into a staging table merged
 * into `resource` by one statement, then what members, coverage and the
 * provider directory derive from it.
 *
 * Batches stored at once never share a resource or an NPI (their key sets
 * are compared first; a batch that shares one waits for the other): so the
 * last line of each resource wins as when one batch followed another, and
 * no two transactions wait on each other's rows.  The loader touches a
 * connection only while its sender is idle (load_flush).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copybin.h"
#include "load.h"
#include "pa_db.h"
#include "pa_util.h"

static const char stage_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS load_stage ("
    " seq bigint, type text, id text, patient_id text, json text,"
    " json_nonfin text, content_hash bytea, tokens text[], refs text[], clin_start timestamptz,"
    " clin_end timestamptz, created timestamptz, directory boolean) ON COMMIT DELETE ROWS";

/* A direct batch that could not go straight in, and what members, coverage
 * and the directory are derived from in a direct batch. */
static const char direct_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS load_direct (type text, id text, patient_id text,"
    " last_updated timestamptz, json text, json_nonfin text, content_hash bytea, tokens text[], refs text[],"
    " clin_start timestamptz, clin_end timestamptz, created timestamptz, ord bigserial) ON COMMIT DELETE ROWS";
static const char derive_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS load_derive (type text, id text, patient_id text, directory boolean,"
    " json text, ord bigserial) ON COMMIT DELETE ROWS";

/* The columns a direct batch's rows give, in order (COPY into resource). */
/* clang-format off */
#define DIRECT_COLUMNS \
    "type, id, patient_id, last_updated, json, json_nonfin, content_hash, tokens, refs, clin_start, clin_end, created"
/* clang-format on */

/* In a merge's update: the stored JSON is what was staged, but for its
 * change time.  Only what is extracted from it differs (a new
 * FHIRLOAD_FACTS_VERSION): the extracted facts are refreshed, the content and
 * its change time stay, and no delta export sends it again. */
/* clang-format off */
#define SAME_JSON \
    "r.json = replace(EXCLUDED.json, (SELECT lu FROM ct), '\"lastUpdated\":\"' ||" \
    " to_char(r.last_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') || '\"')"
/* clang-format on */

/* One statement merges a batch: the last line of each (type, id) wins, and a
 * row whose content is unchanged is not touched.  SRC is what is merged (a
 * relation); a tombstone goes for every resource staged. */
/* clang-format off */
#define MERGE_SQL(SRC) \
    CHANGE_TIME_CTE ", " \
    "up AS (INSERT INTO resource AS r (type, id, patient_id, last_updated, json, json_nonfin," \
    "  content_hash, tokens, refs, clin_start, clin_end, created) " \
    " SELECT type, id, patient_id, ct.t, replace(json, '" CHANGE_TIME_MARK "', ct.lu)," \
    "  replace(json_nonfin, '" CHANGE_TIME_MARK "', ct.lu), content_hash, tokens, refs," \
    "  clin_start, clin_end, created FROM " SRC " src CROSS JOIN ct " \
    " ON CONFLICT (type, id) DO UPDATE SET patient_id = EXCLUDED.patient_id," \
    "  last_updated = CASE WHEN " SAME_JSON " THEN r.last_updated ELSE EXCLUDED.last_updated END," \
    "  json = CASE WHEN " SAME_JSON " THEN r.json ELSE EXCLUDED.json END," \
    "  json_nonfin = CASE WHEN " SAME_JSON " THEN r.json_nonfin ELSE EXCLUDED.json_nonfin END," \
    "  content_hash = EXCLUDED.content_hash, tokens = EXCLUDED.tokens, refs = EXCLUDED.refs," \
    "  clin_start = EXCLUDED.clin_start," \
    "  clin_end = EXCLUDED.clin_end, created = EXCLUDED.created" \
    " WHERE r.content_hash IS DISTINCT FROM EXCLUDED.content_hash " \
    " RETURNING (xmax = 0) AS inserted, r.last_updated = (SELECT t FROM ct) AS changed), " \
    "undeleted AS (DELETE FROM resource_deleted d USING load_stage s WHERE d.type = s.type AND d.id = s.id) " \
    "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted AND changed) FROM up"
/* clang-format on */

/* What members, coverage and the provider directory keep, from the batch
 * (SRC, its rows in order by ORD). */
/* clang-format off */
#define DERIVE_SQL_FROM(SRC, ORD) \
    "WITH src AS (SELECT DISTINCT ON (type, id) type, id, patient_id, directory, json::jsonb AS j FROM " SRC \
    "  WHERE type IN ('Patient', 'Coverage', 'Practitioner', 'Organization') ORDER BY type, id, " ORD " DESC), " \
    "m AS (INSERT INTO member (patient_id, family, given, birth_date, gender, member_id) " \
    " SELECT id, j->'name'->0->>'family'," \
    "  (SELECT string_agg(g, ' ') FROM jsonb_array_elements_text(j->'name'->0->'given') g)," \
    "  CASE WHEN length(j->>'birthDate') = 10 THEN (j->>'birthDate')::date END, j->>'gender'," \
    "  (SELECT i->>'value' FROM jsonb_array_elements(j->'identifier') i" \
    "    WHERE i->'type'->'coding' @> '[{\"code\":\"MB\"}]' LIMIT 1)" \
    " FROM src WHERE type = 'Patient' " \
    " ON CONFLICT (patient_id) DO UPDATE SET family = EXCLUDED.family, given = EXCLUDED.given," \
    "  birth_date = EXCLUDED.birth_date, gender = EXCLUDED.gender, member_id = EXCLUDED.member_id " \
    " RETURNING 1), " \
    "c AS (INSERT INTO coverage (coverage_id, patient_id, subscriber_id, member_id, status," \
    "  period_start, period_end, payor) " \
    " SELECT id, patient_id, j->>'subscriberId'," \
    "  (SELECT i->>'value' FROM jsonb_array_elements(j->'identifier') i" \
    "    WHERE i->'type'->'coding' @> '[{\"code\":\"MB\"}]' LIMIT 1), j->>'status'," \
    "  CASE WHEN length(j->'period'->>'start') >= 10 THEN left(j->'period'->>'start', 10)::date END," \
    "  CASE WHEN length(j->'period'->>'end') >= 10 THEN left(j->'period'->>'end', 10)::date END," \
    "  coalesce(j->'payor'->0->>'reference', j->'payor'->0->'identifier'->>'value')" \
    " FROM src WHERE type = 'Coverage' " \
    " ON CONFLICT (coverage_id) DO UPDATE SET patient_id = EXCLUDED.patient_id," \
    "  subscriber_id = EXCLUDED.subscriber_id, member_id = EXCLUDED.member_id, status = EXCLUDED.status," \
    "  period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end, payor = EXCLUDED.payor " \
    " RETURNING 1) " \
    "INSERT INTO provider (npi, kind, name, resource_type, resource_id) " \
    "SELECT DISTINCT ON (npi) npi, kind, name, type, id FROM (" \
    " SELECT (SELECT i->>'value' FROM jsonb_array_elements(j->'identifier') i" \
    "   WHERE i->>'system' = 'http://hl7.org/fhir/sid/us-npi' LIMIT 1) AS npi," \
    "  CASE type WHEN 'Organization' THEN 'organization' ELSE 'practitioner' END AS kind," \
    "  CASE type WHEN 'Organization' THEN j->>'name' ELSE concat_ws(' '," \
    "   (SELECT string_agg(g, ' ') FROM jsonb_array_elements_text(j->'name'->0->'given') g)," \
    "   j->'name'->0->>'family') END AS name, type, id" \
    " FROM src WHERE type IN ('Practitioner', 'Organization') AND directory) p WHERE npi IS NOT NULL " \
    "ON CONFLICT (npi) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name," \
    " resource_type = EXCLUDED.resource_type, resource_id = EXCLUDED.resource_id, updated_at = now()"
/* clang-format on */
#define DERIVE_SQL DERIVE_SQL_FROM("load_stage", "seq")

/* A direct batch that met a resource already stored (named twice in the
 * load): merged instead, the last row of each resource winning. */
static const char merge_direct_sql[] =
    "WITH up AS (INSERT INTO resource AS r (" DIRECT_COLUMNS ") "
    " SELECT DISTINCT ON (type, id) " DIRECT_COLUMNS " FROM load_direct ORDER BY type, id, ord DESC "
    " ON CONFLICT (type, id) DO UPDATE SET patient_id = EXCLUDED.patient_id, last_updated = EXCLUDED.last_updated,"
    "  json = EXCLUDED.json, json_nonfin = EXCLUDED.json_nonfin, content_hash = EXCLUDED.content_hash,"
    "  tokens = EXCLUDED.tokens, refs = EXCLUDED.refs, clin_start = EXCLUDED.clin_start,"
    "  clin_end = EXCLUDED.clin_end, created = EXCLUDED.created"
    " WHERE r.content_hash IS DISTINCT FROM EXCLUDED.content_hash RETURNING (xmax = 0) AS inserted) "
    "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up";

/* A direct batch's change time, after the lock pa_transaction_time() looks for. */
static const char direct_time_sql[] =
    "SELECT to_char(date_trunc('milliseconds', clock_timestamp()) AT TIME ZONE 'UTC',"
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM (SELECT pg_advisory_xact_lock_shared(872341, 1)) lk";

/* A batch's merge, derivation and commit, sent as one simple query: the
 * staged lines as they are when the batch names no resource twice, else the
 * last line of each resource (a sort of the whole batch). */
static const char merge_sql_and_commit[] = MERGE_SQL("load_stage") "; " DERIVE_SQL "; COMMIT";
static const char merge_repeats_sql_and_commit[] =
    MERGE_SQL("(SELECT DISTINCT ON (type, id) * FROM load_stage ORDER BY type, id, seq DESC)") "; " DERIVE_SQL
                                                                                               "; COMMIT";

/*
 * A sender stores the batch handed to it (the COPY, the merge, the
 * derivation, the commit) on its own connection and thread.  The loader
 * hands a batch over by swapping buffers; what became of it (counts, or
 * why it failed) is accounted by the loader (batch_wait).
 */
struct load_sender {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running; /* the thread was started */
    int busy;    /* a batch is in flight */
    int stop;
    PGconn *db;
    int own_db;                     /* opened for it (not the loader's l->db) */
    pa_buf sending;                 /* the batch in flight */
    int repeats;                    /* it names a resource twice */
    int direct;                     /* its rows go straight into resource (DIRECT_COLUMNS) */
    long rows;                      /* 0: none in flight, or accounted */
    struct load_marks marks;        /* where its change time goes */
    pa_buf derive;                  /* a direct batch's rows for member, coverage, directory */
    uint64_t keys[LOAD_BATCH_KEYS]; /* its resources and NPIs (load.c: batch_key) */
    /* where its lines came from, for a report */
    char first_file[1024], last_file[1024];
    long first_line, last_line;
    long types[LOAD_MAX_TYPES];
    /* its outcome */
    int failed;
    int fell_back; /* a direct batch that had to be merged */
    char why[400];
    long inserted, updated;
};

int load_mark_add(struct load_marks *m, size_t at, int kind)
{
    if(m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4096;
        size_t *more = realloc(m->at, cap * sizeof(*more));

        if(!more)
            return PA_ENOMEM;
        m->at = more;
        m->cap = cap;
    }
    m->at[m->n++] = at << 1 | (size_t)kind;
    return PA_OK;
}

/* Sends buf's rows by binary COPY with sql (WITH (FORMAT binary)); 0, or
 * -1 with why. */
static int copy_in(PGconn *db, const char *sql, const pa_buf *buf, char *why, size_t size)
{
    PGresult *res = PQexec(db, sql);
    size_t off = 0;
    int rc = 0;

    if(PQresultStatus(res) != PGRES_COPY_IN) {
        snprintf(why, size, "COPY: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    if(PQputCopyData(db, copybin_header, (int)sizeof(copybin_header)) != 1) {
        snprintf(why, size, "COPY: %s", PQerrorMessage(db));
        rc = -1;
    }
    while(!rc && off < buf->len) {
        size_t n = buf->len - off > 1048576 ? 1048576 : buf->len - off;

        if(PQputCopyData(db, buf->data + off, (int)n) != 1) {
            snprintf(why, size, "COPY: %s", PQerrorMessage(db));
            rc = -1;
        }
        off += n;
    }
    if(!rc && PQputCopyData(db, copybin_trailer, (int)sizeof(copybin_trailer)) != 1) {
        snprintf(why, size, "COPY: %s", PQerrorMessage(db));
        rc = -1;
    }
    if(PQputCopyEnd(db, rc ? "aborted" : NULL) != 1 && !rc) {
        snprintf(why, size, "COPY: %s", PQerrorMessage(db));
        rc = -1;
    }
    for(res = PQgetResult(db); res; res = PQgetResult(db)) {
        if(PQresultStatus(res) != PGRES_COMMAND_OK && !rc) {
            snprintf(why, size, "COPY: %s", PQresultErrorMessage(res));
            rc = -1;
        }
        PQclear(res);
    }
    return rc;
}

/* One statement whose answer must be status (and, for a count, its two
 * numbers); 0 or -1 with why. */
static int exec_step(PGconn *db, const char *sql, ExecStatusType status, long *a, long *b, char *why, size_t size)
{
    PGresult *res = PQexec(db, sql);
    int rc = 0;

    if(PQresultStatus(res) != status) {
        snprintf(why, size, "%s", PQresultErrorMessage(res));
        rc = -1;
    }
    else if(a && PQntuples(res) == 1 && PQnfields(res) == 2) {
        pa_parse_long(PQgetvalue(res, 0, 0), a);
        pa_parse_long(PQgetvalue(res, 0, 1), b);
    }
    PQclear(res);
    return rc;
}

/*
 * A direct batch: its change time taken under the lock and written in its
 * place, its rows COPYed straight into resource (no staging, no merge:
 * what a first load into an empty store can do).  A row naming a resource
 * already stored fails the COPY: the batch is then merged from a temporary
 * table, and the loader stops trying for the rest of the load.
 */
static int store_direct(PGconn *db, struct load_sender *sd)
{
    PGresult *res = PQexec(db, direct_time_sql);
    char t[32] = "";
    int64_t us = 0;
    size_t i;
    int rc = 0;

    if(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQgetlength(res, 0, 0) == 24)
        memcpy(t, PQgetvalue(res, 0, 0), 24);
    else
        snprintf(sd->why, sizeof(sd->why), "%s", PQresultErrorMessage(res));
    PQclear(res);
    if(t[0] && pa_instant_pg_micros(t, &us)) {
        snprintf(sd->why, sizeof(sd->why), "the change time '%s' is no instant", t);
        t[0] = '\0';
    }
    if(!t[0])
        return -1;
    for(i = 0; i < sd->marks.n; i++) {
        char *at = sd->sending.data + (sd->marks.at[i] >> 1);

        if(sd->marks.at[i] & MARK_BINARY)
            copybin_put_int8(at, us);
        else
            memcpy(at, t, 24);
    }
    if(exec_step(db, "SAVEPOINT direct", PGRES_COMMAND_OK, NULL, NULL, sd->why, sizeof(sd->why)))
        return -1;
    if(!sd->repeats && !copy_in(db, "COPY resource (" DIRECT_COLUMNS ") FROM STDIN (FORMAT binary)", &sd->sending,
                                sd->why, sizeof(sd->why))) {
        sd->inserted = sd->rows;
        rc = exec_step(db, "RELEASE SAVEPOINT direct", PGRES_COMMAND_OK, NULL, NULL, sd->why, sizeof(sd->why));
    }
    else {
        /* met a stored resource (a batch naming one twice merges at once) */
        sd->fell_back = !sd->repeats;
        sd->why[0] = '\0';
        rc = exec_step(db, "ROLLBACK TO SAVEPOINT direct", PGRES_COMMAND_OK, NULL, NULL, sd->why, sizeof(sd->why));
        if(!rc)
            rc = copy_in(db, "COPY load_direct (" DIRECT_COLUMNS ") FROM STDIN (FORMAT binary)", &sd->sending, sd->why,
                         sizeof(sd->why));
        if(!rc)
            rc =
                exec_step(db, merge_direct_sql, PGRES_TUPLES_OK, &sd->inserted, &sd->updated, sd->why, sizeof(sd->why));
    }
    if(!rc && sd->derive.len) {
        rc = copy_in(db, "COPY load_derive (type, id, patient_id, directory, json) FROM STDIN (FORMAT binary)",
                     &sd->derive, sd->why, sizeof(sd->why));
        if(!rc)
            rc = exec_step(db, DERIVE_SQL_FROM("load_derive", "ord"), PGRES_COMMAND_OK, NULL, NULL, sd->why,
                           sizeof(sd->why));
    }
    return rc;
}

/* A staged batch: COPY into the staging table, then its merge, derivation
 * and commit as one query (three results). */
static int store_staged(PGconn *db, struct load_sender *sd)
{
    PGresult *res;
    int rc, step = 0;

    rc = copy_in(db, "COPY load_stage FROM STDIN (FORMAT binary)", &sd->sending, sd->why, sizeof(sd->why));
    if(!rc && !PQsendQuery(db, sd->repeats ? merge_repeats_sql_and_commit : merge_sql_and_commit)) {
        snprintf(sd->why, sizeof(sd->why), "PostgreSQL: %s", PQerrorMessage(db));
        rc = -1;
    }
    for(res = rc ? NULL : PQgetResult(db); res; res = PQgetResult(db)) {
        ExecStatusType st = PQresultStatus(res);

        if(st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            if(!sd->why[0])
                snprintf(sd->why, sizeof(sd->why), "%s", PQresultErrorMessage(res));
            sd->failed = 1;
        }
        else if(step == 0 && st == PGRES_TUPLES_OK && PQntuples(res) == 1) {
            pa_parse_long(PQgetvalue(res, 0, 0), &sd->inserted);
            pa_parse_long(PQgetvalue(res, 0, 1), &sd->updated);
        }
        step++;
        PQclear(res);
    }
    return rc || sd->failed || step != 3 ? -1 : 0;
}

/* Stores the batch in flight, in one transaction; its outcome in sd. */
static void store_batch(PGconn *db, struct load_sender *sd)
{
    PGresult *res;
    int rc;

    sd->failed = 0;
    sd->fell_back = 0;
    sd->why[0] = '\0';
    sd->inserted = sd->updated = 0;
    rc = exec_step(db, "BEGIN", PGRES_COMMAND_OK, NULL, NULL, sd->why, sizeof(sd->why));
    if(!rc && sd->direct) {
        rc = store_direct(db, sd);
        if(!rc)
            rc = exec_step(db, "COMMIT", PGRES_COMMAND_OK, NULL, NULL, sd->why, sizeof(sd->why));
    }
    else if(!rc) {
        rc = store_staged(db, sd);
    }
    if(rc) {
        size_t n = strlen(sd->why);

        while(n && (sd->why[n - 1] == '\n' || sd->why[n - 1] == ' '))
            sd->why[--n] = '\0';
        res = PQexec(db, "ROLLBACK");
        PQclear(res);
        sd->failed = 1;
    }
}

/* A connection set up for a load: commits need not wait for the disk (a
 * load is idempotent and can be run again), and its temporary tables. */
static int session_setup(PGconn *db, pa_err *err)
{
    if(pa_db_exec(db, err, "SET synchronous_commit = off") ||
       pa_db_exec(db, err, "SET default_toast_compression = lz4") || pa_db_exec(db, err, stage_sql) ||
       pa_db_exec(db, err, direct_sql) || pa_db_exec(db, err, derive_sql))
        return err->code;
    return PA_OK;
}

/* A sender's own connection that was lost is opened again before its next
 * batch, so that one lost batch is all a dropped connection costs (the
 * loader's own is never reset: what its session holds, a sync's lock say,
 * would go with it). */
static void sender_reconnect(struct load_sender *sd)
{
    pa_err err;

    if(!sd->own_db || PQstatus(sd->db) != CONNECTION_BAD)
        return;
    PQreset(sd->db);
    if(PQstatus(sd->db) == CONNECTION_OK)
        session_setup(sd->db, &err);
}

static void *sender_main(void *arg)
{
    struct load_sender *sd = arg;

    pthread_mutex_lock(&sd->mu);
    for(;;) {
        while(!sd->busy && !sd->stop)
            pthread_cond_wait(&sd->cv, &sd->mu);
        if(!sd->busy)
            break;
        pthread_mutex_unlock(&sd->mu);
        sender_reconnect(sd);
        store_batch(sd->db, sd);
        pthread_mutex_lock(&sd->mu);
        sd->busy = 0;
        pthread_cond_broadcast(&sd->cv);
    }
    pthread_mutex_unlock(&sd->mu);
    return NULL;
}

/* A connection like db (the same server, database, user and options). */
static PGconn *connect_like(PGconn *db)
{
    PQconninfoOption *opts = PQconninfo(db), *o;
    const char *keys[64], *values[64];
    int n = 0;
    PGconn *c;

    if(!opts)
        return NULL;
    for(o = opts; o->keyword && n < 63; o++)
        if(o->val && *o->val) {
            keys[n] = o->keyword;
            values[n++] = o->val;
        }
    keys[n] = values[n] = NULL;
    c = PQconnectdbParams(keys, values, 0);
    PQconninfoFree(opts);
    if(c && PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        c = NULL;
    }
    return c;
}

static void sender_free(struct load_sender *sd)
{
    if(sd->running) {
        pthread_mutex_lock(&sd->mu);
        sd->stop = 1;
        pthread_cond_broadcast(&sd->cv);
        pthread_mutex_unlock(&sd->mu);
        pthread_join(sd->thread, NULL);
    }
    pthread_mutex_destroy(&sd->mu);
    pthread_cond_destroy(&sd->cv);
    if(sd->own_db && sd->db)
        PQfinish(sd->db);
    pa_buf_free(&sd->sending);
    pa_buf_free(&sd->derive);
    free(sd->marks.at);
    free(sd);
}

int load_senders_start(load_ctx *l, pa_err *err)
{
    int i;

    for(i = 0; i < LOAD_SENDERS; i++) {
        struct load_sender *sd = calloc(1, sizeof(*sd));
        PGconn *db = i == 0 ? l->db : connect_like(l->db);

        if(!sd || !db) {
            free(sd);
            if(db && i > 0)
                PQfinish(db);
            /* a sender fewer: no connection to spare is no reason to stop */
            if(i > 0)
                break;
            return pa_err_set(err, PA_ENOMEM, "out of memory");
        }
        pthread_mutex_init(&sd->mu, NULL);
        pthread_cond_init(&sd->cv, NULL);
        sd->db = db;
        sd->own_db = i > 0;
        pa_buf_init(&sd->sending, BATCH_BYTES + PA_LOAD_MAX_LINE * 3);
        pa_buf_init(&sd->derive, BATCH_BYTES + PA_LOAD_MAX_LINE * 3);
        l->senders[l->nsenders++] = sd;
        if(session_setup(db, err))
            return err->code;
        if(pthread_create(&sd->thread, NULL, sender_main, sd))
            return pa_err_set(err, PA_ENOMEM, "cannot start the loader's sender thread");
        sd->running = 1;
    }
    return PA_OK;
}

void load_senders_stop(load_ctx *l)
{
    int i;

    for(i = 0; i < l->nsenders; i++)
        sender_free(l->senders[i]);
    l->nsenders = 0;
}

/* Waits for sd's batch, then counts it, or reports its lines.  A failed
 * batch never stops the load. */
static void batch_wait(load_ctx *l, struct load_sender *sd)
{
    size_t i;

    if(!sd->rows)
        return;
    pthread_mutex_lock(&sd->mu);
    while(sd->busy)
        pthread_cond_wait(&sd->cv, &sd->mu);
    pthread_mutex_unlock(&sd->mu);
    /* a resource was there already: the rest of the load merges */
    if(sd->fell_back)
        l->direct = 0;
    if(sd->failed) {
        if(!strcmp(sd->first_file, sd->last_file))
            load_report(l, sd->first_file, sd->first_line, "lines %ld to %ld were not stored: %s", sd->first_line,
                        sd->last_line, sd->why[0] ? sd->why : "the connection failed");
        else
            load_report(l, sd->first_file, sd->first_line, "lines from here to %s:%ld were not stored: %s",
                        sd->last_file, sd->last_line, sd->why[0] ? sd->why : "the connection failed");
        l->rejected += sd->rows - 1;
    }
    else {
        l->inserted += sd->inserted;
        l->updated += sd->updated;
        /* a line repeating an earlier one of the same batch is unchanged too */
        l->unchanged += sd->rows - sd->inserted - sd->updated;
        l->loaded += sd->rows;
        for(i = 0; i < LOAD_MAX_TYPES; i++)
            l->type_loaded[i] += sd->types[i];
    }
    sd->rows = 0;
}

/* Whether two batches' key sets share a key. */
static int keys_meet(const uint64_t *a, const uint64_t *b)
{
    const size_t mask = LOAD_BATCH_KEYS - 1;
    size_t i, k;

    for(i = 0; i < LOAD_BATCH_KEYS; i++) {
        if(!a[i])
            continue;
        for(k = (size_t)(a[i] >> 20) & mask; b[k]; k = (k + 1) & mask)
            if(b[k] == a[i])
                return 1;
    }
    return 0;
}

int load_batch_send(load_ctx *l, pa_err *err)
{
    struct load_sender *sd;
    pa_buf swap;
    struct load_marks m;
    int i;

    if(l->batch_rows == 0)
        return PA_OK;
    if(!l->nsenders)
        return pa_err_set(err, PA_ESTATE, "the loader is not open");
    /* the sender whose batch is the oldest; and any other whose batch
     * shares a resource or an NPI with this one is waited for first */
    sd = l->senders[l->next];
    batch_wait(l, sd);
    for(i = 0; i < l->nsenders; i++)
        if(l->senders[i]->rows && keys_meet(l->batch_keys, l->senders[i]->keys))
            batch_wait(l, l->senders[i]);
    swap = sd->sending;
    sd->sending = l->batch;
    l->batch = swap;
    swap = sd->derive;
    sd->derive = l->derive;
    l->derive = swap;
    m = sd->marks;
    sd->marks = l->marks;
    l->marks = m;
    l->marks.n = 0;
    memcpy(sd->keys, l->batch_keys, sizeof(sd->keys));
    sd->direct = l->batch_direct;
    sd->rows = l->batch_rows;
    sd->repeats = l->batch_repeats;
    pa_strlcpy(sd->first_file, l->batch_file, sizeof(sd->first_file));
    pa_strlcpy(sd->last_file, l->batch_last_file, sizeof(sd->last_file));
    sd->first_line = l->batch_first_line;
    sd->last_line = l->batch_last_line;
    memcpy(sd->types, l->batch_types, sizeof(sd->types));
    pthread_mutex_lock(&sd->mu);
    sd->busy = 1;
    pthread_cond_broadcast(&sd->cv);
    pthread_mutex_unlock(&sd->mu);
    l->next = (l->next + 1) % l->nsenders;
    memset(l->batch_types, 0, sizeof(l->batch_types));
    l->batch_rows = 0;
    memset(l->batch_keys, 0, sizeof(l->batch_keys));
    l->batch_repeats = 0;
    pa_buf_reset(&l->batch);
    pa_buf_reset(&l->derive);
    return PA_OK;
}

/* Every line read so far stored (or reported): before anything else uses a
 * connection, and at the end.  The oldest batch is counted first. */
int load_flush(load_ctx *l, pa_err *err)
{
    int rc = load_batch_send(l, err), i;

    for(i = 0; i < l->nsenders; i++)
        batch_wait(l, l->senders[(l->next + i) % l->nsenders]);
    return rc;
}
