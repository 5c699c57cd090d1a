/*
 * The member-match job: the asynchronous $provider-member-match.  It reads
 * the request the responder kept, matches it (common/pa_match.c), stores the
 * Matched Group under the job's id (so a retried job stores it once), and
 * writes Group-1.ndjson (the result Groups, one a line) and
 * Parameters-1.ndjson (the response Parameters wrapping them).
 */
#include "kinds.h"
#include "progress.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pa_audit.h"
#include "pa_buf.h"
#include "pa_db.h"
#include "pa_guard.h"
#include "pa_jobfiles.h"
#include "pa_log.h"
#include "pa_manifest.h"
#include "pa_match.h"
#include "pa_util.h"

#define GROUP_FILE "Group-1.ndjson"
#define PARAMETERS_FILE "Parameters-1.ndjson"

/* Writes text, then end, as the file dir/name, synced. */
static int write_file(const char *dir, const char *name, const char *text, const char *end, pa_err *err)
{
    char path[1400];
    FILE *f;

    int bad;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    bad = !f || fputs(text, f) < 0 || fputs(end, f) < 0 || fflush(f) || fsync(fileno(f));
    if((f && fclose(f)) || bad)
        return pa_err_set(err, PA_EIO, "cannot write %s: %s", name, strerror(errno));
    return PA_OK;
}

/*
 * The match's outcome as an audit event of its own, as a synchronous match's
 * request has: how many members landed where, and why (counts only, no PHI).
 * A failure is only logged: the disclosure records are already stored.
 */
static void audit_outcome(struct worker *w, const pa_job *job, const pa_match_who *who, const pa_match_out *out,
                          long members)
{
    pa_audit_event e;
    char detail[1024];
    pa_err err;

    memset(&e, 0, sizeof(e));
    pa_instant_format(pa_now_ms(), e.at);
    pa_match_summary(out, detail, sizeof(detail));
    e.request_id = who->request_id[0] ? who->request_id : job->id;
    e.client_id = who->client_id;
    e.npi = who->npi && *who->npi ? who->npi : NULL;
    e.method = "JOB";
    e.endpoint = "/Group/$provider-member-match";
    e.operation = "member-match-result";
    e.group_id = out->group_id;
    e.job_id = job->id;
    e.outcome = "success";
    e.detail = detail;
    e.members = members;
    e.status = 200;
    e.duration_ms = pa_now_ms() - job->created;
    pa_err_clear(&err);
    if(pa_audit_queue(w->redis, &e, &err) && pa_audit_insert(w->db, &e, &err))
        pa_warn("job %s: its outcome is not audited: %s", job->id, err.msg);
}

int match_run(struct worker *w, const pa_job *job, char **manifest, pa_err *err)
{
    json_object *jp = json_tokener_parse(job->params), *request = NULL, *output, *result[3];
    char path[1200], dir[1100];
    pa_match_in in;
    pa_match_out out;
    pa_match_who who;
    pa_buf groups;
    char *params = NULL, *body = NULL;
    long members = 0, ngroups = 0;
    size_t len = 0, i;
    FILE *f;
    int rc;
    int64_t t[4];

    t[0] = pa_mono_ms();
    memset(&out, 0, sizeof(out));
    pa_buf_init(&groups, 1 << 30);
    *manifest = NULL;
    if(pa_jobfiles_request(w->cfg, job->id, path, sizeof(path)) || pa_jobfiles_dir(w->cfg, job->id, dir, sizeof(dir))) {
        rc = pa_err_set(err, PA_ECONFIG, "the job's paths under data_dir are too long");
        goto out;
    }
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
    who.client_id = job->owner;
    who.npi = in.npi;
    who.request_id = job->request_id;
    who.job_id = job->id;
    t[1] = pa_mono_ms();
    rc = pa_match_run(&in, request, &out, err);
    t[2] = pa_mono_ms();
    if(!rc)
        rc = pa_match_store(w->db, &out, &who, w->cfg->matched_group_days, err);
    if(rc)
        goto out;
    t[3] = pa_mono_ms();
    audit_outcome(w, job, &who, &out, members);
    {
        /* the enumeration guard counts asynchronous matches as it does the others */
        pa_err gerr;
        int over = 0;

        if(pa_guard_charge(w->redis, w->db, w->cfg, job->owner, out.misses, &over, &gerr))
            pa_warn("job %s: not charged to client %s: %s", job->id, job->owner, gerr.msg);
    }
    pa_jobfiles_remove(w->cfg, job->id);
    if(mkdir(dir, 0750) && errno != EEXIST) {
        rc = pa_err_set(err, PA_EIO, "cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    result[0] = out.matched;
    result[1] = out.nonmatched;
    result[2] = out.constrained;
    for(i = 0; i < 3 && !rc; i++)
        if(result[i]) {
            if(pa_buf_printf(
                   &groups, "%s\n",
                   json_object_to_json_string_ext(result[i], JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)))
                rc = pa_err_set(err, PA_ETOOBIG, "the result Groups are too large");
            ngroups++;
        }
    params = rc ? NULL : pa_match_parameters(&out);
    if(!rc)
        rc = params ? write_file(dir, GROUP_FILE, pa_buf_str(&groups), "", err)
                    : pa_err_set(err, PA_ENOMEM, "out of memory");
    if(!rc)
        rc = write_file(dir, PARAMETERS_FILE, params, "\n", err);
    if(rc)
        goto out;
    output = json_object_new_array();
    rc = output ? pa_manifest_add_file(output, w->cfg, job->id, "Group", GROUP_FILE, ngroups, err)
                : pa_err_set(err, PA_ENOMEM, "out of memory");
    if(!rc)
        rc = pa_manifest_add_file(output, w->cfg, job->id, "Parameters", PARAMETERS_FILE, 1, err);
    /* the request stays until the job ends (the worker removes it then): an
     * attempt that fails after this point is retried with it */
    if(rc)
        json_object_put(output);
    else
        rc = pa_manifest_build(job, output, NULL, json_object_new_array(), manifest, err);
    if(!rc)
        pa_info("member match of %ld members: request read in %lld ms, matched in %lld ms, stored in %lld ms, "
                "files written in %lld ms",
                members, (long long)(t[1] - t[0]), (long long)(t[2] - t[1]), (long long)(t[3] - t[2]),
                (long long)(pa_mono_ms() - t[3]));
out:
    json_object_put(jp);
    json_object_put(request);
    pa_match_out_free(&out);
    pa_buf_free(&groups);
    free(params);
    free(body);
    return rc;
}
