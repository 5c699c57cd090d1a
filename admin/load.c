/*
 * pa-admin load: the payer's data into the store.
 *
 * FHIR NDJSON (plain or gzip) is read line by line; each line is checked
 * (JSON, a served resourceType, an id, the patient reference its type needs,
 * valid NPIs), compacted, given meta.lastUpdated if it lacks one, and for
 * ExplanationOfBenefit also turned into its non-financial form.  A line is
 * read through its tape (pa_json), without a tree, when it can be stored as
 * it is; json-c parses the others.  Good lines go in batches to the senders
 * (loadsend.c), which store them by binary COPY (copybin.c): merged into
 * `resource` (a line identical to what is stored changes nothing), or
 * straight in while the store was empty.  Bad lines are reported by file,
 * line and reason; the good ones around them load.  Transaction Bundles of DELETE entries delete, leaving
 * tombstones.  PDex Groups (rosters, treatment relationships, opt-outs) are
 * loaded after all resources; CSV feeds last (groups.c, feeds.c).
 */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "admin.h"
#include "copybin.h"
#include "load.h"
#include "pa_buf.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_json.h"
#include "pa_util.h"

#define MAX_FILES 1000000

static const char delete_sql[] = CHANGE_TIME_CTE
    ", d AS (SELECT unnest($1::text[]) AS type, unnest($2::text[]) AS id), "
    "gone AS (DELETE FROM resource r USING d WHERE r.type = d.type AND r.id = d.id"
    " RETURNING r.type, r.id, r.patient_id), "
    "mem AS (DELETE FROM member m USING gone WHERE gone.type = 'Patient' AND m.patient_id = gone.id), "
    "cov AS (DELETE FROM coverage c USING gone WHERE gone.type = 'Coverage' AND c.coverage_id = gone.id) "
    "INSERT INTO resource_deleted (type, id, patient_id, deleted_at) "
    "SELECT type, id, patient_id, ct.t FROM gone CROSS JOIN ct "
    "ON CONFLICT (type, id) DO UPDATE SET patient_id = EXCLUDED.patient_id, deleted_at = EXCLUDED.deleted_at";

int load_delete(PGconn *db, const char *types, const char *ids, long *n, pa_err *err)
{
    const char *values[2] = { types, ids };
    PGresult *res = pa_db_query(db, err, delete_sql, 2, values);

    if(!res)
        return PA_EDB;
    *n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return PA_OK;
}

/* A text field, each change-time mark in s written as DIRECT_TIME, its
 * place noted. */
static int copy_field_marked(pa_buf *b, const char *s, struct load_marks *m)
{
    const char *at;
    size_t len_at;
    int rc = copybin_begin_field(b, &len_at);

    for(at = strstr(s, CHANGE_TIME_VALUE); !rc && at; at = strstr(s, CHANGE_TIME_VALUE)) {
        rc = pa_buf_add(b, s, (size_t)(at - s));
        if(!rc)
            rc = load_mark_add(m, b->len, MARK_TEXT);
        if(!rc)
            rc = pa_buf_add(b, DIRECT_TIME, 24);
        s = at + strlen(CHANGE_TIME_VALUE);
    }
    if(!rc)
        rc = pa_buf_addstr(b, s);
    if(!rc)
        copybin_end_field(b, len_at);
    return rc;
}

/* The hash (SHA-256) of a line as loaded, and of how it was read: a new
 * extraction makes every line count as changed once. */
static int hash_line(const char *s, size_t n, unsigned char out[32])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, FHIRLOAD_FACTS_VERSION, strlen(FHIRLOAD_FACTS_VERSION)) &&
             EVP_DigestUpdate(ctx, s, n) && EVP_DigestFinal_ex(ctx, md, &len) && len == 32;

    EVP_MD_CTX_free(ctx);
    if(ok)
        memcpy(out, md, 32);
    return ok ? PA_OK : PA_ENOMEM;
}

/* Notes a (type, id) in the batch's key set (type "npi": an NPI, which the
 * directory keys by); a repeat of a resource (or a collision of hashes,
 * which costs only the sort) marks the batch. */
static void batch_key(load_ctx *l, const char *type, const char *id)
{
    const size_t mask = sizeof(l->batch_keys) / sizeof(l->batch_keys[0]) - 1;
    uint64_t h = 1469598103934665603ULL;
    const char *p;
    size_t i;

    for(p = type; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ '/') * 1099511628211ULL;
    for(p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h |= 1; /* 0 is an empty slot */
    for(i = (size_t)(h >> 20) & mask; l->batch_keys[i]; i = (i + 1) & mask) {
        if(l->batch_keys[i] == h) {
            if(strcmp(type, "npi"))
                l->batch_repeats = 1;
            return;
        }
    }
    l->batch_keys[i] = h;
}

_Static_assert(sizeof(((load_ctx *)0)->batch_keys) / sizeof(uint64_t) >= 2 * 2 * BATCH_ROWS,
               "the batch key set holds twice a batch's resources and NPIs");

/* The compact source line with its meta.lastUpdated replaced by the mark,
 * when that value appears once in it; NULL otherwise (to serialize). */
static char *mark_change_time(const char *line, const char *value)
{
    char needle[PA_TS_LEN + 32];
    const char *at, *next;
    char *out;
    size_t nlen, mlen = strlen(CHANGE_TIME_MARK), pre, rest;

    snprintf(needle, sizeof(needle), "\"lastUpdated\":\"%s\"", value);
    nlen = strlen(needle);
    at = strstr(line, needle);
    next = at ? strstr(at + 1, needle) : NULL;
    if(!at || next)
        return NULL;
    pre = (size_t)(at - line);
    rest = strlen(at + nlen) + 1;
    out = malloc(pre + mlen + rest);
    if(!out)
        return NULL;
    memcpy(out, line, pre);
    memcpy(out + pre, CHANGE_TIME_MARK, mlen);
    memcpy(out + pre + mlen, at + nlen, rest);
    return out;
}

/* What a row of the batch holds besides the extracted facts. */
struct row {
    const char *type, *id;
    const char *json;   /* with the change-time mark */
    const char *nonfin; /* NULL but for an ExplanationOfBenefit */
    unsigned char hash[32];
    int directory;
};

/* The facts' columns: hash, tokens, refs, dates. */
static int add_facts(pa_buf *b, const struct row *r, const fhirload_facts *f)
{
    int rc = copybin_text(b, (const char *)r->hash, sizeof(r->hash));

    if(!rc)
        rc = copybin_text_array(b, pa_buf_str(&f->tokens));
    if(!rc)
        rc = copybin_text_array(b, pa_buf_str(&f->refs));
    if(!rc)
        rc = copybin_time(b, f->clin_start);
    if(!rc)
        rc = copybin_time(b, f->clin_end);
    if(!rc)
        rc = copybin_time(b, f->created);
    return rc;
}

/* A row of load_stage: seq, type, id, patient, json, non-financial json,
 * the facts, directory. */
static int add_staged_row(load_ctx *l, const struct row *r, const fhirload_facts *f)
{
    pa_buf *b = &l->batch;
    int rc = copybin_row(b, 13);

    if(!rc)
        rc = copybin_int8(b, ++l->seq);
    if(!rc)
        rc = copybin_str(b, r->type);
    if(!rc)
        rc = copybin_str(b, r->id);
    if(!rc)
        rc = copybin_opt(b, f->patient_id);
    if(!rc)
        rc = copybin_str(b, r->json);
    if(!rc)
        rc = r->nonfin ? copybin_str(b, r->nonfin) : copybin_null(b);
    if(!rc)
        rc = add_facts(b, r, f);
    if(!rc)
        rc = copybin_bool(b, r->directory);
    return rc;
}

/* A row for resource itself (DIRECT_COLUMNS), its change time a
 * placeholder; a Patient, Coverage, Practitioner or Organization also in
 * the derive buffer. */
static int add_direct_row(load_ctx *l, const struct row *r, const fhirload_facts *f)
{
    pa_buf *b = &l->batch;
    int rc = copybin_row(b, 12);

    if(!rc)
        rc = copybin_str(b, r->type);
    if(!rc)
        rc = copybin_str(b, r->id);
    if(!rc)
        rc = copybin_opt(b, f->patient_id);
    if(!rc)
        rc = copybin_int8(b, 0);
    if(!rc)
        rc = load_mark_add(&l->marks, b->len - 8, MARK_BINARY);
    if(!rc)
        rc = copy_field_marked(b, r->json, &l->marks);
    if(!rc)
        rc = r->nonfin ? copy_field_marked(b, r->nonfin, &l->marks) : copybin_null(b);
    if(!rc)
        rc = add_facts(b, r, f);
    if(!rc && (!strcmp(r->type, "Patient") || !strcmp(r->type, "Coverage") || !strcmp(r->type, "Practitioner") ||
               !strcmp(r->type, "Organization"))) {
        rc = copybin_row(&l->derive, 5);
        if(!rc)
            rc = copybin_str(&l->derive, r->type);
        if(!rc)
            rc = copybin_str(&l->derive, r->id);
        if(!rc)
            rc = copybin_opt(&l->derive, f->patient_id);
        if(!rc)
            rc = copybin_bool(&l->derive, r->directory);
        if(!rc)
            rc = copybin_str(&l->derive, r->json);
    }
    return rc;
}

/* Adds a row to the batch: json (with the change-time mark), and for an
 * ExplanationOfBenefit its non-financial form; directory whether its NPI
 * may enter the provider directory. */
static int stage_row(load_ctx *l, const pa_fhir_type *t, const char *id, const char *json, const char *nonfin,
                     const fhirload_facts *f, int directory, const char *file, long lineno, pa_err *err)
{
    struct row row;
    size_t batch_len = l->batch.len, derive_len = l->derive.len, marks = l->marks.n;
    int rc;

    if(hash_line(json, strlen(json), row.hash))
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    if(l->batch_rows == 0) {
        pa_strlcpy(l->batch_file, file, sizeof(l->batch_file));
        l->batch_first_line = lineno;
        l->batch_direct = l->direct;
    }
    /* a batch goes on across files */
    if(strcmp(l->batch_last_file, file))
        pa_strlcpy(l->batch_last_file, file, sizeof(l->batch_last_file));
    l->batch_last_line = lineno;
    batch_key(l, t->name, id);
    row.type = t->name;
    row.id = id;
    row.json = json;
    row.nonfin = nonfin;
    row.directory = directory;
    rc = l->batch_direct ? add_direct_row(l, &row, f) : add_staged_row(l, &row, f);
    if(rc) {
        /* none of the row stays */
        pa_buf_truncate(&l->batch, batch_len);
        pa_buf_truncate(&l->derive, derive_len);
        l->marks.n = marks;
        if(rc != PA_EINVAL)
            return pa_err_set(err, rc, "out of memory");
        load_report(l, file, lineno, "%s/%s: its dates or search tokens cannot be stored", t->name, id);
        return PA_OK;
    }
    l->batch_types[pa_fhir_type_index(t)]++;
    l->batch_rows++;
    if(l->batch_rows >= BATCH_ROWS || l->batch.len >= BATCH_BYTES)
        return load_batch_send(l, err);
    return PA_OK;
}

/* The tree as json-c writes it, in l->scratch, and its tape in l->tape. */
static int tape_of_tree(load_ctx *l, json_object *res, pa_err *err)
{
    const char *src = json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    int rc;

    pa_buf_reset(&l->scratch);
    rc = src ? pa_buf_addstr(&l->scratch, src) : PA_ENOMEM;
    if(!rc)
        rc = pa_json_tape_parse(l->scratch.data, l->scratch.len, &l->tape, err);
    return rc ? pa_err_set(err, PA_ENOMEM, "out of memory") : PA_OK;
}

/* Adds one checked resource to the batch: the text read (src, with its
 * tape in l->tape) given the change-time mark as meta.lastUpdated, and an
 * ExplanationOfBenefit's non-financial form written from it.  line is
 * whether src is the resource's own line (compact, its keys as json-c
 * reads them): stored as it is when its lastUpdated is there once, else
 * res as json-c writes it. */
static int stage(load_ctx *l, json_object *res, const pa_fhir_type *t, const char *id, const char *src, int line,
                 int directory, const char *file, long lineno, pa_err *err)
{
    const char *json, *nonfin = NULL;
    char *marked = NULL;
    int rc = PA_OK;

    /* meta.lastUpdated is the change time the merge gives it; the source's
     * is not kept, and not hashed: a reload that differs only there changes
     * nothing */
    if(line && l->facts.last_updated[0])
        marked = mark_change_time(src, l->facts.last_updated);
    if(marked) {
        json = marked;
    }
    else {
        if(line) {
            rc = tape_of_tree(l, res, err);
            src = l->scratch.data;
        }
        pa_buf_reset(&l->stored);
        if(!rc && fhirload_with_last_updated(src, &l->tape, CHANGE_TIME_VALUE, &l->stored))
            rc = pa_err_set(err, PA_ENOMEM, "out of memory");
        json = l->stored.data;
    }
    if(!rc && !strcmp(t->name, "ExplanationOfBenefit")) {
        pa_buf_reset(&l->nonfin);
        if(fhirload_nonfinancial_text(src, &l->tape, CHANGE_TIME_VALUE, &l->nonfin))
            rc = pa_err_set(err, PA_ENOMEM, "out of memory");
        nonfin = l->nonfin.data;
    }
    if(!rc)
        rc = stage_row(l, t, id, json, nonfin, &l->facts, directory, file, lineno, err);
    free(marked);
    return rc;
}

/* The DELETE entries of a transaction or batch Bundle: deleted now, after
 * what came before (the other entries are bundle.c's). */
int load_bundle_deletes(load_ctx *l, json_object *bundle, const char *file, long lineno, pa_err *err)
{
    json_object *entries, *types, *ids;
    size_t i;
    int rc;

    if(!json_object_object_get_ex(bundle, "entry", &entries) || !json_object_is_type(entries, json_type_array))
        return PA_OK;
    types = json_object_new_array();
    ids = json_object_new_array();
    if(!types || !ids) {
        json_object_put(types);
        json_object_put(ids);
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    for(i = 0; i < json_object_array_length(entries); i++) {
        json_object *req;
        const char *method = NULL, *url = NULL;
        char type[64], id[PA_FHIR_ID_MAX + 1];
        const char *slash;

        if(json_object_object_get_ex(json_object_array_get_idx(entries, i), "request", &req)) {
            method = json_object_get_string(json_object_object_get(req, "method"));
            url = json_object_get_string(json_object_object_get(req, "url"));
        }
        if(!method || strcmp(method, "DELETE"))
            continue;
        slash = url ? strchr(url, '/') : NULL;
        if(!slash || (size_t)(slash - url) >= sizeof(type) || pa_strlcpy(id, slash + 1, sizeof(id)) ||
           !pa_fhir_id_valid(id)) {
            load_report(l, file, lineno, "Bundle entry %zu: a DELETE of '%.80s', not of Type/id", i, url ? url : "");
            continue;
        }
        snprintf(type, sizeof(type), "%.*s", (int)(slash - url), url);
        if(!pa_fhir_type_find(type)) {
            load_report(l, file, lineno, "Bundle entry %zu deletes a type this server does not keep: '%s'", i, type);
            continue;
        }
        if(json_object_array_add(types, json_object_new_string(type)) ||
           json_object_array_add(ids, json_object_new_string(id))) {
            json_object_put(types);
            json_object_put(ids);
            return pa_err_set(err, PA_ENOMEM, "out of memory");
        }
    }
    /* what came before is stored first; a Bundle without DELETEs waits for nothing */
    rc = json_object_array_length(types) ? load_flush(l, err) : PA_OK;
    if(!rc && json_object_array_length(types)) {
        /* tombstones from now on: what is loaded again must lift them */
        l->direct = 0;
        /* JSON arrays of ids ([A-Za-z0-9.-]) read as Postgres arrays once the
         * brackets become braces */
        char *t = strdup(json_object_to_json_string_ext(types, JSON_C_TO_STRING_PLAIN));
        char *d = strdup(json_object_to_json_string_ext(ids, JSON_C_TO_STRING_PLAIN));
        long n = 0;

        if(!t || !d) {
            rc = pa_err_set(err, PA_ENOMEM, "out of memory");
        }
        else {
            t[0] = d[0] = '{';
            t[strlen(t) - 1] = d[strlen(d) - 1] = '}';
            if(load_delete(l->db, t, d, &n, err) == PA_OK)
                l->deleted += n;
            else
                load_report(l, file, lineno, "the deletes failed: %s", err->msg);
        }
        free(t);
        free(d);
    }
    json_object_put(types);
    json_object_put(ids);
    return rc;
}

/* The checks and facts of a resource of type t with id, read from its text
 * through the tape of it in l->tape: its NPI (*directory: whether it may
 * enter the provider directory) and the facts, into l->facts.  0, or 1
 * when it is refused (reported). */
static int resource_checks(load_ctx *l, const pa_fhir_type *t, const char *id, const char *text, int *directory,
                           const char *file, long lineno, pa_err *err)
{
    char npi[64];

    *directory = 1;
    if(!fhirload_npi(text, &l->tape, npi, sizeof(npi)))
        npi[0] = '\0';
    /* batches stored at once must not both write its directory entry */
    if(npi[0])
        batch_key(l, "npi", npi);
    if(npi[0] && !pa_npi_valid(npi)) {
        /* kept, so that what references it is whole; but no directory entry */
        load_warn(l, file, lineno, "%s/%s: NPI '%.20s' fails its check digit: stored, not in the provider directory",
                  t->name, id, npi);
        *directory = 0;
    }
    if(fhirload_extract(text, &l->tape, t, &l->facts, err)) {
        load_report(l, file, lineno, "%s/%s: %s", t->name, id, err->msg);
        pa_err_clear(err);
        return 1;
    }
    return 0;
}

/* Checks a parsed resource and stages it (a Group waits for the end, a
 * Bundle is bundle.c's); text[0..n) is its line when it was one, taped
 * whether l->tape already holds that line's tape. */
static int load_tree(load_ctx *l, json_object *res, const char *text, size_t n, int taped, const char *file,
                     long lineno, pa_err *err)
{
    const char *rt, *id;
    const pa_fhir_type *t;
    int rc = PA_OK, directory = 1;

    if(!json_object_is_type(res, json_type_object)) {
        load_report(l, file, lineno, "not a JSON object");
        goto out;
    }
    rt = json_object_get_string(json_object_object_get(res, "resourceType"));
    if(!rt) {
        load_report(l, file, lineno, "no resourceType");
        goto out;
    }
    if(!strcmp(rt, "Bundle")) {
        rc = load_bundle(l, res, file, lineno, err);
        goto out;
    }
    if(!strcmp(rt, "Group")) {
        rc = load_group_defer(l, res, file, lineno);
        res = NULL; /* kept for after the resources */
        goto out;
    }
    t = pa_fhir_type_find(rt);
    if(!t) {
        load_skip(l, rt, file, lineno);
        goto out;
    }
    id = json_object_get_string(json_object_object_get(res, "id"));
    if(!id || !pa_fhir_id_valid(id)) {
        load_report(l, file, lineno, "%s without a valid id", rt);
        goto out;
    }
    /* read through the tape of the line itself when it can be stored as it
     * is (compact, its keys as json-c's tree has them: none twice, none
     * escaped); else of the tree as json-c writes it */
    if(text && !taped && pa_json_tape_parse(text, n, &l->tape, err)) {
        pa_err_clear(err);
        text = NULL;
    }
    if(text && (l->tape.spaced || l->tape.dup_keys || l->tape.odd_keys))
        text = NULL;
    if(!text) {
        rc = tape_of_tree(l, res, err);
        if(rc)
            goto out;
    }
    if(resource_checks(l, t, id, text ? text : l->scratch.data, &directory, file, lineno, err))
        goto out;
    rc = stage(l, res, t, id, text ? text : l->scratch.data, text != NULL, directory, file, lineno, err);
out:
    json_object_put(res);
    return rc;
}

int load_object(load_ctx *l, json_object *res, const char *text, size_t n, const char *file, long lineno, pa_err *err)
{
    return load_tree(l, res, text, n, 0, file, lineno, err);
}

/* A line loaded from its text and tape (l->tape) alone, without a tree:
 * what most lines are (compact, a stored type with its id and
 * meta.lastUpdated, keys that json-c reads as written); an
 * ExplanationOfBenefit's non-financial form is written from them too.
 * 1 when it is one (loaded or refused), 0 when the tree must do it. */
static int load_text(load_ctx *l, const char *line, pa_err *err, int *rc, const char *file, long lineno)
{
    const pa_json_tape *tp = &l->tape;
    char type[64], id[PA_FHIR_ID_MAX + 2], lu[PA_TS_LEN];
    const pa_fhir_type *t;
    char *marked;
    size_t meta;
    int directory;

    if(tp->n[0].type != '{' || tp->spaced || tp->dup_keys || tp->odd_keys ||
       pa_json_node_string(tp, line, pa_json_member(tp, line, 0, "resourceType"), type, sizeof(type)))
        return 0;
    t = pa_fhir_type_find(type);
    if(!t || pa_json_node_string(tp, line, pa_json_member(tp, line, 0, "id"), id, sizeof(id)) || !pa_fhir_id_valid(id))
        return 0;
    meta = pa_json_member(tp, line, 0, "meta");
    if(pa_json_node_string(tp, line, pa_json_member(tp, line, meta, "lastUpdated"), lu, sizeof(lu)))
        return 0;
    /* the line with its change time marked, when its lastUpdated is there once */
    marked = mark_change_time(line, lu);
    if(!marked)
        return 0;
    *rc = PA_OK;
    if(!resource_checks(l, t, id, line, &directory, file, lineno, err)) {
        const char *nonfin = NULL;

        if(!strcmp(type, "ExplanationOfBenefit")) {
            pa_buf_reset(&l->nonfin);
            *rc = fhirload_nonfinancial_text(line, tp, CHANGE_TIME_VALUE, &l->nonfin);
            nonfin = l->nonfin.data;
        }
        if(*rc)
            *rc = pa_err_set(err, PA_ENOMEM, "out of memory");
        else
            *rc = stage_row(l, t, id, marked, nonfin, &l->facts, directory, file, lineno, err);
    }
    free(marked);
    return 1;
}

/* Checks one line holding one whole JSON text and loads it; *incomplete
 * when it is the start of one that goes on. */
static int load_line(load_ctx *l, json_tokener *tok, const char *line, size_t n, const char *file, long lineno,
                     int *incomplete, pa_err *err)
{
    json_object *res;
    int rc;

    /* strictly first (UTF-8, no \u0000, nothing after it): PostgreSQL refuses
     * such a line only when its whole batch is stored, losing the good ones */
    rc = pa_json_tape_parse(line, n, &l->tape, err);
    if(rc == PA_ENOMEM)
        return rc;
    if(rc) {
        pa_err_clear(err);
        /* the first line of a text over several lines */
        *incomplete = pa_json_prefix(line, n);
        if(*incomplete)
            return PA_OK;
        pa_json_walk(line, n, NULL, NULL, err);
        load_report(l, file, lineno, "%s", err->msg);
        pa_err_clear(err);
        return PA_OK;
    }
    l->seen++;
    if(load_text(l, line, err, &rc, file, lineno))
        return rc;
    json_tokener_reset(tok);
    res = json_tokener_parse_ex(tok, line, (int)n);
    if(!res || json_tokener_get_error(tok) != json_tokener_success || json_tokener_get_parse_end(tok) != n) {
        enum json_tokener_error je = json_tokener_get_error(tok);

        l->seen--;
        load_report(l, file, lineno, "not valid JSON: %s",
                    res                           ? "text after the resource"
                    : je == json_tokener_continue ? "the line ends before the JSON does"
                                                  : json_tokener_error_desc(je));
        json_object_put(res);
        return PA_OK;
    }
    return load_tree(l, res, line, n, 1, file, lineno, err);
}

/* Reads one line of any length up to PA_LOAD_MAX_LINE; 1 got one, 0 at end,
 * -1 too long (the rest of it is skipped). */
static int read_line(gzFile gz, pa_buf *line)
{
    char chunk[65536];
    int too_long = 0;

    pa_buf_reset(line);
    while(gzgets(gz, chunk, sizeof(chunk))) {
        size_t n = strlen(chunk);
        int done = n && chunk[n - 1] == '\n';

        if(!too_long && pa_buf_add(line, chunk, n))
            too_long = 1;
        if(done)
            break;
    }
    if(too_long)
        return -1;
    return line->len > 0 ? 1 : 0;
}

/* A JSON text over several lines (a pretty-printed resource or Bundle),
 * fed to its own tokener line by line. */
struct doc {
    json_tokener *tok;
    pa_buf text;
    long first_line; /* 0: none under way */
    int skipping;    /* after a broken one: its lines up to the next that starts a value */
};

/* Feeds one more line of the text under way; PA_OK whether or not it ended
 * there, an error only when loading what it held failed. */
static int doc_feed(load_ctx *l, struct doc *d, const char *line, size_t n, const char *file, long lineno, int *reread,
                    pa_err *err)
{
    size_t from = d->text.len;
    json_object *res;
    enum json_tokener_error je;
    long first = d->first_line;

    if(pa_buf_add(&d->text, line, n) || pa_buf_add(&d->text, "\n", 1)) {
        load_report(l, file, first, "a JSON text over %d MB: the rest of the file was not read",
                    PA_LOAD_MAX_DOC / 1048576);
        d->first_line = 0;
        return PA_EIO;
    }
    res = json_tokener_parse_ex(d->tok, d->text.data + from, (int)(d->text.len - from));
    je = json_tokener_get_error(d->tok);
    if(je == json_tokener_continue)
        return PA_OK;
    d->first_line = 0;
    if(je != json_tokener_success || json_tokener_get_parse_end(d->tok) + from < d->text.len - 1) {
        /* a line cut short, then the next line; or a text broken at this
         * line: a line that starts a value is read again, the rest of the
         * broken text is left */
        if(lineno == first + 1)
            load_report(l, file, first, "not valid JSON: the line ends before the JSON does");
        else
            load_report(l, file, first, "not valid JSON: the text that starts here breaks on line %ld: %s", lineno,
                        res ? "text after the value" : json_tokener_error_desc(je));
        json_object_put(res);
        *reread = line[0] == '{' || line[0] == '[';
        d->skipping = !*reread;
        return PA_OK;
    }
    l->seen++;
    if(pa_json_walk(d->text.data, d->text.len, NULL, NULL, err)) {
        load_report(l, file, first, "%s", err->msg);
        pa_err_clear(err);
        json_object_put(res);
        return PA_OK;
    }
    return load_object(l, res, NULL, 0, file, first, err);
}

static int load_ndjson(load_ctx *l, const char *file, pa_err *err)
{
    gzFile gz = gzopen(file, "rb");
    json_tokener *tok = json_tokener_new_ex(64);
    struct doc d = { json_tokener_new_ex(64), { 0 }, 0, 0 };
    pa_buf line;
    long lineno = 0;
    int rc = PA_OK;
    int got = 1, reread = 0;

    pa_buf_init(&line, PA_LOAD_MAX_LINE);
    pa_buf_init(&d.text, PA_LOAD_MAX_DOC);
    if(!gz || !tok || !d.tok) {
        rc = pa_err_set(err, PA_EIO, "cannot read %s: %s", file, strerror(errno));
        goto out;
    }
    gzbuffer(gz, 256 * 1024);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_tokener_set_flags(d.tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    while(!rc) {
        size_t n;
        int incomplete = 0;

        if(!reread) {
            got = read_line(gz, &line);
            if(got == 0)
                break;
            lineno++;
        }
        reread = 0;
        if(got < 0) {
            load_report(l, file, lineno, "longer than %d bytes", PA_LOAD_MAX_LINE);
            continue;
        }
        n = line.len;
        while(n && (line.data[n - 1] == '\n' || line.data[n - 1] == '\r' || line.data[n - 1] == ' '))
            n--;
        if(n == 0)
            continue;
        line.data[n] = '\0';
        line.len = n; /* as it is read again */
        if(d.skipping && line.data[0] != '{' && line.data[0] != '[')
            continue;
        d.skipping = 0;
        if(d.first_line) {
            rc = doc_feed(l, &d, line.data, n, file, lineno, &reread, err);
            if(rc == PA_EIO) {
                rc = PA_OK;
                break;
            }
        }
        else {
            rc = load_line(l, tok, line.data, n, file, lineno, &incomplete, err);
            if(!rc && incomplete) {
                /* the start of a text over several lines */
                json_tokener_reset(d.tok);
                pa_buf_reset(&d.text);
                d.first_line = lineno;
                rc = doc_feed(l, &d, line.data, n, file, lineno, &reread, err);
            }
        }
        /* where the file is (a system call): now and then */
        if((lineno & 1023) == 0) {
            l->bytes_current = gzoffset(gz);
            load_progress(l, file, 0);
        }
    }
    l->bytes_current = gzoffset(gz);
    if(d.first_line)
        load_report(l, file, d.first_line, "not valid JSON: the text ends before the JSON does");
out:
    if(gz)
        gzclose(gz);
    if(tok)
        json_tokener_free(tok);
    if(d.tok)
        json_tokener_free(d.tok);
    pa_buf_free(&d.text);
    pa_buf_free(&line);
    return rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && !strcmp(s + n - k, suffix);
}

static int is_fhir_file(const char *name)
{
    return ends_with(name, ".ndjson") || ends_with(name, ".ndjson.gz") || ends_with(name, ".jsonl") ||
           ends_with(name, ".json") || ends_with(name, ".json.gz") || ends_with(name, ".jsonl.gz");
}

#define MAX_DEPTH 32

/* A file list being collected. */
struct file_list {
    char **files;
    size_t n;
};

static int add_file(struct file_list *fl, const char *path)
{
    if(fl->n == MAX_FILES) {
        fprintf(stderr, "pa-admin: more than %d files to load: load the folders in parts\n", MAX_FILES);
        return -1;
    }
    fl->files[fl->n] = strdup(path);
    if(!fl->files[fl->n]) {
        fprintf(stderr, "pa-admin: out of memory\n");
        return -1;
    }
    fl->n++;
    return 0;
}

/* Adds a folder's loadable files, its subfolders' in turn, each folder's
 * entries in name order (hidden ones skipped). */
static int collect_dir(const char *dir, struct file_list *fl, int depth)
{
    struct dirent **entries = NULL;
    int n, i, rc = 0;

    if(depth > MAX_DEPTH) {
        fprintf(stderr, "pa-admin: %s: folders nested more than %d deep\n", dir, MAX_DEPTH);
        return -1;
    }
    n = scandir(dir, &entries, NULL, alphasort);
    if(n < 0) {
        fprintf(stderr, "pa-admin: cannot read %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for(i = 0; i < n; i++) {
        const char *name = entries[i]->d_name;
        char path[4096];
        struct stat st;

        if(!rc && name[0] != '.') {
            if(snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
                fprintf(stderr, "pa-admin: %s/%s: the path is too long\n", dir, name);
                rc = -1;
            }
            else if(stat(path, &st)) {
                fprintf(stderr, "pa-admin: cannot read %s: %s\n", path, strerror(errno));
                rc = -1;
            }
            else if(S_ISDIR(st.st_mode))
                rc = collect_dir(path, fl, depth + 1);
            else if(is_fhir_file(name) || ends_with(name, ".csv"))
                rc = add_file(fl, path);
        }
        free(entries[i]);
    }
    free(entries);
    return rc;
}

/* Expands the arguments into files: a folder gives its loadable files and
 * its subfolders', in name order. */
static int collect(char **args, int nargs, char ***out, size_t *n)
{
    struct file_list fl = { calloc(MAX_FILES, sizeof(char *)), 0 };
    int i;

    if(!fl.files)
        return -1;
    for(i = 0; i < nargs; i++) {
        struct stat st;

        if(stat(args[i], &st)) {
            fprintf(stderr, "pa-admin: cannot read %s: %s\n", args[i], strerror(errno));
            goto fail;
        }
        if(S_ISDIR(st.st_mode) ? collect_dir(args[i], &fl, 0) : add_file(&fl, args[i]))
            goto fail;
    }
    *out = fl.files;
    *n = fl.n;
    return 0;
fail:
    while(fl.n)
        free(fl.files[--fl.n]);
    free(fl.files);
    return -1;
}

static long long file_bytes(char **files, size_t n)
{
    long long total = 0;
    size_t i;

    for(i = 0; i < n; i++) {
        struct stat st;

        if(!stat(files[i], &st))
            total += st.st_size;
    }
    return total;
}

static int load_usage(void)
{
    fprintf(stderr, "usage: pa-admin load [--errors FILE] FILE|DIR...\n"
                    "  FHIR NDJSON or JSON (.ndjson, .json, .jsonl, and .gz): resources, Bundles (transaction,\n"
                    "  batch, collection, searchset) and PDex Groups; CSV feeds (.csv).  A folder gives its\n"
                    "  files and its subfolders', in name order.  --errors FILE lists every refused line.\n");
    return 2;
}

int load_open(load_ctx *l, PGconn *db, FILE *errors, pa_err *err)
{
    memset(l, 0, sizeof(*l));
    l->entry = -1;
    l->db = db;
    l->errors = errors;
    pa_buf_init(&l->batch, BATCH_BYTES + PA_LOAD_MAX_LINE * 3);
    pa_buf_init(&l->derive, BATCH_BYTES + PA_LOAD_MAX_LINE * 3);
    fhirload_facts_init(&l->facts);
    pa_buf_init(&l->scratch, PA_LOAD_MAX_DOC);
    pa_buf_init(&l->stored, PA_LOAD_MAX_DOC);
    pa_buf_init(&l->nonfin, PA_LOAD_MAX_DOC);
    l->tty = isatty(2);
    l->started = pa_mono_ms();
    l->last_progress = l->started;
    if(load_senders_start(l, err) || load_groups_init(l, err))
        return err->code;
    /* into an empty store, rows go straight in (until one meets a resource
     * stored already) */
    {
        PGresult *res = pa_db_query(db, err,
                                    "SELECT NOT EXISTS (SELECT 1 FROM resource)"
                                    " AND NOT EXISTS (SELECT 1 FROM resource_deleted)",
                                    0, NULL);

        if(!res)
            return err->code;
        l->direct = !strcmp(PQgetvalue(res, 0, 0), "t");
        PQclear(res);
    }
    return PA_OK;
}

int load_file(load_ctx *l, const char *path, pa_err *err)
{
    int rc;

    l->bytes_current = 0;
    if(ends_with(path, ".csv")) {
        /* a feed's statements use the connection: what is staged goes first */
        rc = load_flush(l, err);
        if(!rc)
            rc = load_csv(l, path, err);
    }
    else
        rc = load_ndjson(l, path, err);
    l->bytes_done += l->bytes_current;
    return rc;
}

int load_finish(load_ctx *l, pa_err *err)
{
    int rc = load_flush(l, err);

    if(!rc)
        rc = load_bundles_finish(l, err);

    if(!rc)
        rc = load_groups_flush(l, err);
    return rc;
}

void load_close(load_ctx *l)
{
    pa_err err;

    /* what a failed load left in flight is stored or reported first */
    load_flush(l, &err);
    load_senders_stop(l);
    load_groups_free(l);
    load_bundles_free(l);
    load_summary_free(l);
    pa_buf_free(&l->batch);
    pa_buf_free(&l->derive);
    free(l->marks.at);
    fhirload_facts_free(&l->facts);
    pa_json_tape_free(&l->tape);
    pa_buf_free(&l->scratch);
    pa_buf_free(&l->stored);
    pa_buf_free(&l->nonfin);
}

/* Reads every file: resources, then the Bundle entries that waited for
 * them, then the Groups that refer to them, then CSV feeds. */
static int load_files(load_ctx *l, char **files, size_t nfiles, pa_err *err)
{
    size_t i;
    int rc = PA_OK;

    for(i = 0; !rc && i < nfiles; i++)
        if(!ends_with(files[i], ".csv"))
            rc = load_file(l, files[i], err);
    if(!rc)
        rc = load_finish(l, err);
    for(i = 0; !rc && i < nfiles; i++)
        if(ends_with(files[i], ".csv"))
            rc = load_file(l, files[i], err);
    return rc;
}

int cmd_load(int argc, char **argv)
{
    load_ctx l;
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    FILE *errors_out = NULL;
    char **files = NULL;
    const char *errors = NULL;
    size_t nfiles = 0;
    size_t i;
    pa_err err;
    int ret = 2, first = 1, opened = 0;

    while(first < argc && argv[first][0] == '-') {
        if(!strcmp(argv[first], "--errors") && first + 1 < argc)
            errors = argv[first + 1];
        else
            return load_usage();
        first += 2;
    }
    if(first == argc)
        return load_usage();
    if(collect(argv + first, argc - first, &files, &nfiles))
        return 2;
    if(errors) {
        errors_out = fopen(errors, "w");
        if(!errors_out) {
            fprintf(stderr, "pa-admin: cannot write %s: %s\n", errors, strerror(errno));
            goto out;
        }
    }
    if(admin_connect(&cfg, &db))
        goto out;
    pa_err_clear(&err);
    opened = 1;
    if(load_open(&l, db, errors_out, &err)) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        goto out;
    }
    l.bytes_total = file_bytes(files, nfiles);
    if(load_files(&l, files, nfiles, &err)) {
        load_summary(&l, stderr);
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        goto out;
    }
    load_summary(&l, stdout);
    ret = l.rejected ? 1 : 0;
out:
    if(opened)
        load_close(&l);
    if(errors_out && fclose(errors_out)) {
        fprintf(stderr, "pa-admin: cannot write %s: %s\n", errors, strerror(errno));
        ret = 2;
    }
    for(i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    if(db)
        PQfinish(db);
    pa_config_free(cfg);
    return ret;
}
