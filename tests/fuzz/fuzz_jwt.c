/* JWT parsing: header and claims from untrusted base64url and JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pa_jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *token = malloc(size + 1);
    pa_jwt jwt;
    pa_err err;

    if(!token)
        return 0;
    memcpy(token, data, size);
    token[size] = '\0';
    memset(&jwt, 0, sizeof(jwt));
    if(pa_jwt_parse(token, &jwt, &err) == PA_OK)
        pa_jwk_alg(jwt.header);
    pa_jwt_free(&jwt);
    free(token);
    return 0;
}
