/*
 * _elements (elements.h).
 */
#include "elements.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "pa_err.h"

#define SUBSETTED "{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ObservationValue\",\"code\":\"SUBSETTED\"}"

/* The top-level elements FHIR R4 requires (min 1) of each exported type;
 * a choice element as its stem ("medication" for medication[x]). */
static const struct {
    const char *type;
    const char *names;
} mandatory[] = {
    { "Coverage", "status beneficiary payor" },
    { "ExplanationOfBenefit", "status type use patient created insurer provider outcome insurance" },
    { "Condition", "subject" },
    { "Observation", "status code" },
    { "MedicationRequest", "status intent medication subject" },
    { "Encounter", "status class" },
    { "Procedure", "status subject" },
    { "Immunization", "status vaccineCode patient occurrence" },
    { "AllergyIntolerance", "patient" },
    { "DiagnosticReport", "status code" },
    { "DocumentReference", "status content" },
    { "CarePlan", "status intent subject" },
    { "Goal", "lifecycleStatus description subject" },
    { "Provenance", "target recorded agent" },
    { "MedicationDispense", "status medication" },
    { "ServiceRequest", "status intent subject" },
    { "QuestionnaireResponse", "status" },
    { "RelatedPerson", "patient" },
};

static void add_names(json_object *list, struct elements *out)
{
    size_t i;

    for(i = 0; list && i < json_object_array_length(list) && out->n < sizeof(out->names) / sizeof(out->names[0]); i++)
        out->names[out->n++] = json_object_get_string(json_object_array_get_idx(list, i));
}

int elements_for(json_object *elements, const char *type, struct elements *out)
{
    json_object *all = NULL, *own = NULL;

    memset(out, 0, sizeof(*out));
    out->type = type;
    if(!elements)
        return 0;
    json_object_object_get_ex(elements, "*", &all);
    json_object_object_get_ex(elements, type, &own);
    add_names(all, out);
    add_names(own, out);
    return out->n > 0;
}

/* Whether key (a JSON member name, "_x" being x's primitive extension) is
 * the element name, or a choice of it (name[x] or its stem: valueQuantity
 * for value). */
static int key_is(const char *key, const char *name)
{
    size_t n = strlen(name);

    if(key[0] == '_')
        key++;
    if(n > 3 && !strcmp(name + n - 3, "[x]"))
        n -= 3;
    if(strncmp(key, name, n))
        return 0;
    return !key[n] || isupper((unsigned char)key[n]);
}

static int kept(const struct elements *e, const char *key)
{
    size_t i;
    const char *p;

    if(!strcmp(key, "resourceType") || !strcmp(key, "id") || !strcmp(key, "meta"))
        return 1;
    for(i = 0; i < e->n; i++)
        if(key_is(key, e->names[i]))
            return 1;
    for(i = 0; i < sizeof(mandatory) / sizeof(mandatory[0]); i++) {
        if(strcmp(mandatory[i].type, e->type))
            continue;
        for(p = mandatory[i].names; *p;) {
            size_t n = strcspn(p, " ");
            char name[64];

            if(n < sizeof(name)) {
                memcpy(name, p, n);
                name[n] = '\0';
                if(key_is(key, name))
                    return 1;
            }
            p += n + (p[n] == ' ');
        }
    }
    return 0;
}

int elements_apply(const struct elements *e, const char *line, size_t n, pa_buf *out)
{
    json_tokener *tok = json_tokener_new();
    json_object *o = tok ? json_tokener_parse_ex(tok, line, (int)n) : NULL;
    json_object *meta, *tags;
    int rc = PA_OK;

    json_tokener_free(tok);
    if(!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return PA_EINVAL;
    }
    for(;;) {
        /* the keys to drop, then dropped (an object is not changed while
         * walked), as many rounds as it takes */
        const char *drop[64];
        size_t nd = 0, i;

        json_object_object_foreach(o, key, val)
        {
            (void)val;
            if(!kept(e, key) && nd < sizeof(drop) / sizeof(drop[0]))
                drop[nd++] = key;
        }
        for(i = 0; i < nd; i++)
            json_object_object_del(o, drop[i]);
        if(nd < sizeof(drop) / sizeof(drop[0]))
            break;
    }
    if(!json_object_object_get_ex(o, "meta", &meta) || !json_object_is_type(meta, json_type_object)) {
        meta = json_object_new_object();
        json_object_object_add(o, "meta", meta);
    }
    if(!json_object_object_get_ex(meta, "tag", &tags) || !json_object_is_type(tags, json_type_array)) {
        tags = json_object_new_array();
        json_object_object_add(meta, "tag", tags);
    }
    json_object_array_add(tags, json_tokener_parse(SUBSETTED));
    pa_buf_reset(out);
    rc = pa_buf_addstr(out, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return rc;
}
