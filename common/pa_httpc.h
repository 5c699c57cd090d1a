/*
 * pa_httpc: a small HTTP/1.1 client for pa-admin sync: one request per
 * connection (Connection: close), plain or TLS (OpenSSL, the peer's
 * certificate and host name verified), a body as Content-Length, chunked or
 * up to the close, streamed to a sink or kept in a buffer of bounded size.
 * The response reader works on any BIO, so that it can be fuzzed on bytes.
 */
#ifndef PA_HTTPC_H
#define PA_HTTPC_H

#include <openssl/bio.h>
#include <stddef.h>

#include "pa_buf.h"
#include "pa_err.h"

#define PA_HTTPC_HEADERS_MAX 65536

typedef struct pa_url {
    int tls;
    char host[256]; /* as written: a name, an IPv4 address or [IPv6] */
    char port[8];
    char target[4096]; /* path and query, "/" at least */
} pa_url;

/* Splits an http: or https: URL; PA_EINVAL if it is not one (user info and
 * fragments are refused).  pa_httpc_request's first step, exposed for the
 * httpc fuzz target. */
int pa_url_parse(const char *url, pa_url *out);

typedef struct pa_httpc_resp {
    int status;
    char content_type[128];
    char content_location[2048];
    char content_encoding[32];
    char x_progress[128];
    long retry_after; /* seconds (delta form only), -1 when absent */
    pa_buf body;      /* the body when no sink takes it */
} pa_httpc_resp;

/* Receives a body as it arrives; nonzero stops the transfer (and is returned). */
typedef int (*pa_httpc_sink)(const char *data, size_t n, void *ctx);

typedef struct pa_httpc_opts {
    const char *ca_file; /* trusted CAs (PEM) for https, NULL: the system's */
    long timeout_ms;     /* each read and write, 0: 60 s */
    size_t body_max;     /* a body kept in resp->body beyond this is PA_ETOOBIG; 0: 16 MB */
} pa_httpc_opts;

void pa_httpc_resp_init(pa_httpc_resp *r);
void pa_httpc_resp_free(pa_httpc_resp *r);

/*
 * Sends method url with headers ("Name: value" strings, NULL-terminated, may
 * be NULL) and body (NULL for none), and reads the answer into resp: its
 * body to sink if given, else to resp->body.  PA_EIO when the exchange
 * failed (err says how: connection, TLS, time-out, a malformed answer);
 * any HTTP status is PA_OK with resp->status set.
 */
int pa_httpc_request(const char *method, const char *url, const char *const *headers, const char *body, size_t body_len,
                     const pa_httpc_opts *opts, pa_httpc_sink sink, void *ctx, pa_httpc_resp *resp, pa_err *err);

/* Reads one response from b (the status line on): what pa_httpc_request
 * does once its request is sent.  head: a HEAD request's (no body).  Exposed
 * for the httpc fuzz target, which feeds it from memory. */
int pa_httpc_read_response(BIO *b, int head, pa_httpc_sink sink, void *ctx, size_t body_max, pa_httpc_resp *resp,
                           pa_err *err);

#endif
