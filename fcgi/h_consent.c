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
#include "pa_util.h"

int pa_h_consent(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    json_object *c = NULL, *prov, *actors;
    char patient[PA_FHIR_ID_MAX + 1], start[16] = "", end[16] = "", ts[PA_TS_LEN];
    const char *type, *values[6];
    pa_buf npis;
    PGconn *db;
    PGresult *res = NULL;
    pa_err err;
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
    c = json_tokener_parse(req->body);
    prov = pa_json_get(c, "provision");
    type = pa_json_str(prov, "type");
    if(!c || !pa_json_str(c, "resourceType") || strcmp(pa_json_str(c, "resourceType"), "Consent")) {
        pa_resp_outcome(resp, 400, "error", "invalid", "the body must be a Consent");
        goto out;
    }
    if(!pa_json_str(pa_json_get(c, "patient"), "reference") || pa_fhir_ref_id(pa_json_str(pa_json_get(c, "patient"), "reference"), "Patient", patient, sizeof(patient))) {
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
    if(!pa_json_str(pa_json_get(prov, "period"), "start") || pa_fhir_date_ts(pa_json_str(pa_json_get(prov, "period"), "start"), ts)) {
        pa_resp_outcome(resp, 400, "error", "required", "provision.period.start is required (a date)");
        goto out;
    }
    snprintf(start, sizeof(start), "%.10s", pa_json_str(pa_json_get(prov, "period"), "start"));
    if(pa_json_str(pa_json_get(prov, "period"), "end"))
        snprintf(end, sizeof(end), "%.10s", pa_json_str(pa_json_get(prov, "period"), "end"));
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
    values[0] = patient;
    values[1] = pa_buf_str(&npis);
    values[2] = start;
    values[3] = end[0] ? end : NULL;
    values[4] = "member-choice"; /* pdex-provider-consent carries no reason */
    values[5] = deny ? "true" : "false";
    res = pa_db_query(db, &err,
                      "WITH m AS (SELECT patient_id FROM member WHERE patient_id = $1),"
                      " n AS (SELECT unnest($2::text[]) AS npi UNION ALL SELECT '' WHERE cardinality($2::text[]) = 0),"
                      " ins AS (INSERT INTO opt_out (patient_id, scope, npi, period_start, period_end, reason)"
                      "  SELECT m.patient_id, CASE WHEN n.npi = '' THEN 'global' ELSE 'provider-specific' END, n.npi,"
                      "   $3::date, $4::date, $5 FROM m, n WHERE $6::bool"
                      "  ON CONFLICT (patient_id, scope, npi, period_start) DO UPDATE SET period_end = EXCLUDED.period_end,"
                      "   reason = EXCLUDED.reason, revoked = false RETURNING 1),"
                      " rev AS (UPDATE opt_out o SET revoked = true FROM m, n WHERE NOT $6::bool AND o.patient_id = m.patient_id"
                      "  AND o.npi = n.npi AND NOT o.revoked RETURNING 1) "
                      "SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM ins), (SELECT count(*) FROM rev)",
                      6, values);
    if(!res) {
        pa_resp_error(resp, &err);
        goto out;
    }
    if(strcmp(PQgetvalue(res, 0, 0), "1"))
        pa_resp_outcome(resp, 422, "error", "not-found", "Patient/%s is not a member of this plan", patient);
    else if(deny)
        pa_resp_outcome(resp, 200, "information", "informational", "Patient/%s opted out of Provider Access (%s)", patient,
                        npis.len > 2 ? "from the providers named" : "from every provider");
    else
        pa_resp_outcome(resp, 200, "information", "informational", "%s opt-outs of Patient/%s revoked",
                        PQgetvalue(res, 0, 2), patient);
out:
    PQclear(res);
    json_object_put(c);
    pa_buf_free(&npis);
    return 0;
}
