/* The JSON walker and the strict parse every request body goes through:
 * whatever pa_json_walk accepts, json-c must parse whole, and whatever it
 * refuses must never reach json-c.  pa_json_prefix (the loader's test for
 * the first line of a pretty-printed text) never calls a whole value
 * unfinished. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "pa_json.h"

static int visit(const char *key, const char *value, size_t len, void *ctx)
{
    char out[64];

    (void)key;
    (void)ctx;
    pa_json_string(value, len, out, sizeof(out));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_object *o = NULL;
    pa_err err;
    int walked = pa_json_walk((const char *)data, size, visit, NULL, &err);
    int parsed = pa_json_parse((const char *)data, size, &o, &err);

    /* the two agree: a walk that passes is a parse that passes */
    if((walked == 0) != (parsed == 0))
        abort();
    /* a whole value is no unfinished one; an unfinished one fails the walk,
     * and an object or array one byte shorter fails it too (a number may
     * end anywhere) */
    if(pa_json_prefix((const char *)data, size)) {
        if(walked == 0 || (size > 1 && (data[0] == '{' || data[0] == '[') &&
                           pa_json_walk((const char *)data, size - 1, NULL, NULL, &err) == 0))
            abort();
    }
    if(o && !json_object_to_json_string(o))
        abort();
    json_object_put(o);
    return 0;
}
