/*
 * pa_httpc: the HTTP/1.1 client (pa_httpc.h).  The response is read through
 * a small buffer over the BIO: the header block (at most
 * PA_HTTPC_HEADERS_MAX bytes), then the body as its headers frame it.
 */
#include <ctype.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "pa_httpc.h"
#include "pa_util.h"

#define LINE_MAX_BYTES 8192
#define DEFAULT_BODY_MAX (16 * 1024 * 1024)

int pa_url_parse(const char *url, pa_url *out)
{
    const char *p, *host, *host_end, *slash;
    size_t n;

    memset(out, 0, sizeof(*out));
    if(!strncmp(url, "https://", 8)) {
        out->tls = 1;
        p = url + 8;
    }
    else if(!strncmp(url, "http://", 7)) {
        p = url + 7;
    }
    else
        return PA_EINVAL;
    slash = p + strcspn(p, "/?#");
    if(*slash == '#' || memchr(p, '@', (size_t)(slash - p)) || strchr(slash, '#'))
        return PA_EINVAL;
    host = p;
    if(*host == '[') {
        host_end = memchr(host, ']', (size_t)(slash - host));
        if(!host_end)
            return PA_EINVAL;
        host_end++;
    }
    else
        host_end = host + strcspn(host, ":/?");
    if(host_end > slash)
        host_end = slash;
    n = (size_t)(host_end - host);
    if(n == 0 || n >= sizeof(out->host))
        return PA_EINVAL;
    memcpy(out->host, host, n);
    if(*host_end == ':') {
        n = (size_t)(slash - host_end - 1);
        if(n == 0 || n >= sizeof(out->port) || strspn(host_end + 1, "0123456789") < n)
            return PA_EINVAL;
        memcpy(out->port, host_end + 1, n);
    }
    else if(host_end != slash)
        return PA_EINVAL;
    else
        snprintf(out->port, sizeof(out->port), "%s", out->tls ? "443" : "80");
    if(*slash == '\0')
        snprintf(out->target, sizeof(out->target), "/");
    else if(*slash == '?')
        return snprintf(out->target, sizeof(out->target), "/%s", slash) >= (int)sizeof(out->target) ? PA_EINVAL : PA_OK;
    else if(pa_strlcpy(out->target, slash, sizeof(out->target)))
        return PA_EINVAL;
    for(p = out->target; *p; p++)
        if((unsigned char)*p <= ' ' || *p == 127)
            return PA_EINVAL;
    for(p = out->host; *p; p++)
        if(!isalnum((unsigned char)*p) && !strchr("-.[]:", *p))
            return PA_EINVAL;
    return PA_OK;
}

void pa_httpc_resp_init(pa_httpc_resp *r)
{
    memset(r, 0, sizeof(*r));
    r->retry_after = -1;
    pa_buf_init(&r->body, DEFAULT_BODY_MAX);
}

void pa_httpc_resp_free(pa_httpc_resp *r)
{
    if(!r)
        return;
    pa_buf_free(&r->body);
}

/* A buffered reader over the BIO. */
struct rd {
    BIO *b;
    char buf[16384];
    size_t pos, len;
};

/* 1 with bytes to read, 0 at the end of the stream, -1 on an error. */
static int rd_fill(struct rd *r)
{
    int n;

    if(r->pos < r->len)
        return 1;
    n = BIO_read(r->b, r->buf, (int)sizeof(r->buf));
    if(n > 0) {
        r->pos = 0;
        r->len = (size_t)n;
        return 1;
    }
    if(n == 0 || BIO_eof(r->b))
        return 0;
    return -1;
}

/* One line without its CRLF (or LF); PA_EIO on end, error or a line too long. */
static int rd_line(struct rd *r, char *out, size_t size, size_t *budget, pa_err *err)
{
    size_t o = 0;

    for(;;) {
        int f = rd_fill(r);
        char c;

        if(f <= 0)
            return pa_err_set(err, PA_EIO,
                              f < 0 ? "the answer stopped coming (time-out or a reset connection)"
                                    : "the connection closed in the middle of the answer");
        c = r->buf[r->pos++];
        if(*budget == 0)
            return pa_err_set(err, PA_EIO, "the answer's header is over %d bytes", PA_HTTPC_HEADERS_MAX);
        (*budget)--;
        if(c == '\n')
            break;
        if(o + 1 >= size)
            return pa_err_set(err, PA_EIO, "a line of the answer's header is over %zu bytes", size);
        out[o++] = c;
    }
    if(o && out[o - 1] == '\r')
        o--;
    out[o] = '\0';
    return PA_OK;
}

static int deliver(pa_httpc_sink sink, void *ctx, const char *data, size_t n, pa_httpc_resp *resp, pa_err *err)
{
    int rc;

    if(sink) {
        rc = sink(data, n, ctx);
        return rc ? pa_err_set(err, rc, "the download was stopped") : PA_OK;
    }
    if(pa_buf_add(&resp->body, data, n))
        return pa_err_set(err, PA_ETOOBIG, "the answer's body is over %zu bytes", resp->body.max);
    return PA_OK;
}

/* want bytes of body (to the end of the stream if unbounded). */
static int rd_body(struct rd *r, unsigned long long want, int unbounded, pa_httpc_sink sink, void *ctx,
                   pa_httpc_resp *resp, pa_err *err)
{
    while(unbounded || want > 0) {
        int f = rd_fill(r);
        size_t n;
        int rc;

        if(f == 0 && unbounded)
            return PA_OK;
        if(f <= 0)
            return pa_err_set(err, PA_EIO,
                              f < 0 ? "the download stopped (time-out or a reset connection)"
                                    : "the connection closed before the whole body came");
        n = r->len - r->pos;
        if(!unbounded && n > want)
            n = (size_t)want;
        rc = deliver(sink, ctx, r->buf + r->pos, n, resp, err);
        if(rc)
            return rc;
        r->pos += n;
        want -= n;
    }
    return PA_OK;
}

static void copy_value(char *dst, size_t size, const char *v)
{
    if(pa_strlcpy(dst, v, size))
        dst[0] = '\0'; /* cut would mislead: taken as absent */
}

struct framing {
    int chunked;
    int has_length;
    unsigned long long length;
};

static int header(const char *line, pa_httpc_resp *resp, struct framing *fr, pa_err *err)
{
    const char *colon = strchr(line, ':');
    char name[64];
    const char *v;
    size_t n, vl;

    if(!colon || colon == line || (size_t)(colon - line) >= sizeof(name))
        return pa_err_set(err, PA_EIO, "a malformed header line in the answer");
    n = (size_t)(colon - line);
    memcpy(name, line, n);
    name[n] = '\0';
    v = colon + 1;
    while(*v == ' ' || *v == '\t')
        v++;
    vl = strlen(v);
    while(vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    {
        char value[LINE_MAX_BYTES];

        memcpy(value, v, vl);
        value[vl] = '\0';
        if(!strcasecmp(name, "Content-Type"))
            copy_value(resp->content_type, sizeof(resp->content_type), value);
        else if(!strcasecmp(name, "Content-Location"))
            copy_value(resp->content_location, sizeof(resp->content_location), value);
        else if(!strcasecmp(name, "Content-Encoding"))
            copy_value(resp->content_encoding, sizeof(resp->content_encoding), value);
        else if(!strcasecmp(name, "X-Progress"))
            copy_value(resp->x_progress, sizeof(resp->x_progress), value);
        else if(!strcasecmp(name, "Retry-After")) {
            long s;

            if(!pa_parse_long(value, &s) && s >= 0)
                resp->retry_after = s;
        }
        else if(!strcasecmp(name, "Transfer-Encoding")) {
            size_t k = strlen(value);

            fr->chunked = k >= 7 && !strcasecmp(value + k - 7, "chunked");
            if(!fr->chunked)
                return pa_err_set(err, PA_EIO, "a transfer coding this client does not read: %.40s", value);
        }
        else if(!strcasecmp(name, "Content-Length")) {
            char *end;
            unsigned long long len;

            errno = 0;
            len = strtoull(value, &end, 10);
            if(!isdigit((unsigned char)value[0]) || *end || errno || (fr->has_length && len != fr->length))
                return pa_err_set(err, PA_EIO, "a malformed Content-Length in the answer");
            fr->has_length = 1;
            fr->length = len;
        }
    }
    return PA_OK;
}

static int rd_chunked(struct rd *r, pa_httpc_sink sink, void *ctx, pa_httpc_resp *resp, pa_err *err)
{
    char line[LINE_MAX_BYTES];
    size_t budget = (size_t)-1;
    int rc;

    for(;;) {
        unsigned long long size;
        char *end;

        rc = rd_line(r, line, sizeof(line), &budget, err);
        if(rc)
            return rc;
        errno = 0;
        size = strtoull(line, &end, 16);
        if(!isxdigit((unsigned char)line[0]) || errno || (*end && *end != ';' && *end != ' '))
            return pa_err_set(err, PA_EIO, "a malformed chunk size in the answer");
        if(size == 0)
            break;
        rc = rd_body(r, size, 0, sink, ctx, resp, err);
        if(!rc)
            rc = rd_line(r, line, sizeof(line), &budget, err);
        if(!rc && line[0])
            rc = pa_err_set(err, PA_EIO, "a chunk longer than its size in the answer");
        if(rc)
            return rc;
    }
    /* trailers, up to the empty line */
    budget = PA_HTTPC_HEADERS_MAX;
    do {
        rc = rd_line(r, line, sizeof(line), &budget, err);
    } while(!rc && line[0]);
    return rc;
}

int pa_httpc_read_response(BIO *b, int head, pa_httpc_sink sink, void *ctx, size_t body_max, pa_httpc_resp *resp,
                           pa_err *err)
{
    struct rd *r = calloc(1, sizeof(*r));
    char line[LINE_MAX_BYTES];
    size_t budget = PA_HTTPC_HEADERS_MAX;
    struct framing fr;
    int rc;

    if(!r)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    r->b = b;
    resp->body.max = body_max ? body_max : DEFAULT_BODY_MAX;
    do {
        int major, minor, status;
        char after;

        memset(&fr, 0, sizeof(fr));
        rc = rd_line(r, line, sizeof(line), &budget, err);
        if(rc)
            goto out;
        if(sscanf(line, "HTTP/%1d.%1d %3d%c", &major, &minor, &status, &after) < 3 || major != 1 || status < 100 ||
           status > 599) {
            rc = pa_err_set(err, PA_EIO, "not an HTTP/1.x answer");
            goto out;
        }
        resp->status = status;
        for(;;) {
            rc = rd_line(r, line, sizeof(line), &budget, err);
            if(rc || !line[0])
                break;
            rc = header(line, resp, &fr, err);
            if(rc)
                break;
        }
    } while(!rc && resp->status < 200);
    if(rc || head || resp->status == 204 || resp->status == 304)
        goto out;
    if(fr.chunked)
        rc = rd_chunked(r, sink, ctx, resp, err);
    else
        rc = rd_body(r, fr.length, !fr.has_length, sink, ctx, resp, err);
out:
    free(r);
    return rc;
}

static void set_timeouts(BIO *b, long ms)
{
    int fd = -1;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    BIO_get_fd(b, &fd);
    if(fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
}

static int tls_error(pa_err *err, const char *what, const pa_url *u)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";

    if(e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return pa_err_set(err, PA_EIO, "%s %s:%s: %s", what, u->host, u->port, buf[0] ? buf : strerror(errno));
}

/* A connected BIO (TLS verified for https). */
static int open_bio(const pa_url *u, const pa_httpc_opts *o, BIO **out, SSL_CTX **ctx_out, pa_err *err)
{
    char hostport[300];
    char name[256];
    SSL_CTX *ctx = NULL;
    BIO *b;
    SSL *ssl = NULL;

    *out = NULL;
    *ctx_out = NULL;
    snprintf(hostport, sizeof(hostport), "%s:%s", u->host, u->port);
    /* a bracketed IPv6 address is the name without its brackets */
    snprintf(name, sizeof(name), "%.*s", u->host[0] == '[' ? (int)strlen(u->host) - 2 : (int)strlen(u->host),
             u->host[0] == '[' ? u->host + 1 : u->host);
    if(u->tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if(!ctx)
            return tls_error(err, "TLS set-up for", u);
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if(o->ca_file ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1
                      : SSL_CTX_set_default_verify_paths(ctx) != 1) {
            SSL_CTX_free(ctx);
            return tls_error(err, "the trusted certificates for", u);
        }
        b = BIO_new_ssl_connect(ctx);
        if(b) {
            BIO_get_ssl(b, &ssl);
            SSL_set_tlsext_host_name(ssl, name);
            SSL_set1_host(ssl, name);
            BIO_set_conn_hostname(b, hostport);
        }
    }
    else {
        b = BIO_new_connect(hostport);
    }
    if(!b) {
        SSL_CTX_free(ctx);
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    if(BIO_do_connect(b) != 1) {
        int rc = tls_error(err, u->tls ? "cannot connect (or verify TLS) to" : "cannot connect to", u);

        BIO_free_all(b);
        SSL_CTX_free(ctx);
        return rc;
    }
    set_timeouts(b, o->timeout_ms > 0 ? o->timeout_ms : 60000);
    *out = b;
    *ctx_out = ctx;
    return PA_OK;
}

static int write_all(BIO *b, const char *p, size_t n)
{
    while(n > 0) {
        int w = BIO_write(b, p, n > 65536 ? 65536 : (int)n);

        if(w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return BIO_flush(b) == 1 ? 0 : -1;
}

int pa_httpc_request(const char *method, const char *url, const char *const *headers, const char *body, size_t body_len,
                     const pa_httpc_opts *opts, pa_httpc_sink sink, void *ctx, pa_httpc_resp *resp, pa_err *err)
{
    static const pa_httpc_opts none = { NULL, 0, 0 };
    const pa_httpc_opts *o = opts ? opts : &none;
    pa_url u;
    pa_buf req;
    BIO *b = NULL;
    SSL_CTX *sctx = NULL;
    size_t i;
    int rc;

    if(pa_url_parse(url, &u))
        return pa_err_set(err, PA_EINVAL, "not an http or https URL: %.200s", url);
    pa_buf_init(&req, 1 << 20);
    rc = pa_buf_printf(&req,
                       "%s %s HTTP/1.1\r\nHost: %s%s%s\r\nUser-Agent: provider-access-sync\r\n"
                       "Connection: close\r\n",
                       method, u.target, u.host, strcmp(u.port, u.tls ? "443" : "80") ? ":" : "",
                       strcmp(u.port, u.tls ? "443" : "80") ? u.port : "");
    for(i = 0; !rc && headers && headers[i]; i++) {
        if(strpbrk(headers[i], "\r\n"))
            rc = PA_EINVAL;
        else
            rc = pa_buf_printf(&req, "%s\r\n", headers[i]);
    }
    if(!rc && body)
        rc = pa_buf_printf(&req, "Content-Length: %zu\r\n", body_len);
    if(!rc)
        rc = pa_buf_addstr(&req, "\r\n");
    if(rc) {
        pa_buf_free(&req);
        return pa_err_set(err, PA_EINVAL, "a request header that cannot be sent");
    }
    rc = open_bio(&u, o, &b, &sctx, err);
    if(!rc && (write_all(b, req.data, req.len) || (body && body_len && write_all(b, body, body_len))))
        rc = pa_err_set(err, PA_EIO, "cannot send the request to %s:%s", u.host, u.port);
    if(!rc)
        rc = pa_httpc_read_response(b, !strcmp(method, "HEAD"), sink, ctx, o->body_max, resp, err);
    pa_buf_free(&req);
    BIO_free_all(b);
    SSL_CTX_free(sctx);
    return rc;
}
