/*
 * POST /fhir/Group/$provider-member-match (PDex v2).  A request of at most
 * member_match_sync_max members without Prefer: respond-async is answered at
 * once with the response Parameters; the Matched Group is stored, owned by
 * the caller, for matched_group_days, and can be read, searched and exported
 * by the caller alone.  Per-member reasons go to the audit event only.
 */
#include "api.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_guard.h"
#include "pa_job.h"
#include "pa_jobfiles.h"
#include "pa_log.h"
#include "pa_match.h"
#include "pa_util.h"

/*
 * The asynchronous form: the request is kept beside the job
 * (data_dir/requests/<job>.json) and the runner matches it; the manifest lists
 * a Group NDJSON file and a Parameters one (PDex pdex-288a/b).
 */
static int kick_off(pa_ctx *ctx, pa_req *req, pa_resp *resp)
{
    json_object *jp = json_object_new_object();
    pa_job *job = NULL;
    pa_err err;
    int rc;

    json_object_object_add(jp, "npi", json_object_new_string(ctx->token.npi));
    json_object_object_add(jp, "org_npi", json_object_new_string(ctx->token.org_npi));
    rc = pa_api_job_create(ctx, req, resp, "match", json_object_to_json_string_ext(jp, JSON_C_TO_STRING_PLAIN),
                           pa_now_ms(), &job);
    json_object_put(jp);
    if(rc)
        return 0;
    /* on disk before the job exists: a runner that takes it finds it whole */
    if(pa_jobfiles_keep_request(ctx->cfg, job->id, req->body, req->body_len, &err)) {
        pa_job_free(job);
        return pa_resp_error(resp, &err);
    }
    if(pa_api_job_submit(ctx, resp, job, "member match"))
        pa_jobfiles_drop_request(ctx->cfg, job->id);
    pa_job_free(job);
    return 0;
}

/*
 * The enumeration guard (pa_guard.h): 429 (answered) when the caller has
 * spent its budget of unmatched members, with the window's rest in
 * Retry-After, a security event in the log and the audit, and the client
 * flagged.  Redis out of reach answers 503.
 */
static int over_budget(pa_ctx *ctx, pa_resp *resp)
{
    pa_redis *redis;
    PGconn *db;
    long retry = 0;
    pa_err err;
    int rc;

    pa_err_clear(&err);
    rc = pa_ctx_redis(ctx, &redis, &err);
    if(!rc)
        rc = pa_guard_over(redis, ctx->cfg, ctx->client_id, &retry, &err);
    if(rc < 0) {
        pa_resp_error(resp, &err);
        return 1;
    }
    if(!rc)
        return 0;
    pa_warn("security: client %s refused a member match: over its budget of unmatched members", ctx->client_id);
    pa_strlcpy(ctx->audit.detail, "security: over the budget of unmatched members (member id guessing?); refused",
               sizeof(ctx->audit.detail));
    if(!pa_ctx_db(ctx, &db, &err))
        pa_guard_flag(db, ctx->client_id, "over its budget of unmatched members (member id guessing?)", &err);
    pa_resp_outcome(resp, 429, "error", "throttled",
                    "this client has sent more members that match no member of the plan than it may in %ld s "
                    "(match_nonmatch_budget): wait as Retry-After says; the plan has been told",
                    ctx->cfg->match_budget_window_seconds);
    pa_resp_header(resp, "Retry-After", "%ld", retry);
    return 1;
}

/* Charges the caller for the members nothing matched; a failure is only logged
 * (the answer is already made): the guard errs on the side of the client. */
static void charge(pa_ctx *ctx, PGconn *db, json_object *misses)
{
    pa_redis *redis;
    pa_err err;
    int over = 0;

    pa_err_clear(&err);
    if(pa_ctx_redis(ctx, &redis, &err) || pa_guard_charge(redis, db, ctx->cfg, ctx->client_id, misses, &over, &err))
        pa_warn("member match not charged to client %s: %s", ctx->client_id, err.msg);
}

void pa_h_member_match(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    json_object *params = NULL;
    pa_match_in in;
    pa_match_out out;
    pa_match_who who;
    PGconn *db;
    pa_err err;
    long members = 0;
    char *body = NULL;
    int async = req->prefer && strstr(req->prefer, "respond-async");

    (void)args;
    memset(&out, 0, sizeof(out));
    ctx->audit.operation = "member-match";
    if(pa_accept_pick(req->accept, pa_fhir_json_types) < 0) {
        pa_resp_outcome(resp, 406, "error", "not-supported",
                        "$provider-member-match answers with application/fhir+json");
        return;
    }
    if(!pa_media_type_is(req->content_type, PA_MT_FHIR_JSON) && !pa_media_type_is(req->content_type, PA_MT_JSON)) {
        pa_resp_outcome(resp, 415, "error", "not-supported", "send the request Parameters as application/fhir+json");
        return;
    }
    pa_err_clear(&err);
    /* checked without building it: an asynchronous request is parsed once, by the runner */
    if(pa_match_check(req->body, req->body_len, ctx->cfg->member_match_max, &members, &err)) {
        pa_resp_outcome(resp, err.code == PA_ETOOBIG ? 413 : 400, "error",
                        err.code == PA_ETOOBIG ? "too-costly" : "invalid", "%s", err.msg);
        return;
    }
    ctx->audit.members = members;
    if(over_budget(ctx, resp))
        return;
    if(async) {
        kick_off(ctx, req, resp);
        return;
    }
    if(members > ctx->cfg->member_match_sync_max) {
        pa_resp_outcome(resp, 400, "error", "too-costly",
                        "%ld members are more than are answered at once (%ld): send Prefer: respond-async", members,
                        ctx->cfg->member_match_sync_max);
        return;
    }
    if(pa_match_parse(req->body, ctx->cfg->member_match_max, &params, &members, &err)) {
        pa_resp_outcome(resp, 400, "error", "invalid", "%s", err.msg);
        return;
    }
    if(pa_ctx_db(ctx, &db, &err)) {
        json_object_put(params);
        pa_resp_error(resp, &err);
        return;
    }
    in.db = db;
    in.cfg = ctx->cfg;
    in.npi = ctx->token.npi;
    in.org_npi = ctx->token.org_npi;
    in.group_id = NULL;
    who.client_id = ctx->token.client_id;
    who.npi = ctx->token.npi;
    who.request_id = req->request_id;
    who.job_id = NULL;
    /* nothing is answered that is not recorded (pa_match_store) */
    if(pa_match_run(&in, params, &out, &err) || pa_match_store(db, &out, &who, ctx->cfg->matched_group_days, &err)) {
        json_object_put(params);
        pa_match_out_free(&out);
        pa_resp_error(resp, &err);
        return;
    }
    charge(ctx, db, out.misses);
    pa_strlcpy(ctx->audit.group_id, out.group_id, sizeof(ctx->audit.group_id));
    /* why each member landed where it did: for the payer, never for the caller */
    pa_match_summary(&out, ctx->audit.detail, sizeof(ctx->audit.detail));
    body = pa_match_parameters(&out);
    if(body)
        pa_resp_text(resp, 200, PA_MT_FHIR_JSON, body);
    else
        pa_resp_outcome(resp, 500, "fatal", "exception", "out of memory building the response");
    free(body);
    json_object_put(params);
    pa_match_out_free(&out);
}
