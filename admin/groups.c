/*
 * PDex Groups in the loaded NDJSON, applied after every resource is in:
 *  - attribution rosters (pdex-provider-group, ATR atr-group): the roster and
 *    its members replace what was stored under that id;
 *  - treatment relationships (pdex-treatment-relationship): the member's
 *    payer-sourced relationships are replaced by the Group's providers;
 *  - opt-outs (pdex-member-opt-out): scope global or provider-specific; the
 *    providers of a provider-specific opt-out are named by further
 *    characteristics whose valueReference carries an NPI identifier.
 */
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "load.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_pgarray.h"
#include "pa_util.h"

#define LIST_MAX (64 * 1024 * 1024)

struct deferred_group {
    json_object *group;
    char *file;
    long line;
    struct deferred_group *next;
};

enum group_kind { G_UNKNOWN, G_ROSTER, G_TRL, G_OPTOUT };

int load_groups_init(load_ctx *l, pa_err *err)
{
    (void)err;
    l->groups_head = l->groups_tail = NULL;
    return PA_OK;
}

int load_group_defer(load_ctx *l, json_object *group, const char *file, long line)
{
    struct deferred_group *g = calloc(1, sizeof(*g));

    if(g)
        g->file = strdup(file);
    if(!g || !g->file) {
        free(g);
        json_object_put(group);
        return PA_ENOMEM;
    }
    g->group = group;
    g->line = line;
    if(l->groups_tail)
        l->groups_tail->next = g;
    else
        l->groups_head = g;
    l->groups_tail = g;
    return PA_OK;
}

void load_groups_free(load_ctx *l)
{
    struct deferred_group *g = l ? l->groups_head : NULL;

    while(g) {
        struct deferred_group *next = g->next;

        json_object_put(g->group);
        free(g->file);
        free(g);
        g = next;
    }
    l->groups_head = l->groups_tail = NULL;
}

static const char *str_at(json_object *o, const char *a, const char *b)
{
    json_object *v;

    if(!o || !json_object_object_get_ex(o, a, &v))
        return NULL;
    if(b && !json_object_object_get_ex(v, b, &v))
        return NULL;
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static json_object *array_at(json_object *o, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_array) ? v : NULL;
}

/* True if any coding of the CodeableConcept at cc has this code. */
static int has_code(json_object *cc, const char *code)
{
    json_object *codings = cc ? array_at(cc, "coding") : NULL;
    size_t i;

    for(i = 0; codings && i < json_object_array_length(codings); i++) {
        const char *c = str_at(json_object_array_get_idx(codings, i), "code", NULL);

        if(c && !strcmp(c, code))
            return 1;
    }
    return 0;
}

static const char *first_code(json_object *cc)
{
    json_object *codings = cc ? array_at(cc, "coding") : NULL;

    return codings && json_object_array_length(codings) ? str_at(json_object_array_get_idx(codings, 0), "code", NULL)
                                                        : NULL;
}

static enum group_kind classify(json_object *g)
{
    json_object *meta, *profiles, *chars, *code;
    size_t i;

    profiles = json_object_object_get_ex(g, "meta", &meta) ? array_at(meta, "profile") : NULL;
    if(profiles)
        for(i = 0; i < json_object_array_length(profiles); i++) {
            const char *p = json_object_get_string(json_object_array_get_idx(profiles, i));

            if(!p)
                continue;
            if(strstr(p, "/pdex-treatment-relationship"))
                return G_TRL;
            if(strstr(p, "/pdex-member-opt-out"))
                return G_OPTOUT;
            if(strstr(p, "/pdex-provider-group") || strstr(p, "/atr-group") || strstr(p, "/davinci-patient-list"))
                return G_ROSTER;
        }
    json_object_object_get_ex(g, "code", &code);
    if(has_code(code, "consentconstraint"))
        return G_OPTOUT;
    chars = array_at(g, "characteristic");
    for(i = 0; chars && i < json_object_array_length(chars); i++) {
        json_object *c = NULL;

        json_object_object_get_ex(json_object_array_get_idx(chars, i), "code", &c);
        if(has_code(c, "pdexprovidergroup"))
            return G_ROSTER;
        if(has_code(c, "pdex-member"))
            return G_TRL;
    }
    return G_UNKNOWN;
}

/* The NPI a Reference names by identifier, or NULL. */
static const char *ref_npi(json_object *ref)
{
    json_object *id;
    const char *sys;

    if(!ref || !json_object_object_get_ex(ref, "identifier", &id))
        return NULL;
    sys = str_at(id, "system", NULL);
    return sys && !strcmp(sys, PA_NPI_SYSTEM) ? str_at(id, "value", NULL) : NULL;
}

/* Reads a date (the first ten characters of a date or dateTime) into out
 * and points *v at it, or at NULL when s is absent; -1 when malformed. */
static int take_date(const char *s, char out[16], const char **v)
{
    char ts[PA_TS_LEN];

    *v = NULL;
    if(!s)
        return 0;
    if(strlen(s) < 10 || pa_fhir_date_ts(s, ts))
        return -1;
    snprintf(out, 16, "%.10s", s);
    *v = out;
    return 0;
}

static int list_close(pa_buf *b)
{
    return pa_buf_addstr(b, "}");
}

/* Columns of values sent as Postgres array literals, one buffer each. */
#define MAX_COLS 5

struct cols {
    pa_buf b[MAX_COLS];
    int n;
};

static int cols_open(struct cols *c, int n)
{
    int rc = PA_OK;
    int i;

    c->n = 0;
    if(n > MAX_COLS)
        return PA_ETOOBIG;
    c->n = n;
    for(i = 0; i < n; i++) {
        pa_buf_init(&c->b[i], LIST_MAX);
        rc = rc ? rc : pa_buf_addstr(&c->b[i], "{");
    }
    return rc;
}

static int cols_close(struct cols *c)
{
    int rc = PA_OK;
    int i;

    for(i = 0; i < c->n; i++)
        rc = rc ? rc : list_close(&c->b[i]);
    return rc;
}

static void cols_free(struct cols *c)
{
    int i;

    for(i = 0; i < c->n; i++)
        pa_buf_free(&c->b[i]);
}

static int run(load_ctx *l, pa_err *err, const char *sql, int n, const char *const *values, long *rows)
{
    PGresult *res = pa_db_query(l->db, err, sql, n, values);

    if(!res)
        return PA_EDB;
    if(rows)
        *rows = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return PA_OK;
}

/* The patients of ids (a text[] literal) the payer has no member for, one
 * after another as a NUL-separated list ending in an empty string; NULL
 * on error. */
static char *unknown_patients(load_ctx *l, const char *ids, pa_err *err)
{
    PGresult *res = pa_db_query(l->db, err,
                                "SELECT p FROM unnest($1::text[]) WITH ORDINALITY u(p, o)"
                                " WHERE NOT " PA_SQL_PAYER_HAS_PATIENT("u.p") " ORDER BY o",
                                1, &ids);
    pa_buf out;
    int i, rc = PA_OK;

    if(!res)
        return NULL;
    pa_buf_init(&out, LIST_MAX);
    for(i = 0; !rc && i < PQntuples(res); i++)
        rc = pa_buf_add(&out, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0) + 1);
    if(!rc)
        rc = pa_buf_add(&out, "", 1);
    PQclear(res);
    if(rc) {
        pa_buf_free(&out);
        pa_err_set(err, PA_ENOMEM, "out of memory");
        return NULL;
    }
    return pa_buf_steal(&out);
}

/* Whether the payer has a member for the patient id (err->code set, and
 * 0, when that cannot be told). */
static int known_patient(load_ctx *l, const char *pid, pa_err *err)
{
    char lit[PA_FHIR_ID_MAX + 3];
    char *unknown;
    int known;

    pa_err_clear(err);
    snprintf(lit, sizeof(lit), "{%s}", pid); /* an id has no character a literal quotes */
    unknown = unknown_patients(l, lit, err);
    known = unknown && !unknown[0];
    free(unknown);
    return known;
}

/* Counts a stored Group, or rolls back and reports one that was not; the
 * load goes on either way. */
static int settle(load_ctx *l, struct deferred_group *d, int rc, pa_err *err)
{
    if(rc) {
        pa_db_exec(l->db, NULL, "ROLLBACK");
        load_report(l, d->file, d->line, "Group/%s was not stored: %s", str_at(d->group, "id", NULL), err->msg);
    }
    else {
        l->groups++;
    }
    return PA_OK;
}

/* The ATR changeType a loaded member states (ext-changeType), or NULL. */
static const char *change_type(json_object *member)
{
    static const char *const codes[] = { "new", "changed", "nochange", "dropped", "cancelled", NULL };
    json_object *ext = array_at(member, "extension");
    size_t i, k;

    for(i = 0; ext && i < json_object_array_length(ext); i++) {
        json_object *x = json_object_array_get_idx(ext, i);
        const char *url = str_at(x, "url", NULL);
        const char *code = str_at(x, "valueCode", NULL);

        if(!url || !code || !strstr(url, "/ext-changeType"))
            continue;
        for(k = 0; codes[k]; k++)
            if(!strcmp(codes[k], code))
                return codes[k];
    }
    return NULL;
}

static int load_roster(load_ctx *l, struct deferred_group *d, pa_err *err)
{
    json_object *g = d->group;
    json_object *chars = array_at(g, "characteristic");
    json_object *members = array_at(g, "member");
    json_object *ids = array_at(g, "identifier");
    json_object *ext = array_at(g, "extension");
    const char *id = str_at(g, "id", NULL);
    const char *name = str_at(g, "name", NULL);
    const char *npi = NULL, *org_npi = NULL, *status = "open";
    struct cols c;
    char *json = NULL, *unknown = NULL;
    const char *p;
    const char *values[13];
    size_t i;
    int rc = PA_OK;

    for(i = 0; chars && i < json_object_array_length(chars); i++) {
        json_object *vr;
        const char *n, *ref;

        if(!json_object_object_get_ex(json_object_array_get_idx(chars, i), "valueReference", &vr))
            continue;
        n = ref_npi(vr);
        ref = str_at(vr, "reference", NULL);
        if(!n)
            continue;
        if(ref && !strncmp(ref, "Organization/", 13))
            org_npi = n;
        else
            npi = n;
    }
    if(!npi && !org_npi) {
        json_object *me;

        if(json_object_object_get_ex(g, "managingEntity", &me))
            org_npi = ref_npi(me);
    }
    if((npi && !pa_npi_valid(npi)) || (org_npi && !pa_npi_valid(org_npi))) {
        load_report(l, d->file, d->line, "Group/%s: the attributed provider's NPI fails its check digit", id);
        return PA_OK;
    }
    for(i = 0; ext && i < json_object_array_length(ext); i++) {
        json_object *e = json_object_array_get_idx(ext, i);
        const char *url = str_at(e, "url", NULL);
        const char *code = str_at(e, "valueCode", NULL);

        if(url && strstr(url, "attributionListStatus") && code &&
           (!strcmp(code, "draft") || !strcmp(code, "open") || !strcmp(code, "final")))
            status = code;
    }
    /* patients, period starts and ends, inactive, the changeType stated */
    rc = cols_open(&c, 5);
    for(i = 0; !rc && members && i < json_object_array_length(members); i++) {
        json_object *m = json_object_array_get_idx(members, i);
        json_object *entity = NULL, *period = NULL, *ina = NULL;
        char pid[PA_FHIR_ID_MAX + 1], b1[16], b2[16];
        const char *s, *e;

        json_object_object_get_ex(m, "entity", &entity);
        json_object_object_get_ex(m, "period", &period);
        json_object_object_get_ex(m, "inactive", &ina);
        if(!str_at(entity, "reference", NULL) ||
           pa_fhir_ref_id(str_at(entity, "reference", NULL), "Patient", pid, sizeof(pid))) {
            load_report(l, d->file, d->line, "Group/%s member %zu is not a Patient reference", id, i);
            continue;
        }
        if(take_date(str_at(period, "start", NULL), b1, &s) || take_date(str_at(period, "end", NULL), b2, &e)) {
            load_report(l, d->file, d->line, "Group/%s member %zu has a malformed period", id, i);
            continue;
        }
        rc = pa_pgarray_add(&c.b[0], pid) || pa_pgarray_add(&c.b[1], s) || pa_pgarray_add(&c.b[2], e) ||
             pa_pgarray_add(&c.b[3], ina && json_object_get_boolean(ina) ? "t" : "f") ||
             pa_pgarray_add(&c.b[4], change_type(m));
    }
    if(!rc)
        rc = cols_close(&c);
    json = strdup(json_object_to_json_string_ext(g, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    if(rc || !json) {
        rc = pa_err_set(err, PA_ENOMEM, "Group/%s is too large", id);
        goto out;
    }
    values[0] = id;
    values[1] = name ? name : id;
    values[2] = npi;
    values[3] = org_npi;
    values[4] = status;
    values[5] = ids ? str_at(json_object_array_get_idx(ids, 0), "system", NULL) : NULL;
    values[6] = ids ? str_at(json_object_array_get_idx(ids, 0), "value", NULL) : NULL;
    values[7] = json;
    values[8] = pa_buf_str(&c.b[0]);
    values[9] = pa_buf_str(&c.b[1]);
    values[10] = pa_buf_str(&c.b[2]);
    values[11] = pa_buf_str(&c.b[3]);
    values[12] = pa_buf_str(&c.b[4]);
    unknown = unknown_patients(l, values[8], err);
    if(!unknown) {
        rc = PA_EDB;
        goto out;
    }
    for(p = unknown; *p; p += strlen(p) + 1)
        load_report(l, d->file, d->line, "Group/%s member Patient/%s: the payer has no such member (left out)", id, p);
    rc = pa_db_exec(l->db, err, "BEGIN");
    if(!rc)
        rc = run(l, err,
                 "INSERT INTO roster (id, name, npi, org_npi, status, identifier_system, identifier_value, json) "
                 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
                 " npi = EXCLUDED.npi, org_npi = EXCLUDED.org_npi, status = EXCLUDED.status,"
                 " identifier_system = EXCLUDED.identifier_system, identifier_value = EXCLUDED.identifier_value,"
                 " json = EXCLUDED.json, updated_at = now()",
                 8, values, NULL);
    if(!rc)
        rc = run(
            l, err,
            "SELECT pa_roster_replace($1, coalesce(array_agg(p ORDER BY o), '{}'), coalesce(array_agg(s ORDER BY o), '{}'),"
            " coalesce(array_agg(e ORDER BY o), '{}'), coalesce(array_agg(i ORDER BY o), '{}'),"
            " coalesce(array_agg(c ORDER BY o), '{}'))"
            " FROM unnest($2::text[], $3::date[], $4::date[], $5::bool[], $6::text[]) WITH ORDINALITY u(p, s, e, i, c, o)"
            " WHERE " PA_SQL_PAYER_HAS_PATIENT("u.p"),
            6, (const char *const[]){ id, values[8], values[9], values[10], values[11], values[12] }, NULL);
    if(!rc)
        rc = pa_db_exec(l->db, err, "COMMIT");
out:
    rc = settle(l, d, rc, err);
    free(unknown);
    free(json);
    cols_free(&c);
    return rc;
}

/* The characteristic that keys a TRL (pdex-member) or opt-out (scope) Group. */
static json_object *key_characteristic(json_object *g, const char *code)
{
    json_object *chars = array_at(g, "characteristic");
    size_t i;

    for(i = 0; chars && i < json_object_array_length(chars); i++) {
        json_object *c = json_object_array_get_idx(chars, i), *cc = NULL;

        json_object_object_get_ex(c, "code", &cc);
        if(has_code(cc, code))
            return c;
    }
    return NULL;
}

static int load_trl(load_ctx *l, struct deferred_group *d, pa_err *err)
{
    json_object *g = d->group;
    json_object *key = key_characteristic(g, "pdex-member");
    json_object *members = array_at(g, "member");
    json_object *vr = NULL, *period = NULL;
    const char *id = str_at(g, "id", NULL);
    char pid[PA_FHIR_ID_MAX + 1], b1[16], b2[16];
    const char *values[7];
    struct cols c;
    size_t i;
    long stored = 0, listed = 0;
    int rc;

    if(key)
        json_object_object_get_ex(key, "valueReference", &vr);
    if(!vr || !str_at(vr, "reference", NULL) ||
       pa_fhir_ref_id(str_at(vr, "reference", NULL), "Patient", pid, sizeof(pid))) {
        load_report(l, d->file, d->line,
                    "Group/%s: a treatment relationship Group names its member "
                    "in characteristic (pdex-member).valueReference",
                    id);
        return PA_OK;
    }
    values[0] = pid;
    if(!known_patient(l, pid, err)) {
        if(err->code)
            return settle(l, d, err->code, err);
        load_report(l, d->file, d->line, "Group/%s: its member Patient/%s is not one the payer has", id, pid);
        return PA_OK;
    }
    json_object_object_get_ex(key, "period", &period);
    if(take_date(str_at(period, "start", NULL), b1, &values[1]) ||
       take_date(str_at(period, "end", NULL), b2, &values[2])) {
        load_report(l, d->file, d->line, "Group/%s has a malformed period", id);
        return PA_OK;
    }
    /* NPIs, referenced types and ids (for a lookup), inactive */
    rc = cols_open(&c, 4);
    for(i = 0; !rc && members && i < json_object_array_length(members); i++) {
        json_object *m = json_object_array_get_idx(members, i);
        json_object *entity = NULL, *ina = NULL;
        const char *npi, *ref;
        char type[32] = "", rid[PA_FHIR_ID_MAX + 1] = "";

        json_object_object_get_ex(m, "entity", &entity);
        json_object_object_get_ex(m, "inactive", &ina);
        npi = ref_npi(entity);
        ref = str_at(entity, "reference", NULL);
        if(npi && !pa_npi_valid(npi)) {
            load_report(l, d->file, d->line, "Group/%s member %zu: NPI fails its check digit", id, i);
            continue;
        }
        if(ref && !pa_fhir_ref_id(ref, "Practitioner", rid, sizeof(rid)))
            pa_strlcpy(type, "Practitioner", sizeof(type));
        else if(ref && !pa_fhir_ref_id(ref, "PractitionerRole", rid, sizeof(rid)))
            pa_strlcpy(type, "PractitionerRole", sizeof(type));
        else if(ref && !pa_fhir_ref_id(ref, "Organization", rid, sizeof(rid)))
            pa_strlcpy(type, "Organization", sizeof(type));
        else
            rid[0] = '\0';
        if(!npi && !rid[0]) {
            load_report(l, d->file, d->line, "Group/%s member %zu names no provider NPI", id, i);
            continue;
        }
        listed++;
        rc = pa_pgarray_add(&c.b[0], npi ? npi : "") || pa_pgarray_add(&c.b[1], type[0] ? type : "") ||
             pa_pgarray_add(&c.b[2], rid[0] ? rid : "") ||
             pa_pgarray_add(&c.b[3], ina && json_object_get_boolean(ina) ? "t" : "f");
    }
    if(!rc)
        rc = cols_close(&c);
    if(rc) {
        rc = pa_err_set(err, PA_ENOMEM, "Group/%s is too large", id);
        goto out;
    }
    values[3] = pa_buf_str(&c.b[0]);
    values[4] = pa_buf_str(&c.b[1]);
    values[5] = pa_buf_str(&c.b[2]);
    values[6] = pa_buf_str(&c.b[3]);
    rc = pa_db_exec(l->db, err, "BEGIN");
    if(!rc)
        rc = run(l, err, "DELETE FROM treatment_relationship WHERE patient_id = $1 AND source = 'payer'", 1, values,
                 NULL);
    /* a provider named by reference is looked up in the directory by its resource */
    if(!rc)
        rc = run(l, err,
                 "INSERT INTO treatment_relationship (patient_id, npi, period_start, period_end, source, inactive) "
                 "SELECT DISTINCT ON (npi) $1, npi, $2::date, $3::date, 'payer', i FROM ("
                 " SELECT coalesce(nullif(n, ''), (SELECT p.npi FROM provider p"
                 "  WHERE p.resource_type = t"
                 "  AND p.resource_id = r LIMIT 1)) AS npi, i"
                 " FROM unnest($4::text[], $5::text[], $6::text[], $7::bool[]) AS u(n, t, r, i)) x "
                 "WHERE npi IS NOT NULL ORDER BY npi",
                 7, values, &stored);
    if(!rc)
        rc = pa_db_exec(l->db, err, "COMMIT");
    if(!rc && stored < listed)
        load_report(l, d->file, d->line,
                    "Group/%s: %ld of its %ld providers are not in the provider "
                    "directory and were skipped",
                    id, listed - stored, listed);
out:
    rc = settle(l, d, rc, err);
    cols_free(&c);
    return rc;
}

static int load_optout(load_ctx *l, struct deferred_group *d, pa_err *err)
{
    json_object *g = d->group;
    json_object *key = key_characteristic(g, "consentconstraint");
    json_object *chars = array_at(g, "characteristic");
    json_object *members = array_at(g, "member");
    json_object *vcc = NULL, *period = NULL, *ext;
    const char *id = str_at(g, "id", NULL);
    const char *scope, *reason = NULL, *p;
    const char *values[7];
    char b1[16], b2[16], *unknown = NULL;
    struct cols c;
    size_t i;
    int rc;

    if(key)
        json_object_object_get_ex(key, "valueCodeableConcept", &vcc);
    scope = first_code(vcc);
    if(!scope || (strcmp(scope, "global") && strcmp(scope, "provider-specific"))) {
        load_report(l, d->file, d->line,
                    "Group/%s: opt-out scope '%s' is not supported (global, "
                    "provider-specific)",
                    id, scope ? scope : "(none)");
        return PA_OK;
    }
    json_object_object_get_ex(key, "period", &period);
    if(take_date(str_at(period, "start", NULL), b1, &values[3]) ||
       take_date(str_at(period, "end", NULL), b2, &values[4]) || !values[3]) {
        load_report(l, d->file, d->line, "Group/%s: an opt-out needs characteristic.period.start", id);
        return PA_OK;
    }
    ext = array_at(key, "extension");
    for(i = 0; ext && i < json_object_array_length(ext); i++) {
        json_object *e = json_object_array_get_idx(ext, i), *cc = NULL;
        const char *url = str_at(e, "url", NULL);

        if(url && strstr(url, "opt-out-reason") && json_object_object_get_ex(e, "valueCodeableConcept", &cc))
            reason = first_code(cc);
    }
    /* patients, revoked, providers' NPIs */
    rc = cols_open(&c, 3);
    if(!strcmp(scope, "global")) {
        rc = rc || pa_pgarray_add(&c.b[2], "");
    }
    else {
        for(i = 0; !rc && chars && i < json_object_array_length(chars); i++) {
            json_object *vr;
            const char *npi;

            if(!json_object_object_get_ex(json_object_array_get_idx(chars, i), "valueReference", &vr))
                continue;
            npi = ref_npi(vr);
            if(npi && pa_npi_valid(npi))
                rc = pa_pgarray_add(&c.b[2], npi);
            else if(npi)
                load_report(l, d->file, d->line, "Group/%s: NPI '%.20s' fails its check digit", id, npi);
        }
        if(!rc && c.b[2].len == 1) {
            load_report(l, d->file, d->line,
                        "Group/%s: a provider-specific opt-out names its providers "
                        "in characteristic.valueReference.identifier (NPI)",
                        id);
            cols_free(&c);
            return PA_OK;
        }
    }
    for(i = 0; !rc && members && i < json_object_array_length(members); i++) {
        json_object *m = json_object_array_get_idx(members, i), *entity = NULL, *ina = NULL;
        char pid[PA_FHIR_ID_MAX + 1];

        json_object_object_get_ex(m, "entity", &entity);
        json_object_object_get_ex(m, "inactive", &ina);
        if(!str_at(entity, "reference", NULL) ||
           pa_fhir_ref_id(str_at(entity, "reference", NULL), "Patient", pid, sizeof(pid))) {
            load_report(l, d->file, d->line, "Group/%s member %zu is not a Patient reference", id, i);
            continue;
        }
        rc = pa_pgarray_add(&c.b[0], pid) || pa_pgarray_add(&c.b[1], ina && json_object_get_boolean(ina) ? "t" : "f");
    }
    if(!rc)
        rc = cols_close(&c);
    if(rc) {
        rc = pa_err_set(err, PA_ENOMEM, "Group/%s is too large", id);
        goto out;
    }
    values[0] = pa_buf_str(&c.b[0]);
    values[1] = pa_buf_str(&c.b[1]);
    values[2] = pa_buf_str(&c.b[2]);
    /* an opt-out is kept even before the member's data arrives */
    unknown = unknown_patients(l, values[0], err);
    if(!unknown) {
        rc = PA_EDB;
        goto out;
    }
    for(p = unknown; *p; p += strlen(p) + 1)
        load_warn(l, d->file, d->line, "Group/%s: Patient/%s is not a member the payer has yet: its opt-out is kept",
                  id, p);
    values[5] = scope;
    values[6] = reason;
    rc = run(l, err,
             "INSERT INTO opt_out (patient_id, scope, npi, period_start, period_end, reason, revoked) "
             "SELECT DISTINCT ON (p, n) p, $6, n, $4::date, $5::date, $7, r "
             "FROM unnest($1::text[], $2::bool[]) AS m(p, r) CROSS JOIN unnest($3::text[]) AS n "
             "ORDER BY p, n "
             "ON CONFLICT (patient_id, scope, npi, period_start) DO UPDATE SET period_end = EXCLUDED.period_end,"
             " reason = EXCLUDED.reason, revoked = EXCLUDED.revoked",
             7, values, NULL);
out:
    rc = settle(l, d, rc, err);
    free(unknown);
    cols_free(&c);
    return rc;
}

int load_groups_flush(load_ctx *l, pa_err *err)
{
    struct deferred_group *d;
    int rc = PA_OK;

    for(d = l->groups_head; d && !rc; d = d->next) {
        const char *id = str_at(d->group, "id", NULL);

        if(!id || !pa_fhir_id_valid(id)) {
            load_report(l, d->file, d->line, "Group without a valid id");
            continue;
        }
        switch(classify(d->group)) {
        case G_ROSTER: rc = load_roster(l, d, err); break;
        case G_TRL: rc = load_trl(l, d, err); break;
        case G_OPTOUT: rc = load_optout(l, d, err); break;
        default:
            load_report(l, d->file, d->line,
                        "Group/%s is not a PDex roster, treatment relationship or "
                        "opt-out Group (by meta.profile or characteristic code)",
                        id);
        }
    }
    load_groups_free(l);
    return rc;
}
