/*
 * POST /fhir/Consent: a member opts out of Provider Access, or revokes an
 * opt-out, through the payer's member-facing system (an admin client with a
 * scope that writes Consent).  The Consent is a PDex pdex-provider-consent:
 * provision.type deny opts out, permit revokes; an opt-out naming provider
 * NPIs in provision.actor applies to those providers, otherwise to all.  It
 * takes effect for the next match and the next export.
 */
#include "api.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "pa_buf.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_json.h"
#include "pa_optout.h"
#include "pa_pgarray.h"
#include "pa_util.h"

#define V3_PARTICIPATION_TYPE "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#define PDEX_CONSENT "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provider-consent"
#define PDEX_API_PURPOSE "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/pdex-consent-api-purpose"

/* True if a provision.actor's role is v3-ParticipationType#IRCP: a
 * recipient, the provider an opt-out is against. */
static int is_recipient(json_object *actor)
{
    json_object *codings = pa_json_get(pa_json_get(actor, "role"), "coding");
    size_t i;

    for(i = 0; json_object_is_type(codings, json_type_array) && i < json_object_array_length(codings); i++) {
        json_object *c = json_object_array_get_idx(codings, i);
        const char *sys = pa_json_str(c, "system"), *code = pa_json_str(c, "code");

        if(sys && code && !strcmp(sys, V3_PARTICIPATION_TYPE) && !strcmp(code, "IRCP"))
            return 1;
    }
    return 0;
}

void pa_h_consent(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    json_object *c = NULL, *prov, *actors, *period;
    char patient[PA_FHIR_ID_MAX + 1], start[11] = "", end[11] = "";
    const char *type, *ref;
    pa_buf npis;
    PGconn *db;
    pa_err err;
    long member = 0, changed = 0;
    size_t i;
    int deny;

    (void)args;
    ctx->audit.operation = "consent";
    pa_buf_init(&npis, 64 * 1024);
    pa_buf_addstr(&npis, "{");
    if(!ctx->token.admin || !pa_scope_allows_write(ctx->token.scope, "Consent")) {
        pa_strlcpy(ctx->audit.detail, "not an admin client with Consent write scope", sizeof(ctx->audit.detail));
        pa_resp_outcome(resp, 403, "error", "forbidden",
                        "members' opt-outs are recorded by the payer's admin clients with a scope that writes Consent");
        goto out;
    }
    if(!pa_media_type_is(req->content_type, PA_MT_FHIR_JSON) && !pa_media_type_is(req->content_type, PA_MT_JSON)) {
        pa_resp_outcome(resp, 415, "error", "not-supported", "send the Consent as application/fhir+json");
        goto out;
    }
    pa_err_clear(&err);
    if(pa_json_parse(req->body ? req->body : "", req->body_len, &c, &err)) {
        pa_resp_outcome(resp, 400, "error", "structure", "the request body is %s", err.msg);
        goto out;
    }
    prov = pa_json_get(c, "provision");
    type = pa_json_str(prov, "type");
    if(!pa_json_str(c, "resourceType") || strcmp(pa_json_str(c, "resourceType"), "Consent")) {
        pa_resp_outcome(resp, 400, "error", "invalid", "the body must be a Consent");
        goto out;
    }
    ref = pa_json_str(pa_json_get(c, "patient"), "reference");
    if(!ref || pa_fhir_ref_id(ref, "Patient", patient, sizeof(patient))) {
        pa_resp_outcome(resp, 400, "error", "required", "Consent.patient must reference the member (Patient/id)");
        goto out;
    }
    if(!pa_json_str(c, "status") || strcmp(pa_json_str(c, "status"), "active")) {
        pa_resp_outcome(resp, 400, "error", "invalid", "Consent.status must be active");
        goto out;
    }
    if(!type || (strcmp(type, "deny") && strcmp(type, "permit"))) {
        pa_resp_outcome(resp, 400, "error", "required", "provision.type must be deny (opt out) or permit (revoke)");
        goto out;
    }
    deny = !strcmp(type, "deny");
    if(pa_json_get(c, "dateTime") && pa_fhir_day(pa_json_str(c, "dateTime"), 0, start)) {
        pa_resp_outcome(resp, 400, "error", "invalid", "Consent.dateTime '%.40s' is not a FHIR dateTime",
                        pa_json_str(c, "dateTime") ? pa_json_str(c, "dateTime") : "(not a string)");
        goto out;
    }
    period = pa_json_get(prov, "period");
    if(!pa_json_str(period, "start")) {
        pa_resp_outcome(resp, 400, "error", "required", "provision.period.start is required (a date or dateTime)");
        goto out;
    }
    if(pa_fhir_day(pa_json_str(period, "start"), 0, start)) {
        pa_resp_outcome(resp, 400, "error", "invalid", "provision.period.start '%.40s' is not a FHIR dateTime",
                        pa_json_str(period, "start"));
        goto out;
    }
    if(pa_json_get(period, "end") && pa_fhir_day(pa_json_str(period, "end"), 1, end)) {
        pa_resp_outcome(resp, 400, "error", "invalid", "provision.period.end '%.40s' is not a FHIR dateTime",
                        pa_json_str(period, "end") ? pa_json_str(period, "end") : "(not a string)");
        goto out;
    }
    if(end[0] && strcmp(end, start) < 0) {
        pa_resp_outcome(resp, 400, "error", "invalid", "provision.period.end is before its start");
        goto out;
    }
    /* Whom it covers: the recipients it names (role IRCP), or, when it names
     * none, every provider.  The source slice (role performer) names the plan
     * that discloses: it changes nothing of whom the opt-out covers, so its
     * details (an NPI that fails its check digit, in the IG's own examples)
     * are not held against it. */
    actors = pa_json_get(prov, "actor");
    for(i = 0; actors && json_object_is_type(actors, json_type_array) && i < json_object_array_length(actors); i++) {
        json_object *actor = json_object_array_get_idx(actors, i);
        json_object *ident = pa_json_get(pa_json_get(actor, "reference"), "identifier");
        const char *sys = pa_json_str(ident, "system"), *v = pa_json_str(ident, "value");

        if(!is_recipient(actor))
            continue;
        if(!sys || strcmp(sys, PA_NPI_SYSTEM) || !v) {
            pa_resp_outcome(
                resp, 422, "error", "not-supported",
                "provision.actor[%zu] is a recipient (IRCP) without an NPI (reference.identifier with system "
                "%s): whom the opt-out covers cannot be told",
                i, PA_NPI_SYSTEM);
            goto out;
        }
        if(!pa_npi_valid(v)) {
            pa_resp_outcome(resp, 400, "error", "invalid",
                            "provision.actor[%zu] (a recipient) NPI %.20s fails its check digit", i, v);
            goto out;
        }
        pa_pgarray_add(&npis, v);
    }
    pa_buf_addstr(&npis, "}");
    pa_err_clear(&err);
    if(pa_ctx_db(ctx, &db, &err)) {
        pa_resp_error(resp, &err);
        goto out;
    }
    if(pa_optout_set(db, patient, pa_buf_str(&npis), deny, start, end[0] ? end : NULL,
                     "member-choice" /* pdex-provider-consent carries no reason */, &member, &changed, &err))
        pa_resp_error(resp, &err);
    else if(!member)
        pa_resp_outcome(resp, 422, "error", "not-found", "Patient/%s is not a member of this plan", patient);
    else if(deny)
        pa_resp_outcome(resp, 200, "information", "informational", "Patient/%s opted out of Provider Access (%s)",
                        patient, npis.len > 2 ? "from the providers named" : "from every provider");
    else
        pa_resp_outcome(resp, 200, "information", "informational", "%ld opt-outs of Patient/%s revoked", changed,
                        patient);
out:
    json_object_put(c);
    pa_buf_free(&npis);
}

/* A member's consent records as pdex-provider-consent resources, newest
 * first: its opt-outs (deny) and its permits, one row each, $1 the member. */
/* clang-format off */
#define CONSENT_JSON(KIND, ID, SCOPE_NPI, START, END, STATUS, AT)                                                 \
    "json_build_object('resourceType', 'Consent', 'id', " ID ", 'meta', json_build_object('lastUpdated',"        \
    " to_char(" AT " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'profile',"                       \
    " json_build_array('" PDEX_CONSENT "')), 'status', " STATUS ","                                             \
    " 'scope', json_build_object('coding', json_build_array(json_build_object('system',"                         \
    " 'http://terminology.hl7.org/CodeSystem/consentscope', 'code', 'patient-privacy'))),"                        \
    " 'category', json_build_array(json_build_object('coding', json_build_array(json_build_object('system',"     \
    " 'http://terminology.hl7.org/CodeSystem/v3-ActCode', 'code', 'IDSCL'))), json_build_object('coding',"         \
    " json_build_array(json_build_object('system', '" PDEX_API_PURPOSE "', 'code', 'provider-access')))),"        \
    " 'patient', json_build_object('reference', 'Patient/' || $1),"                                               \
    " 'policyRule', json_build_object('coding', json_build_array(json_build_object('system',"                     \
    " 'http://terminology.hl7.org/CodeSystem/consentpolicycodes', 'code', 'cric'))),"                             \
    " 'provision', json_strip_nulls(json_build_object('type', '" KIND "', 'period', json_build_object('start', " \
    START ", 'end', " END "), 'actor', CASE WHEN " SCOPE_NPI " <> '' THEN json_build_array(json_build_object("     \
    "'role', json_build_object('coding', json_build_array(json_build_object('system', '" V3_PARTICIPATION_TYPE    \
    "', 'code', 'IRCP'))), 'reference', json_build_object('identifier', json_build_object('system', '"          \
    PA_NPI_SYSTEM "', 'value', " SCOPE_NPI ")))) END,"                                                             \
    " 'action', json_build_array(json_build_object('coding', json_build_array(json_build_object('system',"        \
    " 'http://terminology.hl7.org/CodeSystem/consentaction', 'code', 'disclose')))))))::text"
/* clang-format on */

/*
 * GET /fhir/Consent?patient=Patient/ID[&category=provider-access]: the
 * member's Provider Access consent records, for the payer's admin clients
 * (its member-facing system, its support staff): the opt-outs and the permits
 * that revoke them, as recorded, whichever way they came (POST /Consent,
 * pa-admin, a feed).  A record no longer in force still appears: the latest
 * by period start decides (docs/MATCH.md).
 */
void pa_h_consent_search(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    char patient[PA_FHIR_ID_MAX + 1] = "";
    const char *values[1];
    PGconn *db;
    PGresult *res;
    pa_buf b;
    pa_err err;
    size_t i;
    int k;

    (void)args;
    ctx->audit.operation = "consent-search";
    if(!ctx->token.admin || !pa_scope_allows(ctx->token.scope, "Consent")) {
        pa_strlcpy(ctx->audit.detail, "not an admin client with Consent read scope", sizeof(ctx->audit.detail));
        pa_resp_outcome(resp, 403, "error", "forbidden",
                        "members' consent records are read by the payer's admin clients with a scope that reads "
                        "Consent");
        return;
    }
    for(i = 0; i < req->nparams; i++) {
        const char *name = req->params[i].name, *v = req->params[i].value;

        if(!strcmp(name, "_format"))
            continue;
        if(!strcmp(name, "patient") && !patient[0] &&
           (pa_fhir_ref_id(v, "Patient", patient, sizeof(patient)) == PA_OK ||
            pa_strlcpy(patient, v, sizeof(patient)) == PA_OK) &&
           pa_fhir_id_valid(patient))
            continue;
        if(!strcmp(name, "category") &&
           (!strcmp(v, "provider-access") || !strcmp(v, PDEX_API_PURPOSE "|provider-access")))
            continue;
        pa_resp_outcome(resp, 400, "error", "not-supported",
                        "search parameter '%.40s=%.60s' is not supported: patient=Patient/ID (once), and "
                        "category=provider-access",
                        name, v);
        return;
    }
    if(!patient[0]) {
        pa_resp_outcome(resp, 400, "error", "required", "name the member: patient=Patient/ID");
        return;
    }
    pa_err_clear(&err);
    if(pa_ctx_db(ctx, &db, &err)) {
        pa_resp_error(resp, &err);
        return;
    }
    values[0] = patient;
    res = pa_db_query(
        db, &err,
        "SELECT j FROM (SELECT o.period_start, o.recorded_at, " CONSENT_JSON(
            "deny", "'optout-' || left(md5(o.scope || o.npi || o.period_start), 16)", "o.npi", "o.period_start::text",
            "o.period_end::text", "CASE WHEN o.revoked THEN 'inactive' ELSE 'active' END",
            "o.recorded_at") " AS j FROM opt_out o WHERE o.patient_id = $1 UNION ALL SELECT i.period_start, i.recorded_at, " CONSENT_JSON("permit",
                                                                                                                                          "'permit-' || left(md5(i.npi || i.period_start), 16)",
                                                                                                                                          "i.npi",
                                                                                                                                          "i.period_start::text",
                                                                                                                                          "NULL::text",
                                                                                                                                          "'active'",
                                                                                                                                          "i.recorded_at") " FROM opt_in i WHERE i.patient_id = $1) c ORDER BY period_start DESC, recorded_at DESC",
        1, values);
    if(!res) {
        pa_resp_error(resp, &err);
        return;
    }
    pa_buf_init(&b, PA_RESP_MAX_BODY);
    pa_buf_printf(&b, "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":%d,\"entry\":[", PQntuples(res));
    for(k = 0; k < PQntuples(res); k++)
        pa_buf_printf(&b, "%s{\"resource\":%s,\"search\":{\"mode\":\"match\"}}", k ? "," : "", PQgetvalue(res, k, 0));
    pa_buf_addstr(&b, "]}");
    PQclear(res);
    pa_resp_text(resp, 200, PA_MT_FHIR_JSON, pa_buf_str(&b));
    pa_buf_free(&b);
}
