/*
 * What the loader reads from a payer's resources (fhirload.h).
 */
#include "fhirload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_pgarray.h"
#include "pa_util.h"

#define TOKENS_MAX (1024 * 1024)

/* Where each type keeps its clinical / service dates: the first path
 * present wins ("|" separates alternatives). */
struct date_rule {
    const char *type;
    const char *start;
    const char *end;
    const char *created;
};

static const struct date_rule date_rules[] = {
    { "Observation", "effectiveDateTime|effectivePeriod.start|effectiveInstant|issued", "effectivePeriod.end", NULL },
    { "Condition", "onsetDateTime|onsetPeriod.start|recordedDate", "abatementDateTime|onsetPeriod.end",
      "recordedDate" },
    { "ExplanationOfBenefit", "billablePeriod.start", "billablePeriod.end", "created" },
    { "Encounter", "period.start", "period.end", NULL },
    { "MedicationRequest", "authoredOn", NULL, "authoredOn" },
    { "Procedure", "performedDateTime|performedPeriod.start", "performedPeriod.end", NULL },
    { "Immunization", "occurrenceDateTime", NULL, "recorded" },
    { "Coverage", "period.start", "period.end", NULL },
    { "AllergyIntolerance", "onsetDateTime|recordedDate", NULL, "recordedDate" },
    { "DiagnosticReport", "effectiveDateTime|effectivePeriod.start|issued", "effectivePeriod.end", "issued" },
    { "DocumentReference", "context.period.start|date", "context.period.end", "date" },
    { "CarePlan", "period.start|created", "period.end", "created" },
    { "CareTeam", "period.start", "period.end", NULL },
    { "Goal", "startDate", NULL, NULL },
    { "MedicationDispense", "whenHandedOver|whenPrepared", NULL, "whenPrepared" },
    { "ServiceRequest", "occurrenceDateTime|occurrencePeriod.start|authoredOn", "occurrencePeriod.end", "authoredOn" },
    { "Specimen", "collection.collectedDateTime|collection.collectedPeriod.start|receivedTime",
      "collection.collectedPeriod.end", "receivedTime" },
    { "QuestionnaireResponse", "authored", NULL, "authored" },
};

void fhirload_facts_init(fhirload_facts *f)
{
    memset(f, 0, sizeof(*f));
    pa_buf_init(&f->tokens, TOKENS_MAX);
    pa_buf_init(&f->refs, TOKENS_MAX);
}

void fhirload_facts_free(fhirload_facts *f)
{
    if(!f)
        return;
    pa_buf_free(&f->tokens);
    pa_buf_free(&f->refs);
}

/* A text and its tape, which the facts are read from. */
struct doc {
    const char *text;
    const pa_json_tape *t;
};

/* The longest string value the facts read: a longer one is read as absent
 * (a reference, a code), or as not a date. */
#define STR_MAX 4096

typedef void (*visit_fn)(const struct doc *d, size_t v, void *ctx);

static int is_type(const struct doc *d, size_t i, char type)
{
    return i && i < d->t->count && d->t->n[i].type == type;
}

/* Node i's string value into out (STR_MAX bytes): 0, -1 none, -2 too long
 * (out then holds nothing). */
static int str_of(const struct doc *d, size_t i, char out[STR_MAX])
{
    int rc = pa_json_node_string(d->t, d->text, i, out, STR_MAX);

    if(rc)
        out[0] = '\0';
    return rc;
}

/* The string value of object i's member key into out, or NULL. */
static const char *member_str(const struct doc *d, size_t i, const char *key, char out[STR_MAX])
{
    return str_of(d, pa_json_member(d->t, d->text, i, key), out) ? NULL : out;
}

/* Calls fn for every value at a dotted path from node o, stepping into
 * arrays (an array met on the way is stepped into with the same path). */
static void walk(const struct doc *d, size_t o, const char *path, visit_fn fn, void *ctx)
{
    char key[64];
    const char *dot = strchr(path, '.');
    size_t n = dot ? (size_t)(dot - path) : strlen(path);
    const pa_json_node *nodes = d->t->n;
    size_t v, c;

    if(n >= sizeof(key) || o >= d->t->count)
        return;
    if(nodes[o].type == '[') {
        for(c = o + 1; c < nodes[o].end; c = nodes[c].end)
            walk(d, c, path, fn, ctx);
        return;
    }
    memcpy(key, path, n);
    key[n] = '\0';
    v = pa_json_member(d->t, d->text, o, key);
    if(!v)
        return;
    if(dot) {
        walk(d, v, dot + 1, fn, ctx);
    }
    else if(nodes[v].type == '[') {
        for(c = v + 1; c < nodes[v].end; c = nodes[c].end)
            fn(d, c, ctx);
    }
    else {
        fn(d, v, ctx);
    }
}

static void first_string(const struct doc *d, size_t v, void *ctx)
{
    size_t *found = ctx;

    if(!*found && is_type(d, v, '"'))
        *found = v;
}

/* The first string value at any of the "|"-separated paths, into out:
 * 0, -1 none, -2 too long. */
static int first_at(const struct doc *d, const char *paths, char out[STR_MAX])
{
    char path[128];
    size_t found = 0;

    while(paths && *paths && !found) {
        size_t n = strcspn(paths, "|");

        if(n < sizeof(path)) {
            memcpy(path, paths, n);
            path[n] = '\0';
            walk(d, 0, path, first_string, &found);
        }
        paths += n;
        if(*paths == '|')
            paths++;
    }
    return found ? str_of(d, found, out) : -1;
}

/* field of the first element of o's array key whose system is system (an
 * Identifier's value, a Coding's code), or NULL. */
static const char *by_system(json_object *o, const char *key, const char *system, const char *field)
{
    json_object *list;
    size_t i;

    if(!json_object_object_get_ex(o, key, &list) || !json_object_is_type(list, json_type_array))
        return NULL;
    for(i = 0; i < json_object_array_length(list); i++) {
        json_object *e = json_object_array_get_idx(list, i);
        const char *sys = pa_json_str(e, "system");

        if(sys && !strcmp(sys, system))
            return pa_json_str(e, field);
    }
    return NULL;
}

const char *fhirload_npi(const char *text, const pa_json_tape *t, char *out, size_t size)
{
    struct doc d = { text, t };
    char sys[STR_MAX];
    size_t list = pa_json_member(t, text, 0, "identifier"), e;

    if(!is_type(&d, list, '['))
        return NULL;
    for(e = list + 1; e < t->n[list].end; e = t->n[e].end) {
        size_t v;

        if(!member_str(&d, e, "system", sys) || strcmp(sys, PA_NPI_SYSTEM))
            continue;
        v = pa_json_member(t, text, e, "value");
        if(!size || !is_type(&d, v, '"'))
            return NULL;
        if(pa_json_node_string(t, text, v, out, size)) {
            /* longer than out: its start as written, which no check digit passes */
            size_t n = t->n[v].len - 2 < size - 1 ? t->n[v].len - 2 : size - 1;

            memcpy(out, text + t->n[v].at + 1, n);
            out[n] = '\0';
        }
        return out;
    }
    return NULL;
}

struct tok_ctx {
    pa_buf *b;
    const char *param;
    pa_fhir_token_kind kind;
    int rc;
};

/* Appends "param=sys|code" (or "param=code" without sys) to the tokens. */
static int add_token(pa_buf *b, const char *param, const char *sys, const char *code)
{
    char item[2048];
    int n = sys ? snprintf(item, sizeof(item), "%s=%s|%s", param, sys, code)
                : snprintf(item, sizeof(item), "%s=%s", param, code);

    if(n < 0 || (size_t)n >= sizeof(item))
        return PA_ETOOBIG;
    return pa_pgarray_add(b, item);
}

static void add_coding(const struct doc *d, struct tok_ctx *c, size_t coding)
{
    char sys[STR_MAX], code[STR_MAX];
    int has_sys = str_of(d, pa_json_member(d->t, d->text, coding, "system"), sys);
    int has_code = str_of(d, pa_json_member(d->t, d->text, coding, "code"), code);

    if(has_code == -1 || c->rc)
        return;
    if(has_code == -2 || has_sys == -2) {
        c->rc = PA_ETOOBIG; /* too long for a token */
        return;
    }
    /* both forms: "code=sys|x" for system|code searches, "code=x" for any system */
    c->rc = add_token(c->b, c->param, has_sys == 0 ? sys : "", code);
    if(!c->rc)
        c->rc = add_token(c->b, c->param, NULL, code);
}

static void visit_token(const struct doc *d, size_t v, void *ctx)
{
    struct tok_ctx *c = ctx;
    char code[STR_MAX];
    size_t codings, e;
    int rc;

    if(c->kind == PA_FHIR_TOKEN_CODE) {
        rc = str_of(d, v, code);
        if(rc != -1 && !c->rc)
            c->rc = rc ? PA_ETOOBIG : add_token(c->b, c->param, NULL, code);
    }
    else if(c->kind == PA_FHIR_TOKEN_CODING) {
        add_coding(d, c, v);
    }
    else {
        codings = pa_json_member(d->t, d->text, v, "coding");
        if(is_type(d, codings, '['))
            for(e = codings + 1; e < d->t->n[codings].end; e = d->t->n[e].end)
                add_coding(d, c, e);
    }
}

static void find_patient_ref(const struct doc *d, size_t v, void *ctx)
{
    char *out = ctx, ref[STR_MAX];

    if(!out[0] && member_str(d, v, "reference", ref))
        pa_fhir_ref_id(ref, "Patient", out, PA_FHIR_ID_MAX + 1);
}

static int take_date(const struct doc *d, const char *paths, char out[PA_TS_LEN], const char *what, pa_err *err)
{
    char v[STR_MAX];
    int rc = paths ? first_at(d, paths, v) : -1;

    out[0] = '\0';
    if(rc == -2 || (rc == 0 && pa_fhir_date_ts(v, out)))
        return pa_err_set(err, PA_EINVAL, "%s '%.40s' is not a FHIR date", what, v);
    return PA_OK;
}

/* Notes every reference to a stored resource other than a Patient: to a
 * shared one, "ref=Type/id" in the search tokens (an export sends the shared
 * resources its data references; a match finds claims naming a provider);
 * to one of a compartment, "Type/id" in refs (an export names those its
 * date floor leaves out).  Once each.  Every member named "reference"
 * with a string value, however deep (the scan allows no deeper nesting
 * than this ever read). */
static int add_refs(const struct doc *d, fhirload_facts *f)
{
    static const char name[] = "\"reference\"";
    const pa_json_node *nodes = d->t->n;
    size_t i;
    int rc = PA_OK;

    for(i = 1; !rc && i < d->t->count; i++) {
        char ref[STR_MAX], type[64], id[PA_FHIR_ID_MAX + 1], item[160];
        const char *slash, *p;
        const pa_fhir_type *rt;
        pa_buf *list;
        int shared;

        if(nodes[i].type != '"' || nodes[i].key_len != sizeof(name) - 1 ||
           memcmp(d->text + nodes[i].key, name, sizeof(name) - 1) || str_of(d, i, ref))
            continue;
        /* Type/id, or an absolute URL ending in it */
        slash = strrchr(ref, '/');
        p = slash;
        while(p && p > ref && p[-1] != '/')
            p--;
        if(!slash || slash - p >= (long)sizeof(type))
            continue;
        snprintf(type, sizeof(type), "%.*s", (int)(slash - p), p);
        rt = strcmp(type, "Patient") ? pa_fhir_type_find(type) : NULL;
        if(!rt || pa_fhir_ref_id(ref, type, id, sizeof(id)))
            continue;
        shared = !rt->patient_path;
        /* quoted, as the array literal holds it: a resource often names
         * the same provider many times, and org-1 is not org-10 */
        snprintf(item, sizeof(item), shared ? "\"ref=%s/%s\"" : "\"%s/%s\"", type, id);
        list = shared ? &f->tokens : &f->refs;
        if(!strstr(pa_buf_str(list), item)) {
            item[strlen(item) - 1] = '\0';
            rc = pa_pgarray_add(list, item + 1);
        }
    }
    return rc;
}

int fhirload_extract(const char *text, const pa_json_tape *tape, const pa_fhir_type *t, fhirload_facts *f, pa_err *err)
{
    struct doc d = { text, tape };
    struct doc *res = &d;
    const pa_fhir_token_rule *rule;
    char lu[STR_MAX];
    size_t i;
    int rc;

    f->patient_id[0] = '\0';
    pa_buf_reset(&f->tokens);
    pa_buf_reset(&f->refs);
    if(!tape->count || tape->n[0].type != '{')
        return pa_err_set(err, PA_EINVAL, "not a JSON object");
    if(t->patient_path && !*t->patient_path) {
        char id[STR_MAX];

        pa_strlcpy(f->patient_id, member_str(&d, 0, "id", id) ? id : "", sizeof(f->patient_id));
    }
    else if(t->patient_path) {
        walk(&d, 0, t->patient_path, find_patient_ref, f->patient_id);
        if(!f->patient_id[0])
            return pa_err_set(err, PA_EINVAL, "%s needs a Patient reference in %s", t->name, t->patient_path);
    }
    f->last_updated[0] = '\0';
    rc = first_at(&d, "meta.lastUpdated", lu);
    if(rc != -1) {
        int64_t ms;

        if(rc || pa_parse_instant(lu, &ms))
            return pa_err_set(err, PA_EINVAL, "meta.lastUpdated '%.40s' is not an instant", lu);
        pa_strlcpy(f->last_updated, lu, sizeof(f->last_updated));
    }
    f->clin_start[0] = f->clin_end[0] = f->created[0] = '\0';
    for(i = 0; i < sizeof(date_rules) / sizeof(date_rules[0]); i++) {
        if(strcmp(date_rules[i].type, t->name))
            continue;
        rc = take_date(res, date_rules[i].start, f->clin_start, "the clinical date", err);
        if(!rc)
            rc = take_date(res, date_rules[i].end, f->clin_end, "the clinical end date", err);
        if(!rc)
            rc = take_date(res, date_rules[i].created, f->created, "the created date", err);
        if(rc)
            return rc;
        break;
    }
    /* the member table keeps birthDate as an SQL date (Coverage's period is a
     * clinical date above): a bad one would fail its whole batch there, so it
     * fails its own line here */
    if(!strcmp(t->name, "Patient")) {
        char ts[PA_TS_LEN];

        rc = take_date(res, "birthDate", ts, "birthDate", err);
        if(rc)
            return rc;
    }
    rc = pa_buf_addstr(&f->tokens, "{");
    for(rule = pa_fhir_token_rules(); !rc && rule->type; rule++) {
        struct tok_ctx c = { &f->tokens, rule->param, rule->kind, PA_OK };

        if(strcmp(rule->type, t->name))
            continue;
        walk(res, 0, rule->path, visit_token, &c);
        rc = c.rc;
    }
    if(!rc)
        rc = pa_buf_addstr(&f->refs, "{");
    if(!rc && t->patient_path)
        rc = add_refs(res, f);
    if(!rc)
        rc = pa_buf_addstr(&f->tokens, "}");
    if(!rc)
        rc = pa_buf_addstr(&f->refs, "}");
    if(rc)
        return pa_err_set(err, PA_ETOOBIG, "too many search tokens");
    return PA_OK;
}

/* Removes every element of the array at key that carries an amount; drops
 * the key when nothing is left. */
static void drop_amount_adjudications(json_object *o)
{
    json_object *a;
    size_t i;

    if(!json_object_object_get_ex(o, "adjudication", &a) || !json_object_is_type(a, json_type_array))
        return;
    for(i = json_object_array_length(a); i-- > 0;)
        if(json_object_object_get_ex(json_object_array_get_idx(a, i), "amount", NULL))
            json_object_array_del_idx(a, i, 1);
    if(json_object_array_length(a) == 0)
        json_object_object_del(o, "adjudication");
}

/* Strips one line (item, detail, sub-detail, added item) and its children. */
static void strip_line(json_object *line, void *ctx)
{
    static const char *const children[] = { "detail", "subDetail", NULL };
    json_object *sub;
    size_t i;
    size_t k;

    (void)ctx;
    if(!json_object_is_type(line, json_type_object))
        return;
    json_object_object_del(line, "unitPrice");
    json_object_object_del(line, "factor");
    json_object_object_del(line, "net");
    drop_amount_adjudications(line);
    for(k = 0; children[k]; k++)
        if(json_object_object_get_ex(line, children[k], &sub) && json_object_is_type(sub, json_type_array))
            for(i = 0; i < json_object_array_length(sub); i++)
                strip_line(json_object_array_get_idx(sub, i), NULL);
}

/* The CARIN BB EOB profiles' common start. */
static const char carin_eob[] = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-";

/* A profile's Basis (non-financial) form: the URL up to any "|version",
 * then -Basis; 0 when it keeps its own (no C4BB EOB profile, already a
 * Basis one, or too long). */
static int basis_of(const char *p, char url[512])
{
    size_t n;

    if(strncmp(p, carin_eob, sizeof(carin_eob) - 1))
        return 0;
    n = strcspn(p, "|");
    if((n >= 6 && !strncmp(p + n - 6, "-Basis", 6)) || n + 7 > 512)
        return 0;
    snprintf(url, 512, "%.*s-Basis", (int)n, p);
    return 1;
}

/* The Basis profile (after carin_eob) of a claim of type code (and, for an
 * institutional one, subtype), or NULL. */
static const char *basis_suffix(const char *code, const char *subtype)
{
    static const struct {
        const char *type, *profile;
    } by_type[] = {
        { "professional", "Professional-NonClinician-Basis" },
        { "pharmacy", "Pharmacy-Basis" },
        { "oral", "Oral-Basis" },
        { "vision", "Vision-Basis" },
    };
    size_t i;

    if(!strcmp(code, "institutional"))
        return subtype && !strcmp(subtype, "inpatient") ? "Inpatient-Institutional-Basis"
                                                        : "Outpatient-Institutional-Basis";
    for(i = 0; i < sizeof(by_type) / sizeof(by_type[0]); i++)
        if(!strcmp(code, by_type[i].type))
            return by_type[i].profile;
    return NULL;
}

#define CLAIM_TYPE_SYSTEM "http://terminology.hl7.org/CodeSystem/claim-type"
#define CLAIM_SUBTYPE_SYSTEM "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType"

/* Names the Basis (non-financial) form of the C4BB financial profiles. */
static void basis_profiles(json_object *eob)
{
    json_object *meta, *profiles;
    size_t i;

    if(!json_object_object_get_ex(eob, "meta", &meta) || !json_object_object_get_ex(meta, "profile", &profiles) ||
       !json_object_is_type(profiles, json_type_array))
        return;
    for(i = 0; i < json_object_array_length(profiles); i++) {
        const char *p = json_object_get_string(json_object_array_get_idx(profiles, i));
        char url[512];

        if(p && basis_of(p, url))
            json_object_array_put_idx(profiles, i, json_object_new_string(url));
    }
}

/* A claim (not a prior authorization) whose source named no CARIN profile
 * gets the Basis profile of its claim type, so that every non-financial EOB
 * says which one it conforms to. */
static void add_basis_profile(json_object *eob)
{
    json_object *meta, *profiles, *type = NULL, *subtype = NULL;
    const char *code, *use = pa_json_str(eob, "use"), *suffix;
    char url[256];
    size_t i;

    if(use && !strcmp(use, "preauthorization"))
        return;
    if(json_object_object_get_ex(eob, "meta", &meta) && json_object_object_get_ex(meta, "profile", &profiles) &&
       json_object_is_type(profiles, json_type_array))
        for(i = 0; i < json_object_array_length(profiles); i++) {
            const char *p = json_object_get_string(json_object_array_get_idx(profiles, i));

            if(p && !strncmp(p, carin_eob, sizeof(carin_eob) - 1))
                return;
        }
    json_object_object_get_ex(eob, "type", &type);
    json_object_object_get_ex(eob, "subType", &subtype);
    code = by_system(type, "coding", CLAIM_TYPE_SYSTEM, "code");
    suffix = code ? basis_suffix(code, by_system(subtype, "coding", CLAIM_SUBTYPE_SYSTEM, "code")) : NULL;
    if(!suffix)
        return;
    if(!json_object_object_get_ex(eob, "meta", &meta) || !json_object_is_type(meta, json_type_object)) {
        meta = json_object_new_object();
        json_object_object_add(eob, "meta", meta);
    }
    if(!json_object_object_get_ex(meta, "profile", &profiles) || !json_object_is_type(profiles, json_type_array)) {
        profiles = json_object_new_array();
        json_object_object_add(meta, "profile", profiles);
    }
    snprintf(url, sizeof(url), "%s%s", carin_eob, suffix);
    json_object_array_add(profiles, json_object_new_string(url));
}

json_object *fhirload_nonfinancial(json_object *eob)
{
    json_object *copy = NULL;

    if(json_object_deep_copy(eob, &copy, NULL) || !copy)
        return NULL;
    fhirload_strip_financial(copy);
    return copy;
}

void fhirload_strip_financial(json_object *copy)
{
    static const char *const lines[] = { "item", "addItem", NULL };
    json_object *a;
    size_t k;
    size_t i;

    json_object_object_del(copy, "total");
    json_object_object_del(copy, "payment");
    json_object_object_del(copy, "benefitBalance");
    drop_amount_adjudications(copy);
    for(k = 0; lines[k]; k++)
        if(json_object_object_get_ex(copy, lines[k], &a) && json_object_is_type(a, json_type_array))
            for(i = 0; i < json_object_array_length(a); i++)
                strip_line(json_object_array_get_idx(a, i), NULL);
    basis_profiles(copy);
    add_basis_profile(copy);
}

/*
 * The non-financial form written from the text, through its tape: the same
 * rules as fhirload_strip_financial on json-c's tree of it, member for
 * member in the same order, each value kept copied as it is written.
 */
struct nf {
    const char *text;
    const pa_json_tape *t;
    pa_buf *out;
    const char *lu;  /* meta.lastUpdated's new value, or NULL */
    char basis[256]; /* the Basis profile to add, or "" */
    int rc;
};

enum nf_ctx { NF_RAW, NF_EOB, NF_LINE, NF_META, NF_LAST_UPDATED, NF_PROFILES, NF_ADJUDICATIONS, NF_LINES };

static void nf_add(struct nf *x, const char *s, size_t n)
{
    if(!x->rc)
        x->rc = pa_buf_add(x->out, s, n);
}

static void nf_raw(struct nf *x, size_t i)
{
    nf_add(x, x->text + x->t->n[i].at, x->t->n[i].len);
}

static int nf_key_is(const struct nf *x, size_t i, const char *name)
{
    size_t n = strlen(name);

    return x->t->n[i].key_len == n + 2 && !memcmp(x->text + x->t->n[i].key + 1, name, n);
}

/* Whether element i of an adjudication array carries an amount (a member
 * named amount, whatever its value, as json-c finds it). */
static int nf_has_amount(const struct nf *x, size_t i)
{
    return pa_json_member(x->t, x->text, i, "amount") != 0;
}

/* How many elements of adjudication array a are kept. */
static size_t nf_kept_adjudications(const struct nf *x, size_t a)
{
    size_t c, n = 0;

    for(c = a + 1; c < x->t->n[a].end; c = x->t->n[c].end)
        n += !nf_has_amount(x, c);
    return n;
}

static void nf_value(struct nf *x, size_t i, enum nf_ctx ctx);

/* String node i decoded whole (a profile may be of any length): to free,
 * or NULL when it is no string (or memory ran out: x->rc). */
static char *nf_whole_string(struct nf *x, size_t i)
{
    char *p;

    if(x->t->n[i].type != '"')
        return NULL;
    p = malloc(x->t->n[i].len + 1);
    if(!p) {
        x->rc = PA_ENOMEM;
        return NULL;
    }
    if(pa_json_node_string(x->t, x->text, i, p, x->t->n[i].len + 1)) {
        free(p);
        return NULL;
    }
    return p;
}

static void nf_string(struct nf *x, const char *s)
{
    if(!x->rc)
        x->rc = pa_buf_add_json_string(x->out, s);
}

/* What meta gains at its end in json-c's tree: the change time (when it
 * had none), then the Basis profile (when it had no profile). */
static void nf_meta_end(struct nf *x, int first, int had_lu, int had_profile)
{
    if(x->lu && !had_lu) {
        nf_add(x, first ? "\"lastUpdated\":" : ",\"lastUpdated\":", first ? 14 : 15);
        nf_string(x, x->lu);
        first = 0;
    }
    if(x->basis[0] && !had_profile) {
        nf_add(x, first ? "\"profile\":[" : ",\"profile\":[", first ? 11 : 12);
        nf_string(x, x->basis);
        nf_add(x, "]", 1);
    }
}

/* The members of object i (in context ctx), then what it gains at its end. */
static void nf_object(struct nf *x, size_t i, enum nf_ctx ctx)
{
    static const char *const eob_gone[] = { "total", "payment", "benefitBalance", NULL };
    static const char *const line_gone[] = { "unitPrice", "factor", "net", NULL };
    const char *const *gone = ctx == NF_EOB ? eob_gone : ctx == NF_LINE ? line_gone : NULL;
    const pa_json_node *nodes = x->t->n;
    int first = 1, had_meta = 0, had_lu = 0, had_profile = 0;
    size_t c, k;

    nf_add(x, "{", 1);
    for(c = i + 1; c < nodes[i].end; c = nodes[c].end) {
        enum nf_ctx sub = NF_RAW;

        for(k = 0; gone && gone[k] && !nf_key_is(x, c, gone[k]); k++)
            ;
        if(gone && gone[k])
            continue;
        if((ctx == NF_EOB || ctx == NF_LINE) && nf_key_is(x, c, "adjudication") && nodes[c].type == '[') {
            /* an array left empty goes */
            if(!nf_kept_adjudications(x, c))
                continue;
            sub = NF_ADJUDICATIONS;
        }
        else if(((ctx == NF_EOB && (nf_key_is(x, c, "item") || nf_key_is(x, c, "addItem"))) ||
                 (ctx == NF_LINE && (nf_key_is(x, c, "detail") || nf_key_is(x, c, "subDetail")))) &&
                nodes[c].type == '[') {
            sub = NF_LINES;
        }
        else if(ctx == NF_EOB && nf_key_is(x, c, "meta")) {
            had_meta = 1;
            sub = NF_META;
        }
        else if(ctx == NF_META && nf_key_is(x, c, "lastUpdated")) {
            had_lu = 1;
            sub = NF_LAST_UPDATED;
        }
        else if(ctx == NF_META && nf_key_is(x, c, "profile")) {
            had_profile = 1;
            sub = NF_PROFILES;
        }
        if(!first)
            nf_add(x, ",", 1);
        first = 0;
        nf_add(x, x->text + nodes[c].key, nodes[c].key_len);
        nf_add(x, ":", 1);
        nf_value(x, c, sub);
    }
    if(ctx == NF_META)
        nf_meta_end(x, first, had_lu, had_profile);
    if(ctx == NF_EOB && !had_meta && (x->lu || x->basis[0])) {
        nf_add(x, first ? "\"meta\":{" : ",\"meta\":{", first ? 8 : 9);
        nf_meta_end(x, 1, 0, 0);
        nf_add(x, "}", 1);
    }
    nf_add(x, "}", 1);
}

/* The elements of array i (in context ctx), then what it gains at its end. */
static void nf_array(struct nf *x, size_t i, enum nf_ctx ctx)
{
    const pa_json_node *nodes = x->t->n;
    int first = 1;
    size_t c;

    nf_add(x, "[", 1);
    for(c = i + 1; c < nodes[i].end; c = nodes[c].end) {
        char *p = ctx == NF_PROFILES ? nf_whole_string(x, c) : NULL, url[512];

        if(ctx == NF_ADJUDICATIONS && nf_has_amount(x, c))
            continue;
        if(!first)
            nf_add(x, ",", 1);
        first = 0;
        if(p && basis_of(p, url))
            nf_string(x, url);
        else
            nf_value(x, c, ctx == NF_LINES ? NF_LINE : NF_RAW);
        free(p);
    }
    if(ctx == NF_PROFILES && x->basis[0]) {
        if(!first)
            nf_add(x, ",", 1);
        nf_string(x, x->basis);
    }
    nf_add(x, "]", 1);
}

/* Value i in context ctx: what json-c's tree holds in its place. */
static void nf_value(struct nf *x, size_t i, enum nf_ctx ctx)
{
    char type = x->t->n[i].type;

    switch(ctx) {
    case NF_EOB:
    case NF_LINE:
        if(type == '{')
            nf_object(x, i, ctx);
        else
            nf_raw(x, i);
        return;
    case NF_META:
    case NF_PROFILES:
        if(type == (ctx == NF_META ? '{' : '[')) {
            if(ctx == NF_META)
                nf_object(x, i, ctx);
            else
                nf_array(x, i, ctx);
        }
        else if(x->basis[0] || (ctx == NF_META && x->lu)) {
            /* no object (or array) there: the tree has a new one in its place */
            nf_add(x, ctx == NF_META ? "{" : "[", 1);
            if(ctx == NF_META)
                nf_meta_end(x, 1, 0, 0);
            else
                nf_string(x, x->basis);
            nf_add(x, ctx == NF_META ? "}" : "]", 1);
        }
        else {
            nf_raw(x, i);
        }
        return;
    case NF_LAST_UPDATED:
        if(x->lu)
            nf_string(x, x->lu);
        else
            nf_raw(x, i);
        return;
    case NF_ADJUDICATIONS:
    case NF_LINES: nf_array(x, i, ctx); return;
    default: nf_raw(x, i);
    }
}

/* The first code among the codings of o.key (a CodeableConcept) of the
 * given system, as by_system reads the tree: into out, or NULL. */
static const char *nf_code(const struct nf *x, const char *key, const char *system, char *out, size_t size)
{
    struct doc d = { x->text, x->t };
    char sys[STR_MAX];
    size_t list = pa_json_member(x->t, x->text, pa_json_member(x->t, x->text, 0, key), "coding"), e;

    if(!is_type(&d, list, '['))
        return NULL;
    for(e = list + 1; e < x->t->n[list].end; e = x->t->n[e].end)
        if(member_str(&d, e, "system", sys) && !strcmp(sys, system))
            return pa_json_node_string(x->t, x->text, pa_json_member(x->t, x->text, e, "code"), out, size) ? NULL : out;
    return NULL;
}

/* The Basis profile add_basis_profile gives an EOB that names no CARIN
 * profile, into x->basis ("" for none). */
static void nf_basis(struct nf *x)
{
    struct doc d = { x->text, x->t };
    char code[64], sub[64], p[STR_MAX];
    const char *suffix;
    size_t profiles = pa_json_member(x->t, x->text, pa_json_member(x->t, x->text, 0, "meta"), "profile"), e;

    x->basis[0] = '\0';
    if(member_str(&d, 0, "use", p) && !strcmp(p, "preauthorization"))
        return;
    if(is_type(&d, profiles, '['))
        for(e = profiles + 1; e < x->t->n[profiles].end; e = x->t->n[e].end) {
            char *whole = nf_whole_string(x, e);
            int carin = whole && !strncmp(whole, carin_eob, sizeof(carin_eob) - 1);

            free(whole);
            if(carin)
                return;
        }
    if(!nf_code(x, "type", CLAIM_TYPE_SYSTEM, code, sizeof(code)))
        return;
    suffix = basis_suffix(code, nf_code(x, "subType", CLAIM_SUBTYPE_SYSTEM, sub, sizeof(sub)));
    if(suffix)
        snprintf(x->basis, sizeof(x->basis), "%s%s", carin_eob, suffix);
}

int fhirload_nonfinancial_text(const char *text, const pa_json_tape *t, const char *last_updated, pa_buf *out)
{
    struct nf x = { text, t, out, last_updated, "", PA_OK };

    if(!t->count || t->n[0].type != '{')
        return PA_EINVAL;
    nf_basis(&x);
    nf_object(&x, 0, NF_EOB);
    return x.rc;
}

int fhirload_with_last_updated(const char *text, const pa_json_tape *t, const char *value, pa_buf *out)
{
    size_t meta, lu, at, skip = 0;
    int rc;

    if(!t->count || t->n[0].type != '{')
        return PA_EINVAL;
    meta = pa_json_member(t, text, 0, "meta");
    lu = meta && t->n[meta].type == '{' ? pa_json_member(t, text, meta, "lastUpdated") : 0;
    if(lu) {
        /* its value replaced where it is */
        at = t->n[lu].at;
        skip = t->n[lu].len;
    }
    else if(meta && t->n[meta].type == '{') {
        /* a member added at the end of meta */
        at = t->n[meta].at + t->n[meta].len - 1;
    }
    else if(meta) {
        /* meta that is no object: a new one in its place */
        at = t->n[meta].at;
        skip = t->n[meta].len;
    }
    else {
        /* a meta added at the end of the resource */
        at = t->n[0].at + t->n[0].len - 1;
    }
    rc = pa_buf_add(out, text, at);
    if(!rc && !lu && meta && t->n[meta].type == '{')
        rc = pa_buf_addstr(out, t->n[meta].end > meta + 1 ? ",\"lastUpdated\":" : "\"lastUpdated\":");
    else if(!rc && !lu && meta)
        rc = pa_buf_addstr(out, "{\"lastUpdated\":");
    else if(!rc && !lu)
        rc = pa_buf_addstr(out, t->n[0].end > 1 ? ",\"meta\":{\"lastUpdated\":" : "\"meta\":{\"lastUpdated\":");
    if(!rc)
        rc = pa_buf_add_json_string(out, value);
    if(!rc && !lu)
        rc = pa_buf_addstr(out, meta && t->n[meta].type == '{' ? "" : "}");
    if(!rc)
        rc = pa_buf_add(out, text + at + skip, t->n[0].at + t->n[0].len - at - skip);
    return rc;
}
