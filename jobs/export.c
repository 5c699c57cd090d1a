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
 *
 * The outputs and checkpoint live in export_out.c, the queries in
 * export_sql.c (export.h).
 */
#include "export.h"

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
#include "pa_jobfiles.h"
#include "pa_log.h"
#include "pa_pgarray.h"
#include "pa_util.h"

/* The export's scope, with its patient subset as it stands. */
static const struct member_scope *scope(struct export *x)
{
    x->scope.subset = x->patients[0] ? x->patients : NULL;
    return &x->scope;
}

/* Runs q on the worker's connection and frees it; rc is the first error
 * met building it.  NULL (err set) on failure. */
static PGresult *run_query(struct export *x, struct sql_query *q, int rc, pa_err *err)
{
    PGresult *res = NULL;

    if(rc)
        pa_err_set(err, rc, "the members query is too large");
    else
        res = pa_db_query(x->w->db, err, pa_buf_str(&q->sql), q->n, q->values);
    sql_query_free(q);
    return res;
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
    if(x->hi[0]) {
        /* a part's members end at its bound */
        rc = rc ? rc : pa_buf_addstr(&q.sql, " AND m.patient_id <= ");
        rc = rc ? rc : sql_query_value(&q, x->hi);
    }
    rc = rc ? rc : pa_buf_addstr(&q.sql, " ORDER BY m.patient_id LIMIT ");
    rc = rc ? rc : sql_query_value(&q, limit);
    rc = rc ? rc : pa_buf_addstr(&q.sql, "::int");
    res = run_query(x, &q, rc, err);
    if(!res)
        return err->code;
    *n = PQntuples(res);
    pa_buf_reset(ids);
    rc = pa_buf_addstr(ids, "{");
    for(i = 0; i < *n && !rc; i++)
        /* once each (a roster and a matched group could share an id) */
        if(!i || strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, i - 1, 0)))
            rc = pa_pgarray_add(ids, PQgetvalue(res, i, 0));
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
    uint64_t *prepared; /* the queries this connection has prepared */
    int *backend;       /* the server process they were prepared in */
    struct type_out *t; /* NULL when idle */
    int query;          /* its query (next_query's index) */
    int64_t started;    /* when it was sent (µs) */
};

/* The chunk queries are prepared once and always run with their generic
 * plan: the plan does not depend on the members (each is one index look-up),
 * and planning it again for every chunk cost PostgreSQL more than running it. */
static int lane_session(PGconn *db, pa_err *err)
{
    int rc = pa_db_exec(db, err, "DEALLOCATE ALL");

    return rc ? rc : pa_db_exec(db, err, "SET plan_cache_mode = force_generic_plan");
}

/* Sends query i (out[i], the members at MAX_OUTS) for a chunk, preparing it
 * on the lane's connection the first time: planned once a job, not once a
 * chunk. */
static int lane_send(struct export *x, struct lane *l, size_t i, pa_err *err)
{
    struct type_out *t = i == MAX_OUTS ? &x->members : &x->out[i];
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

static int send_refs(struct export *x, PGconn *db, int final, pa_err *err);

/* Adds the n bytes at s to the chunk's set of references; a set grown to
 * twice export_refs_batch_bytes while every lane streams rows is sent at
 * once, on a connection of its own, so that the set stays bounded however
 * many rows one query brings. */
static int add_ref(struct export *x, const char *s, size_t n, pa_err *err)
{
    int rc = pa_strset_add(&x->refs_set, s, n);

    if(rc)
        return pa_err_set(err, rc, rc == PA_ETOOBIG ? "a chunk's references are too large" : "out of memory");
    if(x->refs_set.arena.len < 2 * (size_t)x->w->cfg->export_refs_batch_bytes)
        return PA_OK;
    rc = pa_db_ensure(&x->refs_db, x->w->cfg, err);
    return rc ? rc : send_refs(x, x->refs_db, 0, err);
}

/* Adds to the chunk's set the references in the array literal lit that the
 * export keeps: "ref=Type/id" tokens when shared types are asked for, and
 * with a floor the other strings without an "=" (its refs). */
static int gather_refs(struct export *x, const char *lit, pa_err *err)
{
    const char *p = lit;
    int rc = PA_OK, k;

    for(;;) {
        const char *s;

        k = pa_pgarray_next(&p, &x->ref_item);
        if(k <= 0)
            break;
        s = pa_buf_str(&x->ref_item);
        if(!strncmp(s, "ref=", 4) ? !x->want_refs || pa_strset_has(&x->refs_stored, s, x->ref_item.len)
                                  : strchr(s, '=') || !*x->w->cfg->service_date_floor)
            continue;
        rc = add_ref(x, s, x->ref_item.len, err);
        if(rc)
            return rc;
    }
    return k < 0 ? pa_err_set(err, PA_EINVAL, "a resource's references are unreadable") : PA_OK;
}

/* One row of a type's query: its line to the type's output and, when the
 * chunk's references are gathered, those it brings (its tokens and refs), or
 * "!Type/id" for a row the floor left out (its line NULL). */
static int take_row(struct export *x, struct type_out *t, const PGresult *res, pa_err *err)
{
    int rc;

    if(PQnfields(res) == 1)
        return export_add_line(x, t, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), err);
    if(PQgetisnull(res, 0, 0)) {
        pa_buf_reset(&x->ref_item);
        rc = pa_buf_printf(&x->ref_item, "!%s/%s", t->type, PQgetvalue(res, 0, 3));
        if(rc)
            return pa_err_set(err, rc, "a resource id is too long");
        return add_ref(x, pa_buf_str(&x->ref_item), x->ref_item.len, err);
    }
    rc = export_add_line(x, t, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), err);
    rc = rc ? rc : gather_refs(x, PQgetvalue(res, 0, 1), err);
    return rc || PQgetisnull(res, 0, 2) ? rc : gather_refs(x, PQgetvalue(res, 0, 2), err);
}

/*
 * Sends the chunk's references gathered so far to export_ref (x->refs's
 * statement) on db, the primary's, idle; final: the chunk's last sending.
 * When none was sent early, the "!Type/id" strings are matched here: only
 * those with their plain "Type/id" go, with it, besides the "ref=" tokens.
 */
static int send_refs(struct export *x, PGconn *db, int final, pa_err *err)
{
    pa_buf *lit = &x->refs.wbuf;
    const char *s;
    PGresult *res;
    size_t pos = 0;
    int rc;

    if(!x->refs_set.n && (!final || !x->refs_waiting))
        return PA_OK;
    pa_buf_reset(lit);
    rc = pa_buf_addstr(lit, "{");
    for(s = pa_strset_next(&x->refs_set, &pos); s && !rc; s = pa_strset_next(&x->refs_set, &pos)) {
        if(final && !x->refs_waiting && strncmp(s, "ref=", 4)) {
            if(*s != '!' || !pa_strset_has(&x->refs_set, s + 1, strlen(s + 1)))
                continue;
            rc = pa_pgarray_add(lit, s + 1);
        }
        rc = rc ? rc : pa_pgarray_add(lit, s);
    }
    rc = rc ? rc : pa_buf_addstr(lit, "}");
    if(rc)
        return pa_err_set(err, rc, "a chunk's references are too large");
    x->refs.values[0] = pa_buf_str(lit);
    x->refs.values[4] = final ? "true" : "false";
    res = pa_db_query(db, err, pa_buf_str(&x->refs.sql), x->refs.nvalues, x->refs.values);
    if(!res)
        return err->code;
    PQclear(res);
    /* what is stored need not be sent again (a full memory of it starts over) */
    pos = 0;
    for(s = pa_strset_next(&x->refs_set, &pos); s; s = pa_strset_next(&x->refs_set, &pos))
        if(!strncmp(s, "ref=", 4) && pa_strset_add(&x->refs_stored, s, strlen(s)) == PA_ETOOBIG) {
            pa_strset_clear(&x->refs_stored);
            pa_strset_add(&x->refs_stored, s, strlen(s));
        }
    pa_strset_clear(&x->refs_set);
    x->refs_waiting = !final;
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

        res = PQgetResult(l->db);
        if(!res) {
            if(!*rc)
                *rc = export_flush(l->t, err);
            l->t = NULL;
            return;
        }
        st = PQresultStatus(res);
        if(st == PGRES_SINGLE_TUPLE && !*rc)
            *rc = take_row(x, l->t, res, err);
        else if(st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && !*rc)
            /* a failure can follow rows already written: the chunk fails whole */
            *rc = pa_db_result_error(l->db, res, err);
        PQclear(res);
    }
}

/* The next query (its index: out[i], then the members) lane k may take of
 * those not taken yet, -1 when none is left.  On the hot standby's lanes,
 * only the types' (reads); on the primary's, then, only the members' (it
 * writes). */
static int next_query(const struct export *x, int k, int *taken)
{
    size_t i, queries = x->nout + 1;
    int best = -1;

    for(i = 0; i < queries; i++) {
        int write = i == x->nout;

        if(taken[i] || (i < x->nout && x->out[i].kind != OUT_RESOURCE && x->out[i].kind != OUT_DELETED) ||
           (x->replica && write != (k == 0)))
            continue;
        /* the longest first (as the last chunk's took): the lanes end a
         * chunk together instead of one waiting on the other's last query */
        if(best < 0 || x->cost[i] > x->cost[best])
            best = (int)i;
    }
    if(best >= 0)
        taken[best] = 1;
    return best;
}

/*
 * One chunk: every compartment type, the tombstones, and the members'
 * disclosure records; then the references the rows brought.  Two
 * connections (three with a hot standby) run these queries side by side
 * (each type to its own file), so that PostgreSQL works on two cores while
 * the runner writes.  A set of references grown past export_refs_batch_bytes
 * is sent early, by a lane on the primary between two of its queries.
 */
static int export_chunk(struct export *x, const char *ids, pa_err *err)
{
    struct lane lanes[MAX_LANES];
    int taken[MAX_OUTS + 1] = { 0 };
    int k, nlanes = x->nlanes;
    int rc = PA_OK;

    for(k = 0; k < nlanes; k++) {
        lanes[k].db = x->lane_db[k];
        lanes[k].prepared = &x->prepared[k];
        lanes[k].backend = &x->backend[k];
        lanes[k].t = NULL;
    }
    for(;;) {
        struct pollfd pf[MAX_LANES];
        int busy = 0;

        for(k = 0; k < nlanes; k++) {
            while(!lanes[k].t && !rc) {
                int i;
                size_t q;
                struct type_out *t;

                if(x->refs_set.arena.len >= (size_t)x->w->cfg->export_refs_batch_bytes && (k == 0 || !x->replica)) {
                    rc = send_refs(x, lanes[k].db, 0, err);
                    if(rc)
                        break;
                }
                i = next_query(x, k, taken);
                if(i < 0)
                    break;
                q = (size_t)i < x->nout ? (size_t)i : MAX_OUTS;
                t = q == MAX_OUTS ? &x->members : &x->out[i];

                t->values[0] = ids;
                lanes[k].query = i;
                lanes[k].started = pa_mono_us();
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
            if(lanes[k].t) {
                lane_read(x, &lanes[k], &rc, err);
                if(!lanes[k].t)
                    x->cost[lanes[k].query] = pa_mono_us() - lanes[k].started;
            }
    }
    return rc ? rc : send_refs(x, x->lane_db[0], 1, err);
}

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
    res =
        pa_db_query(x->w->db, err, "SELECT id FROM export_ref WHERE job_id = $1 AND type = '!' ORDER BY id", 1, values);
    if(!res)
        return PA_EDB;
    pa_buf_init(&line, 4096);
    for(i = 0; i < PQntuples(res) && !rc; i++) {
        char msg[512];

        snprintf(msg, sizeof(msg),
                 "%.150s is referenced by resources this export holds, but is not in it: its "
                 "date is before the service-date floor (%s), and this server does not export what is older",
                 PQgetvalue(res, i, 0), x->w->cfg->service_date_floor);
        rc = export_error_line(x, t, &line, "not-found", msg, err);
    }
    PQclear(res);
    pa_buf_free(&line);
    return rc ? rc : export_flush(t, err);
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
        sent = PQsendQueryParams(
            db,
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
    for(res = PQgetResult(db); res; res = PQgetResult(db)) {
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
                rc = export_add_line(x, t, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1), err);
        }
        else if(st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && !rc)
            rc = pa_db_result_error(db, res, err);
        PQclear(res);
    }
    for(k = 0; k < x->nout && !rc; k++)
        if(x->out[k].kind == OUT_SHARED)
            rc = export_flush(&x->out[k], err);
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

/* Of the patient ids (an array literal), those outside the export's scope
 * (opt-outs aside: an opted-out member is a member), in order. */
static PGresult *not_members(struct export *x, const char *ids, pa_err *err)
{
    struct sql_query q;
    int rc;

    sql_query_init(&q, &ids, 1);
    x->patients[0] = '\0';
    rc = pa_buf_addstr(&q.sql, "SELECT p FROM unnest($1::text[]) p WHERE NOT EXISTS (SELECT 1 FROM (");
    rc = rc ? rc : members_query(scope(x), MEMBERS_ANY, &q);
    rc = rc ? rc : pa_buf_addstr(&q.sql, ") s WHERE s.patient_id = p) ORDER BY p");
    return run_query(x, &q, rc, err);
}

/* The error file: the parameters Prefer: handling=lenient let through
 * unapplied, then `patient` references that are invalid or not members, one
 * OperationOutcome a line.  (Members left out for an opt-out are not named:
 * that would disclose it.) */
static int write_errors(struct export *x, struct type_out *t, json_object *patients, json_object *ignored, pa_err *err)
{
    pa_buf ids, line;
    PGresult *res;
    size_t i;
    int rc = PA_OK;

    pa_buf_init(&ids, 1 << 20);
    pa_buf_init(&line, 4096);
    for(i = 0; !rc && ignored && i < json_object_array_length(ignored); i++)
        rc = export_error_line(x, t, &line, "not-supported",
                               json_object_get_string(json_object_array_get_idx(ignored, i)), err);
    if(!rc && (!patients || !json_object_array_length(patients))) {
        rc = export_flush(t, err);
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
            rc = pa_pgarray_add(&ids, id);
            continue;
        }
        {
            char msg[512];

            snprintf(msg, sizeof(msg), "patient '%.200s' is not a Patient reference; it was ignored", ref);
            rc = export_error_line(x, t, &line, "invalid", msg, err);
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
        rc = export_error_line(x, t, &line, "not-found", msg, err);
    }
    PQclear(res);
    if(!rc)
        rc = export_flush(t, err);
    /* the subset exported: the valid references (members among them) */
    if(!rc && pa_strlcpy(x->patients, pa_buf_str(&ids), sizeof(x->patients)))
        rc = pa_err_set(err, PA_ETOOBIG, "too many patient references");
    pa_buf_free(&ids);
    pa_buf_free(&line);
    return rc;
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
    const char *values[7] = {
        x->job->id, ids, x->job->owner, x->group, at, pa_buf_str(&x->asked_types), pa_buf_str(&x->asked_filters)
    };
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

/* Reads the job's parameters, sets up the outputs, counts the chunks. */
/* The job's parameters the run and its disclosure records share: the Group,
 * the client, and the types, filters and period as asked (x->asked_* set up
 * by the caller). */
static int read_params(struct export *x, pa_err *err)
{
    json_object *v;

    x->params = json_tokener_parse(x->job->params);
    if(!x->params || member_level_parse(param_str(x->params, "members"), &x->scope.level) ||
       (x->scope.level == MEMBERS_GROUP && !*param_str(x->params, "group")))
        return pa_err_set(err, PA_EINVAL, "the job's parameters are unreadable");
    x->group = param_str(x->params, "group");
    x->npi = param_str(x->params, "npi");
    x->org_npi = param_str(x->params, "org_npi");
    x->scope.group = x->group;
    x->scope.client = x->job->owner;
    x->scope.npi = x->npi;
    x->scope.org_npi = x->org_npi;
    /* an admin client's system-level export holds the whole directory */
    x->shared_all = x->scope.level == MEMBERS_ALL && !strcmp(param_str(x->params, "level"), "system");
    x->financial = json_object_object_get_ex(x->params, "financial", &v) && json_object_get_boolean(v);
    x->record_downloads = !strcmp(param_str(x->params, "exportType"), "hl7.fhir.us.davinci-pdex#provider-download");
    if(join_strings(x->params, "asked_types", &x->asked_types) ||
       join_strings(x->params, "asked_filters", &x->asked_filters))
        return pa_err_set(err, PA_ETOOBIG, "the export's parameters are too long to record");
    pa_instant_format(x->job->ttime, x->ttime);
    if(param_i64(x->params, "since"))
        pa_instant_format(param_i64(x->params, "since"), x->since);
    if(param_i64(x->params, "until"))
        pa_instant_format(param_i64(x->params, "until"), x->until);
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
        struct type_out *t = ft ? export_add_out(x, type, ft->patient_path ? OUT_RESOURCE : OUT_SHARED) : NULL;

        if(!t)
            return pa_err_set(err, PA_EINVAL, "the job asks for type %s, which is not exported", type);
        t->subset = elements_for(json_object_object_get(x->params, "elements"), t->type, &t->keep);
    }
    /* whether the types' rows bring their references decides their queries */
    rc = export_refs_setup(x, err);
    for(i = 0; !rc && i < x->nout; i++)
        if(x->out[i].kind == OUT_RESOURCE)
            rc = export_type_sql(x, &x->out[i], filters, err);
    if(!rc && x->since[0]) {
        struct type_out *t = export_add_out(x, "Bundle", OUT_DELETED);

        rc = t ? export_deleted_sql(x, t, types) : PA_ETOOBIG;
    }
    if(!rc && has_errors(x) && !export_add_out(x, "OperationOutcome", OUT_ERROR))
        rc = PA_ETOOBIG;
    if(rc || x->scope.level != MEMBERS_GROUP)
        return rc;
    values[0] = x->group;
    res = pa_db_query(x->w->db, err,
                      "SELECT 1 FROM roster WHERE id = $1 UNION ALL "
                      "SELECT 1 FROM matched_group WHERE id = $1 AND expires_at > now()",
                      1, values);
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
    res = run_query(x, &q, rc, err);
    if(!res)
        return err->code;
    pa_parse_long(PQgetvalue(res, 0, 0), &members);
    PQclear(res);
    x->nmembers = members;
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
            pa_pgarray_add(&ids, id);
    }
    pa_buf_addstr(&ids, "}");
    pa_strlcpy(x->patients, pa_buf_str(&ids), sizeof(x->patients));
    pa_buf_free(&ids);
}

/* Whether the hot standby's connection conn has replayed the primary's WAL up
 * to lsn: 1 yes, 0 not yet, -1 it cannot say (not a standby, or a query failed). */
static int replayed(PGconn *conn, const char *lsn)
{
    PGresult *res =
        pa_db_query(conn, NULL, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= $1::pg_lsn", 1, &lsn);
    int v = -1;

    if(res && PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t") && !PQgetisnull(res, 0, 1))
        v = !strcmp(PQgetvalue(res, 0, 1), "t");
    PQclear(res);
    return v;
}

/*
 * The hot standby's lanes (export_database), once both have replayed
 * everything the primary had committed when this unit began (so, all that
 * transactionTime covers).  0 when they cannot be used (unreachable, not a
 * standby, behind by more than REPLICA_WAIT_MS): the unit reads the primary.
 */
static int replica_ready(struct export *x)
{
    struct worker *w = x->w;
    int64_t until = pa_mono_ms() + REPLICA_WAIT_MS, beat = pa_mono_ms();
    char lsn[64];
    PGresult *res;
    pa_err e;
    int i, v = 1;

    res = pa_db_query(w->db, &e, "SELECT pg_current_wal_lsn()::text", 0, NULL);
    if(!res || PQntuples(res) != 1) {
        /* (a lost primary fails the unit at its next query, loudly) */
        pa_warn("job %s: the primary's WAL position cannot be read (%s); this export reads the primary", x->job->id,
                res ? "no row" : e.msg);
        PQclear(res);
        return 0;
    }
    pa_strlcpy(lsn, PQgetvalue(res, 0, 0), sizeof(lsn));
    PQclear(res);
    for(i = 0; i < 2 && v == 1; i++) {
        /* a connection kept from an earlier job may have lost its server: one new try */
        v = w->replica[i] ? replayed(w->replica[i], lsn) : -1;
        if(v < 0) {
            if(w->replica[i])
                PQfinish(w->replica[i]);
            w->replica[i] = NULL;
            if(pa_db_connect_to(w->cfg->export_database, &w->replica[i], &e)) {
                pa_warn("job %s: the export database cannot be reached (%s); this export reads the primary (and "
                        "this worker's next ones, for %d s)",
                        x->job->id, e.msg, REPLICA_RETRY_MS / 1000);
                w->replica_skip_until = pa_mono_ms() + REPLICA_RETRY_MS;
                return 0;
            }
            v = replayed(w->replica[i], lsn);
        }
        while(v == 0 && pa_mono_ms() < until) {
            /* the wait keeps the unit claimed, as a checkpoint does */
            if(pa_mono_ms() - beat >= 500) {
                pa_job_heartbeat(w->redis, w->consumer, &w->entry, &e);
                beat = pa_mono_ms();
            }
            progress_pause_ms(20);
            v = replayed(w->replica[i], lsn);
        }
    }
    if(v != 1) {
        pa_warn("job %s: the export database %s; this export reads the primary (and this worker's next ones, "
                "for %d s)",
                x->job->id,
                v ? "cannot be queried, or is not a hot standby"
                  : "has not replayed the primary's last commits in time",
                REPLICA_RETRY_MS / 1000);
        w->replica_skip_until = pa_mono_ms() + REPLICA_RETRY_MS;
    }
    return v == 1;
}

/* The chunks' connections: the worker's and a second one on the primary, or
 * (export_database) the worker's and two on the hot standby. */
static int open_lanes(struct export *x, pa_err *err)
{
    struct worker *w = x->w;
    int rc;

    x->lane_db[0] = w->db;
    if(*w->cfg->export_database && pa_mono_ms() >= w->replica_skip_until && replica_ready(x)) {
        x->lane_db[1] = w->replica[0];
        x->lane_db[2] = w->replica[1];
        x->nlanes = 3;
        x->replica = 1;
        pa_debug("job %s: its resources are read from the export database", x->job->id);
        return PA_OK;
    }
    rc = pa_db_ensure(&w->db2, w->cfg, err);
    x->lane_db[1] = w->db2;
    x->nlanes = rc ? 1 : 2;
    return rc;
}

/* The part bounds of a split: the id of every export_part_members-th member
 * (x->bounds), but not the last member's (no part is empty unless members
 * went in between). */
static int plan_parts(struct export *x, pa_err *err)
{
    char every[24];
    struct sql_query q;
    PGresult *res = NULL;
    int i, n, rc;

    snprintf(every, sizeof(every), "%ld", x->w->cfg->export_part_members);
    sql_query_init(&q, NULL, 0);
    rc = pa_buf_addstr(&q.sql, "SELECT patient_id FROM (SELECT patient_id, row_number() OVER (ORDER BY patient_id) AS n"
                               " FROM (SELECT DISTINCT patient_id FROM (");
    rc = rc ? rc : members_query(scope(x), MEMBERS_NOT_OPTED_OUT, &q);
    rc = rc ? rc : pa_buf_addstr(&q.sql, ") s) d) r WHERE n % ");
    rc = rc ? rc : sql_query_value(&q, every);
    rc = rc ? rc : pa_buf_addstr(&q.sql, "::bigint = 0 ORDER BY patient_id");
    res = run_query(x, &q, rc, err);
    if(!res)
        return err->code;
    n = PQntuples(res);
    if(n > 0 && x->nmembers % x->w->cfg->export_part_members == 0)
        n--;
    x->bounds = json_object_new_array();
    for(i = 0; i < n; i++)
        json_object_array_add(x->bounds, json_object_new_string(PQgetvalue(res, i, 0)));
    PQclear(res);
    return PA_OK;
}

/* A part's members: after the bound before it, up to its own (x->after, x->hi). */
static int part_range(struct export *x, pa_err *err)
{
    json_object *cp = x->job->checkpoint ? json_tokener_parse(x->job->checkpoint) : NULL;
    json_object *b = NULL;
    long n;

    if(!cp || !json_object_object_get_ex(cp, "parts", &b) || !json_object_is_type(b, json_type_array)) {
        json_object_put(cp);
        return pa_err_set(err, PA_EINVAL, "the job's parts are unknown");
    }
    n = (long)json_object_array_length(b) + 1;
    if(x->part > n) {
        json_object_put(cp);
        return pa_err_set(err, PA_EINVAL, "the job has no part %ld", x->part);
    }
    x->after[0] = x->hi[0] = '\0';
    if(x->part > 1)
        pa_strlcpy(x->after, json_object_get_string(json_object_array_get_idx(b, (size_t)x->part - 2)),
                   sizeof(x->after));
    if(x->part < n)
        pa_strlcpy(x->hi, json_object_get_string(json_object_array_get_idx(b, (size_t)x->part - 1)), sizeof(x->hi));
    json_object_put(cp);
    return PA_OK;
}

/* The resume point of this unit: a part's own checkpoint, else the job's
 * (x->resumed when there is one it can use). */
static int restore_unit(struct export *x, pa_err *err)
{
    char part[24], *cp = NULL;
    int rc;

    if(!x->part)
        return x->job->checkpoint ? export_restore(x, x->job->checkpoint, err) : PA_OK;
    rc = part_range(x, err);
    snprintf(part, sizeof(part), "%ld", x->part);
    rc = rc ? rc : pa_job_part_field(x->w->redis, x->job->id, part, "cp", &cp, err);
    if(!rc && cp)
        rc = export_restore(x, cp, err);
    free(cp);
    return rc;
}

/* The last step's: the outputs each part recorded (x->part_outs). */
static int read_part_outs(struct export *x, pa_err *err)
{
    long k, n = (long)json_object_array_length(x->bounds) + 1;
    int rc = PA_OK;

    x->part_outs = json_object_new_array();
    for(k = 1; k <= n && !rc; k++) {
        char part[24], *out = NULL;
        json_object *o;

        snprintf(part, sizeof(part), "%ld", k);
        rc = pa_job_part_field(x->w->redis, x->job->id, part, "out", &out, err);
        o = out ? json_tokener_parse(out) : NULL;
        free(out);
        if(!rc && (!o || !json_object_is_type(o, json_type_array) || json_object_array_length(o) != x->nout)) {
            json_object_put(o);
            return pa_err_set(err, PA_EINVAL, "the outputs of part %ld are unreadable", k);
        }
        if(!rc)
            json_object_array_add(x->part_outs, o);
    }
    return rc;
}

/* Hands the job on as parts: the error file synced and the resume point
 * the parts and the last step start from saved with them, in one step. */
static int split(struct export *x, pa_err *err)
{
    char *cp;
    int rc = export_sync(x, err);

    if(rc)
        return rc;
    cp = export_checkpoint(x);
    if(!cp)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    rc =
        pa_job_split(x->w->redis, &x->w->entry, x->w->consumer, (long)json_object_array_length(x->bounds) + 1, cp, err);
    free(cp);
    if(!rc)
        pa_info("job %s split into %zu parts of %ld members", x->job->id, json_object_array_length(x->bounds) + 1,
                x->w->cfg->export_part_members);
    return rc;
}

/* The references an earlier attempt of this unit sent early and left
 * waiting (send_refs): its chunk is done again. */
static int forget_waiting_refs(struct export *x, pa_err *err)
{
    const char *values[2] = { x->job->id, x->unit_key };
    PGresult *res = pa_db_query(
        x->w->db, err, "DELETE FROM export_ref WHERE job_id = $1 AND type IN ('+' || $2, '-' || $2)", 2, values);

    PQclear(res);
    return res ? PA_OK : PA_EDB;
}

/* Removes what the export of job_id keeps in PostgreSQL while it runs: the
 * references and members it gathered. */
static int forget(PGconn *db, const char *job_id, pa_err *err)
{
    const char *values[1] = { job_id };
    PGresult *res = pa_db_query(db, err, "DELETE FROM export_ref WHERE job_id = $1", 1, values);

    PQclear(res);
    if(res)
        res = pa_db_query(db, err, "DELETE FROM export_member WHERE job_id = $1", 1, values);
    PQclear(res);
    return res ? PA_OK : PA_EDB;
}

int export_end(PGconn *db, const char *job_id, const char *state, pa_err *err)
{
    const char *values[1] = { job_id };
    PGresult *res;
    int rc = forget(db, job_id, err);

    if(rc || strcmp(state, "cancelled"))
        return rc;
    /* what a cancelled export prepared was never given */
    res = pa_db_query(db, err, "DELETE FROM download_record WHERE job_id = $1", 1, values);
    PQclear(res);
    return res ? PA_OK : PA_EDB;
}

/* Whether the job asked for _elements (its resources are cut down). */
static int subsetted(json_object *params)
{
    json_object *v = json_object_object_get(params, "elements");

    return v && json_object_is_type(v, json_type_object) && json_object_object_length(v) > 0;
}

int export_disclose(struct worker *w, const pa_job *job, pa_err *err)
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
    rc = rc ? rc
            : pa_buf_addstr(&q.sql, ") w WHERE NOT EXISTS (SELECT 1 FROM export_member e WHERE e.job_id = $3"
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
        res = pa_db_query(
            w->db, err,
            "INSERT INTO shared_received (client_id, type, id) SELECT $2, e.type, e.id FROM export_ref e"
            " WHERE e.job_id = $1 AND EXISTS (SELECT 1 FROM resource r WHERE r.type = e.type AND r.id = e.id)"
            " ON CONFLICT DO NOTHING",
            2, values + 2);
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

/* A lane's connection kept for the next job with its session reset, or
 * dropped if a query is still on it. */
static void keep_lane(PGconn **db)
{
    if(*db && (PQstatus(*db) != CONNECTION_OK || PQtransactionStatus(*db) != PQTRANS_IDLE ||
               pa_db_exec(*db, NULL, "DEALLOCATE ALL") || pa_db_exec(*db, NULL, "RESET plan_cache_mode"))) {
        PQfinish(*db);
        *db = NULL;
    }
}

int export_run(struct worker *w, const pa_job *job, char **manifest, pa_err *err)
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
    x->refs.fd = -1;
    x->refs.values = x->refs.fixed;
    pa_strlcpy(x->refs.type, "references", sizeof(x->refs.type));
    pa_buf_init(&x->refs.sql, SQL_MAX);
    /* an array literal of the set: each string quoted, its quotes escaped */
    pa_buf_init(&x->refs.wbuf, 3 * REFS_ARENA_BYTES(w->cfg->export_refs_batch_bytes));
    pa_strset_init(&x->refs_set, REFS_ARENA_BYTES(w->cfg->export_refs_batch_bytes));
    pa_strset_init(&x->refs_stored, (size_t)w->cfg->export_refs_batch_bytes);
    pa_buf_init(&x->ref_item, 1 << 20);
    /* the chunk's members, for its disclosure records (export_disclose):
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
    if(pa_parse_long(w->entry.part, &x->part) || x->part < 0)
        x->part = 0;
    snprintf(x->unit_key, sizeof(x->unit_key), "%ld", x->part);
    x->finishing = !strcmp(w->entry.part, PA_PART_FINISH);
    /* a data_dir too long for the folder's path fails the job, never writes elsewhere */
    rc = pa_jobfiles_dir(w->cfg, job->id, x->dir, sizeof(x->dir))
             ? pa_err_set(err, PA_ECONFIG, "the job folder's path under data_dir is too long")
             : prepare(x, err);
    if(!rc)
        rc = restore_unit(x, err);
    if(!rc && !x->resumed && x->part) {
        /* a part's first attempt starts from nothing, whatever an earlier one left */
        export_remove_part_files(x);
    }
    else if(!rc && !x->resumed) {
        /* a first attempt starts from nothing, whatever an earlier one left
         * (a last step without a usable resume point runs the job whole) */
        x->finishing = 0;
        pa_jobfiles_remove(w->cfg, job->id);
        rc = forget(w->db, job->id, err);
    }
    if(!rc && x->gather_refs)
        rc = forget_waiting_refs(x, err);
    if(!rc && mkdir(x->dir, 0750) && errno != EEXIST)
        rc = pa_err_set(err, PA_EIO, "cannot create %s: %s", x->dir, strerror(errno));
    /* a whole job of more members than a part holds is split */
    if(!rc && !x->part && !x->finishing) {
        subset_from_params(x);
        rc = count_chunks(x, err);
        if(!rc && !x->resumed && !*w->entry.part && w->cfg->export_part_members > 0 &&
           x->nmembers > w->cfg->export_part_members) {
            rc = plan_parts(x, err);
            x->planning = !rc;
        }
    }
    for(i = 0; i < x->nout && !rc; i++)
        if(export_writes(x, &x->out[i]))
            rc = export_open_current(x, &x->out[i], err);
    if(!rc) {
        json_object *patients = NULL, *ignored = NULL;

        json_object_object_get_ex(x->params, "patients", &patients);
        json_object_object_get_ex(x->params, "ignored", &ignored);
        if(x->resumed || x->part || !has_errors(x))
            subset_from_params(x);
        else
            for(i = 0; i < x->nout && !rc; i++)
                if(x->out[i].kind == OUT_ERROR)
                    rc = write_errors(x, &x->out[i], patients, ignored, err);
    }
    if(!rc && x->planning) {
        rc = split(x, err);
        goto out;
    }
    if(!rc && x->finishing) {
        /* the members are done: the shared pass and the manifest are left */
        x->done = (long)json_object_array_length(x->bounds) + 1;
        x->total = x->done + 1;
        x->members_done = 1;
        rc = read_part_outs(x, err);
    }
    /* each lane sets up its session when it first sends (lane_send) */
    if(!rc && !x->members_done)
        rc = open_lanes(x, err);
    while(!rc && !x->shared_done) {
        long n = 0;

        if(!x->members_done)
            rc = next_members(x, &ids, &n, err);
        if(!rc && n)
            rc = export_chunk(x, pa_buf_str(&ids), err);
        if(!rc && n)
            rc = record_chunk(x, pa_buf_str(&ids), err);
        if(!rc && !n) {
            /* a part's members are done; the shared pass is the last step's */
            x->members_done = 1;
            rc = x->part ? PA_OK : export_shared(x, err);
            x->shared_done = !rc;
        }
        /* a chunk that failed anywhere fails the job (or this attempt): the
         * files hold part of it, so nothing after it may be written */
        if(rc)
            break;
        x->done++;
        progress_chunk_pause(w);
        /* a checkpoint (files synced, resume point saved, the claim renewed,
         * cancellation and shutdown heard) at most every CHECKPOINT_EVERY_MS,
         * and always after the last pass: a resumed job redoes at most that */
        if(!x->shared_done && !*w->stop && pa_mono_ms() < last_cp + CHECKPOINT_EVERY_MS)
            continue;
        last_cp = pa_mono_ms();
        rc = export_sync(x, err);
        if(rc)
            break;
        free(cp);
        cp = export_checkpoint(x);
        rc = cp ? progress_checkpoint(w, job, x->done, x->total, cp, err) : pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    if(!rc)
        rc = x->part ? export_part_outputs(x, manifest, err) : export_finish(x, manifest, err);
out:
    for(i = 0; i < x->nout; i++) {
        if(x->out[i].fd >= 0)
            close(x->out[i].fd);
        json_object_put(x->out[i].done);
        pa_buf_free(&x->out[i].sql);
        pa_buf_free(&x->out[i].wbuf);
    }
    pa_buf_free(&x->refs.sql);
    pa_buf_free(&x->refs.wbuf);
    pa_strset_free(&x->refs_set);
    pa_strset_free(&x->refs_stored);
    pa_buf_free(&x->ref_item);
    if(x->refs_db)
        PQfinish(x->refs_db);
    pa_buf_free(&x->members.sql);
    pa_buf_free(&x->members.wbuf);
    pa_buf_free(&x->shared);
    pa_buf_free(&x->scratch);
    pa_buf_free(&x->asked_types);
    pa_buf_free(&x->asked_filters);
    /* the worker's connections are left as they were found (the second
     * one, kept for the next job, dropped if a query is still on it) */
    if(PQstatus(w->db) == CONNECTION_OK && PQtransactionStatus(w->db) == PQTRANS_IDLE) {
        pa_db_exec(w->db, NULL, "DEALLOCATE ALL");
        pa_db_exec(w->db, NULL, "RESET plan_cache_mode");
    }
    keep_lane(&w->db2);
    keep_lane(&w->replica[0]);
    keep_lane(&w->replica[1]);
    json_object_put(x->params);
    json_object_put(x->bounds);
    json_object_put(x->part_outs);
    pa_buf_free(&ids);
    free(cp);
    free(x);
    return rc;
}
