/*
 * pa_http: the HTTP request and response as the handlers see them, free of
 * FastCGI so that handlers can be driven from unit tests; content
 * negotiation; query strings; and the one place where error codes become an
 * HTTP status and a FHIR OperationOutcome.
 */
#ifndef PA_HTTP_H
#define PA_HTTP_H

#include <time.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "pa_buf.h"
#include "pa_err.h"

#define PA_MT_FHIR_JSON "application/fhir+json"
#define PA_MT_JSON "application/json"
#define PA_MT_FHIR_NDJSON "application/fhir+ndjson"

#define PA_RESP_MAX_BODY (64 * 1024 * 1024)
#define PA_RESP_MAX_HEADERS (16 * 1024)
#define PA_QUERY_MAX_PARAMS 256

typedef struct pa_param {
    char *name;
    char *value;
} pa_param;

/* Everything here is borrowed from the caller, except params (owned,
 * freed by pa_req_clear). */
typedef struct pa_req {
    const char *method;
    const char *path;        /* below the FHIR base, e.g. "/Group/1/$export" */
    const char *query;       /* raw query string without '?', or "" */
    const char *request_uri; /* raw request target as the client sent it */
    const char *script_name; /* where the FHIR base is mounted, e.g. "/fhir" */
    const char *accept;
    const char *content_type;
    const char *prefer;
    const char *authorization;
    const char *accept_encoding;
    const char *https;       /* "on" when the request came over TLS (mod_ssl's HTTPS) */
    const char *remote_addr; /* the client's address as Apache saw it */
    const char *body;
    size_t body_len;
    pa_param *params; /* decoded query parameters, in order */
    size_t nparams;
    char request_id[33];
    int64_t start_ms;      /* monotonic: for the duration */
    int64_t start_wall_ms; /* wall clock: for the audit event */
} pa_req;

typedef struct pa_resp {
    int status;
    char content_type[64];
    pa_buf headers; /* extra "Name: value\r\n" lines */
    pa_buf body;
    char *sendfile_path; /* when set, the body is this file (X-Sendfile or streamed) */
    int stream;          /* 1: the responder streams sendfile_path itself */
} pa_resp;

void pa_resp_init(pa_resp *r);
void pa_resp_free(pa_resp *r);
/* Makes r as pa_resp_init does, keeping its buffers' memory (up to
 * PA_RESP_KEEP_BYTES each) for the next response: a responder reuses one. */
void pa_resp_reset(pa_resp *r);
#define PA_RESP_KEEP_BYTES (256 * 1024)

/* Adds a header line; refuses values holding CR or LF. */
int pa_resp_header(pa_resp *r, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sets status, content type and a body copied from text. */
int pa_resp_text(pa_resp *r, int status, const char *content_type, const char *text);

/*
 * Answers with an OperationOutcome holding one issue.
 * severity: fatal|error|warning|information; code: a FHIR issue-type code
 * (invalid, not-found, not-supported, exception, transient, throttled, ...).
 */
int pa_resp_outcome(pa_resp *r, int status, const char *severity, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The same with a va_list. */
int pa_resp_voutcome(pa_resp *r, int status, const char *severity, const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

/* Seconds a 503 (Redis or PostgreSQL unreachable or restarting) asks a client to wait. */
#define PA_HTTP_RETRY_UNAVAILABLE_S 5

/* Maps an error code to its HTTP status and issue type, with err->msg as the
 * diagnostics.  The single mapping from internal errors to HTTP.  A 503
 * carries Retry-After and hides err->msg from the client (it is logged). */
int pa_resp_error(pa_resp *r, const pa_err *err);

const char *pa_http_status_text(int status);

/*
 * Content negotiation.  Returns the index in offered[] (a NULL-terminated
 * list, most preferred first) of the best type the Accept header allows, or
 * -1 if none is acceptable.  An absent or empty header accepts offered[0].
 * Understands lists, parameters, q-values, type/\* and \*\/\*.
 */
int pa_accept_pick(const char *accept, const char *const *offered);

/* True if a Content-Type header names the media type mt (case-insensitive,
 * parameters such as charset ignored). */
int pa_media_type_is(const char *content_type, const char *mt);

/* Percent-decodes s in place ('+' becomes a space when plus_is_space).
 * Returns PA_EINVAL on a bad escape or an embedded NUL. */
int pa_url_decode(char *s, int plus_is_space);

/* Parses a query string into decoded name/value pairs. */
int pa_query_parse(const char *qs, pa_param **out, size_t *n, pa_err *err);
void pa_params_free(pa_param *p, size_t n);

/* The first value of a query parameter, or NULL. */
const char *pa_req_param(const pa_req *req, const char *name);

void pa_req_clear(pa_req *req);

/* "Sun, 22 Nov 2026 11:30:00 GMT" (an HTTP date); out must hold 32 bytes. */
void pa_http_date(time_t t, char out[32]);

#endif
