#include "pa_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_fhir.h"
#include "pa_http.h"
#include "pa_pgarray.h"
#include "pa_util.h"

/* Date parameters and the column each compares. */
struct date_param {
    const char *type, *param, *column;
};

static const struct date_param date_params[] = {
    { "Observation", "date", "clin_start" },
    { "Encounter", "date", "clin_start" },
    { "Procedure", "date", "clin_start" },
    { "Immunization", "date", "clin_start" },
    { "DiagnosticReport", "date", "clin_start" },
    { "DocumentReference", "date", "created" },
    { "Condition", "onset-date", "clin_start" },
    { "Condition", "recorded-date", "created" },
    { "ExplanationOfBenefit", "service-date", "clin_start" },
    { "ExplanationOfBenefit", "created", "created" },
    { "MedicationRequest", "authoredon", "created" },
    { "CarePlan", "date", "clin_start" },
    { "MedicationDispense", "whenhandedover", "clin_start" },
    { "ServiceRequest", "authored", "created" },
    { "Specimen", "collected", "clin_start" },
    { "QuestionnaireResponse", "authored", "created" },
    /* "*": every type */
    { "*", "_lastUpdated", "last_updated" },
    { "Patient", "birthdate", "(rpad(json::jsonb->>'birthDate', 10, '-01') || 'T00:00:00Z')::timestamptz" },
};

/*
 * Search parameters read from the stored JSON when the export runs (only the
 * exports that ask for one pay for it).  sql uses @1 (and @2) for its values:
 * a text[] of the values as given (EX_LIST), lower-cased prefixes for LIKE
 * (EX_STRING: FHIR string search, starts-with and case-insensitive), or for an
 * identifier the system|value pairs (@1) and the bare values (@2).
 */
enum expr_kind { EX_LIST, EX_STRING, EX_IDENT };

struct expr_param {
    const char *type, *param;
    enum expr_kind kind;
    const char *sql;
};

#define NAMES "jsonb_array_elements(CASE WHEN jsonb_typeof(json::jsonb->'name') = 'array' THEN json::jsonb->'name' END)"
#define GIVEN "jsonb_array_elements_text(CASE WHEN jsonb_typeof(n->'given') = 'array' THEN n->'given' END)"

static const struct expr_param expr_params[] = {
    { "*", "_id", EX_LIST, "id = ANY(@1::text[])" },
    { "*", "_profile", EX_LIST, "(json::jsonb->'meta'->'profile') ?| @1::text[]" },
    { "Patient", "gender", EX_LIST, "json::jsonb->>'gender' = ANY(@1::text[])" },
    { "Patient", "identifier", EX_IDENT,
      "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(json::jsonb->'identifier') = 'array' "
      "THEN json::jsonb->'identifier' END) i WHERE coalesce(i->>'system', '') || '|' || (i->>'value') = ANY(@1::text[]) "
      "OR i->>'value' = ANY(@2::text[]))" },
    { "Patient", "name", EX_STRING,
      "EXISTS (SELECT 1 FROM " NAMES " n WHERE lower(n->>'family') LIKE ANY(@1::text[]) "
      "OR lower(n->>'text') LIKE ANY(@1::text[]) OR EXISTS (SELECT 1 FROM " GIVEN
      " g WHERE lower(g) LIKE ANY(@1::text[])))" },
    { "Patient", "family", EX_STRING,
      "EXISTS (SELECT 1 FROM " NAMES " n WHERE lower(n->>'family') LIKE ANY(@1::text[]))" },
    { "Patient", "given", EX_STRING,
      "EXISTS (SELECT 1 FROM " NAMES " n, " GIVEN " g WHERE lower(g) LIKE ANY(@1::text[]))" },
};

static const struct expr_param *find_expr_param(const char *type, const char *param)
{
    size_t i;

    for(i = 0; i < sizeof(expr_params) / sizeof(expr_params[0]); i++)
        if((!strcmp(expr_params[i].type, type) || !strcmp(expr_params[i].type, "*")) &&
           !strcmp(expr_params[i].param, param))
            return &expr_params[i];
    return NULL;
}

static const struct date_param *find_date_param(const char *type, const char *param)
{
    size_t i;

    for(i = 0; i < sizeof(date_params) / sizeof(date_params[0]); i++)
        if((!strcmp(date_params[i].type, type) || !strcmp(date_params[i].type, "*")) &&
           !strcmp(date_params[i].param, param))
            return &date_params[i];
    return NULL;
}

const char *pa_filter_params(const char *type, char *out, size_t size)
{
    const char *const *tokens = pa_fhir_token_params(type);
    size_t n = 0;
    size_t i;

    out[0] = '\0';
    for(i = 0; tokens && tokens[i]; i++)
        n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s%s", n ? ", " : "", tokens[i]);
    for(i = 0; i < sizeof(date_params) / sizeof(date_params[0]); i++)
        if(!strcmp(date_params[i].type, type) || !strcmp(date_params[i].type, "*"))
            n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s%s", n ? ", " : "", date_params[i].param);
    for(i = 0; i < sizeof(expr_params) / sizeof(expr_params[0]); i++)
        if(!strcmp(expr_params[i].type, type) || !strcmp(expr_params[i].type, "*"))
            n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s%s", n ? ", " : "", expr_params[i].param);
    return out;
}

/* A token condition: any of the comma-separated values (system|code, code, |code). */
static int token_cond(const char *param, char *value, json_object *conds, pa_err *err)
{
    json_object *c;
    pa_buf lit;
    char *v = value;
    int count = 0;
    int rc = PA_OK;

    pa_buf_init(&lit, 64 * 1024);
    pa_buf_addstr(&lit, "{");
    while(!rc && v) {
        char *next = strchr(v, ',');
        char *bar;
        char item[1024];

        if(next)
            *next++ = '\0';
        if(pa_url_decode(v, 0) || !*v || !pa_utf8_valid(v, strlen(v))) {
            rc = pa_err_set(err, PA_EINVAL, "_typeFilter %s has an empty or malformed value (or one not UTF-8)", param);
            break;
        }
        bar = strchr(v, '|');
        if(bar && !bar[1]) {
            rc =
                pa_err_set(err, PA_ENOTSUP, "_typeFilter %s=%.80s: a system without a code is not supported", param, v);
            break;
        }
        if(++count > PA_FILTER_MAX_VALUES) {
            rc = pa_err_set(err, PA_EINVAL, "_typeFilter %s has more than %d values", param, PA_FILTER_MAX_VALUES);
            break;
        }
        if((size_t)snprintf(item, sizeof(item), "%s=%s", param, v) >= sizeof(item) || pa_pgarray_add(&lit, item)) {
            rc = pa_err_set(err, PA_EINVAL, "_typeFilter %s value too long", param);
            break;
        }
        v = next;
    }
    if(!rc) {
        pa_buf_addstr(&lit, "}");
        c = json_object_new_object();
        json_object_object_add(c, "tokens", json_object_new_string(pa_buf_str(&lit)));
        json_object_array_add(conds, c);
    }
    pa_buf_free(&lit);
    return rc;
}

/* A condition read from the JSON: its values as text[] literals. */
static int expr_cond(const char *type, const struct expr_param *e, char *value, json_object *conds, pa_err *err)
{
    pa_buf lit[2];
    char *v = value;
    int count = 0, k, rc = PA_OK;
    json_object *c;

    for(k = 0; k < 2; k++) {
        pa_buf_init(&lit[k], 64 * 1024);
        pa_buf_addstr(&lit[k], "{");
    }
    while(!rc && v) {
        char *next = strchr(v, ',');
        char item[1024];
        size_t i, n = 0;

        if(next)
            *next++ = '\0';
        if(pa_url_decode(v, 0) || !*v || !pa_utf8_valid(v, strlen(v)) || strlen(v) > 500) {
            rc = pa_err_set(err, PA_EINVAL, "_typeFilter %s has an empty, malformed or too long value", e->param);
            break;
        }
        if(++count > PA_FILTER_MAX_VALUES) {
            rc = pa_err_set(err, PA_EINVAL, "_typeFilter %s has more than %d values", e->param, PA_FILTER_MAX_VALUES);
            break;
        }
        if(e->kind == EX_STRING) {
            /* starts with, whatever the case: LIKE 'value%', its own % _ \ escaped */
            for(i = 0; v[i] && n + 3 < sizeof(item); i++) {
                if(v[i] == '%' || v[i] == '_' || v[i] == '\\')
                    item[n++] = '\\';
                item[n++] = (v[i] >= 'A' && v[i] <= 'Z') ? (char)(v[i] - 'A' + 'a') : v[i];
            }
            item[n++] = '%';
            item[n] = '\0';
            rc = pa_pgarray_add(&lit[0], item);
        }
        else
            rc = pa_pgarray_add(&lit[e->kind == EX_IDENT && !strchr(v, '|') ? 1 : 0], v);
        v = next;
    }
    if(!rc) {
        c = json_object_new_object();
        json_object_object_add(c, "expr", json_object_new_string(e->param));
        json_object_object_add(c, "expr_type", json_object_new_string(type));
        for(k = 0; k < 2; k++) {
            pa_buf_addstr(&lit[k], "}");
            json_object_object_add(c, k ? "v2" : "v1", json_object_new_string(pa_buf_str(&lit[k])));
        }
        json_object_array_add(conds, c);
    }
    for(k = 0; k < 2; k++)
        pa_buf_free(&lit[k]);
    return rc;
}

/* A date condition: [prefix]date with the precision of the value. */
static int date_cond(const struct date_param *d, char *value, json_object *conds, pa_err *err)
{
    static const char *const prefixes[] = { "eq", "ge", "gt", "le", "lt", NULL };
    const char *op = "eq";
    char ts[PA_TS_LEN];
    const char *unit;
    json_object *c;
    size_t n;
    int i;

    if(pa_url_decode(value, 0) || strchr(value, ','))
        return pa_err_set(err, PA_EINVAL, "_typeFilter %s takes one date (no lists)", d->param);
    for(i = 0; prefixes[i]; i++)
        if(!strncmp(value, prefixes[i], 2)) {
            op = prefixes[i];
            value += 2;
            break;
        }
    if(value[0] < '0' || value[0] > '9')
        return pa_err_set(err, PA_ENOTSUP, "_typeFilter %s: prefix '%.2s' is not supported (eq, ge, gt, le, lt)",
                          d->param, value);
    if(pa_fhir_date_ts(value, ts))
        return pa_err_set(err, PA_EINVAL, "_typeFilter %s: '%.40s' is not a FHIR date", d->param, value);
    n = strlen(value);
    unit = n == 4 ? "1 year" : n == 7 ? "1 month" : n == 10 ? "1 day" : "1 millisecond";
    c = json_object_new_object();
    json_object_object_add(c, "column", json_object_new_string(d->column));
    json_object_object_add(c, "op", json_object_new_string(op));
    json_object_object_add(c, "start", json_object_new_string(ts));
    json_object_object_add(c, "unit", json_object_new_string(unit));
    json_object_array_add(conds, c);
    return PA_OK;
}

int pa_filter_add(json_object *filters, const char *query, pa_err *err)
{
    char type[64];
    char *copy = NULL, *p;
    const char *q = strchr(query, '?');
    json_object *conds = NULL, *list;
    int rc = PA_OK;

    if(!q || q == query || (size_t)(q - query) >= sizeof(type) || !q[1])
        return pa_err_set(err, PA_EINVAL, "_typeFilter '%.80s' is not Type?parameters", query);
    snprintf(type, sizeof(type), "%.*s", (int)(q - query), query);
    if(!pa_fhir_type_find(type))
        return pa_err_set(err, PA_EINVAL, "_typeFilter names type '%s', which this server does not export", type);
    copy = strdup(q + 1);
    conds = json_object_new_array();
    for(p = copy; !rc && p && *p;) {
        char *next = strchr(p, '&');
        char *eq, *colon;
        const struct date_param *d;

        if(next)
            *next++ = '\0';
        eq = strchr(p, '=');
        if(!eq) {
            rc = pa_err_set(err, PA_EINVAL, "_typeFilter %s: '%.60s' is not param=value", type, p);
            break;
        }
        *eq = '\0';
        if(pa_url_decode(p, 0)) {
            rc = pa_err_set(err, PA_EINVAL, "_typeFilter %s: malformed parameter name", type);
            break;
        }
        colon = strchr(p, ':');
        if(colon) {
            rc = pa_err_set(err, PA_ENOTSUP, "_typeFilter %s: modifier ':%.20s' on %.*s is not supported", type,
                            colon + 1, (int)(colon - p), p);
            break;
        }
        d = find_date_param(type, p);
        if(d)
            rc = date_cond(d, eq + 1, conds, err);
        else if(pa_fhir_token_param(type, p))
            rc = token_cond(p, eq + 1, conds, err);
        else if(find_expr_param(type, p))
            rc = expr_cond(type, find_expr_param(type, p), eq + 1, conds, err);
        else {
            char supported[512];

            rc = pa_err_set(err, PA_ENOTSUP, "_typeFilter %s: parameter '%.40s' is not supported (supported: %s)", type,
                            p, *pa_filter_params(type, supported, sizeof(supported)) ? supported : "none");
        }
        p = next;
    }
    if(!rc) {
        if(!json_object_object_get_ex(filters, type, &list)) {
            list = json_object_new_array();
            json_object_object_add(filters, type, list);
        }
        json_object_array_add(list, conds);
        conds = NULL;
    }
    json_object_put(conds);
    free(copy);
    return rc;
}

static const char *jstr(json_object *o, const char *k)
{
    json_object *v;

    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

int pa_filter_sql(json_object *queries, pa_buf *sql, int first, const char **values, int *n, int max)
{
    size_t q, c;
    int rc = PA_OK;

    *n = 0;
    if(!queries || json_object_array_length(queries) == 0)
        return PA_OK;
    rc = pa_buf_addstr(sql, " AND (");
    for(q = 0; !rc && q < json_object_array_length(queries); q++) {
        json_object *conds = json_object_array_get_idx(queries, q);

        rc = pa_buf_addstr(sql, q ? " OR (true" : "(true");
        for(c = 0; !rc && c < json_object_array_length(conds); c++) {
            json_object *cond = json_object_array_get_idx(conds, c);
            const char *op = jstr(cond, "op");
            const char *col = jstr(cond, "column");
            int k = first + *n;

            if(*n + 2 > max)
                return PA_ETOOBIG;
            /* columns and expressions come from the tables above, never from the request */
            if(*jstr(cond, "expr")) {
                const struct expr_param *e = find_expr_param(jstr(cond, "expr_type"), jstr(cond, "expr"));
                const char *at;

                if(!e)
                    return PA_EINVAL;
                values[(*n)++] = jstr(cond, "v1");
                if(strstr(e->sql, "@2"))
                    values[(*n)++] = jstr(cond, "v2");
                rc = pa_buf_addstr(sql, " AND (");
                for(at = e->sql; !rc && *at; at++)
                    rc = at[0] == '@' && (at[1] == '1' || at[1] == '2') ? pa_buf_printf(sql, "$%d", k + (*++at - '1'))
                                                                        : pa_buf_add(sql, at, 1);
                rc = rc ? rc : pa_buf_addstr(sql, ")");
            }
            else if(*jstr(cond, "tokens")) {
                values[(*n)++] = jstr(cond, "tokens");
                rc = pa_buf_printf(sql, " AND tokens && $%d::text[]", k);
            }
            else if(!strcmp(op, "ge") || !strcmp(op, "lt")) {
                values[(*n)++] = jstr(cond, "start");
                rc = pa_buf_printf(sql, " AND %s %s $%d::timestamptz", col, op[0] == 'g' ? ">=" : "<", k);
            }
            else {
                values[(*n)++] = jstr(cond, "start");
                values[(*n)++] = jstr(cond, "unit");
                if(!strcmp(op, "gt"))
                    rc = pa_buf_printf(sql, " AND %s >= $%d::timestamptz + $%d::interval", col, k, k + 1);
                else if(!strcmp(op, "le"))
                    rc = pa_buf_printf(sql, " AND %s < $%d::timestamptz + $%d::interval", col, k, k + 1);
                else
                    rc = pa_buf_printf(sql, " AND %s >= $%d::timestamptz AND %s < $%d::timestamptz + $%d::interval",
                                       col, k, col, k, k + 1);
            }
        }
        if(!rc)
            rc = pa_buf_addstr(sql, ")");
    }
    return rc ? rc : pa_buf_addstr(sql, ")");
}

int pa_filter_check(json_object *filters, pa_err *err)
{
    const char *values[PA_FILTER_SQL_VALUES];
    pa_buf sql;
    int n, rc = PA_OK;

    if(!json_object_is_type(filters, json_type_object))
        return PA_OK;
    pa_buf_init(&sql, PA_FILTER_SQL_BYTES);
    json_object_object_foreach(filters, type, queries)
    {
        pa_buf_reset(&sql);
        if(pa_filter_sql(queries, &sql, 8, values, &n, PA_FILTER_SQL_VALUES)) {
            rc = pa_err_set(err, PA_ETOOBIG,
                            "the _typeFilter queries of %s are too many or too long for one export (at most %d "
                            "conditions' values, %d bytes of query)",
                            type, PA_FILTER_SQL_VALUES, PA_FILTER_SQL_BYTES);
            break;
        }
    }
    pa_buf_free(&sql);
    return rc;
}
