/* $provider-member-match: the kick-off check, the parse, each member's
 * validation and the echo of what was submitted (no database: a member
 * valid enough to look up ends the run there). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pa_config.h"
#include "pa_match.h"

static pa_config *cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size + 1);
    json_object *params = NULL;
    pa_match_in in;
    pa_match_out out;
    pa_err err;
    long members = 0;

    if(!cfg && pa_config_parse("base_url = http://127.0.0.1/fhir\ndata_dir = /tmp\npg_conninfo = dbname=none\n", "fuzz",
                               &cfg, &err))
        abort();
    if(!body)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';
    memset(&out, 0, sizeof(out));
    if(pa_match_check(body, size, 50, &members, &err) == PA_OK &&
       pa_match_parse(body, 50, &params, &members, &err) == PA_OK) {
        memset(&in, 0, sizeof(in));
        in.cfg = cfg;
        in.npi = "1234567893";
        in.org_npi = "";
        if(pa_match_run(&in, params, &out, &err) == PA_OK)
            free(pa_match_parameters(&out));
        pa_match_out_free(&out);
    }
    json_object_put(params);
    free(body);
    return 0;
}
