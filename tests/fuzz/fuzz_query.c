/* The query-string parser (also the token endpoint's form body): every
 * parameter it hands on is UTF-8 text without a NUL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pa_http.h"
#include "pa_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *qs = malloc(size + 1);
    pa_param *params = NULL;
    size_t n = 0, i;
    pa_err err;

    if(!qs)
        return 0;
    memcpy(qs, data, size);
    qs[size] = '\0';
    if(pa_query_parse(qs, &params, &n, &err) == PA_OK)
        for(i = 0; i < n; i++)
            if(!pa_utf8_valid(params[i].name, strlen(params[i].name)) ||
               !pa_utf8_valid(params[i].value, strlen(params[i].value)))
                abort();
    pa_params_free(params, n);
    free(qs);
    return 0;
}
