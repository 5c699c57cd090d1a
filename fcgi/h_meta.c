/*
 * Discovery: the CapabilityStatement (GET /metadata) and the SMART
 * configuration (GET /.well-known/smart-configuration).  Both declare only
 * what this build actually serves.
 */
#include "api.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_fhir.h"
#include "pa_filter.h"
#include "pa_util.h"

#define BULK_CAPSTMT "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
#define BULK_GROUP_EXPORT "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
#define BULK_PATIENT_EXPORT "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
#define BULK_SYSTEM_EXPORT "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
#define ATR_DATA_EXPORT "http://hl7.org/fhir/us/davinci-atr/OperationDefinition/davinci-data-export"
#define PDEX_SERVER "http://hl7.org/fhir/us/davinci-pdex/CapabilityStatement/pdex-provider-access-server"

/* json_object_object_add takes the reference to v: callers never free it. */
static void add_str(json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, json_object_new_string(v));
}

static json_object *str_array(const char *const *items)
{
    json_object *a = json_object_new_array();

    for(; *items; items++)
        json_object_array_add(a, json_object_new_string(*items));
    return a;
}

/* Consent: members' Provider Access opt-outs, written and read by the payer's
 * admin clients (docs/MATCH.md). */
static json_object *consent_resource(void)
{
    static const char *const interactions[] = { "create", "search-type", NULL };
    json_object *r = json_object_new_object(), *list = json_object_new_array(), *profiles = json_object_new_array();
    size_t i;

    add_str(r, "type", "Consent");
    json_object_array_add(
        profiles,
        json_object_new_string("http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provider-consent"));
    json_object_object_add(r, "supportedProfile", profiles);
    add_str(r, "documentation",
            "A member's Provider Access opt-out (provision.type deny) or its revocation (permit), recorded and listed "
            "by the payer's admin clients. A deny naming recipients (provision.actor role IRCP, by NPI) is against "
            "those providers; one naming none is against every provider. The latest record by provision.period.start "
            "decides.");
    for(i = 0; interactions[i]; i++) {
        json_object *it = json_object_new_object();

        add_str(it, "code", interactions[i]);
        json_object_array_add(list, it);
    }
    json_object_object_add(r, "interaction", list);
    list = json_object_new_array();
    {
        json_object *sp = json_object_new_object();

        add_str(sp, "name", "patient");
        add_str(sp, "type", "reference");
        json_object_array_add(list, sp);
        sp = json_object_new_object();
        add_str(sp, "name", "category");
        add_str(sp, "type", "token");
        json_object_array_add(list, sp);
    }
    json_object_object_add(r, "searchParam", list);
    return r;
}

static json_object *operation(const char *name, const char *definition)
{
    json_object *op = json_object_new_object();

    add_str(op, "name", name);
    add_str(op, "definition", definition);
    return op;
}

/* A searchParam entry: the name, its canonical definition and type. */
static json_object *search_param(const char *name, const char *definition, const char *type)
{
    json_object *sp = json_object_new_object();

    add_str(sp, "name", name);
    if(definition)
        add_str(sp, "definition", definition);
    add_str(sp, "type", type);
    return sp;
}

/* Group, as the PDex provider-access server CapabilityStatement names it:
 * its profiles, read and search, the search parameters it marks SHALL (and
 * _id and name), and the operations on it. */
static json_object *group_resource(void)
{
    static const char *const profiles[] = {
        "http://hl7.org/fhir/us/davinci-atr/StructureDefinition/atr-group",
        "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provider-group",
        "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provider-member-match", NULL
    };
    static const char *const interactions[] = { "read", "search-type", NULL };
    json_object *group = json_object_new_object(), *list = json_object_new_array(), *ops = json_object_new_array();
    size_t i;

    add_str(group, "type", "Group");
    json_object_object_add(group, "supportedProfile", str_array(profiles));
    for(i = 0; interactions[i]; i++) {
        json_object *it = json_object_new_object();

        add_str(it, "code", interactions[i]);
        json_object_array_add(list, it);
    }
    json_object_object_add(group, "interaction", list);
    list = json_object_new_array();
    json_object_array_add(list, search_param("_id", "http://hl7.org/fhir/SearchParameter/Resource-id", "token"));
    json_object_array_add(list,
                          search_param("identifier", "http://hl7.org/fhir/SearchParameter/Group-identifier", "token"));
    json_object_array_add(
        list, search_param("characteristic", "http://hl7.org/fhir/SearchParameter/Group-characteristic", "token"));
    json_object_array_add(list, search_param("characteristic-value-reference",
                                             "http://hl7.org/fhir/us/davinci-pdex/SearchParameter/"
                                             "pdex-group-characteristic-value-reference",
                                             "reference"));
    json_object_array_add(list, search_param("code", "http://hl7.org/fhir/SearchParameter/Group-code", "token"));
    json_object_array_add(list, search_param("name", NULL, "string"));
    json_object_object_add(group, "searchParam", list);
    /* Bulk Data v2 names the operation group-export; later tools call it export */
    json_object_array_add(ops, operation("davinci-data-export", ATR_DATA_EXPORT));
    json_object_array_add(ops, operation("export", BULK_GROUP_EXPORT));
    json_object_array_add(ops, operation("group-export", BULK_GROUP_EXPORT));
    json_object_array_add(ops,
                          operation("provider-member-match",
                                    "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/ProviderMemberMatch"));
    json_object_array_add(ops,
                          operation("member-add", "http://hl7.org/fhir/us/davinci-atr/OperationDefinition/member-add"));
    json_object_array_add(
        ops, operation("member-remove", "http://hl7.org/fhir/us/davinci-atr/OperationDefinition/member-remove"));
    json_object_object_add(group, "operation", ops);
    return group;
}

/* Answers with o serialized, and releases o. */
static int answer_json(pa_resp *resp, int status, const char *content_type, json_object *o)
{
    int rc = pa_resp_text(resp, status, content_type,
                          json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));

    json_object_put(o);
    return rc;
}

/* The resources an export writes, with what _typeFilter can ask of each. */
static void add_export_types(json_object *resources)
{
    const char *const *types = pa_fhir_type_names();
    size_t i;

    for(i = 0; types[i]; i++) {
        json_object *r = json_object_new_object();
        char supported[512];

        add_str(r, "type", types[i]);
        pa_filter_params(types[i], supported, sizeof(supported));
        if(supported[0]) {
            char doc[640];

            snprintf(doc, sizeof(doc),
                     "Exported by Group $export, $davinci-data-export%s and $export. "
                     "_typeFilter parameters: %s",
                     pa_fhir_type_find(types[i])->patient_path ? ", Patient/$export" : "", supported);
            add_str(r, "documentation", doc);
        }
        else {
            add_str(r, "documentation",
                    "Exported by Group $export, $davinci-data-export and $export (when a "
                    "resource exported references it).");
        }
        if(!strcmp(types[i], "MedicationDispense")) {
            static const char *const md[] = {
                "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-medicationdispense", NULL
            };

            json_object_object_add(r, "supportedProfile", str_array(md));
        }
        if(!strcmp(types[i], "Patient")) {
            json_object *pops = json_object_new_array();

            json_object_array_add(pops, operation("export", BULK_PATIENT_EXPORT));
            json_object_object_add(r, "operation", pops);
        }
        json_object_array_add(resources, r);
    }
}

/* SMART Backend Services; the oauth-uris extension for clients that look there. */
static json_object *security(const char *base_url)
{
    json_object *security = json_object_new_object();
    json_object *service = json_object_new_object();
    json_object *services = json_object_new_array();
    json_object *codings = json_object_new_array();
    json_object *coding = json_object_new_object();
    json_object *ext = json_object_new_object();
    json_object *inner = json_object_new_object();
    json_object *inners = json_object_new_array();
    json_object *exts = json_object_new_array();
    char token[1024];

    snprintf(token, sizeof(token), "%s/auth/token", base_url);
    add_str(coding, "system", "http://terminology.hl7.org/CodeSystem/restful-security-service");
    add_str(coding, "code", "SMART-on-FHIR");
    json_object_array_add(codings, coding);
    json_object_object_add(service, "coding", codings);
    json_object_array_add(services, service);
    json_object_object_add(security, "service", services);
    add_str(inner, "url", "token");
    add_str(inner, "valueUri", token);
    json_object_array_add(inners, inner);
    add_str(ext, "url", "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris");
    json_object_object_add(ext, "extension", inners);
    json_object_array_add(exts, ext);
    json_object_object_add(security, "extension", exts);
    return security;
}

/* The CapabilityStatement of a server at base_url, dated date. */
static json_object *capability_statement(const char *base_url, const char *date)
{
    static const char *const formats[] = { "json", PA_MT_FHIR_JSON, NULL };
    static const char *const instantiates[] = { BULK_CAPSTMT, PDEX_SERVER, NULL };
    json_object *cs, *sw, *impl, *rest, *rests, *ops, *resources;

    cs = json_object_new_object();
    add_str(cs, "resourceType", "CapabilityStatement");
    add_str(cs, "status", "active");
    add_str(cs, "date", date);
    add_str(cs, "publisher", "provider-access");
    add_str(cs, "kind", "instance");
    json_object_object_add(cs, "instantiates", str_array(instantiates));
    sw = json_object_new_object();
    add_str(sw, "name", PACKAGE_NAME);
    add_str(sw, "version", PACKAGE_VERSION);
    json_object_object_add(cs, "software", sw);
    impl = json_object_new_object();
    add_str(impl, "description", "Da Vinci PDex Provider Access API");
    add_str(impl, "url", base_url);
    json_object_object_add(cs, "implementation", impl);
    add_str(cs, "fhirVersion", "4.0.1");
    json_object_object_add(cs, "format", str_array(formats));
    resources = json_object_new_array();
    json_object_array_add(resources, group_resource());
    json_object_array_add(resources, consent_resource());
    add_export_types(resources);
    rest = json_object_new_object();
    add_str(rest, "mode", "server");
    json_object_object_add(rest, "security", security(base_url));
    json_object_object_add(rest, "resource", resources);
    ops = json_object_new_array();
    json_object_array_add(ops, operation("export", BULK_SYSTEM_EXPORT));
    json_object_object_add(rest, "operation", ops);
    rests = json_object_new_array();
    json_object_array_add(rests, rest);
    json_object_object_add(cs, "rest", rests);
    return cs;
}

void pa_h_metadata(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    /* the document, written once a day per process: it depends on nothing
     * else (every metadata request used to build and write it anew) */
    static char *text;
    static char text_date[16];
    static char text_base[1024];
    char date[32];

    (void)args;
    if(pa_accept_pick(req->accept, pa_fhir_json_types) < 0) {
        pa_resp_outcome(resp, 406, "error", "not-supported",
                        "cannot answer in any type the Accept header allows; "
                        "this server speaks application/fhir+json");
        return;
    }
    pa_instant_format(pa_now_ms(), date);
    date[10] = '\0'; /* a date is enough, and keeps the document stable for a day */
    if(!text || strcmp(text_date, date) || strcmp(text_base, ctx->cfg->base_url)) {
        json_object *cs = capability_statement(ctx->cfg->base_url, date);

        free(text);
        text = strdup(json_object_to_json_string_ext(cs, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(cs);
        if(!text) {
            pa_resp_outcome(resp, 500, "fatal", "exception", "out of memory");
            return;
        }
        pa_strlcpy(text_date, date, sizeof(text_date));
        pa_strlcpy(text_base, ctx->cfg->base_url, sizeof(text_base));
    }
    pa_resp_text(resp, 200, PA_MT_FHIR_JSON, text);
}

void pa_h_smart_config(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    static const char *const grants[] = { "client_credentials", NULL };
    static const char *const methods[] = { "private_key_jwt", "client_secret_basic", "client_secret_post", NULL };
    static const char *const algs[] = { "RS384", "ES384", "RS256", "ES256", NULL };
    static const char *const scopes[] = {
        "system/*.read",     "system/*.rs", "system/Group.read", "system/Group.rs", "system/Patient.read",
        "system/Patient.rs", NULL
    };
    static const char *const caps[] = { "client-confidential-asymmetric", "client-confidential-symmetric",
                                        "permission-v1", "permission-v2", NULL };
    static const char *const challenge[] = { "S256", NULL };
    json_object *o = json_object_new_object();
    char url[1024];

    (void)req;
    (void)args;
    /* SMART requires application/json here whatever the Accept header says */
    snprintf(url, sizeof(url), "%s/auth/token", ctx->cfg->base_url);
    add_str(o, "token_endpoint", url);
    json_object_object_add(o, "grant_types_supported", str_array(grants));
    json_object_object_add(o, "token_endpoint_auth_methods_supported", str_array(methods));
    json_object_object_add(o, "token_endpoint_auth_signing_alg_values_supported", str_array(algs));
    json_object_object_add(o, "scopes_supported", str_array(scopes));
    json_object_object_add(o, "capabilities", str_array(caps));
    json_object_object_add(o, "code_challenge_methods_supported", str_array(challenge));
    answer_json(resp, 200, PA_MT_JSON, o);
}
