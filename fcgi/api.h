/*
 * The responder's internals: the per-process context and the handlers the
 * router dispatches to.  Handlers see only pa_req/pa_resp (common/pa_http.h),
 * so unit tests drive them without FastCGI.
 */
#ifndef PA_API_H
#define PA_API_H

#include <libpq-fe.h>

#include "pa_auth.h"
#include "pa_config.h"
#include "pa_err.h"
#include "pa_http.h"
#include "pa_job.h"
#include "pa_redis.h"

/* What the audit event of a request records beside its method, path and
 * status; handlers fill in what they know. */
typedef struct pa_audit {
    const char *operation; /* "export", "token", "status", ... */
    char group_id[65];
    char job_id[33];
    long members;      /* -1 when not applicable */
    char detail[1024]; /* why it was refused: for the payer only */
} pa_audit;

typedef struct pa_ctx {
    const pa_config *cfg;  /* NULL when the configuration could not be loaded */
    pa_err cfg_err;        /* why, for the 503 answer */
    pa_redis *redis;       /* connected on first use */
    PGconn *db;            /* connected (and schema-checked) on first use */
    int64_t db_used_ms;    /* when db was last handed out (pa_mono_ms) */
    const char *client_id; /* who is asking (the job owner); "" before authentication */
    pa_token token;        /* the caller's access token, once checked */
    pa_audit audit;
    /* the job a status or file request names, read in the token's round trip */
    char job_id[33]; /* what it was read for; "" when nothing was */
    pa_job *job;     /* NULL when there is no such job */
} pa_ctx;

/* Connections on demand; a failure answers 503 through pa_resp_error. */
int pa_ctx_redis(pa_ctx *ctx, pa_redis **out, pa_err *err);
int pa_ctx_db(pa_ctx *ctx, PGconn **out, pa_err *err);
void pa_ctx_close(pa_ctx *ctx);

/* Takes the job the router read for id with the token (0 and *job, NULL if
 * there is none); -1 when it read none for id. */
int pa_ctx_take_job(pa_ctx *ctx, const char *id, pa_job **job);

/* Forgets what the router read for this request. */
void pa_ctx_request_done(pa_ctx *ctx);

/* Routes one request and fills resp; never fails (errors become OperationOutcomes). */
void pa_api_handle(pa_ctx *ctx, pa_req *req, pa_resp *resp);

/* 403 unless the caller's scope lets it read type; 0 when it does. */
int pa_api_require_read(pa_ctx *ctx, pa_resp *resp, const char *type);

/* Records in the audit event why the request was refused, unless a more
 * precise reason is there already: "STAGE: " and the diagnostics the answer
 * (an OperationOutcome in resp) gave, each quoted value in them replaced by
 * '...' (a value may name a patient; the audit says what was wrong, not with
 * what). */
void pa_api_audit_refusal(pa_ctx *ctx, const pa_resp *resp, const char *stage);

/* The public URL of the request as the client sent it (for the manifest's
 * `request`); caller frees. */
char *pa_api_request_url(const pa_ctx *ctx, const pa_req *req);

/* A new job of kind for the caller, created at now with the runner's params
 * (JSON text) and the request URL.  0 and *job, or -1 with resp answered. */
int pa_api_job_create(pa_ctx *ctx, const pa_req *req, pa_resp *resp, const char *kind, const char *params, int64_t now,
                      pa_job **job);

/* Queues job for the runner and answers 202 with its status URL in
 * Content-Location, saying what was accepted; or the refusal (429 with
 * Retry-After when the client has too many jobs running).  0 when queued. */
int pa_api_job_submit(pa_ctx *ctx, pa_resp *resp, pa_job *job, const char *accepted);

typedef void (*pa_handler)(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);

void pa_h_token(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_metadata(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_smart_config(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_group_read(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_group_search(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_member_add(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_member_remove(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_consent(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_consent_search(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_member_match(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_group_export(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_patient_export(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_system_export(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_job_status(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_job_delete(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);
void pa_h_job_file(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args);

/* Media types a FHIR JSON endpoint can answer with, preferred first. */
extern const char *const pa_fhir_json_types[];

#endif
