/*
 * pa-admin synth --bundles: the synthetic payer shaped as Synthea writes
 * FHIR R4: one pretty-printed transaction Bundle per member, its entries
 * named by urn:uuid: fullUrls and referring to each other by them; the
 * provider organizations and locations in hospitalInformation.json, the
 * practitioners, their roles and the medications in
 * practitionerInformation.json (POST with ifNoneExist).  A member's
 * references to a shared resource are conditional
 * (Type?identifier=system|value) when it has an identifier, else the
 * urn:uuid: of its entry in the other Bundle.  Resources keep the ids the
 * NDJSON form gives them, so that both forms load into the same store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_fhir.h"
#include "synth.h"

struct synth_bundles {
    char dir[4000];
    json_object *member;    /* the member's resources */
    json_object *shared[2]; /* hospital, practitioner */
    json_object *targets;   /* "Type/id" of a shared resource -> the reference a member makes to it */
};

static const char *const shared_files[2] = { "hospitalInformation.json", "practitionerInformation.json" };

static uint64_t fnv(const char *s, uint64_t h)
{
    for(; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* A version 4 shaped UUID, the same for the same Type/id. */
static void uuid_of(const char *type_id, char out[46])
{
    uint64_t a = fnv(type_id, 1469598103934665603ULL), b = fnv(type_id, 0x9e3779b97f4a7c15ULL);

    snprintf(out, 46, "urn:uuid:%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff,
             (unsigned)a & 0xfff, (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
             (unsigned long long)(b & 0xffffffffffffULL));
}

static void type_id(json_object *res, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", pa_json_str(res, "resourceType"), pa_json_str(res, "id"));
}

int synth_bundles_open(struct synth_bundles **out, const char *dir)
{
    struct synth_bundles *b = calloc(1, sizeof(*b));

    *out = NULL;
    if(!b)
        return -1;
    snprintf(b->dir, sizeof(b->dir), "%s", dir);
    b->member = json_object_new_array();
    b->shared[0] = json_object_new_array();
    b->shared[1] = json_object_new_array();
    b->targets = json_object_new_object();
    if(!b->member || !b->shared[0] || !b->shared[1] || !b->targets) {
        synth_bundles_close(b, 0);
        return -1;
    }
    *out = b;
    return 0;
}

int synth_bundles_add(struct synth_bundles *b, const char *line, enum synth_bundle which)
{
    json_object *res = json_tokener_parse(line);

    if(!res)
        return -1;
    json_object_array_add(which == SB_MEMBER ? b->member : b->shared[which == SB_HOSPITAL ? 0 : 1], res);
    return 0;
}

/* The first identifier of res with a system and a value, or NULL. */
static json_object *first_identifier(json_object *res)
{
    json_object *ids, *id0;

    if(!json_object_object_get_ex(res, "identifier", &ids))
        return NULL;
    id0 = json_object_array_get_idx(ids, 0);
    return id0 && pa_json_str(id0, "system") && pa_json_str(id0, "value") ? id0 : NULL;
}

/* The reference a member makes to each shared resource. */
static void map_shared(struct synth_bundles *b)
{
    size_t k, i;

    for(k = 0; k < 2; k++) {
        for(i = 0; i < json_object_array_length(b->shared[k]); i++) {
            json_object *res = json_object_array_get_idx(b->shared[k], i), *id0 = first_identifier(res);
            char key[200], ref[400];

            type_id(res, key, sizeof(key));
            if(id0)
                snprintf(ref, sizeof(ref), "%s?identifier=%s|%s", pa_json_str(res, "resourceType"),
                         pa_json_str(id0, "system"), pa_json_str(id0, "value"));
            else
                uuid_of(key, ref);
            json_object_object_add(b->targets, key, json_object_new_string(ref));
        }
    }
}

/* Rewrites the references of o: to an entry of the same Bundle by its
 * urn:uuid:, to a shared resource as a member refers to it. */
static void rewrite(json_object *o, json_object *local, json_object *shared)
{
    size_t i;

    if(json_object_is_type(o, json_type_array)) {
        for(i = 0; i < json_object_array_length(o); i++)
            rewrite(json_object_array_get_idx(o, i), local, shared);
        return;
    }
    if(!json_object_is_type(o, json_type_object))
        return;
    json_object_object_foreach(o, key, val)
    {
        json_object *to;

        if(strcmp(key, "reference") || !json_object_is_type(val, json_type_string)) {
            rewrite(val, local, shared);
            continue;
        }
        if(json_object_object_get_ex(local, json_object_get_string(val), &to) ||
           (shared && json_object_object_get_ex(shared, json_object_get_string(val), &to)))
            json_object_set_string(val, json_object_get_string(to));
    }
}

/* Writes resources as a pretty-printed transaction Bundle, their references
 * to others rewritten by `others`; ifNoneExist for the shared ones. */
static int write_bundle(struct synth_bundles *b, json_object *resources, const char *name, json_object *others,
                        int conditional)
{
    json_object *bundle = json_object_new_object(), *entries = json_object_new_array();
    json_object *local = json_object_new_object();
    char path[4200];
    size_t i;
    int rc = 0;
    FILE *f;

    for(i = 0; i < json_object_array_length(resources); i++) {
        char key[200], uuid[46];

        type_id(json_object_array_get_idx(resources, i), key, sizeof(key));
        uuid_of(key, uuid);
        json_object_object_add(local, key, json_object_new_string(uuid));
    }
    json_object_object_add(bundle, "resourceType", json_object_new_string("Bundle"));
    json_object_object_add(bundle, "type", json_object_new_string("transaction"));
    for(i = 0; i < json_object_array_length(resources); i++) {
        json_object *res = json_object_get(json_object_array_get_idx(resources, i));
        json_object *entry = json_object_new_object(), *req = json_object_new_object(), *id0 = first_identifier(res);
        char key[200], uuid[46], cond[400];

        type_id(res, key, sizeof(key));
        uuid_of(key, uuid);
        rewrite(res, local, others);
        json_object_object_add(entry, "fullUrl", json_object_new_string(uuid));
        json_object_object_add(entry, "resource", res);
        json_object_object_add(req, "method", json_object_new_string("POST"));
        json_object_object_add(req, "url", json_object_new_string(pa_json_str(res, "resourceType")));
        if(conditional && id0) {
            snprintf(cond, sizeof(cond), "identifier=%s|%s", pa_json_str(id0, "system"), pa_json_str(id0, "value"));
            json_object_object_add(req, "ifNoneExist", json_object_new_string(cond));
        }
        json_object_object_add(entry, "request", req);
        json_object_array_add(entries, entry);
    }
    json_object_object_add(bundle, "entry", entries);
    snprintf(path, sizeof(path), "%s/%s", b->dir, name);
    f = fopen(path, "w");
    if(!f ||
       fputs(json_object_to_json_string_ext(bundle, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE),
             f) < 0 ||
       fputc('\n', f) == EOF)
        rc = -1;
    if(f && fclose(f))
        rc = -1;
    json_object_put(bundle);
    json_object_put(local);
    return rc;
}

int synth_bundles_end_member(struct synth_bundles *b, const char *member_id)
{
    char name[80];
    int rc;

    if(!json_object_object_length(b->targets))
        map_shared(b);
    snprintf(name, sizeof(name), "%s.json", member_id);
    rc = write_bundle(b, b->member, name, b->targets, 0);
    json_object_put(b->member);
    b->member = json_object_new_array();
    return b->member ? rc : -1;
}

int synth_bundles_close(struct synth_bundles *b, int write)
{
    int rc = 0, k;

    if(!b)
        return 0;
    for(k = 0; write && k < 2; k++) {
        json_object *all = json_object_new_object();
        size_t i;

        /* the other file's entries by their urn:uuid: too */
        for(i = 0; i < json_object_array_length(b->shared[1 - k]); i++) {
            char key[200], uuid[46];

            type_id(json_object_array_get_idx(b->shared[1 - k], i), key, sizeof(key));
            uuid_of(key, uuid);
            json_object_object_add(all, key, json_object_new_string(uuid));
        }
        if(!all || write_bundle(b, b->shared[k], shared_files[k], all, 1))
            rc = -1;
        json_object_put(all);
    }
    json_object_put(b->member);
    json_object_put(b->shared[0]);
    json_object_put(b->shared[1]);
    json_object_put(b->targets);
    free(b);
    return rc;
}
