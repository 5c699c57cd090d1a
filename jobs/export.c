/*
 * The export job: walks the Group's members in keyset-ordered chunks and,
 * for each chunk, streams the requested types' stored NDJSON lines from
 * PostgreSQL straight into per-type files, without parsing them.  After each
 * chunk the files are synced and the resume point saved, so a runner that
 * dies mid-job is replaced by one that truncates the files to the last
 * checkpoint and goes on: no line is lost or written twice.
 */
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pa_buf.h"
#include "pa_db.h"
#include "pa_log.h"
#include "pa_util.h"

#define MAX_TYPES 32
#define WRITE_BUF (256 * 1024)
#define MAX_FILES_PER_TYPE 10000

/* One resource type's output: finished files and the one being written. */
struct type_out {
    char type[64];
    long file_no;          /* current file, from 1 */
    long long bytes;       /* bytes in the current file at the last checkpoint / now */
    long count;            /* lines in the current file */
    json_object *done;     /* finished files: [{"name", "count"}] */
    int fd;
};

struct export {
    pa_worker *w;
    const pa_job *job;
    char dir[1024];
    char group[128];
    int64_t since;         /* 0: none */
    struct type_out out[MAX_TYPES];
    size_t ntypes;
    char after[256];       /* last member id done (keyset) */
    long done;             /* chunks done */
    long total;            /* chunks in all */
    pa_buf wbuf;
};

static void file_name(const struct type_out *t, long no, char *out, size_t size)
{
    snprintf(out, size, "%s-%ld.ndjson", t->type, no);
}

static int open_current(struct export *x, struct type_out *t, int truncate_to, pa_err *err)
{
    char name[128];
    char path[1400];

    file_name(t, t->file_no, name, sizeof(name));
    snprintf(path, sizeof(path), "%s/%s", x->dir, name);
    t->fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if(t->fd < 0)
        return pa_err_set(err, PA_EIO, "cannot open %s: %s", name, strerror(errno));
    /* drop whatever a previous attempt wrote after its last checkpoint */
    if((truncate_to && ftruncate(t->fd, (off_t)t->bytes)) || lseek(t->fd, 0, SEEK_END) < 0)
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

/* Writes the buffered lines of type t to its current file. */
static int flush_type(struct export *x, struct type_out *t, pa_err *err)
{
    if(!x->wbuf.len)
        return PA_OK;
    if(write_all(t->fd, x->wbuf.data, x->wbuf.len))
        return pa_err_set(err, PA_EIO, "cannot write %s output: %s", t->type, strerror(errno));
    pa_buf_reset(&x->wbuf);
    return PA_OK;
}

/* Closes the current file of t into the finished list and opens the next. */
static int next_file(struct export *x, struct type_out *t, pa_err *err)
{
    json_object *f;
    char name[128];
    int rc = flush_type(x, t, err);

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
    return open_current(x, t, 1, err);
}

/* Appends one NDJSON line, splitting files at export_file_max_bytes. */
static int add_line(struct export *x, struct type_out *t, const char *json, size_t n, pa_err *err)
{
    int rc;

    if(t->bytes > 0 && t->bytes + (long long)n + 1 > x->w->cfg->export_file_max_bytes) {
        rc = next_file(x, t, err);
        if(rc)
            return rc;
    }
    if(x->wbuf.len + n + 1 > WRITE_BUF) {
        rc = flush_type(x, t, err);
        if(rc)
            return rc;
    }
    /* a line longer than the buffer goes straight to the file */
    if(n + 1 > WRITE_BUF) {
        if(write_all(t->fd, json, n) || write_all(t->fd, "\n", 1))
            return pa_err_set(err, PA_EIO, "cannot write %s output: %s", t->type, strerror(errno));
    }
    else if(pa_buf_add(&x->wbuf, json, n) || pa_buf_add(&x->wbuf, "\n", 1)) {
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    t->bytes += (long long)n + 1;
    t->count++;
    return PA_OK;
}

/* Streams one type's rows for the members in ids (a Postgres array literal). */
static int export_type_chunk(struct export *x, struct type_out *t, const char *ids, pa_err *err)
{
    PGconn *db = x->w->db;
    char ttime[32], since[32];
    const char *values[4];
    const char *sql;
    PGresult *res;
    int rc = PA_OK;

    pa_fhir_instant(x->job->ttime, ttime);
    pa_fhir_instant(x->since, since);
    values[0] = ids;
    values[1] = t->type;
    values[2] = ttime;
    values[3] = x->since ? since : NULL;
    /* the Patient resource is the member itself; every other type is in its compartment */
    if(!strcmp(t->type, "Patient"))
        sql = "SELECT json FROM resource WHERE type = $2 AND id = ANY($1::text[]) "
              "AND last_updated <= $3::timestamptz "
              "AND ($4::timestamptz IS NULL OR last_updated > $4::timestamptz) ORDER BY id";
    else
        sql = "SELECT json FROM resource WHERE patient_id = ANY($1::text[]) AND type = $2 "
              "AND last_updated <= $3::timestamptz "
              "AND ($4::timestamptz IS NULL OR last_updated > $4::timestamptz) "
              "ORDER BY patient_id, id";
    if(!PQsendQueryParams(db, sql, 4, NULL, values, NULL, NULL, 0) || !PQsetSingleRowMode(db))
        return pa_err_set(err, PA_EDB, "PostgreSQL: %s", PQerrorMessage(db));
    /* single-row mode: memory stays flat however many rows a chunk has */
    while((res = PQgetResult(db))) {
        ExecStatusType st = PQresultStatus(res);

        if(st == PGRES_SINGLE_TUPLE && !rc)
            rc = add_line(x, t, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), err);
        else if(st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && !rc)
            rc = pa_err_set(err, PA_EDB, "PostgreSQL: %s", PQresultErrorMessage(res));
        PQclear(res);
    }
    if(!rc)
        rc = flush_type(x, t, err);
    return rc;
}

/* Reads the next chunk of member ids after x->after into a Postgres array
 * literal; *n is how many. */
static int next_members(struct export *x, pa_buf *ids, long *n, pa_err *err)
{
    char limit[24];
    const char *values[3];
    PGresult *res;
    int i;
    int rc = PA_OK;

    snprintf(limit, sizeof(limit), "%ld", x->w->cfg->export_chunk_members);
    values[0] = x->group;
    values[1] = x->after;
    values[2] = limit;
    res = pa_db_query(x->w->db, err,
                      "SELECT patient_id FROM roster_member WHERE roster_id = $1 AND patient_id > $2 "
                      "ORDER BY patient_id LIMIT $3::int",
                      3, values);
    if(!res)
        return PA_EDB;
    *n = PQntuples(res);
    pa_buf_reset(ids);
    rc = pa_buf_addstr(ids, "{");
    for(i = 0; i < *n && !rc; i++) {
        /* ids are FHIR ids ([A-Za-z0-9.-]), safe unquoted in an array literal */
        if(!pa_is_fhir_id(PQgetvalue(res, i, 0)))
            continue;
        rc = pa_buf_printf(ids, "%s%s", ids->len > 1 ? "," : "", PQgetvalue(res, i, 0));
    }
    if(!rc)
        rc = pa_buf_addstr(ids, "}");
    if(*n)
        pa_strlcpy(x->after, PQgetvalue(res, *n - 1, 0), sizeof(x->after));
    PQclear(res);
    return rc ? pa_err_set(err, rc, "member list too large") : PA_OK;
}

static char *checkpoint_json(const struct export *x)
{
    json_object *o = json_object_new_object();
    json_object *types = json_object_new_array();
    char *s;
    size_t i;

    json_object_object_add(o, "after", json_object_new_string(x->after));
    json_object_object_add(o, "done", json_object_new_int64(x->done));
    for(i = 0; i < x->ntypes; i++) {
        const struct type_out *t = &x->out[i];
        json_object *jt = json_object_new_object();

        json_object_object_add(jt, "type", json_object_new_string(t->type));
        json_object_object_add(jt, "file", json_object_new_int64(t->file_no));
        json_object_object_add(jt, "bytes", json_object_new_int64(t->bytes));
        json_object_object_add(jt, "count", json_object_new_int64(t->count));
        json_object_object_add(jt, "files", json_object_get(t->done));
        json_object_array_add(types, jt);
    }
    json_object_object_add(o, "types", types);
    s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return s;
}

static int64_t get_i64(json_object *o, const char *k)
{
    json_object *v;

    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

/* Restores the resume point written by checkpoint_json. */
static int restore(struct export *x, const char *cp, pa_err *err)
{
    json_object *o = json_tokener_parse(cp);
    json_object *v, *types;
    size_t i;
    int rc = PA_OK;

    if(!o || !json_object_object_get_ex(o, "after", &v) ||
       !json_object_object_get_ex(o, "types", &types) ||
       json_object_array_length(types) != x->ntypes) {
        rc = pa_err_set(err, PA_EINVAL, "unreadable checkpoint");
        goto out;
    }
    pa_strlcpy(x->after, json_object_get_string(v), sizeof(x->after));
    x->done = (long)get_i64(o, "done");
    for(i = 0; i < x->ntypes; i++) {
        json_object *jt = json_object_array_get_idx(types, i);
        struct type_out *t = &x->out[i];
        json_object *files;

        t->file_no = (long)get_i64(jt, "file");
        t->bytes = get_i64(jt, "bytes");
        t->count = (long)get_i64(jt, "count");
        if(json_object_object_get_ex(jt, "files", &files)) {
            json_object_put(t->done);
            t->done = json_object_get(files);
        }
        if(t->file_no < 1) {
            rc = pa_err_set(err, PA_EINVAL, "unreadable checkpoint");
            goto out;
        }
    }
out:
    json_object_put(o);
    return rc;
}

static void add_output(json_object *output, const pa_config *cfg, const char *jobid,
                       const char *type, const char *name, int64_t count)
{
    json_object *item = json_object_new_object();
    char url[1024];

    snprintf(url, sizeof(url), "%s/bulkfiles/%s/%s", cfg->base_url, jobid, name);
    json_object_object_add(item, "type", json_object_new_string(type));
    json_object_object_add(item, "url", json_object_new_string(url));
    json_object_object_add(item, "count", json_object_new_int64(count));
    json_object_array_add(output, item);
}

/* Closes the files and builds the Bulk Data manifest; empty files are removed
 * and not listed. */
static int finish(struct export *x, char **manifest, pa_err *err)
{
    json_object *m = json_object_new_object();
    json_object *output = json_object_new_array();
    char ttime[32];
    size_t i;
    size_t k;
    int rc = PA_OK;

    for(i = 0; i < x->ntypes && !rc; i++) {
        struct type_out *t = &x->out[i];
        char name[128];
        char path[1400];

        for(k = 0; k < json_object_array_length(t->done); k++) {
            json_object *f = json_object_array_get_idx(t->done, k);
            json_object *n;

            json_object_object_get_ex(f, "name", &n);
            add_output(output, x->w->cfg, x->job->id, t->type, json_object_get_string(n),
                       get_i64(f, "count"));
        }
        file_name(t, t->file_no, name, sizeof(name));
        if(t->fd >= 0 && (fdatasync(t->fd) || close(t->fd)))
            rc = pa_err_set(err, PA_EIO, "cannot sync %s output: %s", t->type, strerror(errno));
        t->fd = -1;
        if(t->count > 0) {
            add_output(output, x->w->cfg, x->job->id, t->type, name, t->count);
        }
        else {
            snprintf(path, sizeof(path), "%s/%s", x->dir, name);
            unlink(path);
        }
    }
    pa_fhir_instant(x->job->ttime, ttime);
    json_object_object_add(m, "transactionTime", json_object_new_string(ttime));
    json_object_object_add(m, "request", json_object_new_string(x->job->request));
    json_object_object_add(m, "requiresAccessToken", json_object_new_boolean(1));
    json_object_object_add(m, "output", output);
    json_object_object_add(m, "deleted", json_object_new_array());
    json_object_object_add(m, "error", json_object_new_array());
    if(!rc) {
        *manifest = strdup(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
        if(!*manifest)
            rc = pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    json_object_put(m);
    return rc;
}

/* Reads the job's parameters and counts the chunks. */
static int prepare(struct export *x, pa_err *err)
{
    json_object *p = json_tokener_parse(x->job->params);
    json_object *v;
    const char *values[1];
    PGresult *res;
    long members = 0;
    size_t i;
    int rc = PA_OK;

    if(!p || !json_object_object_get_ex(p, "group", &v)) {
        rc = pa_err_set(err, PA_EINVAL, "the job's parameters are unreadable");
        goto out;
    }
    pa_strlcpy(x->group, json_object_get_string(v), sizeof(x->group));
    x->since = get_i64(p, "since");
    if(json_object_object_get_ex(p, "types", &v))
        for(i = 0; i < json_object_array_length(v) && x->ntypes < MAX_TYPES; i++) {
            struct type_out *t = &x->out[x->ntypes++];

            pa_strlcpy(t->type, json_object_get_string(json_object_array_get_idx(v, i)),
                       sizeof(t->type));
            t->file_no = 1;
            t->fd = -1;
            t->done = json_object_new_array();
        }
    values[0] = x->group;
    res = pa_db_query(x->w->db, err,
                      "SELECT (SELECT count(*) FROM roster_member WHERE roster_id = $1), "
                      "EXISTS (SELECT 1 FROM roster WHERE id = $1)",
                      1, values);
    if(!res) {
        rc = PA_EDB;
        goto out;
    }
    pa_parse_long(PQgetvalue(res, 0, 0), &members);
    if(strcmp(PQgetvalue(res, 0, 1), "t"))
        rc = pa_err_set(err, PA_ENOTFOUND, "Group %s no longer exists", x->group);
    PQclear(res);
    x->total = (members + x->w->cfg->export_chunk_members - 1) / x->w->cfg->export_chunk_members;
out:
    json_object_put(p);
    return rc;
}

int pa_export_run(pa_worker *w, const pa_job *job, char **manifest, pa_err *err)
{
    struct export *x = calloc(1, sizeof(*x));
    pa_buf ids;
    char *cp = NULL;
    size_t i;
    int rc;

    *manifest = NULL;
    pa_buf_init(&ids, 64 * 1024 * 1024);
    if(!x)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    x->w = w;
    x->job = job;
    pa_buf_init(&x->wbuf, WRITE_BUF);
    snprintf(x->dir, sizeof(x->dir), "%s/jobs/%s", w->cfg->data_dir, job->id);
    rc = prepare(x, err);
    if(rc)
        goto out;
    if(job->checkpoint) {
        rc = restore(x, job->checkpoint, err);
    }
    else {
        /* a first attempt starts from nothing, whatever an earlier one left */
        pa_job_dir_remove(w->cfg, job->id);
    }
    if(!rc && mkdir(x->dir, 0750) && errno != EEXIST)
        rc = pa_err_set(err, PA_EIO, "cannot create %s: %s", x->dir, strerror(errno));
    for(i = 0; i < x->ntypes && !rc; i++)
        rc = open_current(x, &x->out[i], 1, err);
    while(!rc) {
        long n = 0;

        rc = next_members(x, &ids, &n, err);
        if(rc || n == 0)
            break;
        for(i = 0; i < x->ntypes && !rc; i++)
            rc = export_type_chunk(x, &x->out[i], pa_buf_str(&ids), err);
        for(i = 0; i < x->ntypes && !rc; i++)
            if(fdatasync(x->out[i].fd))
                rc = pa_err_set(err, PA_EIO, "cannot sync output: %s", strerror(errno));
        if(rc)
            break;
        x->done++;
        free(cp);
        cp = checkpoint_json(x);
        rc = cp ? pa_worker_checkpoint(w, job, x->done, x->total, cp, err)
                : pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    if(!rc)
        rc = finish(x, manifest, err);
out:
    for(i = 0; i < x->ntypes; i++) {
        if(x->out[i].fd >= 0)
            close(x->out[i].fd);
        json_object_put(x->out[i].done);
    }
    pa_buf_free(&x->wbuf);
    pa_buf_free(&ids);
    free(cp);
    free(x);
    return rc;
}
