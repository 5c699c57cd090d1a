/*
 * The export's outputs: one file at a time per type, split at
 * export_file_max_bytes, written through a buffer; the checkpoint that lets a
 * runner resume them; the manifest that lists them (export.h).
 */
/* sync_file_range (Linux) */
#define _GNU_SOURCE
#include "export.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pa_jobfiles.h"
#include "pa_log.h"
#include "pa_manifest.h"
#include "pa_util.h"

/* The name of t's file number no (pa_jobfiles_name): a type's name fits. */
static void file_name(const struct export *x, const struct type_out *t, long no, char *out, size_t size)
{
    pa_jobfiles_name(t->type, x->part, no, out, size);
}

int export_writes(const struct export *x, const struct type_out *t)
{
    if(x->part)
        return t->kind == OUT_RESOURCE || t->kind == OUT_DELETED;
    if(x->finishing)
        return t->kind == OUT_SHARED || t->kind == OUT_ERROR;
    if(x->planning)
        return t->kind == OUT_ERROR;
    return 1;
}

void export_remove_part_files(struct export *x)
{
    char name[128], path[1400];
    size_t i;
    long no;

    for(i = 0; i < x->nout; i++)
        for(no = 1; no <= MAX_FILES_PER_TYPE; no++) {
            file_name(x, &x->out[i], no, name, sizeof(name));
            snprintf(path, sizeof(path), "%s/%s", x->dir, name);
            if(unlink(path) && errno == ENOENT)
                break;
        }
}

int export_open_current(struct export *x, struct type_out *t, pa_err *err)
{
    char name[128];
    char path[1400];

    file_name(x, t, t->file_no, name, sizeof(name));
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
int export_flush(struct type_out *t, pa_err *err)
{
    if(!t->wbuf.len)
        return PA_OK;
    if(write_all(t->fd, t->wbuf.data, t->wbuf.len))
        return pa_err_set(err, PA_EIO, "cannot write %s output: %s", t->type, strerror(errno));
    pa_buf_reset(&t->wbuf);
#ifdef SYNC_FILE_RANGE_WRITE
    /* The disk starts on what was just written, while the worker goes on:
     * the checkpoint's fdatasync then finds little left to write (it waited
     * 40 ms at the end of every part of 2,000 members, for 100 MB the disk
     * had not been asked to write yet).  Only a hint: what counts is the
     * fdatasync, so a failure here is not one. */
    (void)sync_file_range(t->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
    return PA_OK;
}

/* Closes the current file of t into the finished list and opens the next. */
static int next_file(struct export *x, struct type_out *t, pa_err *err)
{
    json_object *f;
    char name[128];
    int rc = export_flush(t, err);

    if(rc)
        return rc;
    if(fdatasync(t->fd) || close(t->fd))
        return pa_err_set(err, PA_EIO, "cannot sync %s output: %s", t->type, strerror(errno));
    t->fd = -1;
    file_name(x, t, t->file_no, name, sizeof(name));
    f = json_object_new_object();
    json_object_object_add(f, "name", json_object_new_string(name));
    json_object_object_add(f, "count", json_object_new_int64(t->count));
    json_object_array_add(t->done, f);
    if(t->file_no >= MAX_FILES_PER_TYPE)
        return pa_err_set(err, PA_ETOOBIG, "more than %d files of %s", MAX_FILES_PER_TYPE, t->type);
    t->file_no++;
    t->bytes = 0;
    t->count = 0;
    return export_open_current(x, t, err);
}

/* Appends one NDJSON line, splitting files at export_file_max_bytes. */
int export_add_line(struct export *x, struct type_out *t, const char *json, size_t n, pa_err *err)
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
        rc = export_flush(t, err);
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

/* Every current file on disk: what a checkpoint says was written must be. */
int export_sync(struct export *x, pa_err *err)
{
    size_t i;

    for(i = 0; i < x->nout; i++)
        if(x->out[i].fd >= 0 && fdatasync(x->out[i].fd))
            return pa_err_set(err, PA_EIO, "cannot sync %s output: %s", x->out[i].type, strerror(errno));
    return PA_OK;
}

char *export_checkpoint(const struct export *x)
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
    if(x->bounds && !x->part)
        json_object_object_add(o, "parts", json_object_get(x->bounds));
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

int64_t param_i64(json_object *o, const char *k)
{
    json_object *v;

    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

const char *param_str(json_object *o, const char *k)
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
int export_restore(struct export *x, const char *cp, pa_err *err)
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
    else if(!x->part && json_object_object_get_ex(o, "parts", &v) != x->finishing)
        why = x->finishing ? "it is not a split job's" : "it is a split job's";
    else if(x->finishing && (!json_object_is_type(v, json_type_array) || json_object_array_length(v) < 1))
        why = "its parts are unreadable";
    else if(!json_object_object_get_ex(o, "after", &v) || !json_object_is_type(v, json_type_string) ||
            !json_object_object_get_ex(o, "outputs", &outs) || !json_object_is_type(outs, json_type_array) ||
            json_object_array_length(outs) != x->nout)
        why = "its outputs are not this job's";
    for(i = 0; !why && i < x->nout; i++) {
        json_object *jt = json_object_array_get_idx(outs, i), *files = NULL;

        if(param_i64(jt, "file") < 1 || param_i64(jt, "bytes") < 0 || param_i64(jt, "count") < 0 ||
           strcmp(param_str(jt, "type"), x->out[i].type) ||
           (json_object_object_get_ex(jt, "files", &files) && !json_object_is_type(files, json_type_array)))
            why = "its outputs are not this job's";
    }
    if(why) {
        pa_warn("job %s: its checkpoint cannot be resumed (%s): the job starts over", x->job->id, why);
        json_object_put(o);
        return PA_OK;
    }
    x->resumed = 1;
    if(x->finishing && json_object_object_get_ex(o, "parts", &v))
        x->bounds = json_object_get(v);
    json_object_object_get_ex(o, "after", &v);
    pa_strlcpy(x->after, json_object_get_string(v), sizeof(x->after));
    x->done = (long)param_i64(o, "done");
    x->shared_done = json_object_object_get_ex(o, "shared_done", &v) && json_object_get_boolean(v);
    for(i = 0; i < x->nout; i++) {
        json_object *jt = json_object_array_get_idx(outs, i);
        struct type_out *t = &x->out[i];
        json_object *files;

        t->file_no = (long)param_i64(jt, "file");
        t->bytes = param_i64(jt, "bytes");
        t->count = (long)param_i64(jt, "count");
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
int export_finish(struct export *x, char **manifest, pa_err *err)
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

        /* a split job's parts wrote its members' files, in member order */
        for(k = 0; x->part_outs && k < json_object_array_length(x->part_outs); k++) {
            json_object *files = json_object_array_get_idx(json_object_array_get_idx(x->part_outs, k), (int)i);
            size_t j;

            for(j = 0; j < json_object_array_length(files); j++) {
                json_object *f = json_object_array_get_idx(files, j);

                if(!rc)
                    rc = pa_manifest_add_file(lists[t->kind], x->w->cfg, x->job->id, t->type, param_str(f, "name"),
                                              param_i64(f, "count"), err);
            }
        }
        for(k = 0; k < json_object_array_length(t->done) && !rc; k++) {
            json_object *f = json_object_array_get_idx(t->done, k);

            rc = pa_manifest_add_file(lists[t->kind], x->w->cfg, x->job->id, t->type, param_str(f, "name"),
                                      param_i64(f, "count"), err);
        }
        file_name(x, t, t->file_no, name, sizeof(name));
        if(t->fd >= 0 && (fdatasync(t->fd) || close(t->fd)) && !rc)
            rc = pa_err_set(err, PA_EIO, "cannot sync %s output: %s", t->type, strerror(errno));
        t->fd = -1;
        if(t->count > 0) {
            if(!rc)
                rc = pa_manifest_add_file(lists[t->kind], x->w->cfg, x->job->id, t->type, name, t->count, err);
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

int export_part_outputs(struct export *x, char **outputs, pa_err *err)
{
    json_object *all = json_object_new_array();
    size_t i;
    int rc = PA_OK;

    *outputs = NULL;
    for(i = 0; i < x->nout && !rc; i++) {
        struct type_out *t = &x->out[i];
        json_object *files = json_object_get(t->done);
        char name[128], path[1400];

        file_name(x, t, t->file_no, name, sizeof(name));
        rc = t->fd >= 0 ? export_flush(t, err) : PA_OK;
        if(!rc && t->fd >= 0 && (fdatasync(t->fd) || close(t->fd)))
            rc = pa_err_set(err, PA_EIO, "cannot sync %s output: %s", t->type, strerror(errno));
        t->fd = -1;
        if(t->count > 0) {
            json_object *f = json_object_new_object();

            json_object_object_add(f, "name", json_object_new_string(name));
            json_object_object_add(f, "count", json_object_new_int64(t->count));
            json_object_array_add(files, f);
        }
        else {
            snprintf(path, sizeof(path), "%s/%s", x->dir, name);
            unlink(path);
        }
        json_object_array_add(all, files);
    }
    if(!rc) {
        *outputs = strdup(json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN));
        if(!*outputs)
            rc = pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    json_object_put(all);
    return rc;
}

struct type_out *export_add_out(struct export *x, const char *type, enum out_kind kind)
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

/* One warning OperationOutcome line of the error file. */
int export_error_line(struct export *x, struct type_out *t, pa_buf *line, const char *code, const char *msg,
                      pa_err *err)
{
    int rc;

    pa_buf_reset(line);
    rc = pa_buf_printf(line,
                       "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"warning\","
                       "\"code\":\"%s\",\"diagnostics\":",
                       code);
    rc = rc ? rc : pa_buf_add_json_string(line, msg);
    rc = rc ? rc : pa_buf_addstr(line, "}]}");
    return rc ? pa_err_set(err, PA_ENOMEM, "out of memory") : export_add_line(x, t, line->data, line->len, err);
}
