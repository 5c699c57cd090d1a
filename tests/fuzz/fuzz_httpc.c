/* The HTTP client's response reader (pa-admin sync reads what a payer's
 * FHIR server answers): any bytes as a response, framed by Content-Length,
 * chunked or the close, kept in a bounded buffer; and any bytes as a URL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pa_httpc.h"

static int sink(const char *data, size_t n, void *ctx)
{
    size_t *total = ctx;

    (void)data;
    *total += n;
    return *total > 1048576 ? PA_ETOOBIG : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    BIO *b = BIO_new_mem_buf(data, (int)size);
    pa_httpc_resp r;
    pa_err err;
    pa_url u;
    size_t total = 0;
    char *url;

    pa_httpc_resp_init(&r);
    if(pa_httpc_read_response(b, 0, NULL, NULL, 4096, &r, &err) == 0 && r.body.len > 4096)
        abort();
    BIO_free(b);
    pa_httpc_resp_free(&r);
    b = BIO_new_mem_buf(data, (int)size);
    pa_httpc_resp_init(&r);
    pa_httpc_read_response(b, 0, sink, &total, 0, &r, &err);
    BIO_free(b);
    pa_httpc_resp_free(&r);
    url = malloc(size + 1);
    if(url) {
        memcpy(url, data, size);
        url[size] = '\0';
        if(pa_url_parse(url, &u) == 0 && (!u.host[0] || u.target[0] != '/'))
            abort();
        free(url);
    }
    return 0;
}
