/* The loader's line reader: one NDJSON line of the payer's data, parsed and
 * its facts extracted (and the non-financial EOB cut) without a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fhirload.h"
#include "pa_fhir.h"
#include "pa_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_object *res = NULL, *nonfin;
    const pa_fhir_type *t;
    fhirload_facts facts;
    pa_err err;

    if(pa_json_parse((const char *)data, size, &res, &err))
        return 0;
    t = pa_fhir_type_find(pa_json_str(res, "resourceType") ? pa_json_str(res, "resourceType") : "");
    if(t && json_object_is_type(res, json_type_object)) {
        pa_json_tape tape = { 0 };
        char npi[64];

        /* the facts, read through the tape of the line itself */
        fhirload_facts_init(&facts);
        if(!pa_json_tape_parse((const char *)data, size, &tape, &err)) {
            fhirload_npi((const char *)data, &tape, npi, sizeof(npi));
            fhirload_extract((const char *)data, &tape, t, &facts, &err);
        }
        fhirload_facts_free(&facts);
        if(!strcmp(t->name, "ExplanationOfBenefit")) {
            nonfin = fhirload_nonfinancial(res);
            /* written from the text, it is the same JSON as the tree's */
            if(!tape.dup_keys && !tape.odd_keys) {
                pa_buf out;
                json_object *again = NULL;

                pa_buf_init(&out, 16 * 1024 * 1024);
                if(!fhirload_nonfinancial_text((const char *)data, &tape, NULL, &out)) {
                    if(pa_json_parse(out.data, out.len, &again, &err) || !json_object_equal(again, nonfin))
                        abort();
                }
                json_object_put(again);
                pa_buf_free(&out);
            }
            json_object_put(nonfin);
        }
        /* a new meta.lastUpdated written into json-c's text of the tree is
         * json-c's text of the tree that got it */
        {
            const char *text =
                json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
            pa_buf out;
            json_object *meta;

            pa_buf_init(&out, 16 * 1024 * 1024);
            if(!pa_json_tape_parse(text, strlen(text), &tape, &err) &&
               !fhirload_with_last_updated(text, &tape, "@@now@@", &out)) {
                if(!json_object_object_get_ex(res, "meta", &meta) || !json_object_is_type(meta, json_type_object)) {
                    meta = json_object_new_object();
                    json_object_object_add(res, "meta", meta);
                }
                json_object_object_add(meta, "lastUpdated", json_object_new_string("@@now@@"));
                if(strcmp(out.data,
                          json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)))
                    abort();
            }
            pa_buf_free(&out);
        }
        pa_json_tape_free(&tape);
    }
    json_object_put(res);
    return 0;
}
