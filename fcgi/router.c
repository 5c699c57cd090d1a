/*
 * Routing on PATH_INFO: a table of patterns whose {} segments are captured
 * (decoded by Apache already) and handed to the handler.  A path that matches
 * with another method answers 405 with Allow; no match answers 404.
 */
#include "api.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_log.h"
#include "pa_util.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_ARGS 4
#define MAX_SEGMENT 256

const char *const pa_fhir_json_types[] = { PA_MT_FHIR_JSON, PA_MT_JSON, "application/json+fhir", NULL };

enum { M_GET = 1, M_POST = 2, M_DELETE = 4 };

/* Who may call a route: anyone, or a client with an access token (and, for
 * read_type, a scope that lets it read that type). */
enum access { PUBLIC, TOKEN };

struct route {
    const char *pattern;
    int method;
    pa_handler handler;
    enum access access;
    const char *read_type;
    int job_arg; /* the first {} is a job id: read it with the token */
};

static const struct route routes[] = {
    { "/metadata", M_GET, pa_h_metadata, PUBLIC, NULL, 0 },
    { "/.well-known/smart-configuration", M_GET, pa_h_smart_config, PUBLIC, NULL, 0 },
    { "/auth/token", M_POST, pa_h_token, PUBLIC, NULL, 0 },
    { "/Group", M_GET, pa_h_group_search, TOKEN, "Group", 0 },
    { "/Group/$provider-member-match", M_POST, pa_h_member_match, TOKEN, "Group", 0 },
    { "/Consent", M_POST, pa_h_consent, TOKEN, NULL, 0 },
    { "/Consent", M_GET, pa_h_consent_search, TOKEN, NULL, 0 },
    { "/Group/{}", M_GET, pa_h_group_read, TOKEN, "Group", 0 },
    { "/Group/{}/$export", M_GET | M_POST, pa_h_group_export, TOKEN, "Group", 0 },
    { "/Group/{}/$davinci-data-export", M_GET | M_POST, pa_h_group_export, TOKEN, "Group", 0 },
    { "/Patient/$export", M_GET | M_POST, pa_h_patient_export, TOKEN, NULL, 0 },
    { "/$export", M_GET | M_POST, pa_h_system_export, TOKEN, NULL, 0 },
    { "/Group/{}/$member-add", M_POST, pa_h_member_add, TOKEN, NULL, 0 },
    { "/Group/{}/$member-remove", M_POST, pa_h_member_remove, TOKEN, NULL, 0 },
    { "/bulkstatus/{}", M_GET, pa_h_job_status, TOKEN, NULL, 1 },
    { "/bulkstatus/{}", M_DELETE, pa_h_job_delete, TOKEN, NULL, 1 },
    /* each file's own type is checked by its handler */
    { "/bulkfiles/{}/{}", M_GET, pa_h_job_file, TOKEN, NULL, 1 },
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static int method_bit(const char *m)
{
    if(!strcmp(m, "GET") || !strcmp(m, "HEAD"))
        return M_GET;
    if(!strcmp(m, "POST"))
        return M_POST;
    if(!strcmp(m, "DELETE"))
        return M_DELETE;
    return 0;
}

/* Matches path against pattern, capturing {} segments into args (caller frees). */
static int match(const char *pattern, const char *path, char **args, int *nargs)
{
    const char *p = pattern;
    const char *s = path;

    *nargs = 0;
    while(*p) {
        if(p[0] == '{' && p[1] == '}') {
            size_t n = strcspn(s, "/");

            if(n == 0 || n > MAX_SEGMENT || *nargs == MAX_ARGS)
                goto fail;
            args[*nargs] = strndup(s, n);
            if(!args[*nargs])
                goto fail;
            (*nargs)++;
            s += n;
            p += 2;
            continue;
        }
        if(*p != *s)
            goto fail;
        p++;
        s++;
    }
    if(*s == '\0' || (s[0] == '/' && s[1] == '\0'))
        return 1;
fail:
    while(*nargs > 0)
        free(args[--(*nargs)]);
    return 0;
}

static void set_allow(pa_resp *resp, int mask)
{
    pa_resp_header(resp, "Allow", "%s%s%s%s%s", mask & M_GET ? "GET, HEAD" : "",
                   mask & M_GET && mask & (M_POST | M_DELETE) ? ", " : "", mask & M_POST ? "POST" : "",
                   mask & M_POST && mask & M_DELETE ? ", " : "", mask & M_DELETE ? "DELETE" : "");
}

/* FHIR's _format overrides Accept; only JSON forms are served. */
static int check_format(const pa_req *req, pa_resp *resp)
{
    const char *f = pa_req_param(req, "_format");

    if(!f)
        return 0;
    if(!strcmp(f, "json") || pa_media_type_is(f, PA_MT_FHIR_JSON) || pa_media_type_is(f, PA_MT_JSON) ||
       pa_media_type_is(f, "application/json+fhir"))
        return 0;
    pa_resp_outcome(resp, 406, "error", "not-supported",
                    "_format '%.80s' is not supported: this server speaks FHIR JSON only "
                    "(_format=json or application/fhir+json)",
                    f);
    return -1;
}

/* The token, and the job named by job_id (if not NULL), in one round trip. */
static int read_token(pa_ctx *ctx, pa_redis *redis, const char *bearer, const char *job_id, pa_err *err)
{
    char tkey[256], jkey[128];
    const char *targv[2] = { "HGETALL", tkey }, *jargv[2] = { "HGETALL", jkey };
    const char *const *argvs[2] = { targv, jargv };
    const int argcs[2] = { 2, 2 };
    redisReply *replies[2];
    pa_err jerr;
    int rc;

    if(!job_id || pa_job_key(redis, job_id, jkey, sizeof(jkey)))
        return pa_token_lookup(redis, bearer, &ctx->token, err);
    if(pa_token_key(redis, bearer, tkey, sizeof(tkey)))
        return pa_err_set(err, PA_ENOTFOUND, "unknown token");
    rc = pa_redis_pipeline(redis, 2, argcs, argvs, replies, err);
    if(rc)
        return rc;
    rc = pa_token_from_reply(replies[0], &ctx->token, err);
    pa_job_free(ctx->job);
    ctx->job = NULL;
    pa_strlcpy(ctx->job_id, job_id, sizeof(ctx->job_id));
    /* no such job is an answer too; anything else, the handler reads again */
    if(pa_job_from_reply(job_id, replies[1], &ctx->job, &jerr) && jerr.code != PA_ENOTFOUND)
        ctx->job_id[0] = '\0';
    return rc;
}

int pa_ctx_take_job(pa_ctx *ctx, const char *id, pa_job **job)
{
    if(!ctx->job_id[0] || strcmp(ctx->job_id, id))
        return -1;
    *job = ctx->job;
    ctx->job = NULL;
    ctx->job_id[0] = '\0';
    return 0;
}

void pa_ctx_request_done(pa_ctx *ctx)
{
    pa_job_free(ctx->job);
    ctx->job = NULL;
    ctx->job_id[0] = '\0';
}

/*
 * Checks the Bearer token: 401 with WWW-Authenticate when it is missing,
 * unknown or expired (OperationOutcome code login).  On success the caller is
 * the token's client.  job_id, if not NULL, is read with the token.
 */
static int authenticate(pa_ctx *ctx, const pa_req *req, pa_resp *resp, const char *job_id)
{
    const char *h = req->authorization;
    pa_redis *redis;
    pa_err err;
    int rc;

    if(!h || strncasecmp(h, "Bearer ", 7)) {
        pa_resp_outcome(resp, 401, "error", "login",
                        "this request needs an access token: Authorization: Bearer <token> from %s/auth/token",
                        ctx->cfg->base_url);
        pa_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"provider-access\"");
        pa_strlcpy(ctx->audit.detail, "no access token", sizeof(ctx->audit.detail));
        return -1;
    }
    pa_err_clear(&err);
    rc = pa_ctx_redis(ctx, &redis, &err);
    if(!rc)
        rc = read_token(ctx, redis, h + 7, job_id, &err);
    if(rc == PA_ENOTFOUND) {
        pa_resp_outcome(resp, 401, "error", "login", "the access token is unknown or has expired");
        pa_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"provider-access\", error=\"invalid_token\"");
        pa_strlcpy(ctx->audit.detail, "unknown or expired token", sizeof(ctx->audit.detail));
        return -1;
    }
    if(rc) {
        pa_resp_error(resp, &err);
        return -1;
    }
    ctx->client_id = ctx->token.client_id;
    return 0;
}

void pa_api_audit_refusal(pa_ctx *ctx, const pa_resp *resp, const char *stage)
{
    json_object *oo, *issues;
    const char *diag = NULL, *p;
    size_t n;
    int quoted = 0;

    if(ctx->audit.detail[0] || resp->status < 400)
        return;
    oo = json_tokener_parse(pa_buf_str(&resp->body));
    issues = pa_json_get(oo, "issue");
    /* (json-c aborts on an array call with anything but an array) */
    if(json_object_is_type(issues, json_type_array) && json_object_array_length(issues) > 0)
        diag = pa_json_str(json_object_array_get_idx(issues, 0), "diagnostics");
    n = (size_t)snprintf(ctx->audit.detail, sizeof(ctx->audit.detail), "%s: ", stage);
    for(p = diag ? diag : "(no diagnostics)"; *p && n + 4 < sizeof(ctx->audit.detail); p++) {
        if(*p == '\'') {
            quoted = !quoted;
            if(quoted) {
                memcpy(ctx->audit.detail + n, "'...", 4);
                n += 4;
            }
            else {
                ctx->audit.detail[n++] = '\'';
            }
        }
        else if(!quoted) {
            ctx->audit.detail[n++] = *p;
        }
    }
    ctx->audit.detail[n] = '\0';
    json_object_put(oo);
}

int pa_api_require_read(pa_ctx *ctx, pa_resp *resp, const char *type)
{
    if(pa_scope_allows(ctx->token.scope, type))
        return 0;
    pa_resp_outcome(resp, 403, "error", "forbidden", "the access token's scope (%s) does not allow reading %s",
                    ctx->token.scope, type);
    snprintf(ctx->audit.detail, sizeof(ctx->audit.detail), "scope does not cover %s", type);
    return -1;
}

/* True if addr is a loopback address (127.0.0.0/8, ::1, or v4-mapped). */
static int is_loopback(const char *addr)
{
    if(!addr)
        return 0;
    if(!strncmp(addr, "::ffff:", 7))
        addr += 7;
    return !strncmp(addr, "127.", 4) || !strcmp(addr, "::1");
}

/*
 * Bulk Data and SMART require TLS: a request that did not come over it is
 * answered 403 with the URL to use instead, before its token (sent in the
 * clear already) is looked at.  Loopback may stay open for health checks.
 */
static int refuse_plain_http(const pa_ctx *ctx, const pa_req *req, pa_resp *resp)
{
    const char *base = ctx->cfg->base_url;

    if(!ctx->cfg->require_https || (req->https && !strcasecmp(req->https, "on")) ||
       (ctx->cfg->plain_http_loopback && is_loopback(req->remote_addr)))
        return 0;
    if(!strncmp(base, "https://", 8))
        pa_resp_outcome(resp, 403, "error", "security", "this server answers over HTTPS only: use %s%.200s", base,
                        req->path);
    else
        pa_resp_outcome(resp, 403, "error", "security",
                        "this server answers over HTTPS only: send the request to the https:// URL of this address");
    return -1;
}

void pa_api_handle(pa_ctx *ctx, pa_req *req, pa_resp *resp)
{
    char *args[MAX_ARGS];
    int nargs = 0;
    int allowed = 0;
    int mbit = method_bit(req->method);
    size_t i;
    pa_err err;

    pa_err_clear(&err);
    /* nobody is anybody until the token is checked */
    ctx->client_id = "";
    memset(&ctx->token, 0, sizeof(ctx->token));
    if(ctx->cfg && refuse_plain_http(ctx, req, resp))
        return;
    /* Apache decoded the path: what it holds must be text before any
     * handler compares it, logs it or sends it to PostgreSQL */
    if(!pa_utf8_valid(req->path, strlen(req->path))) {
        pa_resp_outcome(resp, 400, "error", "invalid", "the request path is not UTF-8 text");
        return;
    }
    if(pa_query_parse(req->query, &req->params, &req->nparams, &err)) {
        pa_resp_error(resp, &err);
        return;
    }
    for(i = 0; i < NROUTES; i++) {
        if(!match(routes[i].pattern, req->path, args, &nargs))
            continue;
        if(!(routes[i].method & mbit)) {
            allowed |= routes[i].method;
            while(nargs > 0)
                free(args[--nargs]);
            continue;
        }
        if(!ctx->cfg)
            pa_resp_error(resp, &ctx->cfg_err);
        else if(check_format(req, resp) == 0 &&
                (routes[i].access == PUBLIC || authenticate(ctx, req, resp, routes[i].job_arg ? args[0] : NULL) == 0) &&
                (!routes[i].read_type || pa_api_require_read(ctx, resp, routes[i].read_type) == 0))
            routes[i].handler(ctx, req, resp, args);
        /* every refusal's audit event says why, in the words the client got */
        pa_api_audit_refusal(ctx, resp, resp->status >= 500 ? "error" : "refused");
        while(nargs > 0)
            free(args[--nargs]);
        return;
    }
    if(allowed) {
        pa_resp_outcome(resp, 405, "error", "not-supported", "method %.16s is not allowed on %.200s", req->method,
                        req->path);
        set_allow(resp, allowed);
        return;
    }
    pa_resp_outcome(resp, 404, "error", "not-found", "no such endpoint: %.200s", req->path);
}

char *pa_api_request_url(const pa_ctx *ctx, const pa_req *req)
{
    const char *tail = req->path;
    size_t sn = req->script_name ? strlen(req->script_name) : 0;
    pa_buf b;

    /* the raw request target keeps the client's own escaping and query */
    if(req->request_uri && sn && !strncmp(req->request_uri, req->script_name, sn))
        tail = req->request_uri + sn;
    pa_buf_init(&b, 16384);
    if(pa_buf_addstr(&b, ctx->cfg->base_url) || pa_buf_addstr(&b, tail)) {
        pa_buf_free(&b);
        return NULL;
    }
    return pa_buf_steal(&b);
}

int pa_api_job_create(pa_ctx *ctx, const pa_req *req, pa_resp *resp, const char *kind, const char *params, int64_t now,
                      pa_job **job)
{
    char *request = pa_api_request_url(ctx, req);
    pa_err err;
    int rc;

    *job = NULL;
    rc = !request || pa_job_create(job, kind, ctx->client_id, request, params, now, &err);
    free(request);
    if(!rc)
        pa_strlcpy((*job)->request_id, req->request_id, sizeof((*job)->request_id));
    if(!rc)
        return 0;
    pa_job_free(*job);
    *job = NULL;
    pa_resp_outcome(resp, 500, "fatal", "exception", "could not create the job");
    return -1;
}

int pa_api_job_submit(pa_ctx *ctx, pa_resp *resp, pa_job *job, const char *accepted)
{
    pa_redis *redis;
    PGconn *db;
    pa_err err;

    pa_err_clear(&err);
    if(pa_ctx_db(ctx, &db, &err) || pa_ctx_redis(ctx, &redis, &err) ||
       pa_job_submit(redis, db, job, ctx->cfg->max_jobs_per_client, &err)) {
        pa_resp_error(resp, &err);
        if(err.code == PA_EBUSY)
            pa_resp_header(resp, "Retry-After", "%ld", ctx->cfg->retry_after_seconds * 5);
        return -1;
    }
    pa_strlcpy(ctx->audit.job_id, job->id, sizeof(ctx->audit.job_id));
    pa_resp_outcome(resp, 202, "information", "informational",
                    "%s accepted; poll the Content-Location URL for its status", accepted);
    pa_resp_header(resp, "Content-Location", "%s/bulkstatus/%s", ctx->cfg->base_url, job->id);
    return 0;
}

int pa_ctx_redis(pa_ctx *ctx, pa_redis **out, pa_err *err)
{
    int rc;

    if(!ctx->redis) {
        /* connected now, to answer 503 at once when Redis is down; the
         * connection is kept and reconnects after any I/O error */
        rc = pa_redis_open(ctx->cfg, &ctx->redis, err);
        if(rc) {
            pa_warn("%s", err->msg);
            return rc;
        }
    }
    *out = ctx->redis;
    return PA_OK;
}

int pa_ctx_db(pa_ctx *ctx, PGconn **out, pa_err *err)
{
    int fresh = !ctx->db || PQstatus(ctx->db) != CONNECTION_OK;
    int rc = pa_db_ensure(&ctx->db, ctx->cfg, err);

    if(rc) {
        pa_warn("%s", err->msg);
        return rc;
    }
    if(fresh) {
        rc = pa_db_check_schema(ctx->db, err);
        if(rc) {
            pa_error("%s", err->msg);
            PQfinish(ctx->db);
            ctx->db = NULL;
            return rc;
        }
    }
    ctx->db_used_ms = pa_mono_ms();
    *out = ctx->db;
    return PA_OK;
}

void pa_ctx_close(pa_ctx *ctx)
{
    pa_redis_free(ctx->redis);
    ctx->redis = NULL;
    if(ctx->db)
        PQfinish(ctx->db);
    ctx->db = NULL;
}
