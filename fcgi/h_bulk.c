/*
 * Bulk Data: the Group export kick-off, the job status URL (GET polls,
 * DELETE cancels) and the output file downloads.  Every job and file is
 * reachable only by the client that started the job; to anyone else it does
 * not exist (404).
 */
#include "api.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_filter.h"
#include "pa_job.h"
#include "pa_jobfiles.h"
#include "pa_json.h"
#include "pa_log.h"
#include "pa_manifest.h"
#include "pa_roster.h"
#include "pa_util.h"

#define MAX_EXPORT_PARAMS 64
#define MAX_PARAM_VALUE 8192

struct xparam {
    const char *name;
    const char *value;
};

struct xparams {
    struct xparam p[MAX_EXPORT_PARAMS];
    size_t n;
    json_object *body; /* owns the strings taken from a POST body */
};

/* Answers 400 with an OperationOutcome (issue type code) and returns -1. */
static int reject(pa_resp *resp, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int reject(pa_resp *resp, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    pa_resp_voutcome(resp, 400, "error", code, fmt, ap);
    va_end(ap);
    return -1;
}

static int add_param(struct xparams *xp, const char *name, const char *value, pa_resp *resp)
{
    if(xp->n == MAX_EXPORT_PARAMS)
        return reject(resp, "too-costly", "more than %d export parameters", MAX_EXPORT_PARAMS);
    if(strlen(value) > MAX_PARAM_VALUE)
        return reject(resp, "too-costly", "parameter %.40s is longer than %d characters", name, MAX_PARAM_VALUE);
    xp->p[xp->n].name = name;
    xp->p[xp->n].value = value;
    xp->n++;
    return 0;
}

/* Reads the primitive value[x] of one Parameters.parameter entry. */
static const char *param_value(json_object *entry)
{
    static const char *const keys[] = { "valueString", "valueCode",      "valueInstant", "valueDateTime",
                                        "valueUri",    "valueCanonical", "valueId",      NULL };
    json_object *v;
    size_t i;

    for(i = 0; keys[i]; i++)
        if(json_object_object_get_ex(entry, keys[i], &v) && json_object_is_type(v, json_type_string))
            return json_object_get_string(v);
    if(json_object_object_get_ex(entry, "valueReference", &v) && json_object_object_get_ex(v, "reference", &v) &&
       json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

/* Collects export parameters from the query string and, for POST, from a
 * FHIR Parameters body.  Answers 400/415 itself and returns -1 on a problem. */
static int collect_params(const pa_req *req, struct xparams *xp, pa_resp *resp)
{
    json_object *params;
    pa_err err;
    size_t i;

    for(i = 0; i < req->nparams; i++)
        if(strcmp(req->params[i].name, "_format") && add_param(xp, req->params[i].name, req->params[i].value, resp))
            return -1;
    if(strcmp(req->method, "POST") || req->body_len == 0)
        return 0;
    if(!pa_media_type_is(req->content_type, PA_MT_FHIR_JSON) && !pa_media_type_is(req->content_type, PA_MT_JSON)) {
        pa_resp_outcome(resp, 415, "error", "not-supported",
                        "the request body must be a FHIR Parameters resource sent as "
                        "application/fhir+json, not '%.80s'",
                        req->content_type ? req->content_type : "(no Content-Type)");
        return -1;
    }
    if(pa_json_parse(req->body, req->body_len, &xp->body, &err)) {
        pa_resp_outcome(resp, 400, "error", "structure", "the request body is %s", err.msg);
        return -1;
    }
    {
        json_object *rt;

        if(!json_object_is_type(xp->body, json_type_object) ||
           !json_object_object_get_ex(xp->body, "resourceType", &rt) || !json_object_is_type(rt, json_type_string) ||
           strcmp(json_object_get_string(rt), "Parameters")) {
            pa_resp_outcome(resp, 400, "error", "invalid", "the request body must be a FHIR Parameters resource");
            return -1;
        }
    }
    if(!json_object_object_get_ex(xp->body, "parameter", &params))
        return 0;
    if(!json_object_is_type(params, json_type_array)) {
        pa_resp_outcome(resp, 400, "error", "invalid", "Parameters.parameter must be an array");
        return -1;
    }
    for(i = 0; i < json_object_array_length(params); i++) {
        json_object *entry = json_object_array_get_idx(params, i);
        json_object *name;
        const char *value;

        if(!json_object_object_get_ex(entry, "name", &name) || !json_object_is_type(name, json_type_string)) {
            pa_resp_outcome(resp, 400, "error", "invalid", "Parameters.parameter[%zu] has no name", i);
            return -1;
        }
        value = param_value(entry);
        if(!value) {
            pa_resp_outcome(resp, 400, "error", "invalid",
                            "Parameters.parameter[%zu] (%.40s) has no value of a supported type", i,
                            json_object_get_string(name));
            return -1;
        }
        if(add_param(xp, json_object_get_string(name), value, resp))
            return -1;
    }
    return 0;
}

static const char *const export_types_pdex[] = { "hl7.fhir.us.davinci-pdex#provider-delta",
                                                 "hl7.fhir.us.davinci-pdex#provider-download",
                                                 "hl7.fhir.us.davinci-pdex#provider-snapshot", NULL };

/* Adds the comma-separated types of one _type value to types (no repeats). */
static int add_types(json_object *types, const char *t, pa_resp *resp)
{
    /* an empty _type would otherwise ask for nothing, and get everything */
    if(!*t)
        return reject(resp, "required", "_type is empty: name the types to export (e.g. _type=Patient,Coverage)");
    while(*t) {
        size_t n = strcspn(t, ",");
        char type[64];
        size_t k;

        snprintf(type, sizeof(type), "%.*s", (int)(n > 63 ? 63 : n), t);
        if(n == 0 || n > 63 || !pa_fhir_type_find(type))
            return reject(resp, "not-supported", "_type '%.*s' is not a type this server exports",
                          (int)(n > 64 ? 64 : n), t);
        for(k = 0; k < json_object_array_length(types); k++)
            if(!strcmp(json_object_get_string(json_object_array_get_idx(types, k)), type))
                break;
        if(k == json_object_array_length(types))
            json_object_array_add(types, json_object_new_string(type));
        t += n;
        if(*t == ',' && !*++t)
            return reject(resp, "invalid", "_type ends with a comma: a type is missing");
    }
    return 0;
}

/* Reads one instant parameter (_since, _until); -1 after answering 400. */
static int instant_param(const char *name, const char *v, int64_t now, json_object *out, pa_resp *resp)
{
    int64_t ms;

    if(json_object_object_get_ex(out, name + 1, NULL))
        return reject(resp, "invalid", "%s is given twice", name);
    if(pa_parse_instant(v, &ms))
        return reject(resp, "invalid", "%s '%.80s' is not a FHIR instant (e.g. 2024-01-01T00:00:00Z)", name, v);
    if(ms > now)
        return reject(resp, "invalid", "%s '%.80s' is in the future", name, v);
    json_object_object_add(out, name + 1, json_object_new_int64(ms));
    return 0;
}

/* Notes a parameter ignored under Prefer: handling=lenient, for the manifest's error file. */
static void ignore_param(json_object *ignored, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ignore_param(json_object *ignored, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_array_add(ignored, json_object_new_string(msg));
}

/* Whether the request asked for lenient handling (Prefer: handling=lenient). */
static int lenient_handling(const pa_req *req)
{
    const char *p;

    for(p = req->prefer ? strstr(req->prefer, "handling") : NULL; p; p = strstr(p, "handling")) {
        p += 8;
        p += strspn(p, " \t");
        if(*p == '=' && !strncasecmp(p + 1 + strspn(p + 1, " \t\""), "lenient", 7))
            return 1;
    }
    return 0;
}

/* The levels of a kick-off: a Group's members, the caller's patients
 * (Patient/$export), or everything it may see (/$export). */
enum level { LEVEL_GROUP, LEVEL_PATIENT, LEVEL_SYSTEM };

static const char *const level_names[] = { "group", "patient", "system" };

/* Whether a Patient-level export may hold the types: the Patient compartment
 * only (the shared resources come with a system-level or Group export). */
static int compartment_only(json_object *types, pa_resp *resp)
{
    size_t k;

    for(k = 0; k < json_object_array_length(types); k++) {
        const char *type = json_object_get_string(json_object_array_get_idx(types, k));

        if(!pa_fhir_type_find(type)->patient_path)
            return reject(resp, "not-supported",
                          "_type %s is not in the Patient compartment: a Patient-level export holds the patients' "
                          "own data; %s comes with /$export or a Group export",
                          type, type);
    }
    return 0;
}

/* Adds the comma-separated elements of one _elements value (Type.element or
 * element, top-level only) to elements. */
static int add_elements(json_object *elements, const char *v, pa_resp *resp)
{
    if(!*v)
        return reject(resp, "required", "_elements is empty: name the elements to keep (e.g. _elements=id,status)");
    while(*v) {
        size_t n = strcspn(v, ",");
        char item[160], *dot;
        const char *type = "*", *name = item;
        json_object *list;

        if(n == 0 || n >= sizeof(item))
            return reject(resp, "invalid", "_elements has an empty or overlong element");
        memcpy(item, v, n);
        item[n] = '\0';
        dot = strchr(item, '.');
        if(dot && !isupper((unsigned char)item[0]))
            return reject(resp, "not-supported",
                          "_elements '%.80s' is a nested element: only top-level ones (Type.element or element) are "
                          "supported",
                          item);
        if(dot) {
            *dot = '\0';
            type = item;
            name = dot + 1;
            if(!pa_fhir_type_find(type))
                return reject(resp, "not-supported", "_elements '%s.%s': %s is not a type this server exports", item,
                              name, item);
        }
        if(!pa_fhir_element_name_valid(name))
            return reject(resp, "not-supported",
                          "_elements '%.80s' is not a top-level element (Type.element or element; nested "
                          "elements are not supported)",
                          v);
        if(!json_object_object_get_ex(elements, type, &list)) {
            list = json_object_new_array();
            json_object_object_add(elements, type, list);
        }
        if(json_object_array_length(list) == 64)
            return reject(resp, "too-costly", "_elements names more than 64 elements of one type");
        json_object_array_add(list, json_object_new_string(name));
        v += n;
        if(*v == ',' && !*++v)
            return reject(resp, "invalid", "_elements ends with a comma: an element is missing");
    }
    return 0;
}

/* Validates the parameters into the job's params object; answers 400 itself.
 * lenient: parameters this server does not support are noted in "ignored"
 * instead (Prefer: handling=lenient).  exportType (PDex) belongs to Group
 * exports, patient to Group and Patient-level ones. */
/* patient=...: each reference of a comma list appended to patients as
 * given (references that are not members are reported, not refused; no
 * reference holds a comma); -1 once answered. */
static int add_patients(json_object *patients, const char *v, pa_resp *resp)
{
    const char *p = v;

    if(!*p)
        return reject(resp, "required", "patient is empty: name a Patient reference (patient=Patient/123)");
    while(*p) {
        size_t n = strcspn(p, ",");

        /* "a,,b" or a trailing comma: a reference is missing, and a list of
         * nothing must never read as every member */
        if(!n || (p[n] == ',' && !p[n + 1]))
            return reject(resp, "invalid", "patient '%.80s' has an empty reference", v);
        if(json_object_array_length(patients) == PA_EXPORT_MAX_PATIENTS)
            return reject(resp, "too-costly",
                          "more than %d patient references; export the whole Group, or split the list",
                          PA_EXPORT_MAX_PATIENTS);
        json_object_array_add(patients, json_object_new_string_len(p, (int)n));
        p += n + (p[n] == ',');
    }
    return 0;
}

/* Whether types (a JSON array of names) holds type. */
static int has_type(json_object *types, const char *type)
{
    size_t k;

    for(k = 0; k < json_object_array_length(types); k++)
        if(!strcmp(json_object_get_string(json_object_array_get_idx(types, k)), type))
            return 1;
    return 0;
}

/* One kick-off parameter into the job's params (out, whose lists it fills);
 * -1 once answered.  *format and *export_type catch a second of each. */
static int job_param(const char *name, const char *v, enum level level, int64_t now, int lenient, json_object *out,
                     const char **format, const char **export_type, pa_resp *resp)
{
    pa_err err;
    size_t k;

    if(!strcmp(name, "_outputFormat")) {
        if(*format)
            return reject(resp, "invalid", "_outputFormat is given twice");
        *format = v;
        if(strcmp(v, "application/fhir+ndjson") && strcmp(v, "application/ndjson") && strcmp(v, "ndjson"))
            return reject(resp, "not-supported",
                          "_outputFormat '%.80s' is not supported: use application/fhir+ndjson, application/ndjson "
                          "or ndjson",
                          v);
        return 0;
    }
    if(!strcmp(name, "_since") || !strcmp(name, "_until"))
        return instant_param(name, v, now, out, resp);
    if(!strcmp(name, "_type")) {
        /* repeated _type parameters are one comma-joined list */
        if(add_types(pa_json_get(out, "types"), v, resp))
            return -1;
        json_object_array_add(pa_json_get(out, "asked_types"), json_object_new_string(v));
        return 0;
    }
    if(!strcmp(name, "_typeFilter")) {
        if(!pa_filter_add(pa_json_get(out, "filters"), v, &err))
            json_object_array_add(pa_json_get(out, "asked_filters"), json_object_new_string(v));
        else if(!lenient || err.code != PA_ENOTSUP)
            return reject(resp, "not-supported", "%s", err.msg);
        else
            ignore_param(pa_json_get(out, "ignored"),
                         "_typeFilter '%.200s' was not applied (%.200s): its type is "
                         "exported unfiltered, as Prefer: handling=lenient asked",
                         v, err.msg);
        return 0;
    }
    if(!strcmp(name, "_elements"))
        return add_elements(pa_json_get(out, "elements"), v, resp);
    if(!strcmp(name, "includeAssociatedData"))
        /* never ignored, even when lenient: the client would take its absence for "none exists" */
        return reject(resp, "not-supported",
                      "includeAssociatedData is not supported: this server does not export associated data "
                      "(such as LatestProvenanceResources); Provenance is exported as a type (_type=Provenance)");
    if(!strcmp(name, "patient") && level != LEVEL_SYSTEM)
        return add_patients(pa_json_get(out, "patients"), v, resp);
    if(!strcmp(name, "exportType") && level == LEVEL_GROUP) {
        if(*export_type)
            return reject(resp, "invalid", "exportType is given twice");
        for(k = 0; export_types_pdex[k] && strcmp(export_types_pdex[k], v); k++)
            ;
        if(!export_types_pdex[k])
            return reject(resp, "not-supported",
                          "exportType '%.80s' is not supported: use hl7.fhir.us.davinci-pdex#provider-download, "
                          "#provider-delta or #provider-snapshot",
                          v);
        *export_type = v;
        return 0;
    }
    if(!lenient)
        /* an ignored parameter would export more than was asked for */
        return reject(resp, "not-supported",
                      "export parameter '%.60s' is not supported (with Prefer: handling=lenient it is ignored, "
                      "and named in the manifest's error file)",
                      name);
    ignore_param(pa_json_get(out, "ignored"),
                 "export parameter '%.60s' is not supported; it was ignored, as Prefer: "
                 "handling=lenient asked",
                 name);
    return 0;
}

/* The parameters checked against each other once all are read; the types
 * exported filled in when _type named none.  -1 once answered. */
static int check_job_params(enum level level, const char *export_type, json_object *out, pa_resp *resp)
{
    json_object *types = pa_json_get(out, "types"), *since = pa_json_get(out, "since"),
                *until = pa_json_get(out, "until");
    pa_err err;
    size_t k;

    if(export_type && !strcmp(export_type, export_types_pdex[0]) && !since)
        return reject(resp, "required", "exportType provider-delta needs _since: the changes since when?");
    if(since && until && json_object_get_int64(since) >= json_object_get_int64(until))
        return reject(resp, "invalid", "_since must be before _until");
    if(pa_filter_check(pa_json_get(out, "filters"), &err))
        return reject(resp, "too-costly", "%s", err.msg);
    if(json_object_array_length(types) == 0) {
        for(k = 0; pa_fhir_type_names()[k]; k++)
            if(level != LEVEL_PATIENT || pa_fhir_type_find(pa_fhir_type_names()[k])->patient_path)
                json_object_array_add(types, json_object_new_string(pa_fhir_type_names()[k]));
        return 0;
    }
    if(level == LEVEL_PATIENT && compartment_only(types, resp))
        return -1;
    /* a filter (or _elements) for a type that is not exported would be silently meaningless */
    { json_object_object_foreach(pa_json_get(out, "elements"), etype, ev){ (void)ev;
    if(strcmp(etype, "*") && !has_type(types, etype))
        return reject(resp, "invalid", "_elements names %s, which _type does not ask for", etype);
}
}
{
    json_object_object_foreach(pa_json_get(out, "filters"), ftype, fv)
    {
        (void)fv;
        if(!has_type(types, ftype))
            return reject(resp, "invalid", "_typeFilter names %s, which _type does not ask for", ftype);
    }
}
return 0;
}

static int build_job_params(const struct xparams *xp, enum level level, int64_t now, int lenient, json_object *out,
                            pa_resp *resp)
{
    static const char *const lists[] = { "types", "patients", "asked_types", "asked_filters", "ignored", NULL };
    const char *format = NULL, *export_type = NULL;
    size_t i;

    json_object_object_add(out, "level", json_object_new_string(level_names[level]));
    /* types, patients; as asked (asked_*), for the record of what a
     * provider-download gave; ignored: what Prefer: handling=lenient let
     * through unapplied, named in the error file */
    for(i = 0; lists[i]; i++)
        json_object_object_add(out, lists[i], json_object_new_array());
    json_object_object_add(out, "filters", json_object_new_object());
    /* _elements: {"*": [for every type], "Type": [...]}; absent: whole resources */
    json_object_object_add(out, "elements", json_object_new_object());
    for(i = 0; lists[i]; i++)
        if(!pa_json_get(out, lists[i]))
            break;
    if(lists[i] || !pa_json_get(out, "filters") || !pa_json_get(out, "elements")) {
        pa_resp_outcome(resp, 500, "fatal", "exception", "out of memory");
        return -1;
    }
    for(i = 0; i < xp->n; i++)
        if(job_param(xp->p[i].name, xp->p[i].value, level, now, lenient, out, &format, &export_type, resp))
            return -1;
    if(!export_type && level == LEVEL_GROUP)
        export_type = "hl7.fhir.us.davinci-pdex#provider-download";
    if(export_type)
        json_object_object_add(out, "exportType", json_object_new_string(export_type));
    return check_job_params(level, export_type, out, resp);
}

/*
 * The export holds only what the token's scopes cover: a type named in _type
 * (or _typeFilter) outside them is 403; without _type, the types it covers.
 */
static int scope_types(pa_ctx *ctx, json_object *jp, pa_resp *resp)
{
    json_object *types = json_object_object_get(jp, "types"), *filters = json_object_object_get(jp, "filters");
    json_object *kept;
    int explicit = json_object_array_length(json_object_object_get(jp, "asked_types")) > 0;
    size_t i;

    {
        json_object_object_foreach(filters, ftype, fv)
        {
            (void)fv;
            if(pa_api_require_read(ctx, resp, ftype))
                return -1;
        }
    }
    kept = json_object_new_array();
    for(i = 0; i < json_object_array_length(types); i++) {
        const char *type = json_object_get_string(json_object_array_get_idx(types, i));

        if(pa_scope_allows(ctx->token.scope, type))
            json_object_array_add(kept, json_object_new_string(type));
        else if(explicit) {
            json_object_put(kept);
            return pa_api_require_read(ctx, resp, type);
        }
    }
    if(json_object_array_length(kept) == 0) {
        json_object_put(kept);
        pa_resp_outcome(resp, 403, "error", "forbidden",
                        "the access token's scope (%s) covers none of the types an export holds", ctx->token.scope);
        pa_strlcpy(ctx->audit.detail, "scope covers no exported type", sizeof(ctx->audit.detail));
        return -1;
    }
    json_object_object_add(jp, "types", kept);
    return 0;
}

/*
 * Whether the caller may export the Group: a roster attributed to its NPI or
 * its organization's (payer admin clients see all), or a Matched Group it made
 * and that has not expired.  *members is its size.
 * Anything the caller may not see does not exist for it.
 */
static int group_visible(PGconn *db, const pa_token *t, const char *id, int *visible, long *members, pa_err *err)
{
    const char *values[5] = { id, t->npi, t->org_npi, t->admin ? "true" : "false", t->client_id };
    PGresult *res;

    /* a roster attributed to the caller, or a Matched Group it made that has not expired */
    res = pa_db_query(
        db, err,
        "SELECT (SELECT count(*) FROM roster_member m WHERE m.roster_id = r.id) FROM roster r "
        "WHERE r.id = $1 AND " PA_SQL_ROSTER_VISIBLE(
            "r", "$2", "$3",
            "$4::bool") " "
                        "UNION ALL SELECT (SELECT count(*) FROM matched_group_member m WHERE m.group_id = g.id)"
                        " FROM matched_group g WHERE g.id = $1 AND g.client_id = $5 AND g.expires_at > now()",
        5, values);
    if(!res)
        return PA_EDB;
    *visible = PQntuples(res) == 1;
    if(*visible)
        pa_parse_long(PQgetvalue(res, 0, 0), members);
    PQclear(res);
    return PA_OK;
}

/* The checks every kick-off starts with: Accept, Prefer: respond-async. */
static int kickoff_headers(const pa_req *req, pa_resp *resp)
{
    if(!req->accept || !*req->accept) {
        pa_resp_outcome(resp, 400, "error", "required", "an export needs the header Accept: application/fhir+json");
        return -1;
    }
    if(pa_accept_pick(req->accept, pa_fhir_json_types) < 0) {
        pa_resp_outcome(resp, 406, "error", "not-supported",
                        "an export answers with application/fhir+json; Accept '%.80s' does not allow it", req->accept);
        return -1;
    }
    if(!req->prefer || !strstr(req->prefer, "respond-async")) {
        pa_resp_outcome(resp, 400, "error", "required",
                        "an export is asynchronous: send the header Prefer: respond-async");
        return -1;
    }
    return 0;
}

/*
 * An export kick-off at any level: group is the Group (LEVEL_GROUP).  The
 * job's params say whom it covers ("members": the Group, the client's
 * patients, or every patient for a payer admin client) and what the runner
 * needs to know of the client.
 */
static void kickoff(pa_ctx *ctx, pa_req *req, pa_resp *resp, enum level level, const char *group)
{
    struct xparams xp;
    json_object *jp = NULL;
    pa_job *job = NULL;
    PGconn *db;
    pa_err err;
    int64_t now = pa_now_ms();
    int found = 0;
    const char *stage = "refused: the headers";

    memset(&xp, 0, sizeof(xp));
    pa_err_clear(&err);
    ctx->audit.operation = "export";
    if(group)
        pa_strlcpy(ctx->audit.group_id, group, sizeof(ctx->audit.group_id));
    if(kickoff_headers(req, resp))
        goto out;
    stage = "refused: the Group";
    if(group && !pa_fhir_id_valid(group)) {
        pa_resp_outcome(resp, 404, "error", "not-found", "no Group '%.64s'", group);
        goto out;
    }
    stage = "refused: the parameters";
    if(collect_params(req, &xp, resp))
        goto out;
    jp = json_object_new_object();
    if(build_job_params(&xp, level, now, lenient_handling(req), jp, resp) || scope_types(ctx, jp, resp))
        goto out;
    stage = "refused: the Group";
    if(group) {
        if(pa_ctx_db(ctx, &db, &err) || group_visible(db, &ctx->token, group, &found, &ctx->audit.members, &err)) {
            pa_resp_error(resp, &err);
            goto out;
        }
        if(!found) {
            pa_resp_outcome(resp, 404, "error", "not-found", "no Group '%.64s'", group);
            pa_strlcpy(ctx->audit.detail, "no such Group, or not attributed to the client", sizeof(ctx->audit.detail));
            goto out;
        }
        json_object_object_add(jp, "group", json_object_new_string(group));
    }
    json_object_object_add(jp, "members",
                           json_object_new_string(group              ? "group"
                                                  : ctx->token.admin ? "all"
                                                                     : "client"));
    /* what the runner needs to know of the client: who to check opt-outs for, which EOB view */
    json_object_object_add(jp, "npi", json_object_new_string(ctx->token.npi));
    json_object_object_add(jp, "org_npi", json_object_new_string(ctx->token.org_npi));
    json_object_object_add(jp, "financial", json_object_new_boolean(ctx->token.financial));
    stage = "not queued";
    if(pa_api_job_create(ctx, req, resp, "export", json_object_to_json_string_ext(jp, JSON_C_TO_STRING_PLAIN), now,
                         &job) ||
       pa_api_job_submit(ctx, resp, job, "export"))
        goto out;
    pa_info("%s export%s%s accepted as job %s", level_names[level], group ? " of Group " : "", group ? group : "",
            job->id);
out:
    pa_api_audit_refusal(ctx, resp, stage);
    json_object_put(xp.body);
    json_object_put(jp);
    pa_job_free(job);
}

void pa_h_group_export(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    kickoff(ctx, req, resp, LEVEL_GROUP, args[0]);
}

void pa_h_patient_export(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    (void)args;
    kickoff(ctx, req, resp, LEVEL_PATIENT, NULL);
}

void pa_h_system_export(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    (void)args;
    kickoff(ctx, req, resp, LEVEL_SYSTEM, NULL);
}

/* The caller's job as PostgreSQL recorded it, when Redis does not have it
 * (Redis restarted empty): a finished job is served until it expires. */
static int job_from_db(pa_ctx *ctx, const char *id, pa_job **job, pa_err *err)
{
    PGconn *db;
    int rc;

    if(strspn(id, "0123456789abcdef") != PA_JOB_ID_LEN)
        return pa_err_set(err, PA_ENOTFOUND, "no such job");
    rc = pa_ctx_db(ctx, &db, err);
    if(!rc)
        rc = pa_job_db_read(db, id, ctx->client_id, job, err);
    if(rc)
        return rc;
    if(!strcmp((*job)->state, "expired") ||
       ((*job)->finished && (*job)->finished + ctx->cfg->retention_seconds * 1000 < pa_now_ms())) {
        pa_job_free(*job);
        *job = NULL;
        return pa_err_set(err, PA_ENOTFOUND, "no such job");
    }
    return PA_OK;
}

/* Loads the caller's own job; anything else is "no such job". */
static int load_own_job(pa_ctx *ctx, const char *id, pa_job **job, pa_resp *resp)
{
    pa_redis *redis;
    pa_err err;
    int rc;

    pa_err_clear(&err);
    if(pa_ctx_take_job(ctx, id, job) == 0)
        rc = *job ? PA_OK : pa_err_set(&err, PA_ENOTFOUND, "no such job");
    else {
        rc = pa_ctx_redis(ctx, &redis, &err);
        if(!rc)
            rc = pa_job_get(redis, id, job, &err);
    }
    if(rc == PA_ENOTFOUND)
        rc = job_from_db(ctx, id, job, &err);
    if(!rc && (strcmp((*job)->owner, ctx->client_id) || !strcmp((*job)->state, "cancelled"))) {
        pa_job_free(*job);
        *job = NULL;
        rc = pa_err_set(&err, PA_ENOTFOUND, "no such job");
    }
    if(rc == PA_ENOTFOUND)
        pa_resp_outcome(resp, 404, "error", "not-found",
                        "no export job '%.40s' (it never existed, was deleted or has expired)", id);
    else if(rc)
        pa_resp_error(resp, &err);
    return rc;
}

/* True if this job's status was asked for less than poll_min_interval_ms
 * ago (one key per job that expires by itself). */
static int polled_too_soon(pa_ctx *ctx, const char *id)
{
    char key[256];
    redisReply *reply;
    pa_redis *redis;
    pa_err err;
    int soon;

    if(ctx->cfg->poll_min_interval_ms == 0 || pa_ctx_redis(ctx, &redis, &err))
        return 0;
    reply = pa_redis_cmd(redis, &err, "SET %s 1 PX %ld NX", pa_redis_key(redis, key, sizeof(key), "poll:%s", id),
                         ctx->cfg->poll_min_interval_ms);
    if(!reply)
        return 0; /* never refuse a poll for want of Redis: the job read worked */
    soon = reply->type == REDIS_REPLY_NIL;
    freeReplyObject(reply);
    return soon;
}

/* Whether the token's scopes cover every type the job exported. */
static int scope_covers_job(const pa_ctx *ctx, const pa_job *job)
{
    json_object *params = NULL, *types;
    size_t i;
    int all = 0;

    /* a scope of every type covers any job, without reading its parameters */
    if(pa_scope_allows(ctx->token.scope, "*"))
        return 1;
    if(!pa_json_parse(job->params, strlen(job->params), &params, NULL) &&
       json_object_object_get_ex(params, "types", &types) && json_object_is_type(types, json_type_array))
        for(all = 1, i = 0; all && i < json_object_array_length(types); i++)
            all = pa_scope_allows(ctx->token.scope, json_object_get_string(json_object_array_get_idx(types, i)));
    json_object_put(params);
    return all;
}

/*
 * The manifest as the polling token may use it, when its scopes are narrower
 * than the kick-off's: the files of types it does not cover, and the deleted
 * files (they name every type exported), are left out.  NULL when the
 * manifest is the token's as it is (the usual case: only the job's small
 * parameters are read then).
 */
static char *manifest_for_token(const pa_ctx *ctx, const pa_job *job)
{
    json_object *m = NULL, *out, *del, *kept;
    char *mine = NULL;
    size_t i;
    int dropped = 0;

    if(scope_covers_job(ctx, job) || pa_json_parse(job->manifest, strlen(job->manifest), &m, NULL))
        return NULL;
    if(json_object_object_get_ex(m, "output", &out) && json_object_is_type(out, json_type_array)) {
        kept = json_object_new_array();
        for(i = 0; i < json_object_array_length(out); i++) {
            json_object *entry = json_object_array_get_idx(out, i), *type;

            if(json_object_object_get_ex(entry, "type", &type) &&
               pa_scope_allows(ctx->token.scope, json_object_get_string(type)))
                json_object_array_add(kept, json_object_get(entry));
            else
                dropped++;
        }
        json_object_object_add(m, "output", kept);
    }
    if(json_object_object_get_ex(m, "deleted", &del) && json_object_is_type(del, json_type_array) &&
       json_object_array_length(del)) {
        json_object_object_add(m, "deleted", json_object_new_array());
        dropped++;
    }
    if(dropped)
        mine = strdup(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(m);
    return mine;
}

void pa_h_job_status(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    static const char *const types[] = { PA_MT_JSON, PA_MT_FHIR_JSON, NULL };
    pa_job *job = NULL;

    ctx->audit.operation = "status";
    pa_strlcpy(ctx->audit.job_id, args[0], sizeof(ctx->audit.job_id));
    if(pa_accept_pick(req->accept, types) < 0) {
        pa_resp_outcome(resp, 406, "error", "not-supported",
                        "the status answers with application/json; Accept '%.80s' does not allow it", req->accept);
        return;
    }
    if(load_own_job(ctx, args[0], &job, resp))
        return;
    if(polled_too_soon(ctx, job->id)) {
        pa_job_free(job);
        pa_resp_outcome(resp, 429, "error", "throttled", "polled too often: wait as Retry-After says");
        pa_resp_header(resp, "Retry-After", "%ld", ctx->cfg->retry_after_seconds);
        return;
    }
    if(!strcmp(job->state, "completed") && job->manifest) {
        char date[32], *mine = manifest_for_token(ctx, job);

        pa_resp_text(resp, 200, PA_MT_JSON, mine ? mine : job->manifest);
        free(mine);
        pa_http_date((time_t)((job->finished + ctx->cfg->retention_seconds * 1000) / 1000), date);
        pa_resp_header(resp, "Expires", "%s", date);
    }
    else if(!strcmp(job->state, "failed")) {
        /* the runner words it for the client (jobs/worker.c) */
        pa_resp_outcome(resp, 500, "error", "exception", "%s", job->error ? job->error : "the job failed");
    }
    else {
        resp->status = 202;
        if(job->total > 0)
            pa_resp_header(resp, "X-Progress", "%ld%% (%ld of %ld %s)", job->done * 100 / job->total, job->done,
                           job->total, job->parts > 0 ? "parts" : "chunks");
        else
            pa_resp_header(resp, "X-Progress", "%s", !strcmp(job->state, "queued") ? "queued" : "starting");
        pa_resp_header(resp, "Retry-After", "%ld", pa_job_retry_after(job, pa_now_ms(), ctx->cfg->retry_after_seconds));
    }
    pa_job_free(job);
}

void pa_h_job_delete(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    pa_redis *redis;
    PGconn *db = NULL;
    pa_err err;
    int rc;

    (void)req;
    pa_err_clear(&err);
    ctx->audit.operation = "cancel";
    pa_strlcpy(ctx->audit.job_id, args[0], sizeof(ctx->audit.job_id));
    /* both, before anything changes: a cancellation is recorded in
     * PostgreSQL first, so that nothing (a lost Redis, a runner's retry)
     * can bring the job back */
    rc = pa_ctx_redis(ctx, &redis, &err);
    if(!rc)
        rc = pa_ctx_db(ctx, &db, &err);
    if(rc) {
        pa_resp_error(resp, &err);
        return;
    }
    if(strlen(args[0]) != PA_JOB_ID_LEN)
        rc = PA_ENOTFOUND;
    else
        rc = pa_job_cancel(redis, db, args[0], ctx->client_id, ctx->cfg->claim_idle_seconds * 2000, &err);
    if(rc == PA_ENOTFOUND) {
        pa_resp_outcome(resp, 404, "error", "not-found", "no export job '%.40s'", args[0]);
        return;
    }
    if(rc) {
        pa_resp_error(resp, &err);
        return;
    }
    pa_info("job %s cancelled by its client", args[0]);
    pa_resp_outcome(resp, 202, "information", "informational", "the job is cancelled and its files are deleted");
}

/* True if the client accepts gzip (Accept-Encoding: gzip, q > 0). */
static int wants_gzip(const char *accept_encoding)
{
    static const char *const gzip[] = { "gzip", NULL };

    /* the Accept parser reads lists and q-values ("gzip;q=0" refuses it);
     * an absent or empty header means no encoding */
    return accept_encoding && *accept_encoding && pa_accept_pick(accept_encoding, gzip) == 0;
}

/*
 * The gzip form of an export file, made once on first demand (into a temp
 * file renamed into place, so concurrent downloads never see half of one)
 * and then sent by Apache like the file itself.  0 with gz filled, or -1 to
 * send the plain file.
 */
static int gzip_sibling(const char *path, char *gz, size_t size)
{
    char tmp[1100], buf[65536];
    struct stat st;
    gzFile out;
    ssize_t n;
    int in, ok = 1;

    if((size_t)snprintf(gz, size, "%s.gz", path) >= size)
        return -1;
    if(stat(gz, &st) == 0)
        return 0;
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", gz, (int)getpid());
    in = open(path, O_RDONLY | O_CLOEXEC);
    out = in < 0 ? NULL : gzopen(tmp, "wb1");
    if(!out) {
        if(in >= 0)
            close(in);
        return -1;
    }
    for(n = read(in, buf, sizeof(buf)); ok && n > 0; n = read(in, buf, sizeof(buf)))
        ok = gzwrite(out, buf, (unsigned)n) == (int)n;
    close(in);
    if(gzclose(out) != Z_OK || !ok || rename(tmp, gz)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* 403 (answered) unless the token may read every type the job exported. */
static int require_read_job_types(pa_ctx *ctx, pa_resp *resp, const pa_job *job)
{
    json_object *params = NULL, *types;
    size_t i;
    int rc = 0;

    if(pa_json_parse(job->params, strlen(job->params), &params, NULL) ||
       !json_object_object_get_ex(params, "types", &types) || !json_object_is_type(types, json_type_array)) {
        json_object_put(params);
        pa_resp_outcome(resp, 500, "fatal", "exception", "the job's parameters are unreadable");
        return -1;
    }
    for(i = 0; !rc && i < json_object_array_length(types); i++)
        rc = pa_api_require_read(ctx, resp, json_object_get_string(json_object_array_get_idx(types, i)));
    json_object_put(params);
    return rc;
}

/*
 * 403 (answered) unless the token may read what file holds: the type of an
 * output file, every type the job exported for a deleted-resources file.  An
 * error file, and a match's response Parameters, are the job's own reports.
 */
static int require_read_file(pa_ctx *ctx, pa_resp *resp, const pa_job *job, pa_manifest_list list, const char *type)
{
    if(list == PA_MANIFEST_ERROR || (list == PA_MANIFEST_OUTPUT && !strcmp(type, "Parameters")))
        return 0;
    if(list == PA_MANIFEST_DELETED)
        return require_read_job_types(ctx, resp, job);
    return pa_api_require_read(ctx, resp, type);
}

void pa_h_job_file(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    static const char *const types[] = { PA_MT_FHIR_NDJSON, "application/ndjson", "application/x-ndjson", NULL };
    pa_manifest_list list = PA_MANIFEST_OUTPUT;
    pa_job *job = NULL;
    char path[1024];
    char gz[1100];
    char type[64];
    struct stat st;

    ctx->audit.operation = "download";
    pa_strlcpy(ctx->audit.job_id, args[0], sizeof(ctx->audit.job_id));
    if(pa_accept_pick(req->accept, types) < 0) {
        pa_resp_outcome(resp, 406, "error", "not-supported",
                        "files are application/fhir+ndjson; Accept '%.80s' does not allow it", req->accept);
        return;
    }
    if(!pa_jobfiles_name_ok(args[1])) {
        pa_resp_outcome(resp, 404, "error", "not-found", "no such file");
        return;
    }
    if(load_own_job(ctx, args[0], &job, resp))
        return;
    /* what a file holds is what its manifest entry says, found by job and name */
    if(strcmp(job->state, "completed") || !job->manifest ||
       pa_manifest_find(job->manifest, job->id, args[1], &list, type, sizeof(type)) ||
       pa_jobfiles_path(ctx->cfg, job->id, args[1], path, sizeof(path)) || stat(path, &st) || !S_ISREG(st.st_mode)) {
        pa_job_free(job);
        pa_resp_outcome(resp, 404, "error", "not-found", "no such file (it may have expired)");
        return;
    }
    if(require_read_file(ctx, resp, job, list, type)) {
        pa_job_free(job);
        return;
    }
    pa_job_free(job);
    resp->status = 200;
    snprintf(resp->content_type, sizeof(resp->content_type), "%s", PA_MT_FHIR_NDJSON);
    pa_resp_header(resp, "Vary", "Accept-Encoding");
    if(wants_gzip(req->accept_encoding) && gzip_sibling(path, gz, sizeof(gz)) == 0) {
        /* streamed by the responder: mod_xsendfile would drop Content-Encoding,
         * and the gzip form is a small fraction of the file */
        pa_resp_header(resp, "Content-Encoding", "gzip");
        resp->sendfile_path = strdup(gz);
        resp->stream = 1;
    }
    else {
        resp->sendfile_path = strdup(path);
    }
    if(!resp->sendfile_path) {
        pa_resp_outcome(resp, 500, "fatal", "exception", "out of memory");
        return;
    }
}
