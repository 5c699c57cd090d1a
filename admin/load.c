/*
 * pa-admin load: the payer's data into the store.
 *
 * FHIR NDJSON (plain or gzip) is read line by line; each line is checked
 * (JSON, a served resourceType, an id, the patient reference its type needs,
 * valid NPIs), compacted, given meta.lastUpdated if it lacks one, and for
 * ExplanationOfBenefit also turned into its non-financial form.  Good lines go
 * in batches through binary COPY (copybin.c) into a staging table and are
 * merged into `resource` in one statement per batch: a line identical to what
 * is stored changes nothing; into an empty store they go straight in.  Bad lines are reported by file, line and reason; the good ones
 * around them load.  Transaction Bundles of DELETE entries delete, leaving
 * tombstones.  PDex Groups (rosters, treatment relationships, opt-outs) are
 * loaded after all resources; CSV feeds last (groups.c, feeds.c).
 */
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "admin.h"
#include "copybin.h"
#include "load.h"
#include "pa_buf.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_json.h"
#include "pa_json.h"
#include "pa_util.h"

#define BATCH_ROWS 5000
#define BATCH_BYTES (16 * 1024 * 1024)
#define MAX_FILES 1000000

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
#define DIRECT_COLUMNS \
    "type, id, patient_id, last_updated, json, json_nonfin, content_hash, tokens, refs, clin_start, clin_end, created"

/* In a direct batch, where the change time goes: as long as the instant
 * that replaces it once the batch's transaction has taken it. */
#define DIRECT_TIME "@@pa:change-time-direct@"
_Static_assert(sizeof(DIRECT_TIME) - 1 == 24, "the placeholder is as long as YYYY-MM-DDTHH:MM:SS.mmmZ");

/* A stored resource's meta.lastUpdated until it is merged: the merge puts
 * this server's change time in its place (sql/010_change_time.sql). */
#define CHANGE_TIME_VALUE "@@pa:change-time@@"
#define CHANGE_TIME_MARK "\"lastUpdated\":\"" CHANGE_TIME_VALUE "\""

/* The change time of a transaction that changes resources, taken after the
 * shared lock that pa_transaction_time() looks for (milliseconds, as the
 * FHIR instant written shows it), and that instant as the member lu. */
#define CHANGE_TIME_CTE \
    "WITH lk AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(872341, 1)), " \
    "ct AS MATERIALIZED (SELECT t, '\"lastUpdated\":\"' || to_char(t AT TIME ZONE 'UTC'," \
    "  'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') || '\"' AS lu" \
    " FROM (SELECT date_trunc('milliseconds', clock_timestamp()) AS t FROM lk) now_)"

/* In a merge's update: the stored JSON is what was staged, but for its
 * change time.  Only what is extracted from it differs (a new
 * PA_FHIR_FACTS_VERSION): the extracted facts are refreshed, the content and
 * its change time stay, and no delta export sends it again. */
#define SAME_JSON \
    "r.json = replace(EXCLUDED.json, (SELECT lu FROM ct), '\"lastUpdated\":\"' ||" \
    " to_char(r.last_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') || '\"')"

/* One statement merges a batch: the last line of each (type, id) wins, and a
 * row whose content is unchanged is not touched.  SRC is what is merged (a
 * relation); a tombstone goes for every resource staged. */
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

/* What members, coverage and the provider directory keep, from the batch
 * (SRC, its rows in order by ORD). */
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
static const char merge_sql_and_commit[] =
    MERGE_SQL("load_stage") "; " DERIVE_SQL "; COMMIT";
static const char merge_repeats_sql_and_commit[] =
    MERGE_SQL("(SELECT DISTINCT ON (type, id) * FROM load_stage ORDER BY type, id, seq DESC)") "; " DERIVE_SQL
    "; COMMIT";

static const char delete_sql[] =
    CHANGE_TIME_CTE ", d AS (SELECT unnest($1::text[]) AS type, unnest($2::text[]) AS id), "
    "gone AS (DELETE FROM resource r USING d WHERE r.type = d.type AND r.id = d.id"
    " RETURNING r.type, r.id, r.patient_id), "
    "mem AS (DELETE FROM member m USING gone WHERE gone.type = 'Patient' AND m.patient_id = gone.id), "
    "cov AS (DELETE FROM coverage c USING gone WHERE gone.type = 'Coverage' AND c.coverage_id = gone.id) "
    "INSERT INTO resource_deleted (type, id, patient_id, deleted_at) "
    "SELECT type, id, patient_id, ct.t FROM gone CROSS JOIN ct "
    "ON CONFLICT (type, id) DO UPDATE SET patient_id = EXCLUDED.patient_id, deleted_at = EXCLUDED.deleted_at";

int load_delete(PGconn *db, const char *types, const char *ids, long *n, pa_err *err)
{
    const char *values[2] = { types, ids };
    PGresult *res = pa_db_query(db, err, delete_sql, 2, values);

    if(!res)
        return PA_EDB;
    *n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return PA_OK;
}

/* A mark's kind: the place of a text change time (24 characters) or of a
 * binary one (a timestamptz's 8 bytes), kept in its lowest bit. */
#define MARK_TEXT 0
#define MARK_BINARY 1

static int mark_add(struct load_marks *m, size_t at, int kind)
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

/* A text field, each change-time mark in s written as DIRECT_TIME, its
 * place noted. */
static int copy_field_marked(pa_buf *b, const char *s, struct load_marks *m)
{
    const char *at;
    size_t len_at;
    int rc = copybin_begin_field(b, &len_at);

    for(at = strstr(s, CHANGE_TIME_VALUE); !rc && at; at = strstr(s, CHANGE_TIME_VALUE)) {
        rc = pa_buf_add(b, s, (size_t)(at - s));
        if(!rc)
            rc = mark_add(m, b->len, MARK_TEXT);
        if(!rc)
            rc = pa_buf_add(b, DIRECT_TIME, 24);
        s = at + strlen(CHANGE_TIME_VALUE);
    }
    if(!rc)
        rc = pa_buf_addstr(b, s);
    if(!rc)
        copybin_end_field(b, len_at);
    return rc;
}

/*
 * The sender: a thread of its own stores each full batch (the COPY into the
 * staging table, the merge, the derivation, the commit) while the loader
 * parses the next, so that the client's parse and the server's work
 * overlap.  It owns the connection while a batch is in flight; the loader
 * touches the connection only once the sender is idle (load_flush).  The
 * loader hands over a batch by swapping buffers; what became of it
 * (counts, or why it failed) is accounted by the loader (batch_wait).
 */
struct load_sender {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int busy;           /* a batch is in flight */
    int stop;
    pa_buf sending;     /* the batch in flight */
    int repeats;        /* it names a resource twice */
    int direct;         /* its rows go straight into resource (DIRECT_COLUMNS) */
    long rows;
    struct load_marks marks;  /* where its change time goes */
    pa_buf derive;      /* a direct batch's rows for member, coverage, directory */
    /* its outcome */
    int failed;
    int fell_back;      /* a direct batch that had to be merged */
    char why[400];
    long inserted, updated;
};

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
    if(!sd->repeats && !copy_in(db, "COPY resource (" DIRECT_COLUMNS ") FROM STDIN (FORMAT binary)", &sd->sending, sd->why,
                                sizeof(sd->why))) {
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
            rc = exec_step(db, merge_direct_sql, PGRES_TUPLES_OK, &sd->inserted, &sd->updated, sd->why,
                           sizeof(sd->why));
    }
    if(!rc && sd->derive.len) {
        rc = copy_in(db, "COPY load_derive (type, id, patient_id, directory, json) FROM STDIN (FORMAT binary)", &sd->derive, sd->why,
                     sizeof(sd->why));
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

static void *sender_main(void *arg)
{
    load_ctx *l = arg;
    struct load_sender *sd = l->sender;

    pthread_mutex_lock(&sd->mu);
    for(;;) {
        while(!sd->busy && !sd->stop)
            pthread_cond_wait(&sd->cv, &sd->mu);
        if(!sd->busy)
            break;
        pthread_mutex_unlock(&sd->mu);
        store_batch(l->db, sd);
        pthread_mutex_lock(&sd->mu);
        sd->busy = 0;
        pthread_cond_broadcast(&sd->cv);
    }
    pthread_mutex_unlock(&sd->mu);
    return NULL;
}

static int sender_start(load_ctx *l, pa_err *err)
{
    struct load_sender *sd = calloc(1, sizeof(*sd));

    if(!sd)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    pthread_mutex_init(&sd->mu, NULL);
    pthread_cond_init(&sd->cv, NULL);
    pa_buf_init(&sd->sending, BATCH_BYTES + PA_LOAD_MAX_LINE * 3);
    pa_buf_init(&sd->derive, BATCH_BYTES + PA_LOAD_MAX_LINE * 3);
    l->sender = sd;
    if(pthread_create(&sd->thread, NULL, sender_main, l)) {
        l->sender = NULL;
        pa_buf_free(&sd->sending);
        pa_buf_free(&sd->derive);
        free(sd);
        return pa_err_set(err, PA_ENOMEM, "cannot start the loader's sender thread");
    }
    return PA_OK;
}

static void sender_stop(load_ctx *l)
{
    struct load_sender *sd = l->sender;

    if(!sd)
        return;
    pthread_mutex_lock(&sd->mu);
    sd->stop = 1;
    pthread_cond_broadcast(&sd->cv);
    pthread_mutex_unlock(&sd->mu);
    pthread_join(sd->thread, NULL);
    pthread_mutex_destroy(&sd->mu);
    pthread_cond_destroy(&sd->cv);
    pa_buf_free(&sd->sending);
    pa_buf_free(&sd->derive);
    free(sd->marks.at);
    free(sd);
    l->sender = NULL;
}

/* Waits for the batch in flight, then counts it, or reports its lines.  A
 * failed batch never stops the load. */
static void batch_wait(load_ctx *l)
{
    struct load_sender *sd = l->sender;
    size_t i;

    if(!sd || !l->pending_rows)
        return;
    pthread_mutex_lock(&sd->mu);
    while(sd->busy)
        pthread_cond_wait(&sd->cv, &sd->mu);
    pthread_mutex_unlock(&sd->mu);
    /* a resource was there already: the rest of the load merges */
    if(sd->fell_back)
        l->direct = 0;
    if(sd->failed) {
        if(!strcmp(l->pending_file, l->pending_last_file))
            load_report(l, l->pending_file, l->pending_first_line, "lines %ld to %ld were not stored: %s",
                        l->pending_first_line, l->pending_last_line, sd->why[0] ? sd->why : "the connection failed");
        else
            load_report(l, l->pending_file, l->pending_first_line, "lines from here to %s:%ld were not stored: %s",
                        l->pending_last_file, l->pending_last_line, sd->why[0] ? sd->why : "the connection failed");
        l->rejected += l->pending_rows - 1;
    }
    else {
        l->inserted += sd->inserted;
        l->updated += sd->updated;
        /* a line repeating an earlier one of the same batch is unchanged too */
        l->unchanged += l->pending_rows - sd->inserted - sd->updated;
        l->loaded += l->pending_rows;
        for(i = 0; i < LOAD_MAX_TYPES; i++)
            l->type_loaded[i] += l->pending_types[i];
    }
    l->pending_rows = 0;
}

/* Hands the batch to the sender (once the one before it is stored) and
 * starts the next. */
static int batch_send(load_ctx *l, pa_err *err)
{
    struct load_sender *sd = l->sender;
    pa_buf swap;

    batch_wait(l);
    if(l->batch_rows == 0)
        return PA_OK;
    if(!sd)
        return pa_err_set(err, PA_ESTATE, "the loader is not open");
    swap = sd->sending;
    sd->sending = l->batch;
    l->batch = swap;
    swap = sd->derive;
    sd->derive = l->derive;
    l->derive = swap;
    {
        struct load_marks m = sd->marks;

        sd->marks = l->marks;
        l->marks = m;
        l->marks.n = 0;
    }
    sd->direct = l->batch_direct;
    sd->rows = l->batch_rows;
    sd->repeats = l->batch_repeats;
    l->pending_rows = l->batch_rows;
    pa_strlcpy(l->pending_file, l->batch_file, sizeof(l->pending_file));
    pa_strlcpy(l->pending_last_file, l->batch_last_file, sizeof(l->pending_last_file));
    l->pending_first_line = l->batch_first_line;
    l->pending_last_line = l->batch_last_line;
    memcpy(l->pending_types, l->batch_types, sizeof(l->pending_types));
    pthread_mutex_lock(&sd->mu);
    sd->busy = 1;
    pthread_cond_broadcast(&sd->cv);
    pthread_mutex_unlock(&sd->mu);
    memset(l->batch_types, 0, sizeof(l->batch_types));
    l->batch_rows = 0;
    memset(l->batch_keys, 0, sizeof(l->batch_keys));
    l->batch_repeats = 0;
    pa_buf_reset(&l->batch);
    pa_buf_reset(&l->derive);
    return PA_OK;
}

/* Every line read so far stored (or reported): before anything else uses the
 * connection, and at the end. */
int load_flush(load_ctx *l, pa_err *err)
{
    int rc = batch_send(l, err);

    batch_wait(l);
    return rc;
}

/* The hash (SHA-256) of a line as loaded, and of how it was read: a new
 * extraction makes every line count as changed once. */
static int hash_line(const char *s, size_t n, unsigned char out[32])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, PA_FHIR_FACTS_VERSION, strlen(PA_FHIR_FACTS_VERSION)) &&
             EVP_DigestUpdate(ctx, s, n) && EVP_DigestFinal_ex(ctx, md, &len) && len == 32;

    EVP_MD_CTX_free(ctx);
    if(ok)
        memcpy(out, md, 32);
    return ok ? PA_OK : PA_ENOMEM;
}

/* Notes a (type, id) in the batch's key set; a repeat (or a collision of
 * hashes, which costs only the sort) marks the batch. */
static void batch_key(load_ctx *l, const char *type, const char *id)
{
    const size_t mask = sizeof(l->batch_keys) / sizeof(l->batch_keys[0]) - 1;
    uint64_t h = 1469598103934665603ULL;
    const char *p;
    size_t i;

    for(p = type; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ '/') * 1099511628211ULL;
    for(p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h |= 1; /* 0 is an empty slot */
    for(i = (size_t)(h >> 20) & mask; l->batch_keys[i]; i = (i + 1) & mask) {
        if(l->batch_keys[i] == h) {
            l->batch_repeats = 1;
            return;
        }
    }
    l->batch_keys[i] = h;
}

_Static_assert(sizeof(((load_ctx *)0)->batch_keys) / sizeof(uint64_t) >= 2 * BATCH_ROWS,
               "the batch key set holds twice a batch");

/* The compact source line with its meta.lastUpdated replaced by the mark,
 * when that value appears once in it; NULL otherwise (to serialize). */
static char *mark_change_time(const char *line, const char *value)
{
    char needle[PA_TS_LEN + 32];
    const char *at, *next;
    char *out;
    size_t nlen, mlen = strlen(CHANGE_TIME_MARK), pre, rest;

    snprintf(needle, sizeof(needle), "\"lastUpdated\":\"%s\"", value);
    nlen = strlen(needle);
    at = strstr(line, needle);
    if(!at || ((next = strstr(at + 1, needle)) != NULL))
        return NULL;
    pre = (size_t)(at - line);
    rest = strlen(at + nlen) + 1;
    out = malloc(pre + mlen + rest);
    if(!out)
        return NULL;
    memcpy(out, line, pre);
    memcpy(out + pre, CHANGE_TIME_MARK, mlen);
    memcpy(out + pre + mlen, at + nlen, rest);
    return out;
}

/* What a row of the batch holds besides the extracted facts. */
struct row {
    const char *type, *id;
    const char *json;   /* with the change-time mark */
    const char *nonfin; /* NULL but for an ExplanationOfBenefit */
    unsigned char hash[32];
    int directory;
};

/* The facts' columns: hash, tokens, refs, dates. */
static int add_facts(pa_buf *b, const struct row *r, const pa_fhir_facts *f)
{
    int rc = copybin_text(b, (const char *)r->hash, sizeof(r->hash));

    if(!rc)
        rc = copybin_text_array(b, pa_buf_str(&f->tokens));
    if(!rc)
        rc = copybin_text_array(b, pa_buf_str(&f->refs));
    if(!rc)
        rc = copybin_time(b, f->clin_start);
    if(!rc)
        rc = copybin_time(b, f->clin_end);
    if(!rc)
        rc = copybin_time(b, f->created);
    return rc;
}

/* A row of load_stage: seq, type, id, patient, json, non-financial json,
 * the facts, directory. */
static int add_staged_row(load_ctx *l, const struct row *r, const pa_fhir_facts *f)
{
    pa_buf *b = &l->batch;
    int rc = copybin_row(b, 13);

    if(!rc)
        rc = copybin_int8(b, ++l->seq);
    if(!rc)
        rc = copybin_str(b, r->type);
    if(!rc)
        rc = copybin_str(b, r->id);
    if(!rc)
        rc = copybin_opt(b, f->patient_id);
    if(!rc)
        rc = copybin_str(b, r->json);
    if(!rc)
        rc = r->nonfin ? copybin_str(b, r->nonfin) : copybin_null(b);
    if(!rc)
        rc = add_facts(b, r, f);
    if(!rc)
        rc = copybin_bool(b, r->directory);
    return rc;
}

/* A row for resource itself (DIRECT_COLUMNS), its change time a
 * placeholder; a Patient, Coverage, Practitioner or Organization also in
 * the derive buffer. */
static int add_direct_row(load_ctx *l, const struct row *r, const pa_fhir_facts *f)
{
    pa_buf *b = &l->batch;
    int rc = copybin_row(b, 12);

    if(!rc)
        rc = copybin_str(b, r->type);
    if(!rc)
        rc = copybin_str(b, r->id);
    if(!rc)
        rc = copybin_opt(b, f->patient_id);
    if(!rc)
        rc = copybin_int8(b, 0);
    if(!rc)
        rc = mark_add(&l->marks, b->len - 8, MARK_BINARY);
    if(!rc)
        rc = copy_field_marked(b, r->json, &l->marks);
    if(!rc)
        rc = r->nonfin ? copy_field_marked(b, r->nonfin, &l->marks) : copybin_null(b);
    if(!rc)
        rc = add_facts(b, r, f);
    if(!rc && (!strcmp(r->type, "Patient") || !strcmp(r->type, "Coverage") || !strcmp(r->type, "Practitioner") ||
               !strcmp(r->type, "Organization"))) {
        rc = copybin_row(&l->derive, 5);
        if(!rc)
            rc = copybin_str(&l->derive, r->type);
        if(!rc)
            rc = copybin_str(&l->derive, r->id);
        if(!rc)
            rc = copybin_opt(&l->derive, f->patient_id);
        if(!rc)
            rc = copybin_bool(&l->derive, r->directory);
        if(!rc)
            rc = copybin_str(&l->derive, r->json);
    }
    return rc;
}

/* Adds a row to the batch: json (with the change-time mark), and for an
 * ExplanationOfBenefit its non-financial form; directory whether its NPI
 * may enter the provider directory. */
static int stage_row(load_ctx *l, const pa_fhir_type *t, const char *id, const char *json, const char *nonfin,
                     const pa_fhir_facts *f, int directory, const char *file, long lineno, pa_err *err)
{
    struct row row;
    size_t batch_len = l->batch.len, derive_len = l->derive.len, marks = l->marks.n;
    int rc;

    if(hash_line(json, strlen(json), row.hash))
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    if(l->batch_rows == 0) {
        pa_strlcpy(l->batch_file, file, sizeof(l->batch_file));
        l->batch_first_line = lineno;
        l->batch_direct = l->direct;
    }
    /* a batch goes on across files */
    if(strcmp(l->batch_last_file, file))
        pa_strlcpy(l->batch_last_file, file, sizeof(l->batch_last_file));
    l->batch_last_line = lineno;
    batch_key(l, t->name, id);
    row.type = t->name;
    row.id = id;
    row.json = json;
    row.nonfin = nonfin;
    row.directory = directory;
    rc = l->batch_direct ? add_direct_row(l, &row, f) : add_staged_row(l, &row, f);
    if(rc) {
        /* none of the row stays */
        pa_buf_truncate(&l->batch, batch_len);
        pa_buf_truncate(&l->derive, derive_len);
        l->marks.n = marks;
        if(rc != PA_EINVAL)
            return pa_err_set(err, rc, "out of memory");
        load_report(l, file, lineno, "%s/%s: its dates or search tokens cannot be stored", t->name, id);
        return PA_OK;
    }
    l->batch_types[pa_fhir_type_index(t)]++;
    l->batch_rows++;
    if(l->batch_rows >= BATCH_ROWS || l->batch.len >= BATCH_BYTES)
        return batch_send(l, err);
    return PA_OK;
}

/* Adds one checked resource, given as a tree, to the batch (an
 * ExplanationOfBenefit's tree is left stripped of its financial elements);
 * line is its source when it was one whole line (NULL otherwise), compact
 * when that line can be stored as it is (no white space outside its
 * strings, no key twice). */
static int stage(load_ctx *l, json_object *res, const pa_fhir_type *t, const char *line, int compact,
                 const pa_fhir_facts *f, int directory, const char *file, long lineno, pa_err *err)
{
    json_object *meta;
    const char *json, *nonfin = NULL;
    char *marked = NULL;
    int rc;

    /* meta.lastUpdated is the change time the merge gives it; the source's
     * is not kept, and not hashed: a reload that differs only there changes
     * nothing */
    if(!json_object_object_get_ex(res, "meta", &meta) || !json_object_is_type(meta, json_type_object)) {
        meta = json_object_new_object();
        json_object_object_add(res, "meta", meta);
    }
    json_object_object_add(meta, "lastUpdated", json_object_new_string(CHANGE_TIME_VALUE));
    if(line && compact && f->last_updated[0] && (marked = mark_change_time(line, f->last_updated)))
        json = marked;
    else
        json = json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if(!strcmp(t->name, "ExplanationOfBenefit")) {
        /* the full form is written: the tree itself becomes the non-financial
         * one (no copy), its text in the tree's own buffer, so the full
         * form's text is kept apart first if it is there too */
        if(!marked) {
            marked = strdup(json);
            json = marked;
        }
        if(marked) {
            pa_fhir_strip_financial(res);
            nonfin = json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        }
        if(!nonfin) {
            free(marked);
            return pa_err_set(err, PA_ENOMEM, "out of memory");
        }
    }
    rc = stage_row(l, t, json_object_get_string(json_object_object_get(res, "id")), json, nonfin, f, directory,
                   file, lineno, err);
    free(marked);
    return rc;
}

/* The DELETE entries of a transaction or batch Bundle: deleted now, after
 * what came before (the other entries are bundle.c's). */
int load_bundle_deletes(load_ctx *l, json_object *bundle, const char *file, long lineno, pa_err *err)
{
    json_object *entries, *types, *ids;
    size_t i;
    int rc;

    if(!json_object_object_get_ex(bundle, "entry", &entries) ||
       !json_object_is_type(entries, json_type_array))
        return PA_OK;
    types = json_object_new_array();
    ids = json_object_new_array();
    for(i = 0; i < json_object_array_length(entries); i++) {
        json_object *req;
        const char *method = NULL, *url = NULL;
        char type[64], id[PA_FHIR_ID_MAX + 1];
        const char *slash;

        if(json_object_object_get_ex(json_object_array_get_idx(entries, i), "request", &req)) {
            method = json_object_get_string(json_object_object_get(req, "method"));
            url = json_object_get_string(json_object_object_get(req, "url"));
        }
        if(!method || strcmp(method, "DELETE"))
            continue;
        slash = url ? strchr(url, '/') : NULL;
        if(!slash || (size_t)(slash - url) >= sizeof(type) || pa_strlcpy(id, slash + 1, sizeof(id)) ||
           !pa_is_fhir_id(id)) {
            load_report(l, file, lineno, "Bundle entry %zu: a DELETE of '%.80s', not of Type/id", i,
                        url ? url : "");
            continue;
        }
        snprintf(type, sizeof(type), "%.*s", (int)(slash - url), url);
        if(!pa_fhir_type_find(type)) {
            load_report(l, file, lineno, "Bundle entry %zu deletes a type this server does not keep: '%s'", i,
                        type);
            continue;
        }
        json_object_array_add(types, json_object_new_string(type));
        json_object_array_add(ids, json_object_new_string(id));
    }
    /* what came before is stored first; a Bundle without DELETEs waits for nothing */
    rc = json_object_array_length(types) ? load_flush(l, err) : PA_OK;
    if(!rc && json_object_array_length(types)) {
        /* tombstones from now on: what is loaded again must lift them */
        l->direct = 0;
        /* JSON arrays of ids ([A-Za-z0-9.-]) read as Postgres arrays once the
         * brackets become braces */
        char *t = strdup(json_object_to_json_string_ext(types, JSON_C_TO_STRING_PLAIN));
        char *d = strdup(json_object_to_json_string_ext(ids, JSON_C_TO_STRING_PLAIN));

        if(t && d) {
            t[0] = d[0] = '{';
            t[strlen(t) - 1] = d[strlen(d) - 1] = '}';
            long n = 0;

            if(load_delete(l->db, t, d, &n, err) == PA_OK)
                l->deleted += n;
            else
                load_report(l, file, lineno, "the deletes failed: %s", err->msg);
        }
        free(t);
        free(d);
    }
    json_object_put(types);
    json_object_put(ids);
    return rc;
}

/* The checks and facts of a resource of type t with id, read from its text
 * through the tape of it in l->tape: its NPI (*directory: whether it may
 * enter the provider directory) and the facts, into l->facts.  0, or 1
 * when it is refused (reported). */
static int resource_checks(load_ctx *l, const pa_fhir_type *t, const char *id, const char *text, int *directory,
                           const char *file, long lineno, pa_err *err)
{
    char npi[64];

    *directory = 1;
    if(pa_fhir_npi(text, &l->tape, npi, sizeof(npi)) && !pa_npi_valid(npi)) {
        /* kept, so that what references it is whole; but no directory entry */
        load_warn(l, file, lineno, "%s/%s: NPI '%.20s' fails its check digit: stored, not in the provider directory",
                  t->name, id, npi);
        *directory = 0;
    }
    if(pa_fhir_extract(text, &l->tape, t, &l->facts, err)) {
        load_report(l, file, lineno, "%s/%s: %s", t->name, id, err->msg);
        pa_err_clear(err);
        return 1;
    }
    return 0;
}

/* Checks a parsed resource and stages it (a Group waits for the end, a
 * Bundle is bundle.c's); text[0..n) is its line when it was one, taped
 * whether l->tape already holds that line's tape. */
static int load_tree(load_ctx *l, json_object *res, const char *text, size_t n, int taped, const char *file,
                     long lineno, pa_err *err)
{
    const char *rt, *id;
    const pa_fhir_type *t;
    int rc = PA_OK, directory = 1, compact = 0;

    if(!json_object_is_type(res, json_type_object)) {
        load_report(l, file, lineno, "not a JSON object");
        goto out;
    }
    rt = json_object_get_string(json_object_object_get(res, "resourceType"));
    if(!rt) {
        load_report(l, file, lineno, "no resourceType");
        goto out;
    }
    if(!strcmp(rt, "Bundle")) {
        rc = load_bundle(l, res, file, lineno, err);
        goto out;
    }
    if(!strcmp(rt, "Group")) {
        rc = load_group_defer(l, res, file, lineno);
        res = NULL; /* kept for after the resources */
        goto out;
    }
    t = pa_fhir_type_find(rt);
    if(!t) {
        load_skip(l, rt, file, lineno);
        goto out;
    }
    id = json_object_get_string(json_object_object_get(res, "id"));
    if(!id || !pa_is_fhir_id(id)) {
        load_report(l, file, lineno, "%s without a valid id", rt);
        goto out;
    }
    /* the facts are read from the line through its tape when its keys read
     * as json-c's tree has them (none twice, none escaped); else from the
     * tree as json-c writes it */
    if(text && !taped && pa_json_tape_parse(text, n, &l->tape, err)) {
        pa_err_clear(err);
        text = NULL;
    }
    if(text) {
        compact = !l->tape.spaced && !l->tape.dup_keys && !l->tape.odd_keys;
        if(l->tape.dup_keys || l->tape.odd_keys)
            taped = 0;
    }
    if(!text || !taped) {
        const char *src = json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        pa_buf_reset(&l->scratch);
        rc = src ? pa_buf_addstr(&l->scratch, src) : PA_ENOMEM;
        if(!rc)
            rc = pa_json_tape_parse(l->scratch.data, l->scratch.len, &l->tape, err);
        if(rc) {
            rc = pa_err_set(err, PA_ENOMEM, "out of memory");
            goto out;
        }
    }
    if(resource_checks(l, t, id, text && taped ? text : l->scratch.data, &directory, file, lineno, err))
        goto out;
    rc = stage(l, res, t, text, compact, &l->facts, directory, file, lineno, err);
out:
    json_object_put(res);
    return rc;
}

int load_object(load_ctx *l, json_object *res, const char *text, size_t n, const char *file, long lineno,
                pa_err *err)
{
    return load_tree(l, res, text, n, 0, file, lineno, err);
}

/* A line loaded from its text and tape (l->tape) alone, without a tree:
 * what most lines are (compact, a stored type with its id and
 * meta.lastUpdated, keys that json-c reads as written); an
 * ExplanationOfBenefit's non-financial form is written from them too.
 * 1 when it is one (loaded or refused), 0 when the tree must do it. */
static int load_text(load_ctx *l, const char *line, pa_err *err, int *rc, const char *file, long lineno)
{
    const pa_json_tape *tp = &l->tape;
    char type[64], id[PA_FHIR_ID_MAX + 2], lu[PA_TS_LEN];
    const pa_fhir_type *t;
    char *marked;
    size_t meta;
    int directory;

    if(tp->n[0].type != '{' || tp->spaced || tp->dup_keys || tp->odd_keys ||
       pa_json_node_string(tp, line, pa_json_member(tp, line, 0, "resourceType"), type, sizeof(type)) ||
       !(t = pa_fhir_type_find(type)) ||
       pa_json_node_string(tp, line, pa_json_member(tp, line, 0, "id"), id, sizeof(id)) || !pa_is_fhir_id(id))
        return 0;
    meta = pa_json_member(tp, line, 0, "meta");
    if(pa_json_node_string(tp, line, pa_json_member(tp, line, meta, "lastUpdated"), lu, sizeof(lu)))
        return 0;
    /* the line with its change time marked, when its lastUpdated is there once */
    marked = mark_change_time(line, lu);
    if(!marked)
        return 0;
    *rc = PA_OK;
    if(!resource_checks(l, t, id, line, &directory, file, lineno, err)) {
        const char *nonfin = NULL;

        if(!strcmp(type, "ExplanationOfBenefit")) {
            pa_buf_reset(&l->scratch);
            *rc = pa_fhir_nonfinancial_text(line, tp, CHANGE_TIME_VALUE, &l->scratch);
            nonfin = l->scratch.data;
        }
        if(*rc)
            *rc = pa_err_set(err, PA_ENOMEM, "out of memory");
        else
            *rc = stage_row(l, t, id, marked, nonfin, &l->facts, directory, file, lineno, err);
    }
    free(marked);
    return 1;
}

/* Checks one line holding one whole JSON text and loads it; *incomplete
 * when it is the start of one that goes on. */
static int load_line(load_ctx *l, json_tokener *tok, const char *line, size_t n, const char *file,
                     long lineno, int *incomplete, pa_err *err)
{
    json_object *res;
    int rc;

    /* strictly first (UTF-8, no \u0000, nothing after it): PostgreSQL refuses
     * such a line only when its whole batch is stored, losing the good ones */
    rc = pa_json_tape_parse(line, n, &l->tape, err);
    if(rc == PA_ENOMEM)
        return rc;
    if(rc) {
        pa_err_clear(err);
        /* the first line of a text over several lines */
        *incomplete = pa_json_prefix(line, n);
        if(*incomplete)
            return PA_OK;
        pa_json_walk(line, n, NULL, NULL, err);
        load_report(l, file, lineno, "%s", err->msg);
        pa_err_clear(err);
        return PA_OK;
    }
    l->seen++;
    if(load_text(l, line, err, &rc, file, lineno))
        return rc;
    json_tokener_reset(tok);
    res = json_tokener_parse_ex(tok, line, (int)n);
    if(!res || json_tokener_get_error(tok) != json_tokener_success ||
       json_tokener_get_parse_end(tok) != n) {
        enum json_tokener_error je = json_tokener_get_error(tok);

        l->seen--;
        load_report(l, file, lineno, "not valid JSON: %s",
                    res ? "text after the resource"
                    : je == json_tokener_continue ? "the line ends before the JSON does"
                                                  : json_tokener_error_desc(je));
        json_object_put(res);
        return PA_OK;
    }
    return load_tree(l, res, line, n, 1, file, lineno, err);
}

/* Reads one line of any length up to PA_LOAD_MAX_LINE; 1 got one, 0 at end,
 * -1 too long (the rest of it is skipped). */
static int read_line(gzFile gz, pa_buf *line)
{
    char chunk[65536];
    int too_long = 0;

    pa_buf_reset(line);
    while(gzgets(gz, chunk, sizeof(chunk))) {
        size_t n = strlen(chunk);
        int done = n && chunk[n - 1] == '\n';

        if(!too_long && pa_buf_add(line, chunk, n))
            too_long = 1;
        if(done)
            break;
    }
    if(too_long)
        return -1;
    return line->len > 0 ? 1 : 0;
}

/* A JSON text over several lines (a pretty-printed resource or Bundle),
 * fed to its own tokener line by line. */
struct doc {
    json_tokener *tok;
    pa_buf text;
    long first_line; /* 0: none under way */
    int skipping;    /* after a broken one: its lines up to the next that starts a value */
};

/* Feeds one more line of the text under way; PA_OK whether or not it ended
 * there, an error only when loading what it held failed. */
static int doc_feed(load_ctx *l, struct doc *d, const char *line, size_t n, const char *file, long lineno,
                    int *reread, pa_err *err)
{
    size_t from = d->text.len;
    json_object *res;
    enum json_tokener_error je;
    long first = d->first_line;

    if(pa_buf_add(&d->text, line, n) || pa_buf_add(&d->text, "\n", 1)) {
        load_report(l, file, first, "a JSON text over %d MB: the rest of the file was not read",
                    PA_LOAD_MAX_DOC / 1048576);
        d->first_line = 0;
        return PA_EIO;
    }
    res = json_tokener_parse_ex(d->tok, d->text.data + from, (int)(d->text.len - from));
    je = json_tokener_get_error(d->tok);
    if(je == json_tokener_continue)
        return PA_OK;
    d->first_line = 0;
    if(je != json_tokener_success || json_tokener_get_parse_end(d->tok) + from < d->text.len - 1) {
        /* a line cut short, then the next line; or a text broken at this
         * line: a line that starts a value is read again, the rest of the
         * broken text is left */
        if(lineno == first + 1)
            load_report(l, file, first, "not valid JSON: the line ends before the JSON does");
        else
            load_report(l, file, first, "not valid JSON: the text that starts here breaks on line %ld: %s", lineno,
                        res ? "text after the value" : json_tokener_error_desc(je));
        json_object_put(res);
        *reread = line[0] == '{' || line[0] == '[';
        d->skipping = !*reread;
        return PA_OK;
    }
    l->seen++;
    if(pa_json_walk(d->text.data, d->text.len, NULL, NULL, err)) {
        load_report(l, file, first, "%s", err->msg);
        pa_err_clear(err);
        json_object_put(res);
        return PA_OK;
    }
    return load_object(l, res, NULL, 0, file, first, err);
}

static int load_ndjson(load_ctx *l, const char *file, pa_err *err)
{
    gzFile gz = gzopen(file, "rb");
    json_tokener *tok = json_tokener_new_ex(64);
    struct doc d = { json_tokener_new_ex(64), { 0 }, 0, 0 };
    pa_buf line;
    long lineno = 0;
    int rc = PA_OK;
    int got = 1, reread = 0;

    pa_buf_init(&line, PA_LOAD_MAX_LINE);
    pa_buf_init(&d.text, PA_LOAD_MAX_DOC);
    if(!gz || !tok || !d.tok) {
        rc = pa_err_set(err, PA_EIO, "cannot read %s: %s", file, strerror(errno));
        goto out;
    }
    gzbuffer(gz, 256 * 1024);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_tokener_set_flags(d.tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    while(!rc) {
        size_t n;
        int incomplete = 0;

        if(!reread) {
            got = read_line(gz, &line);
            if(got == 0)
                break;
            lineno++;
        }
        reread = 0;
        if(got < 0) {
            load_report(l, file, lineno, "longer than %d bytes", PA_LOAD_MAX_LINE);
            continue;
        }
        n = line.len;
        while(n && (line.data[n - 1] == '\n' || line.data[n - 1] == '\r' || line.data[n - 1] == ' '))
            n--;
        if(n == 0)
            continue;
        line.data[n] = '\0';
        line.len = n; /* as it is read again */
        if(d.skipping && line.data[0] != '{' && line.data[0] != '[')
            continue;
        d.skipping = 0;
        if(d.first_line) {
            rc = doc_feed(l, &d, line.data, n, file, lineno, &reread, err);
            if(rc == PA_EIO) {
                rc = PA_OK;
                break;
            }
        }
        else {
            rc = load_line(l, tok, line.data, n, file, lineno, &incomplete, err);
            if(!rc && incomplete) {
                /* the start of a text over several lines */
                json_tokener_reset(d.tok);
                pa_buf_reset(&d.text);
                d.first_line = lineno;
                rc = doc_feed(l, &d, line.data, n, file, lineno, &reread, err);
            }
        }
        /* where the file is (a system call): now and then */
        if((lineno & 1023) == 0) {
            l->bytes_current = gzoffset(gz);
            load_progress(l, file, 0);
        }
    }
    l->bytes_current = gzoffset(gz);
    if(d.first_line)
        load_report(l, file, d.first_line, "not valid JSON: the text ends before the JSON does");
out:
    if(gz)
        gzclose(gz);
    if(tok)
        json_tokener_free(tok);
    if(d.tok)
        json_tokener_free(d.tok);
    pa_buf_free(&d.text);
    pa_buf_free(&line);
    return rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && !strcmp(s + n - k, suffix);
}

static int is_fhir_file(const char *name)
{
    return ends_with(name, ".ndjson") || ends_with(name, ".ndjson.gz") || ends_with(name, ".jsonl") ||
           ends_with(name, ".json") || ends_with(name, ".json.gz") || ends_with(name, ".jsonl.gz");
}

#define MAX_DEPTH 32

/* A file list being collected. */
struct file_list {
    char **files;
    size_t n;
};

static int add_file(struct file_list *fl, const char *path)
{
    if(fl->n == MAX_FILES) {
        fprintf(stderr, "pa-admin: more than %d files to load: load the folders in parts\n", MAX_FILES);
        return -1;
    }
    fl->files[fl->n] = strdup(path);
    if(!fl->files[fl->n]) {
        fprintf(stderr, "pa-admin: out of memory\n");
        return -1;
    }
    fl->n++;
    return 0;
}

/* Adds a folder's loadable files, its subfolders' in turn, each folder's
 * entries in name order (hidden ones skipped). */
static int collect_dir(const char *dir, struct file_list *fl, int depth)
{
    struct dirent **entries = NULL;
    int n, i, rc = 0;

    if(depth > MAX_DEPTH) {
        fprintf(stderr, "pa-admin: %s: folders nested more than %d deep\n", dir, MAX_DEPTH);
        return -1;
    }
    n = scandir(dir, &entries, NULL, alphasort);
    if(n < 0) {
        fprintf(stderr, "pa-admin: cannot read %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for(i = 0; i < n; i++) {
        const char *name = entries[i]->d_name;
        char path[4096];
        struct stat st;

        if(!rc && name[0] != '.') {
            if(snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
                fprintf(stderr, "pa-admin: %s/%s: the path is too long\n", dir, name);
                rc = -1;
            }
            else if(stat(path, &st)) {
                fprintf(stderr, "pa-admin: cannot read %s: %s\n", path, strerror(errno));
                rc = -1;
            }
            else if(S_ISDIR(st.st_mode))
                rc = collect_dir(path, fl, depth + 1);
            else if(is_fhir_file(name) || ends_with(name, ".csv"))
                rc = add_file(fl, path);
        }
        free(entries[i]);
    }
    free(entries);
    return rc;
}

/* Expands the arguments into files: a folder gives its loadable files and
 * its subfolders', in name order. */
static int collect(char **args, int nargs, char ***out, size_t *n)
{
    struct file_list fl = { calloc(MAX_FILES, sizeof(char *)), 0 };
    int i;

    if(!fl.files)
        return -1;
    for(i = 0; i < nargs; i++) {
        struct stat st;

        if(stat(args[i], &st)) {
            fprintf(stderr, "pa-admin: cannot read %s: %s\n", args[i], strerror(errno));
            goto fail;
        }
        if(S_ISDIR(st.st_mode) ? collect_dir(args[i], &fl, 0) : add_file(&fl, args[i]))
            goto fail;
    }
    *out = fl.files;
    *n = fl.n;
    return 0;
fail:
    while(fl.n)
        free(fl.files[--fl.n]);
    free(fl.files);
    return -1;
}

static long long file_bytes(char **files, size_t n)
{
    long long total = 0;
    size_t i;

    for(i = 0; i < n; i++) {
        struct stat st;

        if(!stat(files[i], &st))
            total += st.st_size;
    }
    return total;
}

static int load_usage(void)
{
    fprintf(stderr, "usage: pa-admin load [--errors FILE] FILE|DIR...\n"
                    "  FHIR NDJSON or JSON (.ndjson, .json, .jsonl, and .gz): resources, Bundles (transaction,\n"
                    "  batch, collection, searchset) and PDex Groups; CSV feeds (.csv).  A folder gives its\n"
                    "  files and its subfolders', in name order.  --errors FILE lists every refused line.\n");
    return 2;
}

int load_open(load_ctx *l, PGconn *db, FILE *errors, pa_err *err)
{
    memset(l, 0, sizeof(*l));
    l->entry = -1;
    l->db = db;
    l->errors = errors;
    pa_buf_init(&l->batch, BATCH_BYTES + PA_LOAD_MAX_LINE * 3);
    pa_buf_init(&l->derive, BATCH_BYTES + PA_LOAD_MAX_LINE * 3);
    pa_fhir_facts_init(&l->facts);
    pa_buf_init(&l->scratch, PA_LOAD_MAX_DOC);
    l->tty = isatty(2);
    l->started = pa_mono_ms();
    l->last_progress = l->started;
    /* a load is idempotent and can be run again: it need not wait for each
     * commit to reach the disk */
    if(pa_db_exec(db, err, "SET synchronous_commit = off") ||
       pa_db_exec(db, err, "SET default_toast_compression = lz4") || pa_db_exec(db, err, stage_sql) ||
       pa_db_exec(db, err, direct_sql) || pa_db_exec(db, err, derive_sql) ||
       load_groups_init(l, err))
        return err->code;
    /* into an empty store, rows go straight in (until one meets a resource
     * stored already) */
    {
        PGresult *res = pa_db_query(db, err, "SELECT NOT EXISTS (SELECT 1 FROM resource)"
                                             " AND NOT EXISTS (SELECT 1 FROM resource_deleted)", 0, NULL);

        if(!res)
            return err->code;
        l->direct = !strcmp(PQgetvalue(res, 0, 0), "t");
        PQclear(res);
    }
    return sender_start(l, err);
}

int load_file(load_ctx *l, const char *path, pa_err *err)
{
    int rc;

    l->bytes_current = 0;
    if(ends_with(path, ".csv")) {
        /* a feed's statements use the connection: what is staged goes first */
        rc = load_flush(l, err);
        if(!rc)
            rc = load_csv(l, path, err);
    }
    else
        rc = load_ndjson(l, path, err);
    l->bytes_done += l->bytes_current;
    return rc;
}

int load_finish(load_ctx *l, pa_err *err)
{
    int rc = load_flush(l, err);

    if(!rc)
        rc = load_bundles_finish(l, err);

    if(!rc)
        rc = load_groups_flush(l, err);
    return rc;
}

void load_close(load_ctx *l)
{
    pa_err err;

    /* what a failed load left in flight is stored or reported first */
    load_flush(l, &err);
    sender_stop(l);
    load_groups_free(l);
    load_bundles_free(l);
    load_summary_free(l);
    pa_buf_free(&l->batch);
    pa_buf_free(&l->derive);
    free(l->marks.at);
    pa_fhir_facts_free(&l->facts);
    pa_json_tape_free(&l->tape);
    pa_buf_free(&l->scratch);
}

/* Reads every file: resources, then the Bundle entries that waited for
 * them, then the Groups that refer to them, then CSV feeds. */
static int load_files(load_ctx *l, char **files, size_t nfiles, pa_err *err)
{
    size_t i;
    int rc = PA_OK;

    for(i = 0; !rc && i < nfiles; i++)
        if(!ends_with(files[i], ".csv"))
            rc = load_file(l, files[i], err);
    if(!rc)
        rc = load_finish(l, err);
    for(i = 0; !rc && i < nfiles; i++)
        if(ends_with(files[i], ".csv"))
            rc = load_file(l, files[i], err);
    return rc;
}

int cmd_load(int argc, char **argv)
{
    load_ctx l;
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    FILE *errors_out = NULL;
    char **files = NULL;
    const char *errors = NULL;
    size_t nfiles = 0;
    size_t i;
    pa_err err;
    int ret = 2, first = 1, opened = 0;

    while(first < argc && argv[first][0] == '-') {
        if(!strcmp(argv[first], "--errors") && first + 1 < argc)
            errors = argv[first + 1];
        else
            return load_usage();
        first += 2;
    }
    if(first == argc)
        return load_usage();
    if(collect(argv + first, argc - first, &files, &nfiles))
        return 2;
    if(errors) {
        errors_out = fopen(errors, "w");
        if(!errors_out) {
            fprintf(stderr, "pa-admin: cannot write %s: %s\n", errors, strerror(errno));
            goto out;
        }
    }
    if(admin_connect(&cfg, &db))
        goto out;
    pa_err_clear(&err);
    opened = 1;
    if(load_open(&l, db, errors_out, &err)) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        goto out;
    }
    l.bytes_total = file_bytes(files, nfiles);
    if(load_files(&l, files, nfiles, &err)) {
        load_summary(&l, stderr);
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        goto out;
    }
    load_summary(&l, stdout);
    ret = l.rejected ? 1 : 0;
out:
    if(opened)
        load_close(&l);
    if(errors_out && fclose(errors_out)) {
        fprintf(stderr, "pa-admin: cannot write %s: %s\n", errors, strerror(errno));
        ret = 2;
    }
    for(i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    if(db)
        PQfinish(db);
    pa_config_free(cfg);
    return ret;
}
