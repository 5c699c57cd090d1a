/*
 * pa-api: the FastCGI responder.  mod_fcgid starts and stops these
 * processes; each handles one request at a time.  The configuration is read
 * once at start: if it is broken, every request is answered 503 with an
 * OperationOutcome naming the problem, rather than the process dying in a
 * restart loop.
 */
#include <errno.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "pa_audit.h"
#include "pa_log.h"
#include "pa_util.h"

#define IO_CHUNK (64 * 1024)

static const char *env(FCGX_ParamArray envp, const char *name)
{
    return FCGX_GetParam(name, envp);
}

/* Writes all of p in chunks (libfcgi takes int lengths); -1 once the client is gone. */
static int put_all(FCGX_Stream *out, const char *p, size_t n)
{
    while(n) {
        int k = n > IO_CHUNK ? IO_CHUNK : (int)n;

        if(FCGX_PutStr(p, k, out) != k)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Streams a file when X-Sendfile is off; headers are already out. */
static void stream_file(FCGX_Stream *out, const char *path)
{
    char buf[IO_CHUNK];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if(fd < 0)
        return;
    for(n = read(fd, buf, sizeof(buf)); n > 0; n = read(fd, buf, sizeof(buf)))
        if(put_all(out, buf, (size_t)n))
            break;
    close(fd);
}

static void send_response(FCGX_Stream *out, const pa_ctx *ctx, const pa_req *req, pa_resp *resp, int head_only)
{
    pa_buf h;
    struct stat st;
    int use_xsendfile = (!ctx->cfg || ctx->cfg->xsendfile) && !resp->stream;

    pa_buf_init(&h, PA_RESP_MAX_HEADERS + 4096);
    pa_buf_printf(&h, "Status: %d %s\r\n", resp->status, pa_http_status_text(resp->status));
    if(resp->content_type[0])
        pa_buf_printf(&h, "Content-Type: %s\r\n", resp->content_type);
    pa_buf_printf(&h, "X-Request-Id: %s\r\n", req->request_id);
    pa_buf_add(&h, resp->headers.data ? resp->headers.data : "", resp->headers.len);
    if(resp->sendfile_path && use_xsendfile) {
        pa_buf_printf(&h, "X-Sendfile: %s\r\n\r\n", resp->sendfile_path);
        put_all(out, h.data, h.len);
    }
    else if(resp->sendfile_path) {
        if(stat(resp->sendfile_path, &st) == 0)
            pa_buf_printf(&h, "Content-Length: %lld\r\n", (long long)st.st_size);
        pa_buf_addstr(&h, "\r\n");
        if(!put_all(out, h.data, h.len) && !head_only)
            stream_file(out, resp->sendfile_path);
    }
    else {
        pa_buf_printf(&h, "Content-Length: %zu\r\n\r\n", resp->body.len);
        if(!put_all(out, h.data, h.len) && !head_only && resp->body.len)
            put_all(out, resp->body.data, resp->body.len);
    }
    pa_buf_free(&h);
}

/* Reads the request body into *body (caller frees); 413 if over the limit. */
static int read_body(FCGX_Request *fr, const pa_ctx *ctx, char **body, size_t *len, pa_resp *resp)
{
    const char *cl = env(fr->envp, "CONTENT_LENGTH");
    long max = ctx->cfg ? ctx->cfg->max_request_body : 1024 * 1024;
    long n = 0;
    size_t got = 0;
    char *buf;

    *body = NULL;
    *len = 0;
    if(!cl || !*cl)
        return 0;
    if(pa_parse_long(cl, &n) || n < 0) {
        pa_resp_outcome(resp, 400, "error", "invalid", "malformed Content-Length");
        return -1;
    }
    if(n > max) {
        pa_resp_outcome(resp, 413, "error", "too-costly",
                        "the request body has %ld bytes; the limit is %ld (max_request_body)", n, max);
        return -1;
    }
    buf = malloc((size_t)n + 1);
    if(!buf) {
        pa_resp_outcome(resp, 500, "fatal", "exception", "out of memory");
        return -1;
    }
    while(got < (size_t)n) {
        size_t want = (size_t)n - got;
        int k = FCGX_GetStr(buf + got, want > IO_CHUNK ? IO_CHUNK : (int)want, fr->in);

        if(k <= 0)
            break;
        got += (size_t)k;
    }
    buf[got] = '\0';
    if(got != (size_t)n) {
        free(buf);
        pa_resp_outcome(resp, 400, "error", "incomplete", "the request body ended early");
        return -1;
    }
    *body = buf;
    *len = got;
    return 0;
}

/*
 * Records the request's audit event, after the answer went out: queued on
 * Redis for the runner to store (pa_audit.h), else inserted into
 * audit_event here, else written to the log.  Never lost, and never PHI or
 * tokens.
 */
static void audit(pa_ctx *ctx, const pa_req *req, int status, int64_t ms)
{
    const pa_audit *a = &ctx->audit;
    pa_audit_event e;
    pa_redis *redis;
    PGconn *db;
    pa_err err;

    if(!ctx->cfg)
        return;
    memset(&e, 0, sizeof(e));
    pa_instant_format(req->start_wall_ms, e.at);
    e.request_id = req->request_id;
    e.client_id = ctx->token.client_id;
    e.npi = ctx->token.npi;
    e.method = req->method;
    e.endpoint = req->path;
    e.operation = a->operation;
    e.group_id = a->group_id;
    e.members = a->members;
    e.job_id = a->job_id;
    e.outcome = status < 400 ? "success" : status < 500 ? "refused" : "error";
    e.status = status;
    e.duration_ms = (long long)ms;
    e.detail = a->detail;
    pa_err_clear(&err);
    if(pa_ctx_redis(ctx, &redis, &err) == PA_OK && pa_audit_queue(redis, &e, &err) == PA_OK)
        return;
    pa_warn("audit event not queued (%s): storing it directly", err.msg);
    pa_err_clear(&err);
    if(pa_ctx_db(ctx, &db, &err) == PA_OK && pa_audit_insert(db, &e, &err) == PA_OK)
        return;
    pa_warn("audit event not stored (%s): at=%s request=%s client=%s op=%s group=%s job=%s status=%d detail=%s",
            err.msg, e.at, e.request_id, e.client_id[0] ? e.client_id : "-", a->operation ? a->operation : "-",
            a->group_id, a->job_id, status, a->detail);
}

/* One request, answered in resp (the responder's, reused: pa_resp_reset). */
static void handle(FCGX_Request *fr, pa_ctx *ctx, pa_resp *resp)
{
    pa_req req;
    char *body = NULL, *path = NULL, method[16];
    const char *m;
    int head_only;

    memset(&req, 0, sizeof(req));
    pa_resp_reset(resp);
    req.start_ms = pa_mono_ms();
    req.start_wall_ms = pa_now_ms();
    if(pa_request_id(req.request_id))
        pa_strlcpy(req.request_id, "0000000000000000", sizeof(req.request_id));
    pa_log_set_context(req.request_id);
    m = env(fr->envp, "REQUEST_METHOD");
    req.method = m ? m : "GET";
    head_only = !strcmp(req.method, "HEAD");
    req.path = env(fr->envp, "PATH_INFO");
    if(!req.path || !*req.path)
        req.path = "/";
    req.query = env(fr->envp, "QUERY_STRING");
    req.request_uri = env(fr->envp, "REQUEST_URI");
    req.script_name = env(fr->envp, "SCRIPT_NAME");
    req.accept = env(fr->envp, "HTTP_ACCEPT");
    req.content_type = env(fr->envp, "CONTENT_TYPE");
    req.prefer = env(fr->envp, "HTTP_PREFER");
    req.authorization = env(fr->envp, "HTTP_AUTHORIZATION");
    req.accept_encoding = env(fr->envp, "HTTP_ACCEPT_ENCODING");
    req.https = env(fr->envp, "HTTPS");
    req.remote_addr = env(fr->envp, "REMOTE_ADDR");
    /* nobody is anybody until the router has checked the token (the audit of
     * a request refused before routing names no client) */
    ctx->client_id = "";
    memset(&ctx->token, 0, sizeof(ctx->token));
    memset(&ctx->audit, 0, sizeof(ctx->audit));
    ctx->audit.members = -1;
    if(read_body(fr, ctx, &body, &req.body_len, resp) == 0) {
        req.body = body ? body : "";
        pa_api_handle(ctx, &req, resp);
        pa_ctx_request_done(ctx);
    }
    send_response(fr->out, ctx, &req, resp, head_only);
    /* FCGX_Finish_r frees the environment req points into: keep what the
     * log and the audit still need */
    pa_strlcpy(method, req.method, sizeof(method));
    path = strdup(req.path);
    req.method = method;
    req.path = path ? path : "/";
    req.query = req.request_uri = req.script_name = req.accept = req.content_type = NULL;
    req.prefer = req.authorization = req.accept_encoding = req.https = req.remote_addr = NULL;
    /* When the request has been read to its end (a GET's empty body, or the
     * whole of a body), the connection is closed at once.  Otherwise libfcgi
     * half-closes it and reads on until mod_fcgid has sent everything, so
     * that it never writes into a closed socket: three more system calls and
     * a wait for Apache, on every request. */
    if(FCGX_GetChar(fr->in) == EOF)
        FCGX_Detach(fr);
    FCGX_Finish_r(fr);
    /* no query string in the log: it may carry patient references */
    pa_info("%s %s -> %d in %lld ms", req.method, req.path, resp->status, (long long)(pa_mono_ms() - req.start_ms));
    audit(ctx, &req, resp->status, pa_mono_ms() - req.start_ms);
    pa_log_set_context(NULL);
    pa_req_clear(&req);
    free(path);
    free(body);
}

/* Waits until a request arrives on the FastCGI socket, closing meanwhile a
 * PostgreSQL connection unused for responder_db_idle_seconds: a pool grown
 * for a peak (a process per request in flight) does not keep a PostgreSQL
 * backend per process once the peak is over. */
static void wait_for_request(pa_ctx *ctx)
{
    struct pollfd listener = { .fd = FCGI_LISTENSOCK_FILENO, .events = POLLIN, .revents = 0 };

    while(ctx->db && ctx->cfg) {
        int64_t idle_max = ctx->cfg->responder_db_idle_seconds * 1000;
        int64_t idle = pa_mono_ms() - ctx->db_used_ms;
        int rc;

        if(idle >= idle_max) {
            pa_debug("PostgreSQL connection unused for %lld s: closed", (long long)(idle / 1000));
            PQfinish(ctx->db);
            ctx->db = NULL;
            return;
        }
        rc = poll(&listener, 1, (int)(idle_max - idle));
        if(rc > 0 || (rc < 0 && errno != EINTR))
            return; /* a request (or an error FCGX_Accept_r will report) */
    }
}

static void on_hup(int sig)
{
    (void)sig;
    pa_log_reopen_later();
}

int main(int argc, char **argv)
{
    FCGX_Request fr;
    pa_config *cfg = NULL;
    pa_ctx ctx;
    pa_resp resp;
    const char *path;

    memset(&ctx, 0, sizeof(ctx));
    path = pa_config_path(argc > 2 && !strcmp(argv[1], "--config") ? argv[2] : NULL);
    signal(SIGPIPE, SIG_IGN);
    {
        /* SIGHUP (logrotate): the log is reopened at the next line; the
         * wait for a request goes on (SA_RESTART) */
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_hup;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGHUP, &sa, NULL);
    }
    if(pa_config_load(path, &cfg, &ctx.cfg_err) == 0) {
        ctx.cfg = cfg;
        if(pa_log_open("pa-api", cfg->log_file, cfg->log_level))
            fprintf(stderr, "pa-api: cannot open log file %s: %s\n", cfg->log_file, strerror(errno));
    }
    else {
        /* to Apache's error log; every request will answer 503 */
        fprintf(stderr, "pa-api: %s\n", ctx.cfg_err.msg);
        ctx.cfg_err.code = PA_ECONFIG;
    }
    if(FCGX_Init() != 0 || FCGX_InitRequest(&fr, 0, 0) != 0) {
        fprintf(stderr, "pa-api: cannot initialise FastCGI\n");
        return 1;
    }
    pa_resp_init(&resp);
    for(;;) {
        wait_for_request(&ctx);
        if(FCGX_Accept_r(&fr) < 0)
            break;
        handle(&fr, &ctx, &resp); /* finishes the request itself, then audits it */
    }
    pa_resp_free(&resp);
    pa_ctx_close(&ctx);
    pa_config_free(cfg);
    pa_log_close();
    return 0;
}
