/*
 * ATR Group/{id}/$member-add and $member-remove: the payer changes a roster
 * through the API.  Admin clients only, with a scope that writes Group;
 * providers are refused (403).  A member is named by patientReference or by
 * memberId (the MB member identifier or subscriber id); a provider, when
 * named (providerNpi or providerReference), must be the one the roster is
 * attributed to.  A patient the payer does not have, or a coverageReference
 * that is not the member's, is 422.  A final list is not changed (422).
 * Removing from a draft list keeps the member, inactive and dropped; from an
 * open list it goes.
 */
#include "api.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_json.h"
#include "pa_roster.h"
#include "pa_util.h"

struct member_params {
    char patient[PA_FHIR_ID_MAX + 1];  /* from patientReference */
    char member_id[128];               /* from memberId */
    char npi[16];                      /* from providerNpi */
    char provider_ref[160];            /* from providerReference */
    char start[11], end[11];           /* attributionPeriod, as days ("" when open) */
    char coverage[PA_FHIR_ID_MAX + 1]; /* from coverageReference */
};

/* Reads the operation's Parameters; answers 400/415 itself and returns -1. */
static int read_params(const pa_req *req, struct member_params *mp, pa_resp *resp)
{
    json_object *body = NULL, *params;
    pa_err err;
    size_t i;
    int rc = -1;

    memset(mp, 0, sizeof(*mp));
    if(!pa_media_type_is(req->content_type, PA_MT_FHIR_JSON) && !pa_media_type_is(req->content_type, PA_MT_JSON)) {
        pa_resp_outcome(resp, 415, "error", "not-supported",
                        "send a FHIR Parameters resource as application/fhir+json");
        return -1;
    }
    if(pa_json_parse(req->body ? req->body : "", req->body_len, &body, &err)) {
        pa_resp_outcome(resp, 400, "error", "structure", "the request body is %s", err.msg);
        goto out;
    }
    if(strcmp(pa_json_str(body, "resourceType") ? pa_json_str(body, "resourceType") : "", "Parameters") ||
       !json_object_object_get_ex(body, "parameter", &params) || !json_object_is_type(params, json_type_array)) {
        pa_resp_outcome(resp, 400, "error", "invalid", "the body must be a FHIR Parameters resource with parameters");
        goto out;
    }
    for(i = 0; i < json_object_array_length(params); i++) {
        json_object *p = json_object_array_get_idx(params, i), *v = NULL;
        const char *name = pa_json_str(p, "name");

        if(!name) {
            pa_resp_outcome(resp, 400, "error", "invalid", "parameter %zu has no name", i);
            goto out;
        }
        if(!strcmp(name, "patientReference") && json_object_object_get_ex(p, "valueReference", &v)) {
            if(!pa_json_str(v, "reference") ||
               pa_fhir_ref_id(pa_json_str(v, "reference"), "Patient", mp->patient, sizeof(mp->patient))) {
                pa_resp_outcome(resp, 400, "error", "invalid", "patientReference must reference a Patient");
                goto out;
            }
        }
        else if(!strcmp(name, "memberId") && json_object_object_get_ex(p, "valueIdentifier", &v) &&
                pa_json_str(v, "value"))
            pa_strlcpy(mp->member_id, pa_json_str(v, "value"), sizeof(mp->member_id));
        else if(!strcmp(name, "providerNpi") && json_object_object_get_ex(p, "valueIdentifier", &v) &&
                pa_json_str(v, "value"))
            pa_strlcpy(mp->npi, pa_json_str(v, "value"), sizeof(mp->npi));
        else if(!strcmp(name, "providerReference") && json_object_object_get_ex(p, "valueReference", &v) &&
                pa_json_str(v, "reference"))
            pa_strlcpy(mp->provider_ref, pa_json_str(v, "reference"), sizeof(mp->provider_ref));
        else if(!strcmp(name, "attributionPeriod") && json_object_object_get_ex(p, "valuePeriod", &v)) {
            const char *bad = NULL;

            if(pa_json_get(v, "start") && pa_fhir_day(pa_json_str(v, "start"), 0, mp->start))
                bad = "start";
            else if(pa_json_get(v, "end") && pa_fhir_day(pa_json_str(v, "end"), 1, mp->end))
                bad = "end";
            if(bad) {
                pa_resp_outcome(resp, 400, "error", "invalid", "attributionPeriod.%s '%.40s' is not a FHIR dateTime",
                                bad, pa_json_str(v, bad) ? pa_json_str(v, bad) : "(not a string)");
                goto out;
            }
            if(mp->start[0] && mp->end[0] && strcmp(mp->end, mp->start) < 0) {
                pa_resp_outcome(resp, 400, "error", "invalid", "attributionPeriod.end is before its start");
                goto out;
            }
        }
        else if(!strcmp(name, "coverageReference") && json_object_object_get_ex(p, "valueReference", &v)) {
            if(!pa_json_str(v, "reference") ||
               pa_fhir_ref_id(pa_json_str(v, "reference"), "Coverage", mp->coverage, sizeof(mp->coverage))) {
                pa_resp_outcome(resp, 400, "error", "invalid", "coverageReference must reference a Coverage");
                goto out;
            }
        }
        else {
            pa_resp_outcome(resp, 400, "error", "not-supported",
                            "parameter '%.40s' (with that value type) is not supported", name);
            goto out;
        }
    }
    if(!mp->patient[0] && !mp->member_id[0]) {
        pa_resp_outcome(resp, 400, "error", "required", "name the member: patientReference or memberId");
        goto out;
    }
    rc = 0;
out:
    json_object_put(body);
    return rc;
}

/* Checks the caller, the roster, the member and the provider; leaves the
 * patient id in mp->patient and the roster's status in status. */
static int resolve(PGconn *db, const char *group, struct member_params *mp, char status[16], pa_resp *resp)
{
    const char *values[6] = { group,
                              mp->member_id[0] ? mp->member_id : NULL,
                              mp->patient[0] ? mp->patient : NULL,
                              mp->npi[0] ? mp->npi : NULL,
                              mp->provider_ref[0] ? mp->provider_ref : NULL,
                              mp->coverage[0] ? mp->coverage : NULL };
    PGresult *res;
    pa_err err;
    int rc = -1;

    pa_err_clear(&err);
    /* the roster; the member (by id, or by MB identifier or subscriber id); does the provider fit? */
    res = pa_db_query(
        db, &err,
        "SELECT r.status, x.pid,"
        " ($4::text IS NULL OR $4 IN (r.npi, r.org_npi))"
        " AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM provider p WHERE p.npi IN (r.npi, r.org_npi)"
        "  AND $5 LIKE '%' || p.resource_type || '/' || p.resource_id)),"
        " coalesce(r.npi, r.org_npi),"
        /* the payer has the patient; the coverage named is the patient's */
        " " PA_SQL_PAYER_HAS_PATIENT(
            "x.pid") ","
                     " $6::text IS NULL OR EXISTS (SELECT 1 FROM coverage c WHERE c.coverage_id = $6 AND c.patient_id = x.pid) "
                     "FROM roster r, LATERAL (SELECT coalesce($3,"
                     "  (SELECT m.patient_id FROM member m WHERE m.member_id = $2 LIMIT 1),"
                     "  (SELECT c.patient_id FROM coverage c WHERE $2 IN (c.member_id, c.subscriber_id) LIMIT 1)) AS pid) x"
                     " WHERE r.id = $1",
        6, values);
    if(!res) {
        pa_resp_error(resp, &err);
        return -1;
    }
    if(PQntuples(res) != 1)
        pa_resp_outcome(resp, 404, "error", "not-found", "no Group '%.64s'", group);
    else if(PQgetisnull(res, 0, 1))
        pa_resp_outcome(resp, 422, "error", "not-found", "no member of this payer has memberId '%.64s'", mp->member_id);
    else if(strcmp(PQgetvalue(res, 0, 4), "t"))
        pa_resp_outcome(resp, 422, "error", "not-found", "Patient/%s is not a member of this payer",
                        PQgetvalue(res, 0, 1));
    else if(strcmp(PQgetvalue(res, 0, 5), "t"))
        pa_resp_outcome(resp, 422, "error", "not-found", "Coverage/%s is not Patient/%s's coverage", mp->coverage,
                        PQgetvalue(res, 0, 1));
    else if(strcmp(PQgetvalue(res, 0, 2), "t"))
        pa_resp_outcome(resp, 422, "error", "business-rule",
                        "this roster is attributed to NPI %s, not to the provider named", PQgetvalue(res, 0, 3));
    else if(!strcmp(PQgetvalue(res, 0, 0), "final"))
        pa_resp_outcome(resp, 422, "error", "business-rule", "the attribution list is final: it cannot change");
    else {
        pa_strlcpy(status, PQgetvalue(res, 0, 0), 16);
        pa_strlcpy(mp->patient, PQgetvalue(res, 0, 1), sizeof(mp->patient));
        rc = 0;
    }
    PQclear(res);
    return rc;
}

/* The common start of both operations; 0 with db, params and status ready. */
static int begin(pa_ctx *ctx, pa_req *req, pa_resp *resp, const char *group, const char *op, PGconn **db,
                 struct member_params *mp, char status[16])
{
    pa_err err;

    ctx->audit.operation = op;
    pa_strlcpy(ctx->audit.group_id, group, sizeof(ctx->audit.group_id));
    if(!ctx->token.admin || !pa_scope_allows_write(ctx->token.scope, "Group")) {
        pa_strlcpy(ctx->audit.detail, "not an admin client with Group write scope", sizeof(ctx->audit.detail));
        pa_resp_outcome(resp, 403, "error", "forbidden",
                        "$%s is for the payer's admin clients with a scope that writes Group", op);
        return -1;
    }
    if(read_params(req, mp, resp))
        return -1;
    pa_err_clear(&err);
    if(pa_ctx_db(ctx, db, &err)) {
        pa_resp_error(resp, &err);
        return -1;
    }
    return resolve(*db, group, mp, status, resp);
}

void pa_h_member_add(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    struct member_params mp;
    char status[16];
    const char *values[4];
    PGconn *db;
    PGresult *res;
    pa_err err;

    if(begin(ctx, req, resp, args[0], "member-add", &db, &mp, status))
        return;
    values[0] = args[0];
    values[1] = mp.patient;
    values[2] = mp.start[0] ? mp.start : NULL;
    values[3] = mp.end[0] ? mp.end : NULL;
    pa_err_clear(&err);
    res = pa_db_query(db, &err,
                      "WITH r AS (UPDATE roster SET updated_at = now() WHERE id = $1 RETURNING id) "
                      "INSERT INTO roster_member (roster_id, patient_id, period_start, period_end, change_type) "
                      "SELECT r.id, $2, coalesce($3::date, current_date), $4::date, 'new' FROM r "
                      "ON CONFLICT (roster_id, patient_id) DO UPDATE SET inactive = false,"
                      " period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,"
                      " change_type = " PA_SQL_ROSTER_MEMBER_CHANGE("roster_member"),
                      4, values);
    if(!res) {
        pa_resp_error(resp, &err);
        return;
    }
    PQclear(res);
    pa_resp_outcome(resp, 200, "information", "informational", "Patient/%s is a member of Group/%s", mp.patient,
                    args[0]);
}

void pa_h_member_remove(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    struct member_params mp;
    char status[16];
    const char *values[2];
    PGconn *db;
    PGresult *res;
    pa_err err;
    int draft;

    if(begin(ctx, req, resp, args[0], "member-remove", &db, &mp, status))
        return;
    draft = !strcmp(status, "draft");
    values[0] = args[0];
    values[1] = mp.patient;
    pa_err_clear(&err);
    /* a draft list keeps the member, inactive; an open one lets it go */
    res = pa_db_query(
        db, &err,
        draft ? "UPDATE roster_member SET inactive = true, period_end = current_date, change_type = 'dropped'"
                " WHERE roster_id = $1 AND patient_id = $2 AND NOT inactive"
              : "DELETE FROM roster_member WHERE roster_id = $1 AND patient_id = $2",
        2, values);
    if(!res) {
        pa_resp_error(resp, &err);
        return;
    }
    if(strcmp(PQcmdTuples(res), "1")) {
        PQclear(res);
        pa_resp_outcome(resp, 404, "error", "not-found", "Patient/%s is not a member of Group/%s", mp.patient, args[0]);
        return;
    }
    PQclear(res);
    PQclear(pa_db_query(db, &err, "UPDATE roster SET updated_at = now() WHERE id = $1", 1, values));
    pa_resp_outcome(resp, 200, "information", "informational", "Patient/%s %s Group/%s", mp.patient,
                    draft ? "is now an inactive member of" : "is no longer a member of", args[0]);
}
