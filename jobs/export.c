/*
 * The export job (Bulk Data Group export and PDex $davinci-data-export).
 *
 * Members are taken as of run time: active in the roster today, within the
 * `patient` subset if one was asked for, and without an active opt-out
 * (global, or naming the client's NPI or organization).  They are walked in
 * keyset-ordered chunks; for each chunk and each requested type, the stored
 * NDJSON lines stream from PostgreSQL into per-type files, never parsed:
 * every query capped at the job's transactionTime, floored by _since and
 * capped by _until, filtered by _typeFilter (evaluated in SQL on the
 * extracted tokens), claims and clinical data dated before the service-date
 * floor left out, and ExplanationOfBenefit in its non-financial form unless
 * the client is financial.  With _since, the members' tombstones go to the
 * manifest's `deleted` files.  After the members, the Organizations,
 * Practitioners, PractitionerRoles and Locations their exported resources
 * reference, when _type asks for those (each chunk gathers its members'
 * references into export_ref, which lives as long as the job).  `patient` references that are not
 * members go to the `error` file.
 *
 * At most once a second, after a chunk, and after the last pass, the files
 * are synced and the resume point saved, so a runner that dies mid-job is
 * replaced by one that truncates the files to the last checkpoint and goes
 * on: no line is lost or written twice.
 */
#include "runner.h"
#include "elements.h"
#include "members.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pa_buf.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_filter.h"
#include "pa_log.h"
#include "pa_util.h"

#define MAX_OUTS 32
#define WRITE_BUF (256 * 1024)
#define MAX_FILES_PER_TYPE 10000
#define MAX_SQL_VALUES 64
#define MAX_REF_VALUES 2048
#define SQL_MAX (64 * 1024)
#define CHECKPOINT_EVERY_MS 1000

/*
 * The service-date floor, one rule per type (docs/EXPORT.md has the table):
 * FLOOR_SERVICE leaves a resource out when the end of its service (else its
 * start, else its created date) is before the floor, and exports one with no
 * date; FLOOR_ENDED leaves it out only when it ended before the floor: an
 * ongoing one is exported whenever it began.  A type not listed is undated.
 */
enum floor_rule { FLOOR_NONE, FLOOR_SERVICE, FLOOR_ENDED };

static const struct {
    const char *type;
    enum floor_rule rule;
} floor_rules[] = {
    { "ExplanationOfBenefit", FLOOR_SERVICE }, { "Encounter", FLOOR_SERVICE },
    { "Procedure", FLOOR_SERVICE },            { "Immunization", FLOOR_SERVICE },
    { "Observation", FLOOR_SERVICE },          { "DiagnosticReport", FLOOR_SERVICE },
    { "MedicationRequest", FLOOR_SERVICE },    { "DocumentReference", FLOOR_SERVICE },
    { "MedicationDispense", FLOOR_SERVICE },   { "ServiceRequest", FLOOR_SERVICE },
    { "Specimen", FLOOR_SERVICE },             { "QuestionnaireResponse", FLOOR_SERVICE },
    { "Condition", FLOOR_ENDED },              { "CarePlan", FLOOR_ENDED },
    { "CareTeam", FLOOR_ENDED },               { "Coverage", FLOOR_ENDED },
};

/* The date each rule compares, of alias X's row. */
#define SERVICE_DATE(X) "coalesce(" X "clin_end, " X "clin_start, " X "created)"
#define ENDED_DATE(X) X "clin_end"

enum out_kind { OUT_RESOURCE, OUT_SHARED, OUT_DELETED, OUT_ERROR };

/* One output: finished files and the one being written. */
struct type_out {
    char type[64];         /* resource type; "Bundle" for deleted, "OperationOutcome" for errors */
    enum out_kind kind;
    long file_no;          /* current file, from 1 */
    long long bytes;       /* bytes in the current file */
    long count;            /* lines in the current file */
    json_object *done;     /* finished files: [{"name", "count"}] */
    int fd;
    pa_buf sql;            /* the query for one chunk of this type */
    const char **values;   /* fixed, or (references) the export's ref_values */
    const char *fixed[MAX_SQL_VALUES];
    int nvalues;
    pa_buf wbuf;           /* lines not yet written to the current file */
    int subset;            /* _elements names this type: keep only what `keep` says */
    struct elements keep;
};

struct export {
    pa_worker *w;
    const pa_job *job;
    json_object *params;   /* owned: borrowed strings point into it */
    char dir[1024];
    const char *group, *npi, *org_npi;
    struct member_scope scope; /* who the export covers (the subset: patients) */
    int shared_all;        /* an admin's system-level export: every shared resource, not only those referenced */
    /* Postgres array literal of the patient subset, "" for all: quoted ids
     * and commas, as many as a kick-off accepts */
    char patients[(PA_FHIR_ID_MAX + 3) * PA_EXPORT_MAX_PATIENTS + 3];
    char ttime[32], since[32], until[32];
    int financial;
    int record_downloads;  /* exportType provider-download: remember who got what */
    pa_buf asked_types, asked_filters; /* as the client gave them, joined with commas */
    struct type_out out[MAX_OUTS];
    size_t nout;
    char after[256];       /* last member id done (keyset) */
    long done;             /* chunks done */
    long total;            /* chunks in all */
    int shared_done;       /* the referenced shared resources are written */
    PGconn *db2;           /* the second lane's connection (export_chunk) */
    uint64_t prepared[2];  /* per lane: the queries it has prepared (bit i: out[i], MAX_OUTS: refs,
                              MAX_OUTS + 1: members) */
    int backend[2];        /* per lane: the server process they were prepared in */
    pa_buf compartment, shared; /* array literals of the types exported, by kind */
    pa_buf floor_service, floor_ended; /* array literals of the types each floor rule applies to */
    pa_buf scratch;        /* a line cut down by _elements */
    int want_refs;         /* shared types are asked for: gather the members' references */
    int gather_refs;       /* the references are gathered: for the shared types, or the floor's error lines */
    int resumed;           /* going on from a checkpoint */
    struct type_out refs;  /* a chunk's references into export_ref (no file) */
    const char *ref_values[MAX_REF_VALUES]; /* its query's: every type's filters */
    struct type_out members; /* a chunk's members into export_member (no file): its disclosures */
};

/* The export's scope, with its patient subset as it stands. */
static const struct member_scope *scope(struct export *x)
{
    x->scope.subset = x->patients[0] ? x->patients : NULL;
    return &x->scope;
}

static void file_name(const struct type_out *t, long no, char *out, size_t size)
{
    snprintf(out, size, "%s-%ld.ndjson", t->type, no);
}

static int open_current(struct export *x, struct type_out *t, pa_err *err)
{
    char name[128];
    char path[1400];

    file_name(t, t->file_no, name, sizeof(name));
    snprintf(path, sizeof(path), "%s/%s", x->dir, name);
    t->fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if(t->fd < 0)
        return pa_err_set(err, PA_EIO, "cannot open %s: %s", name, strerror(errno));
    /* drop whatever a previous attempt wrote after its last checkpoint */
    if(ftruncate(t->fd, (off_t)t->bytes) || lseek(t->fd, 0, SEEK_END) < 0)
        return pa_err_set(err, PA_EIO, "cannot position %s: %s", name, strerror(errno));
    return PA_OK;
}

static int write_all(int fd, const char *p, size_t n)
{
    while(n) {
        ssize_t k = write(fd, p, n);

        if(k < 0 && errno == EINTR)
            continue;
        if(k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Writes the buffered lines of t to its current file. */
static int flush_type(struct type_out *t, pa_err *err)
{
    if(!t->wbuf.len)
        return PA_OK;
    if(write_all(t->fd, t->wbuf.data, t->wbuf.len))
        return pa_err_set(err, PA_EIO, "cannot write %s output: %s", t->type, strerror(errno));
    pa_buf_reset(&t->wbuf);
    return PA_OK;
}

/* Closes the current file of t into the finished list and opens the next. */
static int next_file(struct export *x, struct type_out *t, pa_err *err)
{
    json_object *f;
    char name[128];
    int rc = flush_type(t, err);

    if(rc)
        return rc;
    if(fdatasync(t->fd) || close(t->fd))
        return pa_err_set(err, PA_EIO, "cannot sync %s output: %s", t->type, strerror(errno));
    t->fd = -1;
    file_name(t, t->file_no, name, sizeof(name));
    f = json_object_new_object();
    json_object_object_add(f, "name", json_object_new_string(name));
    json_object_object_add(f, "count", json_object_new_int64(t->count));
    json_object_array_add(t->done, f);
    if(t->file_no >= MAX_FILES_PER_TYPE)
        return pa_err_set(err, PA_ETOOBIG, "more than %d files of %s", MAX_FILES_PER_TYPE, t->type);
    t->file_no++;
    t->bytes = 0;
    t->count = 0;
    return open_current(x, t, err);
}

/* Appends one NDJSON line, splitting files at export_file_max_bytes. */
static int add_line(struct export *x, struct type_out *t, const char *json, size_t n, pa_err *err)
{
    int rc;

    if(t->subset) {
        rc = elements_apply(&t->keep, json, n, &x->scratch);
        if(rc)
            return pa_err_set(err, rc, "a stored %s cannot be cut down to _elements", t->type);
        json = x->scratch.data;
        n = x->scratch.len;
    }

    if(t->bytes > 0 && t->bytes + (long long)n + 1 > x->w->cfg->export_file_max_bytes) {
        rc = next_file(x, t, err);
        if(rc)
            return rc;
    }
    if(t->wbuf.len + n + 1 > WRITE_BUF) {
        rc = flush_type(t, err);
        if(rc)
            return rc;
    }
    /* a line longer than the buffer goes straight to the file */
    if(n + 1 > WRITE_BUF) {
        if(write_all(t->fd, json, n) || write_all(t->fd, "\n", 1))
            return pa_err_set(err, PA_EIO, "cannot write %s output: %s", t->type, strerror(errno));
    }
    else if(pa_buf_add(&t->wbuf, json, n) || pa_buf_add(&t->wbuf, "\n", 1)) {
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    t->bytes += (long long)n + 1;
    t->count++;
    return PA_OK;
}

static enum floor_rule floor_rule(const char *type)
{
    size_t i;

    for(i = 0; i < sizeof(floor_rules) / sizeof(floor_rules[0]); i++)
        if(!strcmp(floor_rules[i].type, type))
            return floor_rules[i].rule;
    return FLOOR_NONE;
}

/* An array literal of the types a floor rule applies to. */
static int floor_types(enum floor_rule rule, pa_buf *out)
{
    size_t i;
    int rc = pa_buf_addstr(out, "{");

    for(i = 0; i < sizeof(floor_rules) / sizeof(floor_rules[0]) && !rc; i++)
        if(floor_rules[i].rule == rule)
            rc = pa_buf_add_array_item(out, floor_rules[i].type);
    return rc ? rc : pa_buf_addstr(out, "}");
}

/*
 * The query of one compartment type for a chunk of members: $1 the members,
 * $2 the type, $3 transactionTime, $4 _since, $5 _until, $6 the service-date
 * floor, $7 financial, then the _typeFilter values.
 */
static int build_type_sql(struct export *x, struct type_out *t, json_object *filters, pa_err *err)
{
    const char *floor = x->w->cfg->service_date_floor;
    json_object *queries = NULL;
    int nf = 0;
    int rc;

    t->values[0] = NULL; /* the members, set per chunk */
    t->values[1] = t->type;
    t->values[2] = x->ttime;
    t->values[3] = x->since[0] ? x->since : NULL;
    t->values[4] = x->until[0] ? x->until : NULL;
    t->values[5] = *floor && floor_rule(t->type) != FLOOR_NONE ? floor : NULL;
    t->values[6] = x->financial ? "true" : "false";
    /* Member by member, in the chunk's order, each one's rows by id: the
     * output order is fixed (a resumed job writes what an uninterrupted one
     * would) without sorting the chunk, and no selectivity is estimated per
     * member id when the statement is planned. */
    rc = pa_buf_addstr(&t->sql,
                       "SELECT r.line FROM unnest($1::text[]) m(pid), LATERAL ("
                       "SELECT CASE WHEN $7::bool THEN json ELSE coalesce(json_nonfin, json) END line FROM resource "
                       "WHERE type = $2 AND last_updated <= $3::timestamptz"
                       " AND ($4::timestamptz IS NULL OR last_updated > $4::timestamptz)"
                       " AND ($5::timestamptz IS NULL OR last_updated < $5::timestamptz)");
    if(!rc) {
        const char *date = floor_rule(t->type) == FLOOR_ENDED ? ENDED_DATE("") : SERVICE_DATE("");

        rc = pa_buf_printf(&t->sql, " AND ($6::date IS NULL OR %s IS NULL OR %s >= $6::date)", date, date);
    }
    if(!rc)
        /* the Patient resource is the member itself; every other type is in its compartment */
        rc = pa_buf_addstr(&t->sql, strcmp(t->type, "Patient") ? " AND patient_id = m.pid" : " AND id = m.pid");
    json_object_object_get_ex(filters, t->type, &queries);
    if(!rc)
        rc = pa_filter_sql(queries, &t->sql, 8, t->values + 7, &nf, MAX_SQL_VALUES - 7);
    if(!rc)
        rc = pa_buf_addstr(&t->sql, " ORDER BY id) r");
    t->nvalues = 7 + nf;
    return rc ? pa_err_set(err, PA_ETOOBIG, "the %s filters are too large", t->type) : PA_OK;
}

/* The members' tombstones since _since, one transaction Bundle a line. */
static int build_deleted_sql(struct export *x, struct type_out *t, json_object *types)
{
    t->values[0] = NULL;
    t->values[1] = json_object_to_json_string_ext(types, JSON_C_TO_STRING_PLAIN);
    t->values[2] = x->since;
    t->values[3] = x->ttime;
    t->nvalues = 4;
    return pa_buf_addstr(&t->sql,
                         "SELECT json_build_object('resourceType', 'Bundle', 'type', 'transaction', 'entry',"
                         " json_build_array(json_build_object('request', json_build_object('method', 'DELETE',"
                         " 'url', type || '/' || id))))::text FROM resource_deleted "
                         "WHERE patient_id = ANY($1::text[]) AND type IN (SELECT jsonb_array_elements_text($2::jsonb))"
                         " AND deleted_at > $3::timestamptz AND deleted_at <= $4::timestamptz ORDER BY patient_id, type, id");
}

/*
 * The references a chunk's members' exported resources make, stored with
 * the job (export_ref): to the shared resources (their `ref=Type/id` tokens),
 * which the shared pass at the end reads and nothing else; and (as type "!",
 * id the reference "Type/id", from their refs) to a resource of the same
 * members, of an exported type, that the service-date floor leaves out,
 * which the error file names.  A resource counts under the same conditions as its
 * type's query (transactionTime, _since, _until, the floor, its _typeFilter):
 * a shared resource nothing exported references is never exported.
 * Idempotent: a chunk done again adds nothing.
 */
static int build_refs_sql(struct export *x, struct type_out *t, json_object *filters)
{
    const char *floor = x->w->cfg->service_date_floor;
    size_t k;
    int rc;

    t->values[0] = NULL;
    t->values[1] = x->job->id;
    t->values[2] = pa_buf_str(&x->compartment);
    t->values[3] = pa_buf_str(&x->shared);
    t->values[4] = x->ttime;
    t->values[5] = x->since[0] ? x->since : NULL;
    t->values[6] = x->until[0] ? x->until : NULL;
    t->values[7] = *floor ? floor : NULL;
    t->values[8] = pa_buf_str(&x->floor_service);
    t->values[9] = pa_buf_str(&x->floor_ended);
    t->nvalues = 10;
    /* One pass over the chunk's resources of the exported types, within
     * transactionTime, _since, _until and the filters, one array each: of
     * one the floor keeps, its tokens (a shared reference is "ref=Type/id")
     * and, with a floor, its refs ("Type/id", into a compartment); of one it
     * leaves out, "!Type/id".  r is the distinct such strings that are no
     * search token (which all have an '=' but ref=).  A Type/id that r holds
     * both plain and with "!" is a resource the floor left out that an
     * exported one references: found by grouping, with no look-up. */
    rc = pa_buf_addstr(&t->sql,
                       "WITH r AS MATERIALIZED (SELECT DISTINCT t FROM resource x, unnest(CASE WHEN $8::date IS NULL"
                       "  THEN x.tokens WHEN (NOT x.type = ANY($9::text[]) OR " SERVICE_DATE("x.") " IS NULL"
                       "   OR " SERVICE_DATE("x.") " >= $8::date) AND (NOT x.type = ANY($10::text[])"
                       "   OR " ENDED_DATE("x.") " IS NULL OR " ENDED_DATE("x.") " >= $8::date)"
                       "  THEN x.tokens || coalesce(x.refs, '{}') ELSE ARRAY['!' || x.type || '/' || x.id] END) t"
                       " WHERE x.patient_id = ANY($1::text[]) AND x.type = ANY($3::text[])"
                       " AND x.last_updated <= $5::timestamptz"
                       " AND ($6::timestamptz IS NULL OR x.last_updated > $6::timestamptz)"
                       " AND ($7::timestamptz IS NULL OR x.last_updated < $7::timestamptz)"
                       " AND (t LIKE 'ref=%' OR strpos(t, '=') = 0)");
    for(k = 0; k < x->nout && !rc; k++) {
        json_object *queries = NULL;
        int nf = 0;

        if(x->out[k].kind != OUT_RESOURCE || !json_object_object_get_ex(filters, x->out[k].type, &queries))
            continue;
        if(t->nvalues == MAX_REF_VALUES)
            return PA_ETOOBIG;
        t->values[t->nvalues++] = x->out[k].type;
        rc = pa_buf_printf(&t->sql, " AND (x.type <> $%d OR (true", t->nvalues);
        rc = rc ? rc
                : pa_filter_sql(queries, &t->sql, t->nvalues + 1, t->values + t->nvalues, &nf,
                                MAX_REF_VALUES - t->nvalues);
        t->nvalues += nf;
        rc = rc ? rc : pa_buf_addstr(&t->sql, "))");
    }
    if(!rc)
        rc = pa_buf_addstr(&t->sql,
                           ") INSERT INTO export_ref (job_id, type, id)"
                           " SELECT $2, split_part(t, '/', 1), substr(t, strpos(t, '/') + 1)"
                           "  FROM (SELECT substr(t, 5) AS t FROM r WHERE t LIKE 'ref=%') s"
                           "  WHERE split_part(t, '/', 1) = ANY($4::text[])"
                           " UNION ALL SELECT $2, '!', ref FROM (SELECT ltrim(t, '!') AS ref, t LIKE '!%' AS left_out"
                           "  FROM r WHERE t NOT LIKE 'ref=%') c GROUP BY ref HAVING bool_or(left_out) AND bool_or(NOT left_out)");
    return rc ? rc : pa_buf_addstr(&t->sql, " ON CONFLICT DO NOTHING");
}

/* Reads the next chunk of member ids after x->after into a Postgres array
 * literal; *n is how many. */
static int next_members(struct export *x, pa_buf *ids, long *n, pa_err *err)
{
    char limit[24];
    struct sql_query q;
    PGresult *res = NULL;
    int i;
    int rc;

    snprintf(limit, sizeof(limit), "%ld", x->w->cfg->export_chunk_members);
    sql_query_init(&q, NULL, 0);
    rc = members_query(scope(x), MEMBERS_NOT_OPTED_OUT, &q);
    rc = rc ? rc : pa_buf_addstr(&q.sql, " AND m.patient_id > ");
    rc = rc ? rc : sql_query_value(&q, x->after);
    rc = rc ? rc : pa_buf_addstr(&q.sql, " ORDER BY m.patient_id LIMIT ");
    rc = rc ? rc : sql_query_value(&q, limit);
    rc = rc ? rc : pa_buf_addstr(&q.sql, "::int");
    if(!rc)
        res = pa_db_query(x->w->db, err, pa_buf_str(&q.sql), q.n, q.values);
    sql_query_free(&q);
    if(rc)
        return pa_err_set(err, rc, "the members query is too large");
    if(!res)
        return PA_EDB;
    *n = PQntuples(res);
    pa_buf_reset(ids);
    rc = pa_buf_addstr(ids, "{");
    for(i = 0; i < *n && !rc; i++)
        /* once each (a roster and a matched group could share an id) */
        if(!i || strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, i - 1, 0)))
            rc = pa_buf_add_array_item(ids, PQgetvalue(res, i, 0));
    if(!rc)
        rc = pa_buf_addstr(ids, "}");
    if(*n)
        pa_strlcpy(x->after, PQgetvalue(res, *n - 1, 0), sizeof(x->after));
    PQclear(res);
    return rc ? pa_err_set(err, rc, "member list too large") : PA_OK;
}

/* A connection streaming one type's rows into its output in single-row mode
 * (memory stays flat however many rows there are). */
struct lane {
    PGconn *db;
    uint64_t *prepared;  /* the queries this connection has prepared */
    int *backend;        /* the server process they were prepared in */
    struct type_out *t;  /* NULL when idle */
};

/* The chunk queries are prepared once and always run with their generic
 * plan: the plan does not depend on the members (each is one index look-up),
 * and planning it again for every chunk cost PostgreSQL more than running it. */
static int lane_session(PGconn *db, pa_err *err)
{
    int rc = pa_db_exec(db, err, "DEALLOCATE ALL");

    return rc ? rc : pa_db_exec(db, err, "SET plan_cache_mode = force_generic_plan");
}

/* Sends query i (out[i], the references at MAX_OUTS, the members at
 * MAX_OUTS + 1) for a chunk, preparing it on the lane's connection the first
 * time: planned once a job, not once a chunk. */
static int lane_send(struct export *x, struct lane *l, size_t i, pa_err *err)
{
    struct type_out *t = i == MAX_OUTS ? &x->refs : i == MAX_OUTS + 1 ? &x->members : &x->out[i];
    char name[32];
    int rc;

    /* a connection pa_db_query made anew (its server restarted) has lost
     * the session: prepare everything again */
    if(PQbackendPID(l->db) != *l->backend) {
        rc = lane_session(l->db, err);
        if(rc)
            return rc;
        *l->prepared = 0;
        *l->backend = PQbackendPID(l->db);
    }
    snprintf(name, sizeof(name), "pa_export_%zu", i);
    if(!(*l->prepared & ((uint64_t)1 << i))) {
        PGresult *res = PQprepare(l->db, name, pa_buf_str(&t->sql), t->nvalues, NULL);

        rc = PQresultStatus(res) == PGRES_COMMAND_OK ? PA_OK : pa_db_result_error(l->db, res, err);
        PQclear(res);
        if(rc)
            return rc;
        *l->prepared |= (uint64_t)1 << i;
    }
    if(!PQsendQueryPrepared(l->db, name, t->nvalues, t->values, NULL, NULL, 0) || !PQsetSingleRowMode(l->db))
        return pa_db_result_error(l->db, NULL, err);
    l->t = t;
    return PA_OK;
}

/* Takes the rows the lane's connection has received; the lane is idle again
 * once its query is done.  After an error (*rc set) rows are drained unused. */
static void lane_read(struct export *x, struct lane *l, int *rc, pa_err *err)
{
    PGresult *res;

    if(!PQconsumeInput(l->db)) {
        if(!*rc)
            *rc = pa_db_result_error(l->db, NULL, err);
        l->t = NULL;
        return;
    }
    while(!PQisBusy(l->db)) {
        ExecStatusType st;

        if(!(res = PQgetResult(l->db))) {
            if(!*rc)
                *rc = flush_type(l->t, err);
            l->t = NULL;
            return;
        }
        st = PQresultStatus(res);
        if(st == PGRES_SINGLE_TUPLE && !*rc)
            *rc = add_line(x, l->t, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), err);
        else if(st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && !*rc)
            /* a failure can follow rows already written: the chunk fails whole */
            *rc = pa_db_result_error(l->db, res, err);
        PQclear(res);
    }
}

/*
 * One chunk: every compartment type, the tombstones, then the references to
 * shared resources.  Two connections run these queries side by side (each
 * type to its own file), so that PostgreSQL works on two cores while the
 * runner writes.
 */
static int export_chunk(struct export *x, const char *ids, pa_err *err)
{
    struct lane lanes[2] = { { x->w->db, &x->prepared[0], &x->backend[0], NULL },
                             { x->db2, &x->prepared[1], &x->backend[1], NULL } };
    int nlanes = x->db2 ? 2 : 1;
    size_t queries = x->nout + 2; /* the types, the references, the members */
    size_t next = 0;
    int rc = PA_OK;

    for(;;) {
        struct pollfd pf[2];
        int k, busy = 0;

        for(k = 0; k < nlanes; k++) {
            while(!lanes[k].t && !rc && next < queries) {
                size_t i = next++;
                size_t q = i < x->nout ? i : i == x->nout ? MAX_OUTS : MAX_OUTS + 1;
                struct type_out *t = q == MAX_OUTS ? &x->refs : q == MAX_OUTS + 1 ? &x->members : &x->out[i];

                if((i < x->nout && t->kind != OUT_RESOURCE && t->kind != OUT_DELETED) ||
                   (q == MAX_OUTS && !x->gather_refs))
                    continue;
                t->values[0] = ids;
                rc = lane_send(x, &lanes[k], q, err);
            }
            if(lanes[k].t) {
                pf[busy].fd = PQsocket(lanes[k].db);
                pf[busy].events = POLLIN;
                pf[busy].revents = 0;
                busy++;
            }
        }
        if(!busy)
            break;
        if(poll(pf, (nfds_t)busy, -1) < 0 && errno != EINTR) {
            rc = rc ? rc : pa_err_set(err, PA_EIO, "poll: %s", strerror(errno));
            break;
        }
        for(k = 0; k < nlanes; k++)
            if(lanes[k].t)
                lane_read(x, &lanes[k], &rc, err);
    }
    return rc;
}

/* Every current file on disk: what a checkpoint says was written must be. */
static int sync_outputs(struct export *x, pa_err *err)
{
    size_t i;

    for(i = 0; i < x->nout; i++)
        if(x->out[i].fd >= 0 && fdatasync(x->out[i].fd))
            return pa_err_set(err, PA_EIO, "cannot sync %s output: %s", x->out[i].type, strerror(errno));
    return PA_OK;
}

static int error_line(struct export *x, struct type_out *t, pa_buf *line, const char *code, const char *msg,
                      pa_err *err);

/* The error file's lines for the resources the chunks found referenced but
 * left out by the service-date floor (export_ref rows of type "!"). */
static int export_floor_errors(struct export *x, pa_err *err)
{
    const char *values[1] = { x->job->id };
    struct type_out *t = NULL;
    PGresult *res;
    pa_buf line;
    size_t k;
    int i, rc = PA_OK;

    for(k = 0; k < x->nout; k++)
        if(x->out[k].kind == OUT_ERROR)
            t = &x->out[k];
    if(!t || !x->gather_refs || !*x->w->cfg->service_date_floor)
        return PA_OK;
    /* one per resource left out and referenced: a payer's data has few */
    res = pa_db_query(x->w->db, err, "SELECT id FROM export_ref WHERE job_id = $1 AND type = '!' ORDER BY id", 1,
                      values);
    if(!res)
        return PA_EDB;
    pa_buf_init(&line, 4096);
    for(i = 0; i < PQntuples(res) && !rc; i++) {
        char msg[512];

        snprintf(msg, sizeof(msg), "%.150s is referenced by resources this export holds, but is not in it: its "
                 "date is before the service-date floor (%s), and this server does not export what is older",
                 PQgetvalue(res, i, 0), x->w->cfg->service_date_floor);
        rc = error_line(x, t, &line, "not-found", msg, err);
    }
    PQclear(res);
    pa_buf_free(&line);
    return rc ? rc : flush_type(t, err);
}

/* The shared resources (Organization, ...) that the members' exported
 * resources reference, whatever their date: the references the chunks
 * gathered, rows in type order, each to its type's output.  A _since export
 * sends of them those changed since and those the client has never received
 * (shared_received); an admin's system-level export, the whole directory. */
static int export_shared(struct export *x, pa_err *err)
{
    const char *values[4] = { x->job->id, NULL, NULL, NULL };
    struct type_out *t = NULL;
    PGconn *db = x->w->db;
    PGresult *res;
    size_t k;
    int rc = PA_OK;
    int sent;

    if(x->shared_all) {
        /* the directory as of transactionTime, within _since/_until */
        values[0] = pa_buf_str(&x->shared);
        values[1] = x->ttime;
        values[2] = x->since[0] ? x->since : NULL;
        values[3] = x->until[0] ? x->until : NULL;
        sent = PQsendQueryParams(db,
                                 "SELECT type, json FROM resource WHERE patient_id IS NULL AND type = ANY($1::text[])"
                                 " AND last_updated <= $2::timestamptz"
                                 " AND ($3::timestamptz IS NULL OR last_updated > $3::timestamptz)"
                                 " AND ($4::timestamptz IS NULL OR last_updated < $4::timestamptz) ORDER BY type, id",
                                 4, NULL, values, NULL, NULL, 0);
    }
    else if(x->want_refs) {
        /* with _since: those changed since, and those the client never received */
        values[1] = x->since[0] ? x->since : NULL;
        values[2] = x->job->owner;
        sent = PQsendQueryParams(db,
                                 "SELECT r.type, r.json FROM export_ref e JOIN resource r ON r.type = e.type AND r.id = e.id"
                                 " WHERE e.job_id = $1 AND ($2::timestamptz IS NULL OR r.last_updated > $2::timestamptz"
                                 "  OR NOT EXISTS (SELECT 1 FROM shared_received s WHERE s.client_id = $3"
                                 "   AND s.type = r.type AND s.id = r.id))"
                                 " ORDER BY r.type, r.id",
                                 3, NULL, values, NULL, NULL, 0);
    }
    else
        return export_floor_errors(x, err);
    if(!sent || !PQsetSingleRowMode(db))
        return pa_db_result_error(db, NULL, err);
    while((res = PQgetResult(db))) {
        ExecStatusType st = PQresultStatus(res);

        if(st == PGRES_SINGLE_TUPLE && !rc) {
            const char *type = PQgetvalue(res, 0, 0);

            if(!t || strcmp(t->type, type)) {
                for(t = NULL, k = 0; k < x->nout; k++)
                    if(x->out[k].kind == OUT_SHARED && !strcmp(x->out[k].type, type))
                        t = &x->out[k];
                if(!t)
                    rc = pa_err_set(err, PA_EDB, "a %.64s nobody asked for", type);
            }
            if(!rc)
                rc = add_line(x, t, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1), err);
        }
        else if(st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && !rc)
            rc = pa_db_result_error(db, res, err);
        PQclear(res);
    }
    for(k = 0; k < x->nout && !rc; k++)
        if(x->out[k].kind == OUT_SHARED)
            rc = flush_type(&x->out[k], err);
    return rc ? rc : export_floor_errors(x, err);
}

/* Whether the job has an error file: patient references to check,
 * parameters a lenient kick-off ignored, or references to what the
 * service-date floor leaves out. */
static int has_errors(const struct export *x)
{
    json_object *v;

    return (json_object_object_get_ex(x->params, "patients", &v) && json_object_array_length(v)) ||
           (json_object_object_get_ex(x->params, "ignored", &v) && json_object_array_length(v)) ||
           (x->gather_refs && *x->w->cfg->service_date_floor);
}

/* One warning OperationOutcome line of the error file. */
static int error_line(struct export *x, struct type_out *t, pa_buf *line, const char *code, const char *msg,
                      pa_err *err)
{
    int rc;

    pa_buf_reset(line);
    rc = pa_buf_printf(line, "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"warning\","
                             "\"code\":\"%s\",\"diagnostics\":", code);
    rc = rc ? rc : pa_buf_add_json_string(line, msg);
    rc = rc ? rc : pa_buf_addstr(line, "}]}");
    return rc ? pa_err_set(err, PA_ENOMEM, "out of memory") : add_line(x, t, line->data, line->len, err);
}

/* Of the patient ids (an array literal), those outside the export's scope
 * (opt-outs aside: an opted-out member is a member), in order. */
static PGresult *not_members(struct export *x, const char *ids, pa_err *err)
{
    struct sql_query q;
    PGresult *res = NULL;
    int rc;

    sql_query_init(&q, &ids, 1);
    x->patients[0] = '\0';
    rc = pa_buf_addstr(&q.sql, "SELECT p FROM unnest($1::text[]) p WHERE NOT EXISTS (SELECT 1 FROM (");
    rc = rc ? rc : members_query(scope(x), MEMBERS_ANY, &q);
    rc = rc ? rc : pa_buf_addstr(&q.sql, ") s WHERE s.patient_id = p) ORDER BY p");
    if(rc)
        pa_err_set(err, rc, "the members query is too large");
    else
        res = pa_db_query(x->w->db, err, pa_buf_str(&q.sql), q.n, q.values);
    sql_query_free(&q);
    return res;
}

/* The error file: the parameters Prefer: handling=lenient let through
 * unapplied, then `patient` references that are invalid or not members, one
 * OperationOutcome a line.  (Members left out for an opt-out are not named:
 * that would disclose it.) */
static int write_errors(struct export *x, struct type_out *t, json_object *patients, json_object *ignored,
                        pa_err *err)
{
    pa_buf ids, line;
    PGresult *res;
    size_t i;
    int rc = PA_OK;

    pa_buf_init(&ids, 1 << 20);
    pa_buf_init(&line, 4096);
    for(i = 0; !rc && ignored && i < json_object_array_length(ignored); i++)
        rc = error_line(x, t, &line, "not-supported", json_object_get_string(json_object_array_get_idx(ignored, i)),
                        err);
    if(!rc && (!patients || !json_object_array_length(patients))) {
        rc = flush_type(t, err);
        x->patients[0] = '\0';
        pa_buf_free(&ids);
        pa_buf_free(&line);
        return rc;
    }
    pa_buf_addstr(&ids, "{");
    for(i = 0; !rc && i < json_object_array_length(patients); i++) {
        const char *ref = json_object_get_string(json_object_array_get_idx(patients, i));
        char id[PA_FHIR_ID_MAX + 1];

        if(pa_fhir_ref_id(ref, "Patient", id, sizeof(id)) == PA_OK) {
            rc = pa_buf_add_array_item(&ids, id);
            continue;
        }
        {
            char msg[512];

            snprintf(msg, sizeof(msg), "patient '%.200s' is not a Patient reference; it was ignored", ref);
            rc = error_line(x, t, &line, "invalid", msg, err);
        }
    }
    pa_buf_addstr(&ids, "}");
    res = rc ? NULL : not_members(x, pa_buf_str(&ids), err);
    if(!rc && !res)
        rc = PA_EDB;
    for(i = 0; !rc && res && i < (size_t)PQntuples(res); i++) {
        char msg[512];

        if(x->scope.level == MEMBERS_GROUP)
            snprintf(msg, sizeof(msg), "Patient/%s is not a member of Group/%s; it was ignored",
                     PQgetvalue(res, (int)i, 0), x->group);
        else
            snprintf(msg, sizeof(msg), "Patient/%s is not %s; it was ignored", PQgetvalue(res, (int)i, 0),
                     x->scope.level == MEMBERS_CLIENT ? "one of the client's patients (a member of a roster "
                                                        "attributed to it, or of a Matched Group it made)"
                                                      : "a patient of this payer");
        rc = error_line(x, t, &line, "not-found", msg, err);
    }
    PQclear(res);
    if(!rc)
        rc = flush_type(t, err);
    /* the subset exported: the valid references (members among them) */
    if(!rc && pa_strlcpy(x->patients, pa_buf_str(&ids), sizeof(x->patients)))
        rc = pa_err_set(err, PA_ETOOBIG, "too many patient references");
    pa_buf_free(&ids);
    pa_buf_free(&line);
    return rc;
}

static char *checkpoint_json(const struct export *x)
{
    json_object *o = json_object_new_object();
    json_object *outs = json_object_new_array();
    char *s;
    size_t i;

    json_object_object_add(o, "after", json_object_new_string(x->after));
    json_object_object_add(o, "done", json_object_new_int64(x->done));
    json_object_object_add(o, "shared_done", json_object_new_boolean(x->shared_done));
    /* the chunks done have their references in export_ref */
    json_object_object_add(o, "refs", json_object_new_boolean(1));
    for(i = 0; i < x->nout; i++) {
        const struct type_out *t = &x->out[i];
        json_object *jt = json_object_new_object();

        json_object_object_add(jt, "type", json_object_new_string(t->type));
        json_object_object_add(jt, "file", json_object_new_int64(t->file_no));
        json_object_object_add(jt, "bytes", json_object_new_int64(t->bytes));
        json_object_object_add(jt, "count", json_object_new_int64(t->count));
        json_object_object_add(jt, "files", json_object_get(t->done));
        json_object_array_add(outs, jt);
    }
    json_object_object_add(o, "outputs", outs);
    s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return s;
}

static int64_t get_i64(json_object *o, const char *k)
{
    json_object *v;

    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

static const char *get_str(json_object *o, const char *k)
{
    json_object *v;

    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                           : "";
}

/*
 * Restores the resume point written by checkpoint_json (x->resumed).  A
 * checkpoint this version cannot use (written by an earlier version, for other
 * outputs, or damaged) is never a reason to fail the job: it starts over
 * (x->resumed stays 0), which removes whatever the earlier attempt wrote.
 */
static int restore(struct export *x, const char *cp, pa_err *err)
{
    json_object *o = json_tokener_parse(cp);
    json_object *v, *outs;
    const char *why = NULL;
    size_t i;

    (void)err;
    if(!o || !json_object_is_type(o, json_type_object))
        why = "it is unreadable";
    else if(!json_object_object_get_ex(o, "refs", NULL))
        why = "it predates this version's export";
    else if(!json_object_object_get_ex(o, "after", &v) || !json_object_is_type(v, json_type_string) ||
            !json_object_object_get_ex(o, "outputs", &outs) || !json_object_is_type(outs, json_type_array) ||
            json_object_array_length(outs) != x->nout)
        why = "its outputs are not this job's";
    for(i = 0; !why && i < x->nout; i++) {
        json_object *jt = json_object_array_get_idx(outs, i), *files = NULL;

        if(get_i64(jt, "file") < 1 || get_i64(jt, "bytes") < 0 || get_i64(jt, "count") < 0 ||
           strcmp(get_str(jt, "type"), x->out[i].type) ||
           (json_object_object_get_ex(jt, "files", &files) && !json_object_is_type(files, json_type_array)))
            why = "its outputs are not this job's";
    }
    if(why) {
        pa_warn("job %s: its checkpoint cannot be resumed (%s): the job starts over", x->job->id, why);
        json_object_put(o);
        return PA_OK;
    }
    x->resumed = 1;
    pa_strlcpy(x->after, json_object_get_string(v), sizeof(x->after));
    x->done = (long)get_i64(o, "done");
    x->shared_done = json_object_object_get_ex(o, "shared_done", &v) && json_object_get_boolean(v);
    for(i = 0; i < x->nout; i++) {
        json_object *jt = json_object_array_get_idx(outs, i);
        struct type_out *t = &x->out[i];
        json_object *files;

        t->file_no = (long)get_i64(jt, "file");
        t->bytes = get_i64(jt, "bytes");
        t->count = (long)get_i64(jt, "count");
        if(json_object_object_get_ex(jt, "files", &files)) {
            json_object_put(t->done);
            t->done = json_object_get(files);
        }
    }
    json_object_put(o);
    return PA_OK;
}

/* Closes the files and builds the Bulk Data manifest; empty files are removed
 * and not listed. */
static int finish(struct export *x, char **manifest, pa_err *err)
{
    json_object *lists[4];
    size_t i;
    size_t k;
    int rc = PA_OK;

    lists[OUT_RESOURCE] = json_object_new_array();
    lists[OUT_SHARED] = lists[OUT_RESOURCE];
    lists[OUT_DELETED] = json_object_new_array();
    lists[OUT_ERROR] = json_object_new_array();
    for(i = 0; i < x->nout && !rc; i++) {
        struct type_out *t = &x->out[i];
        char name[128];
        char path[1400];

        for(k = 0; k < json_object_array_length(t->done); k++) {
            json_object *f = json_object_array_get_idx(t->done, k);

            pa_manifest_output(lists[t->kind], x->w->cfg, x->job->id, t->type, get_str(f, "name"), get_i64(f, "count"));
        }
        file_name(t, t->file_no, name, sizeof(name));
        if(t->fd >= 0 && (fdatasync(t->fd) || close(t->fd)))
            rc = pa_err_set(err, PA_EIO, "cannot sync %s output: %s", t->type, strerror(errno));
        t->fd = -1;
        if(t->count > 0) {
            pa_manifest_output(lists[t->kind], x->w->cfg, x->job->id, t->type, name, t->count);
        }
        else {
            snprintf(path, sizeof(path), "%s/%s", x->dir, name);
            unlink(path);
        }
    }
    if(rc) {
        json_object_put(lists[OUT_RESOURCE]);
        json_object_put(lists[OUT_DELETED]);
        json_object_put(lists[OUT_ERROR]);
        return rc;
    }
    return pa_manifest_build(x->job, lists[OUT_RESOURCE], lists[OUT_DELETED], lists[OUT_ERROR], manifest, err);
}

static struct type_out *add_out(struct export *x, const char *type, enum out_kind kind)
{
    struct type_out *t;

    if(x->nout == MAX_OUTS)
        return NULL;
    t = &x->out[x->nout++];
    pa_strlcpy(t->type, type, sizeof(t->type));
    t->kind = kind;
    t->file_no = 1;
    t->fd = -1;
    t->values = t->fixed;
    t->done = json_object_new_array();
    pa_buf_init(&t->sql, SQL_MAX);
    pa_buf_init(&t->wbuf, WRITE_BUF);
    return t;
}

/* The strings of a params array joined with commas (as the 2.1.0 extensions
 * hold them), whole: they are a compliance record. */
static int join_strings(json_object *params, const char *key, pa_buf *out)
{
    json_object *a;
    size_t i;
    int rc = PA_OK;

    if(!json_object_object_get_ex(params, key, &a) || !json_object_is_type(a, json_type_array))
        return PA_OK;
    for(i = 0; !rc && i < json_object_array_length(a); i++) {
        if(i)
            rc = pa_buf_addstr(out, ",");
        if(!rc)
            rc = pa_buf_addstr(out, json_object_get_string(json_object_array_get_idx(a, i)));
    }
    return rc;
}

/* provider-download: who got this chunk's members, when, what (idempotent:
 * a chunk done again records nothing twice).  (Every export's members go to
 * export_member with the chunk's queries: export_chunk.) */
static int record_chunk(struct export *x, const char *ids, pa_err *err)
{
    /* lastTransmitted (PDex 2.1.0): the transactionTime, or _until when earlier */
    const char *at = x->until[0] && strcmp(x->until, x->ttime) < 0 ? x->until : x->ttime;
    const char *values[7] = { x->job->id, ids, x->job->owner, x->group, at, pa_buf_str(&x->asked_types),
                              pa_buf_str(&x->asked_filters) };
    PGresult *res;

    if(!x->record_downloads)
        return PA_OK;
    res = pa_db_query(x->w->db, err,
                      "INSERT INTO download_record (job_id, patient_id, client_id, group_id, at, types, filters) "
                      "SELECT $1, p, $3, $4, $5::timestamptz, $6, $7 FROM unnest($2::text[]) p ON CONFLICT DO NOTHING",
                      7, values);
    if(!res)
        return PA_EDB;
    PQclear(res);
    return PA_OK;
}

/* The array literals of the compartment and shared types exported, and the
 * references query when there are shared types. */
static int refs_setup(struct export *x, json_object *filters, pa_err *err)
{
    size_t k;
    int rc;

    pa_buf_init(&x->compartment, 4096);
    pa_buf_init(&x->shared, 1024);
    pa_buf_init(&x->floor_service, 1024);
    pa_buf_init(&x->floor_ended, 1024);
    rc = pa_buf_addstr(&x->compartment, "{") || pa_buf_addstr(&x->shared, "{");
    for(k = 0; k < x->nout && !rc; k++) {
        if(x->out[k].kind == OUT_RESOURCE)
            rc = pa_buf_add_array_item(&x->compartment, x->out[k].type);
        else if(x->out[k].kind == OUT_SHARED) {
            rc = pa_buf_add_array_item(&x->shared, x->out[k].type);
            x->want_refs = 1;
        }
    }
    rc = rc || pa_buf_addstr(&x->compartment, "}") || pa_buf_addstr(&x->shared, "}");
    rc = rc || floor_types(FLOOR_SERVICE, &x->floor_service) || floor_types(FLOOR_ENDED, &x->floor_ended);
    /* the whole directory needs no references */
    if(x->shared_all)
        x->want_refs = 0;
    /* with a floor, references to what it leaves out are named */
    x->gather_refs = x->want_refs || (*x->w->cfg->service_date_floor && strcmp(pa_buf_str(&x->compartment), "{}"));
    if(!rc && x->gather_refs)
        rc = build_refs_sql(x, &x->refs, filters);
    return rc ? pa_err_set(err, PA_ETOOBIG, "too many types") : PA_OK;
}

/* Reads the job's parameters, sets up the outputs, counts the chunks. */
/* The job's parameters the run and its disclosure records share: the Group,
 * the client, and the types, filters and period as asked (x->asked_* set up
 * by the caller). */
static int read_params(struct export *x, pa_err *err)
{
    json_object *v;

    x->params = json_tokener_parse(x->job->params);
    if(!x->params || member_level_parse(get_str(x->params, "members"), &x->scope.level) ||
       (x->scope.level == MEMBERS_GROUP && !*get_str(x->params, "group")))
        return pa_err_set(err, PA_EINVAL, "the job's parameters are unreadable");
    x->group = get_str(x->params, "group");
    x->npi = get_str(x->params, "npi");
    x->org_npi = get_str(x->params, "org_npi");
    x->scope.group = x->group;
    x->scope.client = x->job->owner;
    x->scope.npi = x->npi;
    x->scope.org_npi = x->org_npi;
    /* an admin client's system-level export holds the whole directory */
    x->shared_all = x->scope.level == MEMBERS_ALL && !strcmp(get_str(x->params, "level"), "system");
    x->financial = json_object_object_get_ex(x->params, "financial", &v) && json_object_get_boolean(v);
    x->record_downloads = !strcmp(get_str(x->params, "exportType"), "hl7.fhir.us.davinci-pdex#provider-download");
    if(join_strings(x->params, "asked_types", &x->asked_types) ||
       join_strings(x->params, "asked_filters", &x->asked_filters))
        return pa_err_set(err, PA_ETOOBIG, "the export's parameters are too long to record");
    pa_fhir_instant(x->job->ttime, x->ttime);
    if(get_i64(x->params, "since"))
        pa_fhir_instant(get_i64(x->params, "since"), x->since);
    if(get_i64(x->params, "until"))
        pa_fhir_instant(get_i64(x->params, "until"), x->until);
    return PA_OK;
}

static int prepare(struct export *x, pa_err *err)
{
    json_object *types, *filters = NULL;
    const char *values[1];
    PGresult *res;
    size_t i;
    int rc = read_params(x, err);

    if(rc)
        return rc;
    json_object_object_get_ex(x->params, "filters", &filters);
    if(!json_object_object_get_ex(x->params, "types", &types))
        return pa_err_set(err, PA_EINVAL, "the job's parameters are unreadable");
    for(i = 0; !rc && i < json_object_array_length(types); i++) {
        const char *type = json_object_get_string(json_object_array_get_idx(types, i));
        const pa_fhir_type *ft = pa_fhir_type_find(type);
        struct type_out *t = ft ? add_out(x, type, ft->patient_path ? OUT_RESOURCE : OUT_SHARED) : NULL;

        if(!t)
            return pa_err_set(err, PA_EINVAL, "the job asks for type %s, which is not exported", type);
        t->subset = elements_for(json_object_object_get(x->params, "elements"), t->type, &t->keep);
        if(t->kind == OUT_RESOURCE)
            rc = build_type_sql(x, t, filters, err);
    }
    if(!rc)
        rc = refs_setup(x, filters, err);
    if(!rc && x->since[0]) {
        struct type_out *t = add_out(x, "Bundle", OUT_DELETED);

        rc = t ? build_deleted_sql(x, t, types) : PA_ETOOBIG;
    }
    if(!rc && has_errors(x) && !add_out(x, "OperationOutcome", OUT_ERROR))
        rc = PA_ETOOBIG;
    if(rc || x->scope.level != MEMBERS_GROUP)
        return rc;
    values[0] = x->group;
    res = pa_db_query(x->w->db, err,
                      "SELECT 1 FROM roster WHERE id = $1 UNION ALL "
                      "SELECT 1 FROM matched_group WHERE id = $1 AND expires_at > now()", 1, values);
    if(!res)
        return PA_EDB;
    if(PQntuples(res) == 0)
        rc = pa_err_set(err, PA_ENOTFOUND, "Group %s no longer exists", x->group);
    PQclear(res);
    return rc;
}

/* The number of chunks, for X-Progress (after the patient subset is known). */
static int count_chunks(struct export *x, pa_err *err)
{
    struct sql_query q;
    PGresult *res = NULL;
    long members = 0;
    int rc;

    sql_query_init(&q, NULL, 0);
    rc = pa_buf_addstr(&q.sql, "SELECT count(DISTINCT patient_id) FROM (");
    rc = rc ? rc : members_query(scope(x), MEMBERS_NOT_OPTED_OUT, &q);
    rc = rc ? rc : pa_buf_addstr(&q.sql, ") s");
    if(!rc)
        res = pa_db_query(x->w->db, err, pa_buf_str(&q.sql), q.n, q.values);
    sql_query_free(&q);
    if(rc)
        return pa_err_set(err, rc, "the members query is too large");
    if(!res)
        return PA_EDB;
    pa_parse_long(PQgetvalue(res, 0, 0), &members);
    PQclear(res);
    x->total = (members + x->w->cfg->export_chunk_members - 1) / x->w->cfg->export_chunk_members + 1;
    return PA_OK;
}

/* The patient subset as an array literal, from the job's parameters (used on
 * resume, where the error file is already written). */
static void subset_from_params(struct export *x)
{
    json_object *patients;
    pa_buf ids;
    size_t i;

    x->patients[0] = '\0';
    if(!json_object_object_get_ex(x->params, "patients", &patients) || !json_object_array_length(patients))
        return;
    pa_buf_init(&ids, sizeof(x->patients) - 1);
    pa_buf_addstr(&ids, "{");
    for(i = 0; i < json_object_array_length(patients); i++) {
        char id[PA_FHIR_ID_MAX + 1];

        if(!pa_fhir_ref_id(json_object_get_string(json_object_array_get_idx(patients, i)), "Patient", id, sizeof(id)))
            pa_buf_add_array_item(&ids, id);
    }
    pa_buf_addstr(&ids, "}");
    pa_strlcpy(x->patients, pa_buf_str(&ids), sizeof(x->patients));
    pa_buf_free(&ids);
}

int pa_export_forget(PGconn *db, const char *job_id, pa_err *err)
{
    const char *values[1] = { job_id };
    PGresult *res = pa_db_query(db, err, "DELETE FROM export_ref WHERE job_id = $1", 1, values);

    PQclear(res);
    if(res)
        res = pa_db_query(db, err, "DELETE FROM export_member WHERE job_id = $1", 1, values);
    PQclear(res);
    return res ? PA_OK : PA_EDB;
}

/* Whether the job asked for _elements (its resources are cut down). */
static int subsetted(json_object *params)
{
    json_object *v = json_object_object_get(params, "elements");

    return v && json_object_is_type(v, json_type_object) && json_object_object_length(v) > 0;
}

int pa_export_disclose(pa_worker *w, const pa_job *job, pa_err *err)
{
    struct export *x = calloc(1, sizeof(*x));
    const char *values[9];
    struct sql_query q;
    PGresult *res = NULL;
    int rc;

    if(!x)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    x->job = job;
    pa_buf_init(&x->asked_types, 1 << 20);
    pa_buf_init(&x->asked_filters, 1 << 20);
    rc = read_params(x, err);
    if(rc)
        goto out;
    subset_from_params(x);
    values[0] = x->scope.level == MEMBERS_GROUP ? x->group : NULL;
    values[1] = x->npi;
    values[2] = job->id;
    values[3] = job->owner;
    values[4] = job->request_id;
    values[5] = pa_buf_str(&x->asked_types);
    values[6] = pa_buf_str(&x->asked_filters);
    values[7] = x->since[0] ? x->since : NULL;
    values[8] = x->until[0] ? x->until : NULL;
    sql_query_init(&q, values, 9);
    /* the members written, and the members an opt-out kept out (as of now:
     * one who opted out after its chunk was written is exported) */
    rc = pa_buf_addstr(&q.sql,
                       "INSERT INTO disclosure (client_id, npi, operation, request_id, job_id, group_id, patient_id,"
                       " outcome, reason, types, type_filter, since, until)"
                       " SELECT $4, nullif($2, ''), 'export', nullif($5, ''), $3, $1, d.patient_id, d.outcome,"
                       " d.reason, $6, nullif($7, ''), $8::timestamptz, $9::timestamptz FROM ("
                       "  SELECT patient_id, 'exported' AS outcome, NULL AS reason FROM export_member WHERE job_id = $3"
                       "  UNION SELECT w.patient_id, 'withheld', 'opted-out' FROM (");
    rc = rc ? rc : members_query(scope(x), MEMBERS_OPTED_OUT, &q);
    rc = rc ? rc : pa_buf_addstr(&q.sql, ") w WHERE NOT EXISTS (SELECT 1 FROM export_member e WHERE e.job_id = $3"
                                         " AND e.patient_id = w.patient_id)) d ON CONFLICT DO NOTHING");
    if(rc)
        rc = pa_err_set(err, rc, "the disclosure query is too large");
    else
        res = pa_db_query(w->db, err, pa_buf_str(&q.sql), q.n, q.values);
    sql_query_free(&q);
    if(res && !subsetted(x->params)) {
        /* the shared resources it sent in full (not cut down by _elements),
         * so that a later _since export sends them again only when they change */
        PQclear(res);
        res = pa_db_query(w->db, err,
                          "INSERT INTO shared_received (client_id, type, id) SELECT $2, e.type, e.id FROM export_ref e"
                          " WHERE e.job_id = $1 AND EXISTS (SELECT 1 FROM resource r WHERE r.type = e.type AND r.id = e.id)"
                          " ON CONFLICT DO NOTHING", 2, values + 2);
    }
    if(!rc && !res)
        rc = PA_EDB;
out:
    PQclear(res);
    pa_buf_free(&x->asked_types);
    pa_buf_free(&x->asked_filters);
    json_object_put(x->params);
    free(x);
    return rc;
}

int pa_export_run(pa_worker *w, const pa_job *job, char **manifest, pa_err *err)
{
    struct export *x = calloc(1, sizeof(*x));
    pa_buf ids;
    char *cp = NULL;
    int64_t last_cp = pa_mono_ms();
    size_t i;
    int rc;

    *manifest = NULL;
    pa_buf_init(&ids, 64 * 1024 * 1024);
    if(!x)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    x->w = w;
    x->job = job;
    pa_buf_init(&x->scratch, 64 * 1024 * 1024);
    snprintf(x->dir, sizeof(x->dir), "%s/jobs/%s", w->cfg->data_dir, job->id);
    x->refs.fd = -1;
    x->refs.values = x->ref_values;
    pa_strlcpy(x->refs.type, "references", sizeof(x->refs.type));
    pa_buf_init(&x->refs.sql, SQL_MAX);
    pa_buf_init(&x->refs.wbuf, 0);
    /* the chunk's members, for its disclosure records (pa_export_disclose):
     * sent with the chunk's queries, so its commit overlaps them */
    x->members.fd = -1;
    x->members.values = x->members.fixed;
    pa_strlcpy(x->members.type, "members", sizeof(x->members.type));
    pa_buf_init(&x->members.sql, 1024);
    pa_buf_addstr(&x->members.sql, "INSERT INTO export_member (job_id, patient_id)"
                                   " SELECT $2, p FROM unnest($1::text[]) p ON CONFLICT DO NOTHING");
    pa_buf_init(&x->members.wbuf, 0);
    x->members.values[1] = job->id;
    x->members.nvalues = 2;
    /* bounded by the kick-off's limits on parameters */
    pa_buf_init(&x->asked_types, 1 << 20);
    pa_buf_init(&x->asked_filters, 1 << 20);
    rc = prepare(x, err);
    if(!rc && job->checkpoint)
        rc = restore(x, job->checkpoint, err);
    if(!rc && !x->resumed) {
        /* a first attempt starts from nothing, whatever an earlier one left */
        pa_job_dir_remove(w->cfg, job->id);
        rc = pa_export_forget(w->db, job->id, err);
    }
    if(!rc && mkdir(x->dir, 0750) && errno != EEXIST)
        rc = pa_err_set(err, PA_EIO, "cannot create %s: %s", x->dir, strerror(errno));
    for(i = 0; i < x->nout && !rc; i++)
        rc = open_current(x, &x->out[i], err);
    if(!rc) {
        json_object *patients = NULL, *ignored = NULL;

        json_object_object_get_ex(x->params, "patients", &patients);
        json_object_object_get_ex(x->params, "ignored", &ignored);
        if(x->resumed || !has_errors(x))
            subset_from_params(x);
        else
            for(i = 0; i < x->nout && !rc; i++)
                if(x->out[i].kind == OUT_ERROR)
                    rc = write_errors(x, &x->out[i], patients, ignored, err);
    }
    if(!rc)
        rc = count_chunks(x, err);
    /* each lane sets up its session when it first sends (lane_send) */
    if(!rc)
        rc = pa_db_connect(w->cfg, &x->db2, err);
    while(!rc && !x->shared_done) {
        long n = 0;

        rc = next_members(x, &ids, &n, err);
        if(!rc && n)
            rc = export_chunk(x, pa_buf_str(&ids), err);
        if(!rc && n)
            rc = record_chunk(x, pa_buf_str(&ids), err);
        if(!rc && !n) {
            rc = export_shared(x, err);
            x->shared_done = !rc;
        }
        /* a chunk that failed anywhere fails the job (or this attempt): the
         * files hold part of it, so nothing after it may be written */
        if(rc)
            break;
        x->done++;
        pa_worker_chunk_pause(w);
        /* a checkpoint (files synced, resume point saved, the claim renewed,
         * cancellation and shutdown heard) at most every CHECKPOINT_EVERY_MS,
         * and always after the last pass: a resumed job redoes at most that */
        if(!x->shared_done && !*w->stop && pa_mono_ms() < last_cp + CHECKPOINT_EVERY_MS)
            continue;
        last_cp = pa_mono_ms();
        rc = sync_outputs(x, err);
        if(rc)
            break;
        free(cp);
        cp = checkpoint_json(x);
        rc = cp ? pa_worker_checkpoint(w, job, x->done, x->total, cp, err) : pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    if(!rc)
        rc = finish(x, manifest, err);
    for(i = 0; i < x->nout; i++) {
        if(x->out[i].fd >= 0)
            close(x->out[i].fd);
        json_object_put(x->out[i].done);
        pa_buf_free(&x->out[i].sql);
        pa_buf_free(&x->out[i].wbuf);
    }
    pa_buf_free(&x->refs.sql);
    pa_buf_free(&x->refs.wbuf);
    pa_buf_free(&x->members.sql);
    pa_buf_free(&x->members.wbuf);
    pa_buf_free(&x->compartment);
    pa_buf_free(&x->shared);
    pa_buf_free(&x->floor_service);
    pa_buf_free(&x->floor_ended);
    pa_buf_free(&x->scratch);
    pa_buf_free(&x->asked_types);
    pa_buf_free(&x->asked_filters);
    if(x->db2)
        PQfinish(x->db2);
    /* the worker's own connection is left as it was found */
    if(PQstatus(w->db) == CONNECTION_OK && PQtransactionStatus(w->db) == PQTRANS_IDLE) {
        pa_db_exec(w->db, NULL, "DEALLOCATE ALL");
        pa_db_exec(w->db, NULL, "RESET plan_cache_mode");
    }
    json_object_put(x->params);
    pa_buf_free(&ids);
    free(cp);
    free(x);
    return rc;
}
