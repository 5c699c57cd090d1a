/*
 * The member-match job: the asynchronous $provider-member-match.  It reads
 * the request the responder kept, matches it (common/pa_match.c), stores the
 * Matched Group under the job's id (so a retried job stores it once), and
 * writes Group-1.ndjson (the result Groups, one a line) and
 * Parameters-1.ndjson (the response Parameters wrapping them).
 */
#include "runner.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pa_buf.h"
#include "pa_db.h"
#include "pa_match.h"
#include "pa_util.h"

static int write_file(const char *dir, const char *name, const char *text, pa_err *err)
{
    char path[1400];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if(!f || fputs(text, f) < 0 || fflush(f) || fsync(fileno(f)) || fclose(f))
        return pa_err_set(err, PA_EIO, "cannot write %s: %s", name, strerror(errno));
    return PA_OK;
}

static void add_output(json_object *list, const pa_config *cfg, const char *jobid, const char *type, const char *name,
                       long count)
{
    json_object *o = json_object_new_object();
    char url[1024];

    snprintf(url, sizeof(url), "%s/bulkfiles/%s/%s", cfg->base_url, jobid, name);
    json_object_object_add(o, "type", json_object_new_string(type));
    json_object_object_add(o, "url", json_object_new_string(url));
    json_object_object_add(o, "count", json_object_new_int64(count));
    json_object_array_add(list, o);
}

int pa_match_job(pa_worker *w, const pa_job *job, char **manifest, pa_err *err)
{
    json_object *jp = json_tokener_parse(job->params), *request = NULL, *m = NULL, *output;
    char path[1200], dir[1100], ttime[32];
    pa_match_in in;
    pa_match_out out;
    pa_buf groups;
    char *params = NULL, *body = NULL;
    long members = 0;
    size_t len = 0;
    FILE *f;
    int rc;

    memset(&out, 0, sizeof(out));
    pa_buf_init(&groups, 1 << 30);
    *manifest = NULL;
    snprintf(path, sizeof(path), "%s/requests/%s.json", w->cfg->data_dir, job->id);
    snprintf(dir, sizeof(dir), "%s/jobs/%s", w->cfg->data_dir, job->id);
    f = fopen(path, "r");
    if(!f) {
        rc = pa_err_set(err, PA_EINVAL, "the member-match request is gone");
        goto out;
    }
    body = malloc((size_t)w->cfg->max_request_body + 1);
    if(body)
        len = fread(body, 1, (size_t)w->cfg->max_request_body, f);
    fclose(f);
    if(!body) {
        rc = pa_err_set(err, PA_ENOMEM, "out of memory");
        goto out;
    }
    body[len] = '\0';
    rc = pa_match_parse(body, w->cfg->member_match_max, &request, &members, err);
    if(rc)
        goto out;
    in.db = w->db;
    in.cfg = w->cfg;
    in.npi = json_object_get_string(json_object_object_get(jp, "npi"));
    in.org_npi = json_object_get_string(json_object_object_get(jp, "org_npi"));
    in.group_id = job->id;
    rc = pa_match_run(&in, request, &out, err);
    if(!rc)
        rc = pa_match_store(w->db, &out, job->owner, in.npi, w->cfg->matched_group_days, err);
    if(rc)
        goto out;
    pa_job_dir_remove(w->cfg, job->id);
    if(mkdir(dir, 0750) && errno != EEXIST) {
        rc = pa_err_set(err, PA_EIO, "cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    pa_buf_printf(&groups, "%s\n", json_object_to_json_string_ext(out.matched, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    if(out.nonmatched)
        pa_buf_printf(&groups, "%s\n", json_object_to_json_string_ext(out.nonmatched, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    if(out.constrained)
        pa_buf_printf(&groups, "%s\n", json_object_to_json_string_ext(out.constrained, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    params = pa_match_parameters(&out);
    rc = write_file(dir, "Group-1.ndjson", pa_buf_str(&groups), err);
    if(!rc) {
        size_t n = params ? strlen(params) + 2 : 0;
        char *line = n ? malloc(n) : NULL;

        if(line) {
            snprintf(line, n, "%s\n", params);
            rc = write_file(dir, "Parameters-1.ndjson", line, err);
            free(line);
        }
        else
            rc = pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    if(rc)
        goto out;
    m = json_object_new_object();
    pa_fhir_instant(job->ttime, ttime);
    json_object_object_add(m, "transactionTime", json_object_new_string(ttime));
    json_object_object_add(m, "request", json_object_new_string(job->request));
    json_object_object_add(m, "requiresAccessToken", json_object_new_boolean(1));
    output = json_object_new_array();
    add_output(output, w->cfg, job->id, "Group", "Group-1.ndjson", 1 + (out.nonmatched != NULL) + (out.constrained != NULL));
    add_output(output, w->cfg, job->id, "Parameters", "Parameters-1.ndjson", 1);
    json_object_object_add(m, "output", output);
    json_object_object_add(m, "error", json_object_new_array());
    *manifest = strdup(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    if(!*manifest)
        rc = pa_err_set(err, PA_ENOMEM, "out of memory");
    else
        unlink(path); /* the request has served */
out:
    json_object_put(m);
    json_object_put(jp);
    json_object_put(request);
    pa_match_out_free(&out);
    pa_buf_free(&groups);
    free(params);
    free(body);
    return rc;
}
