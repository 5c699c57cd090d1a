/*
 * Group read and search: the attribution rosters a client may see (those
 * attributed to its NPI or its organization's; the payer's admin clients see
 * all), as PDex provider Groups built from the roster tables, so that members
 * who opted out (globally or from this provider) never appear and periods and
 * status are current.  Anything else does not exist for the caller (404).
 */
#include "api.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_json.h"
#include "pa_util.h"

#define SEARCH_DEFAULT_COUNT 20
#define SEARCH_MAX_COUNT 100

/* $1 npi, $2 org npi, $3 admin: may the caller see roster r? */
#define VISIBLE                                                                                         \
    "($3::bool OR r.npi IN (nullif($1, ''), nullif($2, '')) OR r.org_npi IN (nullif($1, ''), nullif($2, '')))"

/* A member the caller may see: not opted out, globally or from $1/$2. */
#define NOT_OPTED_OUT "NOT " PA_SQL_OPTED_OUT("m.patient_id", "$1", "$2")

/* What client CLIENT last received of member m from roster r (provider-download):
 * the PDex 2.1.0 lastTransmitted, lastResources and lastFilters extensions. */
#define LAST_DOWNLOAD(CLIENT)                                                                           \
    "(SELECT json_agg(e) FROM (SELECT * FROM download_record d WHERE d.group_id = r.id"                   \
    "   AND d.patient_id = m.patient_id AND d.client_id = " CLIENT " ORDER BY d.at DESC LIMIT 1) d,"      \
    "  LATERAL (VALUES (json_build_object('url', 'http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-last-transmission',"\
    "   'valueDateTime', to_char(d.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))),"      \
    "   (CASE WHEN d.types <> '' THEN json_build_object('url',"                                         \
    "    'http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-last-types', 'valueString', d.types) END)," \
    "   (CASE WHEN d.filters <> '' THEN json_build_object('url',"                                       \
    "    'http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-last-typefilter', 'valueString', d.filters) END))" \
    "  v(e) WHERE e IS NOT NULL)"

/* The roster r as a PDex provider Group; $4 (bool) adds its members, with
 * what CLIENT last received of each. */
#define GROUP_JSON(CLIENT)                                                                              \
    "json_strip_nulls(json_build_object('resourceType', 'Group', 'id', r.id,"                             \
    " 'meta', json_build_object('lastUpdated', to_char(r.updated_at AT TIME ZONE 'UTC',"                  \
    "   'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"                                                            \
    "  'profile', json_build_array('http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provider-group'),"\
    "  'tag', CASE WHEN NOT $4::bool THEN json_build_array(json_build_object('system',"                    \
    "   'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', 'code', 'SUBSETTED')) END),"          \
    " 'extension', json_build_array(json_build_object('url',"                                             \
    "   'http://hl7.org/fhir/us/davinci-atr/StructureDefinition/ext-attributionListStatus', 'valueCode', r.status)),"\
    " 'identifier', CASE WHEN r.identifier_value IS NOT NULL THEN json_build_array(json_build_object("    \
    "   'system', r.identifier_system, 'value', r.identifier_value)) END,"                                \
    " 'active', true, 'type', 'person', 'actual', true, 'name', r.name,"                                  \
    " 'characteristic', json_build_array(json_build_object('code', json_build_object('coding',"           \
    "   json_build_array(json_build_object('system', 'http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMemberAttributionCS',"\
    "   'code', 'pdexprovidergroup'))), 'valueReference', json_build_object('identifier', json_build_object("\
    "   'system', 'http://hl7.org/fhir/sid/us-npi', 'value', coalesce(r.npi, r.org_npi))), 'exclude', false)),"\
    " 'quantity', (SELECT count(*) FROM roster_member m WHERE m.roster_id = r.id AND NOT m.inactive AND "  \
    NOT_OPTED_OUT "),"                                                                                    \
    " 'member', CASE WHEN $4::bool THEN (SELECT coalesce(json_agg(json_build_object('extension', "        \
    LAST_DOWNLOAD(CLIENT) ", 'entity',"                                                                  \
    "   json_build_object('reference', 'Patient/' || m.patient_id), 'period', json_build_object("        \
    "   'start', m.period_start, 'end', m.period_end), 'inactive', m.inactive) ORDER BY m.patient_id), '[]')"\
    "   FROM roster_member m WHERE m.roster_id = r.id AND " NOT_OPTED_OUT ") END))::text"

static void token_values(const pa_ctx *ctx, const char **v, int members)
{
    v[0] = ctx->token.npi;
    v[1] = ctx->token.org_npi;
    v[2] = ctx->token.admin ? "true" : "false";
    v[3] = members ? "true" : "false";
}

/* The local reference ("#id") a Matched Group's member makes to the
 * submitted Patient it stands for, or "". */
static const char *match_parameters(json_object *member)
{
    json_object *exts = pa_json_get(pa_json_get(member, "entity"), "extension");
    json_object *x = json_object_is_type(exts, json_type_array) && json_object_array_length(exts)
                         ? json_object_array_get_idx(exts, 0)
                         : NULL;
    const char *ref = pa_json_str(pa_json_get(x, "valueReference"), "reference");

    return ref && ref[0] == '#' ? ref : "";
}

/*
 * A stored Matched Group's text without the members gone holds (a JSON
 * object whose keys are "Patient/id"), and without the submitted Patients
 * only they pointed at; its quantity follows.  Caller frees; NULL when out of
 * memory.
 */
static char *without_members(const char *json, const char *gone_json)
{
    json_object *g = NULL, *gone = NULL, *members, *contained, *kept;
    size_t i, k;
    char *out;

    if(!strcmp(gone_json, "{}") || pa_json_parse(gone_json, strlen(gone_json), &gone, NULL) ||
       pa_json_parse(json, strlen(json), &g, NULL) || !json_object_object_get_ex(g, "member", &members) ||
       !json_object_is_type(members, json_type_array)) {
        json_object_put(gone);
        json_object_put(g);
        return strdup(json);
    }
    kept = json_object_new_array();
    for(i = 0; i < json_object_array_length(members); i++) {
        json_object *m = json_object_array_get_idx(members, i);
        const char *ref = pa_json_str(pa_json_get(m, "entity"), "reference");

        if(!ref || !json_object_object_get_ex(gone, ref, NULL))
            json_object_array_add(kept, json_object_get(m));
    }
    /* a contained Patient stays only while a kept member points at it */
    if(json_object_object_get_ex(g, "contained", &contained) && json_object_is_type(contained, json_type_array)) {
        json_object *still = json_object_new_array();

        for(i = 0; i < json_object_array_length(contained); i++) {
            json_object *c = json_object_array_get_idx(contained, i);
            const char *id = pa_json_str(c, "id");

            for(k = 0; id && k < json_object_array_length(kept); k++) {
                const char *ref = match_parameters(json_object_array_get_idx(kept, k));

                if(*ref && !strcmp(ref + 1, id)) {
                    json_object_array_add(still, json_object_get(c));
                    break;
                }
            }
        }
        json_object_object_add(g, "contained", still);
    }
    json_object_object_add(g, "quantity", json_object_new_int64((int64_t)json_object_array_length(kept)));
    json_object_object_add(g, "member", kept);
    out = strdup(json_object_to_json_string_ext(g, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(g);
    json_object_put(gone);
    return out;
}

int pa_h_group_read(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    const char *values[6];
    PGconn *db;
    PGresult *res;
    pa_err err;

    ctx->audit.operation = "read";
    pa_strlcpy(ctx->audit.group_id, args[0], sizeof(ctx->audit.group_id));
    if(pa_accept_pick(req->accept, pa_fhir_json_types) < 0)
        return pa_resp_outcome(resp, 406, "error", "not-supported", "a Group is application/fhir+json");
    pa_err_clear(&err);
    if(pa_ctx_db(ctx, &db, &err))
        return pa_resp_error(resp, &err);
    token_values(ctx, values, 1);
    values[4] = args[0];
    values[5] = ctx->token.client_id;
    res = pa_db_query(db, &err, "SELECT " GROUP_JSON("$6") " FROM roster r WHERE r.id = $5 AND " VISIBLE, 6, values);
    if(!res)
        return pa_resp_error(resp, &err);
    if(PQntuples(res) != 1) {
        const char *mv[4] = { args[0], ctx->token.client_id, ctx->token.npi, ctx->token.org_npi };

        PQclear(res);
        /* a Matched Group, as made, for the client that asked for it, less
         * the members who have opted out since */
        res = pa_db_query(db, &err,
                          "SELECT json, expires_at > now(), coalesce((SELECT json_object_agg('Patient/' || m.patient_id, true)"
                          " FROM matched_group_member m WHERE m.group_id = g.id AND "
                          PA_SQL_OPTED_OUT("m.patient_id", "$3", "$4") ")::text, '{}')"
                          " FROM matched_group g WHERE id = $1 AND client_id = $2",
                          4, mv);
        if(!res)
            return pa_resp_error(resp, &err);
        if(PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 1), "t")) {
            char *json = without_members(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 2));

            if(json)
                pa_resp_text(resp, 200, PA_MT_FHIR_JSON, json);
            else
                pa_resp_outcome(resp, 500, "fatal", "exception", "out of memory");
            free(json);
            PQclear(res);
            return 0;
        }
        if(PQntuples(res) == 1) {
            PQclear(res);
            return pa_resp_outcome(resp, 410, "error", "expired",
                                   "Group '%.64s' has expired: run $provider-member-match again", args[0]);
        }
        PQclear(res);
        pa_strlcpy(ctx->audit.detail, "no such Group, or not attributed to the client", sizeof(ctx->audit.detail));
        return pa_resp_outcome(resp, 404, "error", "not-found", "no Group '%.64s'", args[0]);
    }
    pa_resp_text(resp, 200, PA_MT_FHIR_JSON, PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* Appends a search link (self or next) with the request's own parameters. */
static void add_link(pa_buf *b, const pa_ctx *ctx, const pa_req *req, const char *relation, const char *cursor,
                     int first)
{
    size_t i;
    char *u;

    pa_buf_printf(b, "%s{\"relation\":\"%s\",\"url\":", first ? "" : ",", relation);
    {
        pa_buf url;

        pa_buf_init(&url, 16384);
        pa_buf_printf(&url, "%s/Group?", ctx->cfg->base_url);
        for(i = 0; i < req->nparams; i++) {
            if(!strcmp(req->params[i].name, "_cursor"))
                continue;
            /* the values went through percent-decoding: encode the few that matter */
            pa_buf_printf(&url, "%s=", req->params[i].name);
            for(u = req->params[i].value; *u; u++)
                if(*u == '&' || *u == '#' || *u == '%' || *u == '+' || *u == ' ' || *u == '|')
                    pa_buf_printf(&url, "%%%02X", (unsigned char)*u);
                else
                    pa_buf_add(&url, u, 1);
            pa_buf_addstr(&url, "&");
        }
        if(cursor)
            pa_buf_printf(&url, "_cursor=%s", cursor);
        else if(url.len && (url.data[url.len - 1] == '&' || url.data[url.len - 1] == '?'))
            url.data[--url.len] = '\0';
        pa_buf_add_json_string(b, pa_buf_str(&url));
        pa_buf_free(&url);
    }
    pa_buf_addstr(b, "}");
}

int pa_h_group_search(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    const char *values[13] = { NULL };
    char limit_s[24], system[1024];
    size_t k;
    long count = SEARCH_DEFAULT_COUNT;
    int summary_count = 0;
    PGconn *db;
    PGresult *res = NULL;
    pa_buf b;
    pa_err err;
    size_t i;
    long total = 0;
    int n;

    (void)args;
    ctx->audit.operation = "search";
    if(pa_accept_pick(req->accept, pa_fhir_json_types) < 0)
        return pa_resp_outcome(resp, 406, "error", "not-supported", "a search answers with application/fhir+json");
    token_values(ctx, values, 0);
    /* $5 _id list, $6 identifier value, $7 identifier system, $8 name, $9 code, $10 characteristic-value, $11 cursor */
    for(i = 0; i < req->nparams; i++) {
        const char *name = req->params[i].name;
        const char *v = req->params[i].value;
        const char *bar = strchr(v, '|');

        if(!strcmp(name, "_format"))
            continue;
        if(strchr(name, ':'))
            return pa_resp_outcome(resp, 400, "error", "not-supported", "search modifiers are not supported (%.40s)", name);
        for(k = 0; k < i; k++)
            if(!strcmp(req->params[k].name, name))
                return pa_resp_outcome(resp, 400, "error", "not-supported",
                                       "search parameter '%.40s' is given twice; give it once (values separated "
                                       "by commas where it takes several)", name);
        if(!strcmp(name, "_id"))
            values[4] = v;
        else if(!strcmp(name, "identifier")) {
            values[5] = bar ? bar + 1 : v;
            if(bar && (size_t)(bar - v) >= sizeof(system))
                return pa_resp_outcome(resp, 400, "error", "invalid", "the identifier's system is too long");
            if(bar) {
                memcpy(system, v, (size_t)(bar - v));
                system[bar - v] = '\0';
                values[6] = system;
            }
        }
        else if(!strcmp(name, "name"))
            values[7] = v;
        else if(!strcmp(name, "code"))
            values[8] = bar ? bar + 1 : v;
        else if(!strcmp(name, "characteristic-value"))
            values[9] = bar ? bar + 1 : v;
        else if(!strcmp(name, "_cursor"))
            values[10] = v;
        else if(!strcmp(name, "_summary") && !strcmp(v, "count"))
            summary_count = 1;
        else if(!strcmp(name, "_count") && !pa_parse_long(v, &count) && count >= 0 && count <= SEARCH_MAX_COUNT)
            ;
        else
            return pa_resp_outcome(resp, 400, "error", "not-supported",
                                   "search parameter '%.40s=%.40s' is not supported (_id, identifier, name, code, "
                                   "characteristic-value, _count up to %d, _summary=count)", name, v, SEARCH_MAX_COUNT);
    }
    snprintf(limit_s, sizeof(limit_s), "%ld", summary_count ? 0 : count + 1);
    values[11] = limit_s;
    values[12] = ctx->token.client_id;
    pa_err_clear(&err);
    if(pa_ctx_db(ctx, &db, &err)) {
        return pa_resp_error(resp, &err);
    }
    /* the filters, then the total and one page by keyset on id */
    res = pa_db_query(db, &err,
                      "WITH hits AS (SELECT r.* FROM roster r WHERE " VISIBLE
                      " AND ($5::text IS NULL OR r.id = ANY(string_to_array($5, ',')))"
                      " AND ($6::text IS NULL OR (r.identifier_value = $6 AND ($7::text IS NULL OR r.identifier_system = $7)))"
                      " AND ($8::text IS NULL OR lower(r.name) LIKE lower($8) || '%')"
                      " AND ($9::text IS NULL OR $9 = 'pdexprovidergroup')"
                      " AND ($10::text IS NULL OR $10 IN (r.npi, r.org_npi)))"
                      /* and the caller's own Matched Groups, as made (no members: they are searched for) */
                      ", mg AS (SELECT g.id, (g.json::jsonb - 'member' - 'contained')"
                      "  || '{\"meta\":{\"tag\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ObservationValue\","
                      "\"code\":\"SUBSETTED\"}]}}'::jsonb AS j FROM matched_group g"
                      "  WHERE g.client_id = $13 AND g.expires_at > now()"
                      "  AND ($5::text IS NULL OR g.id = ANY(string_to_array($5, ',')))"
                      "  AND $6::text IS NULL AND $8::text IS NULL AND ($9::text IS NULL OR $9 = 'match')"
                      "  AND ($10::text IS NULL OR $10 IN (nullif($1, ''), nullif($2, '')))),"
                      " page AS (SELECT r.id, " GROUP_JSON("NULL::text") " AS j FROM hits r"
                      "  UNION ALL SELECT id, j::text FROM mg) "
                      "SELECT (SELECT count(*) FROM hits) + (SELECT count(*) FROM mg), NULL UNION ALL "
                      "(SELECT NULL, j FROM page WHERE ($11::text IS NULL OR id > $11) ORDER BY id LIMIT $12::int)",
                      13, values);
    if(!res)
        return pa_resp_error(resp, &err);
    pa_parse_long(PQgetvalue(res, 0, 0), &total);
    n = PQntuples(res) - 1;
    pa_buf_init(&b, PA_RESP_MAX_BODY);
    pa_buf_printf(&b, "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":%ld,\"link\":[", total);
    add_link(&b, ctx, req, "self", values[10], 1);
    if(n > count) {
        /* the extra row says there is a next page, which starts after this one's last */
        json_object *last = json_tokener_parse(PQgetvalue(res, (int)count, 1));

        add_link(&b, ctx, req, "next", json_object_get_string(json_object_object_get(last, "id")), 0);
        json_object_put(last);
        n = (int)count;
    }
    pa_buf_addstr(&b, "],\"entry\":[");
    for(i = 1; i <= (size_t)n; i++) {
        json_object *g = json_tokener_parse(PQgetvalue(res, (int)i, 1));

        pa_buf_printf(&b, "%s{\"fullUrl\":\"%s/Group/%s\",\"resource\":%s,\"search\":{\"mode\":\"match\"}}",
                      i > 1 ? "," : "", ctx->cfg->base_url, json_object_get_string(json_object_object_get(g, "id")),
                      PQgetvalue(res, (int)i, 1));
        json_object_put(g);
    }
    pa_buf_addstr(&b, "]}");
    PQclear(res);
    pa_resp_text(resp, 200, PA_MT_FHIR_JSON, pa_buf_str(&b));
    pa_buf_free(&b);
    return 0;
}
