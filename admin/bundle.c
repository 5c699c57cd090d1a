/*
 * FHIR Bundles in a load: transaction, batch, collection and searchset.
 *
 * Each entry's resource is loaded as a line would be, once its references
 * are rewritten to Type/id:
 *  - a reference to another entry of the Bundle, by its fullUrl (urn:uuid:,
 *    urn:oid: or an absolute URL);
 *  - a reference by fullUrl to a Patient or a shared resource (Location,
 *    Medication, Organization, Practitioner, PractitionerRole) of another
 *    Bundle of the same load;
 *  - a conditional reference to a shared resource, Type?identifier=[system|]value,
 *    by the identifiers of the shared resources of the load and of the store.
 * An entry whose reference names what has not been read yet (the hospital
 * and practitioner Bundles often come after the patients') waits in a spill
 * file until every file is read; what still resolves to nothing then is
 * stored as it is and counted as a warning.
 *
 * An entry without an id takes the one its request's PUT url gives, or its
 * urn:uuid: fullUrl's.  DELETE entries delete (load.c); other requests
 * (GET, PATCH) are refused.  A searchset's OperationOutcome entries are
 * skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_http.h"
#include "pa_util.h"

/* A string-to-string map, open addressing. */
struct strmap {
    char **keys;
    char **values;
    size_t cap; /* a power of two, or 0 */
    size_t n;
};

struct load_refs {
    struct strmap urls;   /* fullUrl of a Patient or shared resource -> Type/id */
    struct strmap idents; /* "Type?identifier=system|value" (and "...=value") -> Type/id */
    int store_idents;     /* the store's identifiers are in idents */
    FILE *spill;          /* entries waiting for the end: "file\tline\tentry\n" + JSON line */
    long spilled;
    char **files; /* the file names the spill refers to */
    size_t nfiles;
};

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for(; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static size_t map_slot(const struct strmap *m, const char *key)
{
    size_t i = (size_t)str_hash(key) & (m->cap - 1);

    while(m->keys[i] && strcmp(m->keys[i], key))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static const char *map_get(const struct strmap *m, const char *key)
{
    size_t i;

    if(!m->cap)
        return NULL;
    i = map_slot(m, key);
    return m->keys[i] ? m->values[i] : NULL;
}

static int map_grow(struct strmap *m)
{
    struct strmap bigger = { NULL, NULL, m->cap ? m->cap * 2 : 1024, 0 };
    size_t i;

    bigger.keys = calloc(bigger.cap, sizeof(char *));
    bigger.values = calloc(bigger.cap, sizeof(char *));
    if(!bigger.keys || !bigger.values) {
        free(bigger.keys);
        free(bigger.values);
        return PA_ENOMEM;
    }
    for(i = 0; i < m->cap; i++) {
        if(m->keys[i]) {
            size_t j = map_slot(&bigger, m->keys[i]);

            bigger.keys[j] = m->keys[i];
            bigger.values[j] = m->values[i];
        }
    }
    bigger.n = m->n;
    free(m->keys);
    free(m->values);
    *m = bigger;
    return PA_OK;
}

/* Sets key to value (replace: else a key already there keeps its value). */
static int map_put(struct strmap *m, const char *key, const char *value, int replace)
{
    size_t i;
    char *v;

    if((m->n + 1) * 2 > m->cap && map_grow(m))
        return PA_ENOMEM;
    i = map_slot(m, key);
    if(m->keys[i] && !replace)
        return PA_OK;
    v = strdup(value);
    if(!v)
        return PA_ENOMEM;
    if(m->keys[i]) {
        free(m->values[i]);
    }
    else {
        m->keys[i] = strdup(key);
        if(!m->keys[i]) {
            free(v);
            return PA_ENOMEM;
        }
        m->n++;
    }
    m->values[i] = v;
    return PA_OK;
}

static void map_free(struct strmap *m)
{
    size_t i;

    for(i = 0; i < m->cap; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}

static int is_shared(const char *type)
{
    const pa_fhir_type *t = pa_fhir_type_find(type);

    return t && !t->patient_path;
}

static struct load_refs *refs_of(load_ctx *l)
{
    if(!l->refs)
        l->refs = calloc(1, sizeof(*l->refs));
    return l->refs;
}

/* The shared resources' identifiers as conditional references name them. */
static int put_identifiers(struct strmap *idents, const char *type, json_object *res, const char *target)
{
    json_object *ids;
    size_t i;
    int rc = PA_OK;

    if(!json_object_object_get_ex(res, "identifier", &ids) || !json_object_is_type(ids, json_type_array))
        return PA_OK;
    for(i = 0; !rc && i < json_object_array_length(ids); i++) {
        json_object *id = json_object_array_get_idx(ids, i);
        const char *system = pa_json_str(id, "system"), *value = pa_json_str(id, "value");
        char key[1024];

        if(!value)
            continue;
        snprintf(key, sizeof(key), "%s?identifier=%s", type, value);
        rc = map_put(idents, key, target, 0);
        if(!rc && system) {
            snprintf(key, sizeof(key), "%s?identifier=%s|%s", type, system, value);
            rc = map_put(idents, key, target, 1);
        }
    }
    return rc;
}

/* The store's shared resources' identifiers, once a conditional reference
 * is not found among the load's. */
static int load_store_identifiers(load_ctx *l, struct load_refs *r, pa_err *err)
{
    static const char sql[] =
        "SELECT r.type, coalesce(i->>'system', ''), i->>'value', r.type || '/' || r.id FROM resource r,"
        " jsonb_array_elements(CASE jsonb_typeof(r.json::jsonb->'identifier') WHEN 'array'"
        "  THEN r.json::jsonb->'identifier' ELSE '[]' END) i"
        " WHERE r.type IN ('Location', 'Medication', 'Organization', 'Practitioner', 'PractitionerRole')"
        "  AND jsonb_typeof(i->'value') = 'string'";
    PGresult *res;
    int i, rc = load_flush(l, err);

    r->store_idents = 1;
    if(rc)
        return rc;
    res = pa_db_query(l->db, err, sql, 0, NULL);
    if(!res)
        return PA_EDB;
    for(i = 0; !rc && i < PQntuples(res); i++) {
        char key[1024];

        snprintf(key, sizeof(key), "%s?identifier=%s", PQgetvalue(res, i, 0), PQgetvalue(res, i, 2));
        rc = map_put(&r->idents, key, PQgetvalue(res, i, 3), 0);
        if(!rc && *PQgetvalue(res, i, 1)) {
            snprintf(key, sizeof(key), "%s?identifier=%s|%s", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                     PQgetvalue(res, i, 2));
            rc = map_put(&r->idents, key, PQgetvalue(res, i, 3), 0);
        }
    }
    PQclear(res);
    return rc ? pa_err_set(err, rc, "out of memory") : PA_OK;
}

/* "Type?identifier=..." (percent-decoded, the only parameter) as an idents
 * key; 0 if ref is no such conditional reference. */
static int conditional_key(const char *ref, char *out, size_t size)
{
    const char *q = strchr(ref, '?');
    const char *p;
    size_t at;

    if(!q || q == ref || (size_t)(q - ref) >= 64 || strncmp(q + 1, "identifier=", 11) || strchr(q, '&'))
        return 0;
    for(p = ref; p < q; p++)
        if(!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
            return 0;
    at = (size_t)(q - ref) + 12;
    return !pa_strlcpy(out, ref, size) && !pa_url_decode(out + at, 0);
}

struct rewrite {
    load_ctx *l;
    struct load_refs *r;
    const struct strmap *local; /* this Bundle's fullUrls */
    int final;                  /* the last try: the store's identifiers too */
    const char *unresolved;     /* the first reference that named nothing */
    int failed;                 /* the store could not be asked (err says why) */
    pa_err *err;
};

/* The Type/id a reference stands for, NULL when it is to be kept as it is
 * (*unresolved set when it named something that was not found). */
static const char *resolve(struct rewrite *w, const char *ref, int *unresolved)
{
    const char *to = map_get(w->local, ref);
    char key[1024];

    *unresolved = 0;
    if(to)
        return to;
    if(!strncmp(ref, "urn:", 4)) {
        to = map_get(&w->r->urls, ref);
        *unresolved = !to;
        return to;
    }
    if(conditional_key(ref, key, sizeof(key))) {
        to = map_get(&w->r->idents, key);
        if(!to && !w->r->store_idents && !w->failed) {
            /* a store that cannot be asked stops the load: never a quiet "names nothing" */
            w->failed = load_store_identifiers(w->l, w->r, w->err);
            to = map_get(&w->r->idents, key);
        }
        *unresolved = !to;
        return to;
    }
    if(!strncmp(ref, "http://", 7) || !strncmp(ref, "https://", 8))
        return map_get(&w->r->urls, ref);
    return NULL;
}

/* Rewrites every reference in o; notes the first that named nothing. */
static void rewrite(struct rewrite *w, json_object *o)
{
    size_t i;

    if(json_object_is_type(o, json_type_array)) {
        for(i = 0; i < json_object_array_length(o); i++)
            rewrite(w, json_object_array_get_idx(o, i));
        return;
    }
    if(!json_object_is_type(o, json_type_object))
        return;
    json_object_object_foreach(o, key, val)
    {
        if(!strcmp(key, "reference") && json_object_is_type(val, json_type_string)) {
            int unresolved;
            const char *to = resolve(w, json_object_get_string(val), &unresolved);

            if(to)
                json_object_set_string(val, to);
            else if(unresolved && !w->unresolved)
                w->unresolved = json_object_get_string(val);
        }
        else
            rewrite(w, val);
    }
}

/* Keeps an entry for the end of the load. */
static int spill(struct load_refs *r, json_object *res, const char *file, long line, long entry)
{
    size_t f;

    if(!r->spill) {
        r->spill = tmpfile();
        if(!r->spill)
            return PA_EIO;
    }
    for(f = 0; f < r->nfiles && strcmp(r->files[f], file); f++)
        ;
    if(f == r->nfiles) {
        char **more = realloc(r->files, (r->nfiles + 1) * sizeof(char *));

        if(!more)
            return PA_ENOMEM;
        r->files = more;
        r->files[f] = strdup(file);
        if(!r->files[f])
            return PA_ENOMEM;
        r->nfiles++;
    }
    if(fprintf(r->spill, "%zu\t%ld\t%ld\n%s\n", f, line, entry,
               json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
        return PA_EIO;
    r->spilled++;
    return PA_OK;
}

/* Loads an entry's resource with its references rewritten, or keeps it for
 * the end when one of them names what has not been read yet. */
static int load_entry(load_ctx *l, struct rewrite *w, json_object *res, const char *file, long line, long entry)
{
    const char *type = pa_json_str(res, "resourceType");
    int rc;

    w->unresolved = NULL;
    rewrite(w, res);
    if(w->failed)
        return w->failed;
    if(w->unresolved && !w->final)
        return spill(w->r, res, file, line, entry) ? pa_err_set(w->err, PA_EIO, "the spill file: out of space") : PA_OK;
    l->entry = entry;
    if(w->unresolved)
        load_warn(l, file, line,
                  "%s/%s: the reference '%.200s' names nothing this load or the store has: kept as it is",
                  type ? type : "?", pa_json_str(res, "id") ? pa_json_str(res, "id") : "?", w->unresolved);
    l->seen++;
    rc = load_object(l, json_object_get(res), NULL, 0, file, line, w->err);
    l->entry = -1;
    return rc;
}

/* The resource of an entry given an id, after its resourceType. */
static json_object *with_id(json_object *entry, json_object *res, const char *id)
{
    json_object *copy = json_object_new_object();

    if(!copy)
        return res;
    json_object_object_add(copy, "resourceType", json_object_new_string(pa_json_str(res, "resourceType")));
    json_object_object_add(copy, "id", json_object_new_string(id));
    json_object_object_foreach(res, key, val)
    {
        if(strcmp(key, "resourceType") && strcmp(key, "id"))
            json_object_object_add(copy, key, json_object_get(val));
    }
    json_object_object_add(entry, "resource", copy); /* frees res */
    return copy;
}

/* The Type/id of an entry, its resource (*res) given the id its request or
 * fullUrl names when it has none.  0 when it has none. */
static int entry_target(json_object *entry, json_object **resp, char *out, size_t size)
{
    json_object *res = *resp;
    const char *type = pa_json_str(res, "resourceType"), *id = pa_json_str(res, "id");
    const char *full = pa_json_str(entry, "fullUrl");
    json_object *req = json_object_object_get(entry, "request");
    const char *url = pa_json_str(req, "url"), *method = pa_json_str(req, "method");
    char from_url[PA_FHIR_ID_MAX + 1] = "";

    if(!type)
        return 0;
    if(!id && method && !strcmp(method, "PUT") && url && !strncmp(url, type, strlen(type)) &&
       url[strlen(type)] == '/' && !pa_strlcpy(from_url, url + strlen(type) + 1, sizeof(from_url)) &&
       pa_fhir_id_valid(from_url))
        id = from_url;
    if(!id && full && !strncmp(full, "urn:uuid:", 9) && pa_fhir_id_valid(full + 9))
        id = full + 9;
    if(!id || !pa_fhir_id_valid(id))
        return 0;
    snprintf(out, size, "%s/%s", type, id);
    if(!pa_json_str(res, "id"))
        *resp = with_id(entry, res, id);
    return 1;
}

/* Maps every entry's fullUrl (and a shared resource's identifiers). */
static int map_entries(struct load_refs *r, struct strmap *local, json_object *entries)
{
    size_t i;
    int rc = PA_OK;

    for(i = 0; !rc && i < json_object_array_length(entries); i++) {
        json_object *entry = json_object_array_get_idx(entries, i), *res;
        const char *full = pa_json_str(entry, "fullUrl");
        char target[PA_FHIR_ID_MAX + 80];
        const char *type;

        if(!json_object_object_get_ex(entry, "resource", &res) || !json_object_is_type(res, json_type_object) ||
           !entry_target(entry, &res, target, sizeof(target)))
            continue;
        type = pa_json_str(res, "resourceType");
        if(full)
            rc = map_put(local, full, target, 1);
        if(!rc && full && (is_shared(type) || !strcmp(type, "Patient")))
            rc = map_put(&r->urls, full, target, 1);
        if(!rc && is_shared(type))
            rc = put_identifiers(&r->idents, type, res, target);
    }
    return rc;
}

static const char *const bundle_types[] = { "transaction", "batch", "collection", "searchset", NULL };

int load_bundle(load_ctx *l, json_object *bundle, const char *file, long line, pa_err *err)
{
    struct load_refs *r = refs_of(l);
    struct strmap local = { 0 };
    struct rewrite w = { l, r, &local, 0, NULL, 0, err };
    const char *type = pa_json_str(bundle, "type");
    json_object *entries;
    size_t i;
    int rc, k;

    if(!r)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    for(k = 0; type && bundle_types[k] && strcmp(type, bundle_types[k]); k++)
        ;
    if(!type || !bundle_types[k]) {
        load_report(l, file, line,
                    "a Bundle of type '%.40s': only transaction, batch, collection and searchset "
                    "Bundles are loaded",
                    type ? type : "");
        return PA_OK;
    }
    if(!json_object_object_get_ex(bundle, "entry", &entries))
        return PA_OK;
    if(!json_object_is_type(entries, json_type_array)) {
        load_report(l, file, line, "a Bundle whose entry is not an array");
        return PA_OK;
    }
    rc = load_bundle_deletes(l, bundle, file, line, err);
    if(!rc && map_entries(r, &local, entries))
        rc = pa_err_set(err, PA_ENOMEM, "out of memory");
    for(i = 0; !rc && i < json_object_array_length(entries); i++) {
        json_object *entry = json_object_array_get_idx(entries, i), *res;
        const char *method = pa_json_str(json_object_object_get(entry, "request"), "method");
        const char *mode = pa_json_str(json_object_object_get(entry, "search"), "mode");
        char target[PA_FHIR_ID_MAX + 80];

        if(method && !strcmp(method, "DELETE"))
            continue;
        l->entry = (long)i;
        if(method && strcmp(method, "POST") && strcmp(method, "PUT"))
            load_report(l, file, line, "a %.10s request is not loaded (POST, PUT and DELETE are)", method);
        else if(!json_object_object_get_ex(entry, "resource", &res) || !json_object_is_type(res, json_type_object))
            load_report(l, file, line, "no resource");
        else if(mode && !strcmp(mode, "outcome"))
            load_skip(l, "OperationOutcome", file, line);
        else if(!pa_json_str(res, "resourceType"))
            load_report(l, file, line, "no resourceType");
        else if(!pa_fhir_type_find(pa_json_str(res, "resourceType")) &&
                strcmp(pa_json_str(res, "resourceType"), "Group"))
            load_skip(l, pa_json_str(res, "resourceType"), file, line);
        else if(!entry_target(entry, &res, target, sizeof(target)))
            load_report(l, file, line, "%s without a valid id (nor a PUT url or urn:uuid fullUrl giving one)",
                        pa_json_str(res, "resourceType"));
        else
            rc = load_entry(l, &w, res, file, line, (long)i);
        l->entry = -1;
    }
    map_free(&local);
    return rc;
}

int load_bundles_finish(load_ctx *l, pa_err *err)
{
    struct load_refs *r = l->refs;
    struct strmap none = { 0 };
    struct rewrite w = { l, r, &none, 1, NULL, 0, err };
    char *head = NULL, *body = NULL;
    size_t hsize = 0, bsize = 0;
    int rc = PA_OK;

    if(!r || !r->spill)
        return PA_OK;
    /* what this load stored since the store's identifiers were read */
    r->store_idents = 0;
    rc = load_flush(l, err);
    if(!rc && fseek(r->spill, 0, SEEK_SET))
        rc = pa_err_set(err, PA_EIO, "the spill file cannot be read back");
    while(!rc && getline(&head, &hsize, r->spill) > 0 && getline(&body, &bsize, r->spill) > 0) {
        size_t f = strtoul(head, NULL, 10);
        char *p = strchr(head, '\t');
        long line = p ? strtol(p + 1, &p, 10) : 0;
        long entry = p ? strtol(p + 1, NULL, 10) : 0;
        json_object *res = json_tokener_parse(body);

        if(!res || f >= r->nfiles) {
            json_object_put(res);
            rc = pa_err_set(err, PA_EIO, "the spill file cannot be read back");
            break;
        }
        rc = load_entry(l, &w, res, r->files[f], line, entry);
        json_object_put(res);
    }
    free(head);
    free(body);
    fclose(r->spill);
    r->spill = NULL;
    if(!rc)
        rc = load_flush(l, err);
    return rc;
}

long load_bundles_waiting(const load_ctx *l)
{
    return l->refs && l->refs->spill ? l->refs->spilled : 0;
}

void load_bundles_free(load_ctx *l)
{
    struct load_refs *r = l ? l->refs : NULL;
    size_t i;

    if(!r)
        return;
    map_free(&r->urls);
    map_free(&r->idents);
    if(r->spill)
        fclose(r->spill);
    for(i = 0; i < r->nfiles; i++)
        free(r->files[i]);
    free(r->files);
    free(r);
    l->refs = NULL;
}
