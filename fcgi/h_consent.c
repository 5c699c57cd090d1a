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
#include "pa_util.h"

int pa_h_consent(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
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
    actors = pa_json_get(prov, "actor");
    for(i = 0; actors && json_object_is_type(actors, json_type_array) && i < json_object_array_length(actors); i++) {
        json_object *ident = pa_json_get(pa_json_get(json_object_array_get_idx(actors, i), "reference"), "identifier");
        const char *sys = pa_json_str(ident, "system"), *v = pa_json_str(ident, "value");

        if(sys && !strcmp(sys, PA_NPI_SYSTEM) && v) {
            if(!pa_npi_valid(v)) {
                pa_resp_outcome(resp, 400, "error", "invalid", "provision.actor NPI %.20s fails its check digit", v);
                goto out;
            }
            pa_buf_add_array_item(&npis, v);
        }
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
        pa_resp_outcome(resp, 200, "information", "informational", "Patient/%s opted out of Provider Access (%s)", patient,
                        npis.len > 2 ? "from the providers named" : "from every provider");
    else
        pa_resp_outcome(resp, 200, "information", "informational", "%ld opt-outs of Patient/%s revoked", changed,
                        patient);
out:
    json_object_put(c);
    pa_buf_free(&npis);
    return 0;
}
