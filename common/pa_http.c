#include "pa_http.h"
#include "pa_log.h"
#include "pa_util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void pa_resp_init(pa_resp *r)
{
    r->status = 200;
    r->content_type[0] = '\0';
    pa_buf_init(&r->headers, PA_RESP_MAX_HEADERS);
    pa_buf_init(&r->body, PA_RESP_MAX_BODY);
    r->sendfile_path = NULL;
    r->stream = 0;
}

void pa_resp_free(pa_resp *r)
{
    if(!r)
        return;
    pa_buf_free(&r->headers);
    pa_buf_free(&r->body);
    free(r->sendfile_path);
    r->sendfile_path = NULL;
}

void pa_resp_reset(pa_resp *r)
{
    pa_buf *bufs[2] = { &r->headers, &r->body };
    size_t i;

    for(i = 0; i < 2; i++) {
        /* a large answer's memory is not kept for the next ones */
        if(bufs[i]->cap > PA_RESP_KEEP_BYTES)
            pa_buf_free(bufs[i]);
        pa_buf_reset(bufs[i]);
    }
    free(r->sendfile_path);
    r->sendfile_path = NULL;
    r->content_type[0] = '\0';
    r->status = 200;
    r->stream = 0;
}

int pa_resp_header(pa_resp *r, const char *name, const char *fmt, ...)
{
    char value[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    if(n < 0 || (size_t)n >= sizeof(value))
        return PA_ETOOBIG;
    if(strpbrk(value, "\r\n") || strpbrk(name, "\r\n:"))
        return PA_EINVAL;
    return pa_buf_printf(&r->headers, "%s: %s\r\n", name, value);
}

int pa_resp_text(pa_resp *r, int status, const char *content_type, const char *text)
{
    r->status = status;
    snprintf(r->content_type, sizeof(r->content_type), "%s", content_type);
    pa_buf_reset(&r->body);
    return pa_buf_addstr(&r->body, text);
}

int pa_resp_outcome(pa_resp *r, int status, const char *severity, const char *code, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = pa_resp_voutcome(r, status, severity, code, fmt, ap);
    va_end(ap);
    return rc;
}

int pa_resp_voutcome(pa_resp *r, int status, const char *severity, const char *code, const char *fmt, va_list ap)
{
    char diag[1024];
    int rc;

    vsnprintf(diag, sizeof(diag), fmt, ap);
    r->status = status;
    snprintf(r->content_type, sizeof(r->content_type), "%s", PA_MT_FHIR_JSON);
    free(r->sendfile_path);
    r->sendfile_path = NULL;
    pa_buf_reset(&r->body);
    rc = pa_buf_addstr(&r->body, "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":");
    if(!rc)
        rc = pa_buf_add_json_string(&r->body, severity);
    if(!rc)
        rc = pa_buf_addstr(&r->body, ",\"code\":");
    if(!rc)
        rc = pa_buf_add_json_string(&r->body, code);
    if(!rc)
        rc = pa_buf_addstr(&r->body, ",\"diagnostics\":");
    if(!rc)
        rc = pa_buf_add_json_string(&r->body, diag);
    if(!rc)
        rc = pa_buf_addstr(&r->body, "}]}");
    return rc;
}

int pa_resp_error(pa_resp *r, const pa_err *err)
{
    int status = 500;
    const char *code = "exception";
    const char *msg = err->msg[0] ? err->msg : pa_err_name(err->code);

    switch(err->code) {
    case PA_EINVAL:
        status = 400;
        code = "invalid";
        break;
    case PA_ENOTSUP:
        status = 400;
        code = "not-supported";
        break;
    case PA_ETOOBIG:
        status = 413;
        code = "too-costly";
        break;
    case PA_ENOTFOUND:
        status = 404;
        code = "not-found";
        break;
    case PA_EBUSY:
        status = 429;
        code = "throttled";
        break;
    case PA_ESTATE:
        status = 409;
        code = "conflict";
        break;
    case PA_EREDIS:
    case PA_EDB:
    case PA_ECONFIG:
    case PA_ESCHEMA:
        status = 503;
        code = "transient";
        break;
    default: break;
    }
    if(status >= 500) {
        /* the detail (hosts, paths, server messages) is for the operator only */
        pa_error("%s", msg);
        /* a Redis or PostgreSQL restart is seconds: the client waits and keeps its token */
        pa_resp_header(r, "Retry-After", "%d", PA_HTTP_RETRY_UNAVAILABLE_S);
        return pa_resp_outcome(r, status, "fatal", code,
                               "the server cannot answer now (%s); the operator's log has the "
                               "details under this response's X-Request-Id",
                               pa_err_name(err->code));
    }
    return pa_resp_outcome(r, status, "error", code, "%s", msg);
}

const char *pa_http_status_text(int status)
{
    switch(status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* Compares the media type at s (up to ';', ',' or end, blanks trimmed) with mt. */
static int media_eq(const char *s, size_t n, const char *mt)
{
    while(n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while(n && isspace((unsigned char)s[n - 1]))
        n--;
    return n == strlen(mt) && !strncasecmp(s, mt, n);
}

int pa_media_type_is(const char *content_type, const char *mt)
{
    if(!content_type)
        return 0;
    return media_eq(content_type, strcspn(content_type, ";"), mt);
}

/* How specifically range (e.g. "application/\*") matches mt: 3 exact,
 * 2 type/\*, 1 \*\/\*, 0 not at all. */
static int range_match(const char *range, size_t n, const char *mt)
{
    const char *slash;
    size_t tlen;

    while(n && isspace((unsigned char)*range)) {
        range++;
        n--;
    }
    while(n && isspace((unsigned char)range[n - 1]))
        n--;
    if(media_eq(range, n, mt))
        return 3;
    if(n == 3 && !strncmp(range, "*/*", 3))
        return 1;
    slash = memchr(range, '/', n);
    if(!slash || (size_t)(slash - range) + 2 != n || slash[1] != '*')
        return 0;
    tlen = (size_t)(slash - range);
    return !strncasecmp(range, mt, tlen) && mt[tlen] == '/' ? 2 : 0;
}

/* Reads the q parameter of one Accept element's parameters (p..end). */
static double element_q(const char *p, const char *end)
{
    while(p && p < end) {
        const char *semi;

        while(p < end && (isspace((unsigned char)*p) || *p == ';'))
            p++;
        if(end - p > 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=')
            return strtod(p + 2, NULL);
        semi = memchr(p, ';', (size_t)(end - p));
        p = semi ? semi + 1 : end;
    }
    return 1.0;
}

int pa_accept_pick(const char *accept, const char *const *offered)
{
    int best = -1;
    double best_q = 0.0;
    int i;

    if(!accept || !*accept)
        return offered[0] ? 0 : -1;
    for(i = 0; offered[i]; i++) {
        const char *p = accept;
        int spec = 0;
        double q = 0.0;

        /* the most specific range that names this type decides its q */
        while(*p) {
            const char *end = p + strcspn(p, ",");
            const char *semi = memchr(p, ';', (size_t)(end - p));
            size_t rlen = (size_t)((semi ? semi : end) - p);
            int s = range_match(p, rlen, offered[i]);

            if(s > spec) {
                spec = s;
                q = semi ? element_q(semi + 1, end) : 1.0;
            }
            p = *end ? end + 1 : end;
        }
        if(spec && q > best_q) {
            best = i;
            best_q = q;
        }
    }
    return best;
}

static int hexval(char c)
{
    if(c >= '0' && c <= '9')
        return c - '0';
    if(c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if(c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int pa_url_decode(char *s, int plus_is_space)
{
    char *w = s;
    const char *r = s;

    while(*r) {
        if(*r == '%') {
            int hi = hexval(r[1]);
            int lo = hi < 0 ? -1 : hexval(r[2]);

            if(lo < 0 || (hi == 0 && lo == 0))
                return PA_EINVAL;
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        }
        else if(*r == '+' && plus_is_space) {
            *w++ = ' ';
            r++;
        }
        else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return PA_OK;
}

void pa_params_free(pa_param *p, size_t n)
{
    size_t i;

    if(!p)
        return;
    for(i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].value);
    }
    free(p);
}

int pa_query_parse(const char *qs, pa_param **out, size_t *n, pa_err *err)
{
    pa_param *params = NULL;
    size_t count = 0;
    const char *p = qs ? qs : "";
    int rc = PA_OK;

    *out = NULL;
    *n = 0;
    while(*p) {
        const char *end = p + strcspn(p, "&");
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *nend = eq ? eq : end;
        pa_param *grown;

        if(end == p) {
            p++;
            continue;
        }
        if(count == PA_QUERY_MAX_PARAMS) {
            rc = pa_err_set(err, PA_ETOOBIG, "more than %d query parameters", PA_QUERY_MAX_PARAMS);
            goto out;
        }
        grown = realloc(params, (count + 1) * sizeof(*params));
        if(!grown) {
            rc = pa_err_set(err, PA_ENOMEM, "out of memory");
            goto out;
        }
        params = grown;
        params[count].name = strndup(p, (size_t)(nend - p));
        params[count].value = eq ? strndup(eq + 1, (size_t)(end - eq - 1)) : strdup("");
        count++;
        if(!params[count - 1].name || !params[count - 1].value) {
            rc = pa_err_set(err, PA_ENOMEM, "out of memory");
            goto out;
        }
        if(pa_url_decode(params[count - 1].name, 1) || pa_url_decode(params[count - 1].value, 1)) {
            rc = pa_err_set(err, PA_EINVAL, "the query string has a malformed %%-escape (or an escaped NUL)");
            goto out;
        }
        /* text goes on to PostgreSQL and into JSON, both UTF-8 only */
        if(!pa_utf8_valid(params[count - 1].name, strlen(params[count - 1].name)) ||
           !pa_utf8_valid(params[count - 1].value, strlen(params[count - 1].value))) {
            rc = pa_err_set(err, PA_EINVAL, "parameter %zu of the query string is not UTF-8 text", count);
            goto out;
        }
        p = *end ? end + 1 : end;
    }
    *out = params;
    *n = count;
    params = NULL;
    count = 0;
out:
    pa_params_free(params, count);
    return rc;
}

const char *pa_req_param(const pa_req *req, const char *name)
{
    size_t i;

    for(i = 0; i < req->nparams; i++)
        if(!strcmp(req->params[i].name, name))
            return req->params[i].value;
    return NULL;
}

void pa_req_clear(pa_req *req)
{
    pa_params_free(req->params, req->nparams);
    req->params = NULL;
    req->nparams = 0;
}

void pa_http_date(time_t t, char out[32])
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 32, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}
