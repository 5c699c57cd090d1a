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
#include "pa_optout.h"
#include "pa_roster.h"
#include "pa_util.h"

#define SEARCH_DEFAULT_COUNT 20
#define SEARCH_MAX_COUNT 100
#define SEARCH_FIXED_VALUES 9 /* the caller, the payer, the page: $1..$9 */
#define SEARCH_MAX_VALUES 128

/* $1 npi, $2 org npi, $3 admin: may the caller see roster r? */
#define VISIBLE PA_SQL_ROSTER_VISIBLE("r", "$1", "$2", "$3::bool")

/* A member the caller may see: not opted out, globally or from $1/$2. */
#define NOT_OPTED_OUT "NOT " PA_SQL_OPTED_OUT("m.patient_id", "$1", "$2")

#define NPI_SYSTEM "http://hl7.org/fhir/sid/us-npi"
#define ATR_EXT "http://hl7.org/fhir/us/davinci-atr/StructureDefinition/"
#define PDEX_EXT "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/"

/* The rows a roster's Group is built from: l.j the Group it was loaded from
 * ('{}' for a roster made otherwise), then g.s the Group as served, without
 * what counts members (SERVED). */
/* clang-format off */
#define ROSTER_FROM(PAYER)                                                                              \
    "roster r, LATERAL (SELECT coalesce(r.json::jsonb, '{}'::jsonb) AS j) l, LATERAL (SELECT " SERVED(PAYER) \
    " AS s) g"
/* clang-format on */

/* The loaded Group's array KEY, or []. */
#define LOADED_ARRAY(KEY) "(CASE WHEN jsonb_typeof(l.j->'" KEY "') = 'array' THEN l.j->'" KEY "' ELSE '[]'::jsonb END)"
#define ATTRIBUTED_NPI "coalesce(r.npi, r.org_npi)"
/* clang-format off */
#define PROVIDER_GROUP_CODE                                                                             \
    "jsonb_build_object('coding', jsonb_build_array(jsonb_build_object('system',"                          \
    " 'http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMemberAttributionCS', 'code', 'pdexprovidergroup',"\
    " 'display', 'PDex Provider Group')))"
/* clang-format on */
#define IS_PROVIDER_GROUP(C) C "->'code' @> '{\"coding\":[{\"code\":\"pdexprovidergroup\"}]}'"
/* the loaded pdexprovidergroup characteristic, or {} */
/* clang-format off */
#define LOADED_PC                                                                                       \
    "coalesce((SELECT c FROM jsonb_array_elements(" LOADED_ARRAY("characteristic") ") c WHERE "            \
    IS_PROVIDER_GROUP("c") " LIMIT 1), '{}'::jsonb)"
/* clang-format on */
/* the attributed provider: its FHIR resource when the directory knows it, and its NPI */
/* clang-format off */
#define PROVIDER_REF                                                                                    \
    "jsonb_strip_nulls(jsonb_build_object('reference', (SELECT p.resource_type || '/' || p.resource_id"    \
    " FROM provider p WHERE p.npi = " ATTRIBUTED_NPI " AND p.resource_id IS NOT NULL),"                    \
    " 'identifier', jsonb_build_object('system', '" NPI_SYSTEM "', 'value', " ATTRIBUTED_NPI ")))"
/* clang-format on */

/*
 * The roster as a PDex provider Group, without meta and what counts members:
 * what the Group it was loaded from says (its identifiers, TIN among them,
 * its managingEntity, its other characteristics and extensions), completed
 * as the profile asks: code, the attributed provider's NPI among the
 * identifiers, the pdexprovidergroup characteristic with its provider and
 * period, managingEntity (the payer, PAYER its NAIC code), and the
 * attribution list status.
 */
/* clang-format off */
#define SERVED(PAYER)                                                                                   \
    "(l.j - 'member' - 'quantity' - 'meta' - 'text' - 'contained' - 'id') || jsonb_build_object("         \
    " 'resourceType', 'Group', 'id', r.id, 'active', true, 'type', 'person', 'actual', true, 'name', r.name," \
    " 'extension', (SELECT coalesce(jsonb_agg(e), '[]'::jsonb) FROM jsonb_array_elements("                \
    LOADED_ARRAY("extension") ") e WHERE e->>'url' NOT IN ('" ATR_EXT "ext-attributionListStatus', '"      \
    PDEX_EXT "base-ext-members-opted-out')) || jsonb_build_array(jsonb_build_object('url', '" ATR_EXT      \
    "ext-attributionListStatus', 'valueCode', r.status)),"                                                \
    " 'identifier', " LOADED_ARRAY("identifier") " || CASE WHEN " ATTRIBUTED_NPI " IS NOT NULL AND NOT "  \
    LOADED_ARRAY("identifier") " @> jsonb_build_array(jsonb_build_object('system', '" NPI_SYSTEM "',"      \
    " 'value', " ATTRIBUTED_NPI ")) THEN jsonb_build_array(jsonb_build_object('system', '" NPI_SYSTEM "',"  \
    " 'value', " ATTRIBUTED_NPI ")) ELSE '[]'::jsonb END,"                                                \
    " 'code', CASE WHEN jsonb_typeof(l.j->'code') = 'object' THEN l.j->'code' ELSE " PROVIDER_GROUP_CODE " END," \
    " 'characteristic', (SELECT coalesce(jsonb_agg(c), '[]'::jsonb) FROM jsonb_array_elements("            \
    LOADED_ARRAY("characteristic") ") c WHERE NOT " IS_PROVIDER_GROUP("c") ") || jsonb_build_array("      \
    LOADED_PC " || jsonb_build_object('code', " PROVIDER_GROUP_CODE ", 'exclude', false,"                  \
    "  'valueReference', coalesce(" LOADED_PC "->'valueReference', " PROVIDER_REF "),"                     \
    "  'period', coalesce(" LOADED_PC "->'period', jsonb_build_object('start',"                            \
    "   to_char(r.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'))))),"                                       \
    " 'managingEntity', coalesce(l.j->'managingEntity', CASE WHEN " PAYER " <> '' THEN jsonb_build_object("\
    "  'identifier', jsonb_build_object('system', 'urn:oid:2.16.840.1.113883.6.300', 'value', " PAYER "))" \
    "  END))"
/* clang-format on */

/* What client CLIENT last received of member m from roster r (its latest
 * provider-download): the PDex 2.1.0 lastTransmitted, lastTypes and
 * lastTypeFilter extensions. */
/* clang-format off */
#define LAST_DOWNLOAD(CLIENT)                                                                           \
    "(SELECT jsonb_agg(e) FROM (SELECT * FROM download_record d WHERE d.group_id = r.id"                  \
    "   AND d.patient_id = m.patient_id AND d.client_id = " CLIENT                                         \
    "   ORDER BY coalesce((SELECT j.created_at FROM job j WHERE j.id = d.job_id), d.at) DESC LIMIT 1) d,"   \
    "  LATERAL (VALUES (jsonb_build_object('url', '" PDEX_EXT "base-ext-last-transmission',"              \
    "   'valueDateTime', to_char(d.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))),"      \
    "   (CASE WHEN d.types <> '' THEN jsonb_build_object('url', '" PDEX_EXT "base-ext-last-types',"       \
    "    'valueString', d.types) END),"                                                                  \
    "   (CASE WHEN d.filters <> '' THEN jsonb_build_object('url', '" PDEX_EXT "base-ext-last-typefilter',"\
    "    'valueString', d.filters) END))"                                                                 \
    "  v(e) WHERE e IS NOT NULL)"
/* clang-format on */

/* A member's ATR extensions: its changeType, its coverage (the active one
 * first); LEGACY (bool) adds what CLIENT last received of it. */
/* clang-format off */
#define MEMBER_EXTENSIONS(CLIENT, LEGACY)                                                               \
    "jsonb_build_array(jsonb_build_object('url', '" ATR_EXT "ext-changeType', 'valueCode', m.change_type))" \
    " || coalesce((SELECT jsonb_build_array(jsonb_build_object('url', '" ATR_EXT "ext-coverageReference',"  \
    "  'valueReference', jsonb_build_object('reference', 'Coverage/' || c.coverage_id))) FROM coverage c"  \
    "  WHERE c.patient_id = m.patient_id ORDER BY c.status = 'active' DESC, c.coverage_id LIMIT 1), '[]'::jsonb)" \
    " || CASE WHEN " LEGACY " THEN coalesce(" LAST_DOWNLOAD(CLIENT) ", '[]'::jsonb) ELSE '[]'::jsonb END"
/* clang-format on */

/* The roster r (ROSTER_FROM) as served, text; $4 (bool) adds its members,
 * with their extensions (MEMBER_EXTENSIONS). */
/* clang-format off */
#define GROUP_JSON(CLIENT, LEGACY)                                                                      \
    "jsonb_strip_nulls(g.s || jsonb_build_object("                                                        \
    " 'meta', jsonb_build_object('lastUpdated', to_char(r.updated_at AT TIME ZONE 'UTC',"                 \
    "   'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"                                                            \
    "  'profile', jsonb_build_array('" PDEX_EXT "pdex-provider-group'),"                                   \
    "  'tag', CASE WHEN NOT $4::bool THEN jsonb_build_array(jsonb_build_object('system',"                  \
    "   'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', 'code', 'SUBSETTED')) END),"          \
    " 'extension', (g.s->'extension') || jsonb_build_array(jsonb_build_object('url', '" PDEX_EXT           \
    "base-ext-members-opted-out', 'valueQuantity', jsonb_build_object('value', (SELECT count(*)"           \
    "  FROM roster_member m WHERE m.roster_id = r.id AND " PA_SQL_ROSTER_MEMBER_ACTIVE("m")                \
    "  AND NOT (" NOT_OPTED_OUT "))))),"                                                                 \
    " 'quantity', (SELECT count(*) FROM roster_member m WHERE m.roster_id = r.id AND "                    \
    PA_SQL_ROSTER_MEMBER_ACTIVE("m") " AND "                                                              \
    NOT_OPTED_OUT "),"                                                                                    \
    " 'member', CASE WHEN $4::bool THEN (SELECT coalesce(jsonb_agg(jsonb_build_object('extension', "      \
    MEMBER_EXTENSIONS(CLIENT, LEGACY) ", 'entity',"                                                        \
    "   jsonb_build_object('reference', 'Patient/' || m.patient_id), 'period', jsonb_build_object("      \
    "   'start', m.period_start, 'end', m.period_end), 'inactive', m.inactive) ORDER BY m.patient_id), '[]')"\
    "   FROM roster_member m WHERE m.roster_id = r.id AND " NOT_OPTED_OUT ") END))::text"
/* clang-format on */

/* A resource PostgreSQL built (jsonb: its keys sorted its own way) with
 * resourceType, id and meta first, as FHIR JSON is usually read; NULL when
 * it is not a JSON object. */
static json_object *fhir_ordered(const char *text)
{
    static const char *const first[] = { "resourceType", "id", "meta", NULL };
    json_object *in = json_tokener_parse(text), *out, *v;
    size_t i;

    if(!in || !json_object_is_type(in, json_type_object)) {
        json_object_put(in);
        return NULL;
    }
    out = json_object_new_object();
    if(!out) {
        json_object_put(in);
        return NULL;
    }
    for(i = 0; first[i]; i++)
        if(json_object_object_get_ex(in, first[i], &v))
            json_object_object_add(out, first[i], json_object_get(v));
    {
        json_object_object_foreach(in, key, val)
        {
            if(!json_object_object_get_ex(out, key, NULL))
                json_object_object_add(out, key, json_object_get(val));
        }
    }
    json_object_put(in);
    return out;
}

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
    if(!kept) {
        json_object_put(gone);
        json_object_put(g);
        return NULL;
    }
    for(i = 0; i < json_object_array_length(members); i++) {
        json_object *m = json_object_array_get_idx(members, i);
        const char *ref = pa_json_str(pa_json_get(m, "entity"), "reference");

        if(!ref || !json_object_object_get_ex(gone, ref, NULL))
            json_object_array_add(kept, json_object_get(m));
    }
    /* a contained Patient stays only while a kept member points at it */
    if(json_object_object_get_ex(g, "contained", &contained) && json_object_is_type(contained, json_type_array)) {
        json_object *still = json_object_new_array();

        for(i = 0; still && i < json_object_array_length(contained); i++) {
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
        if(!still) {
            json_object_put(kept);
            json_object_put(gone);
            json_object_put(g);
            return NULL;
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

/* _summary=true on a read: the Group without its members (SUBSETTED), for
 * large rosters. */
static int summary_true(const pa_req *req)
{
    size_t i;

    for(i = 0; i < req->nparams; i++)
        if(!strcmp(req->params[i].name, "_summary") && !strcmp(req->params[i].value, "true"))
            return 1;
    return 0;
}

void pa_h_group_read(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    const char *values[8];
    PGconn *db;
    PGresult *res;
    pa_err err;

    ctx->audit.operation = "read";
    pa_strlcpy(ctx->audit.group_id, args[0], sizeof(ctx->audit.group_id));
    if(pa_accept_pick(req->accept, pa_fhir_json_types) < 0) {
        pa_resp_outcome(resp, 406, "error", "not-supported", "a Group is application/fhir+json");
        return;
    }
    pa_err_clear(&err);
    if(pa_ctx_db(ctx, &db, &err)) {
        pa_resp_error(resp, &err);
        return;
    }
    token_values(ctx, values, !summary_true(req));
    values[4] = args[0];
    values[5] = ctx->token.client_id;
    values[6] = ctx->cfg->payer_identifier;
    values[7] = ctx->cfg->pdex_member_extensions ? "true" : "false";
    res = pa_db_query(db, &err,
                      "SELECT " GROUP_JSON("$6", "$8::bool") " FROM " ROSTER_FROM("$7") " WHERE r.id = $5 AND " VISIBLE,
                      8, values);
    if(!res) {
        pa_resp_error(resp, &err);
        return;
    }
    if(PQntuples(res) != 1) {
        const char *mv[4] = { args[0], ctx->token.client_id, ctx->token.npi, ctx->token.org_npi };

        PQclear(res);
        /* a Matched Group, as made, for the client that asked for it, less
         * the members who have opted out since */
        res = pa_db_query(
            db, &err,
            "SELECT json, expires_at > now(), coalesce((SELECT json_object_agg('Patient/' || m.patient_id, true)"
            " FROM matched_group_member m WHERE m.group_id = g.id AND " PA_SQL_OPTED_OUT(
                "m.patient_id", "$3", "$4") ")::text, '{}')"
                                            " FROM matched_group g WHERE id = $1 AND client_id = $2",
            4, mv);
        if(!res) {
            pa_resp_error(resp, &err);
            return;
        }
        if(PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 1), "t")) {
            char *json = without_members(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 2));

            if(json)
                pa_resp_text(resp, 200, PA_MT_FHIR_JSON, json);
            else
                pa_resp_outcome(resp, 500, "fatal", "exception", "out of memory");
            free(json);
            PQclear(res);
            return;
        }
        if(PQntuples(res) == 1) {
            PQclear(res);
            pa_resp_outcome(resp, 410, "error", "expired",
                            "Group '%.64s' has expired: run $provider-member-match again", args[0]);
            return;
        }
        PQclear(res);
        pa_strlcpy(ctx->audit.detail, "no such Group, or not attributed to the client", sizeof(ctx->audit.detail));
        pa_resp_outcome(resp, 404, "error", "not-found", "no Group '%.64s'", args[0]);
        return;
    }
    {
        json_object *g = fhir_ordered(PQgetvalue(res, 0, 0));

        if(g)
            pa_resp_text(resp, 200, PA_MT_FHIR_JSON,
                         json_object_to_json_string_ext(g, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        else
            pa_resp_outcome(resp, 500, "fatal", "exception", "out of memory");
        json_object_put(g);
    }
    PQclear(res);
}

/* A search's SQL and its values, the filters numbered as they are added. */
struct search {
    pa_buf sql;
    const char *values[SEARCH_MAX_VALUES];
    int n;
};

/* Takes value as the next placeholder; its number, 0 when there are too many. */
static int bind_value(struct search *q, const char *value)
{
    if(q->n == SEARCH_MAX_VALUES)
        return 0;
    q->values[q->n++] = value;
    return q->n;
}

/* The JSON array A of a candidate, as rows x (jsonb). */
#define ELEMS(A) "jsonb_array_elements(CASE WHEN jsonb_typeof(" A ") = 'array' THEN " A " ELSE '[]'::jsonb END)"
#define IDENTIFIERS ELEMS("c.s->'identifier'") " x"
#define CODE_CODINGS ELEMS("c.s->'code'->'coding'") " x"
#define CHARACTERISTICS ELEMS("c.s->'characteristic'") " ch"
#define CHAR_CODINGS CHARACTERISTICS ", " ELEMS("ch->'code'->'coding'") " x"
#define CHAR_REF_IDS CHARACTERISTICS ", LATERAL (SELECT ch->'valueReference'->'identifier') r(x)"

/* One value of a token parameter against the rows x of FROM (codings or
 * identifiers, their code in KEY): system|code, |code (no system) or code
 * (any system).  0, or -1 when there are too many values. */
static int token_match(struct search *q, const char *from, const char *key, char *v)
{
    char *bar = strchr(v, '|');
    int k = bind_value(q, bar ? bar + 1 : v);
    int s = 0;

    if(bar && bar > v) {
        *bar = '\0';
        s = bind_value(q, v);
    }
    if(!k || (bar && bar > v && !s))
        return -1;
    pa_buf_printf(&q->sql, "EXISTS (SELECT 1 FROM %s WHERE x->>'%s' = $%d", from, key, k);
    if(s)
        pa_buf_printf(&q->sql, " AND x->>'system' = $%d", s);
    else if(bar)
        pa_buf_addstr(&q->sql, " AND x->'system' IS NULL");
    return pa_buf_addstr(&q->sql, ")") ? -1 : 0;
}

/* One value of a reference parameter against the characteristics'
 * valueReference: Type/id (or an absolute URL ending in it), or an id. */
static int reference_match(struct search *q, char *v)
{
    const char *slash = strrchr(v, '/');
    const char *tail = v;
    int k;

    if(slash) {
        /* Type/id: the last two segments */
        for(tail = slash; tail > v && tail[-1] != '/'; tail--)
            ;
    }
    k = bind_value(q, tail);
    if(!k)
        return -1;
    return pa_buf_printf(&q->sql,
                         "EXISTS (SELECT 1 FROM " CHARACTERISTICS " WHERE ch->'valueReference'->>'reference' = $%d"
                         " OR right(ch->'valueReference'->>'reference', length($%d) + 1) = '/' || $%d)",
                         k, k, k)
               ? -1
               : 0;
}

/*
 * One search parameter (name[:modifier]=value) as an SQL condition on the
 * candidate c (c.id, c.s the Group as served): a comma list is OR'ed; the
 * caller AND's repeated parameters.  1 when the name is not a filter; -1
 * (answered) when a value is missing or there are too many.
 */
static int add_filter(struct search *q, const char *name, char *value, pa_resp *resp)
{
    static const char *const filters[] = { "_id",
                                           "name",
                                           "identifier",
                                           "code",
                                           "characteristic",
                                           "characteristic-value-reference",
                                           "characteristic-value-reference:identifier",
                                           "characteristic-value",
                                           NULL };
    char *v, *save = NULL;
    size_t f;
    int first = 1, rc = 0;

    for(f = 0; filters[f] && strcmp(filters[f], name); f++)
        ;
    if(!filters[f])
        return 1;
    if(!*value) {
        pa_resp_outcome(resp, 400, "error", "invalid", "search parameter '%.60s' has no value", name);
        return -1;
    }
    pa_buf_addstr(&q->sql, " AND (");
    for(v = strtok_r(value, ",", &save); v && !rc; v = strtok_r(NULL, ",", &save), first = 0) {
        int k;

        if(!first)
            pa_buf_addstr(&q->sql, " OR ");
        switch(f) {
        case 0:
            k = bind_value(q, v);
            rc = k ? pa_buf_printf(&q->sql, "c.id = $%d", k) : -1;
            break;
        case 1:
            /* FHIR string search: the start, whatever the case */
            k = bind_value(q, v);
            rc = k ? pa_buf_printf(&q->sql, "left(lower(c.s->>'name'), length($%d)) = lower($%d)", k, k) : -1;
            break;
        case 2: rc = token_match(q, IDENTIFIERS, "value", v); break;
        case 3: rc = token_match(q, CODE_CODINGS, "code", v); break;
        case 4: rc = token_match(q, CHAR_CODINGS, "code", v); break;
        case 5: rc = reference_match(q, v); break;
        default:
            /* the attributed provider's identifier (its NPI) */
            rc = token_match(q, CHAR_REF_IDS, "value", v);
            break;
        }
    }
    if(rc) {
        pa_resp_outcome(resp, 400, "error", "too-costly", "the search has too many values (at most %d)",
                        SEARCH_MAX_VALUES - SEARCH_FIXED_VALUES);
        return -1;
    }
    if(first) {
        /* only commas: no value to match, and never "anything" */
        pa_resp_outcome(resp, 400, "error", "invalid", "search parameter '%.60s' has no value", name);
        return -1;
    }
    pa_buf_addstr(&q->sql, ")");
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

void pa_h_group_search(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    struct search q;
    char *copies[PA_QUERY_MAX_PARAMS];
    char limit_s[24];
    const char *cursor = NULL;
    long count = SEARCH_DEFAULT_COUNT;
    int summary_count = 0, ncopies = 0;
    PGconn *db;
    PGresult *res = NULL;
    pa_buf b;
    pa_err err;
    size_t i;
    long total = 0;
    int n, rc = 0;

    (void)args;
    ctx->audit.operation = "search";
    if(pa_accept_pick(req->accept, pa_fhir_json_types) < 0) {
        pa_resp_outcome(resp, 406, "error", "not-supported", "a search answers with application/fhir+json");
        return;
    }
    memset(&q, 0, sizeof(q));
    token_values(ctx, q.values, 0);
    q.values[4] = ctx->token.client_id;
    q.values[5] = ctx->cfg->payer_identifier;
    q.values[6] = ctx->cfg->pdex_member_extensions ? "true" : "false";
    q.values[7] = NULL; /* $8 the cursor */
    q.values[8] = limit_s;
    q.n = SEARCH_FIXED_VALUES;
    pa_buf_init(&q.sql, 256 * 1024);
    /* the rosters the caller may see, as served, and its live Matched Groups, as made */
    pa_buf_addstr(
        &q.sql,
        "WITH cand AS (SELECT r.id, g.s, true AS roster FROM " ROSTER_FROM(
            "$6") " WHERE " VISIBLE " UNION ALL SELECT m.id, (m.json::jsonb - 'member' - 'contained')"
                  "  || '{\"meta\":{\"tag\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ObservationValue\","
                  "\"code\":\"SUBSETTED\"}]}}'::jsonb, false FROM matched_group m"
                  "  WHERE m.client_id = $5 AND m.expires_at > now()),"
                  " hits AS (SELECT * FROM cand c WHERE true");
    for(i = 0; i < req->nparams && !rc; i++) {
        const char *name = req->params[i].name;
        const char *v = req->params[i].value;

        if(!strcmp(name, "_format"))
            continue;
        if(!strcmp(name, "_cursor"))
            cursor = v;
        else if(!strcmp(name, "_summary") && (!strcmp(v, "count") || !strcmp(v, "true") || !strcmp(v, "false")))
            /* true and false: the entries never carry members (SUBSETTED) */
            summary_count = !strcmp(v, "count");
        else if(!strcmp(name, "_count") && !pa_parse_long(v, &count) && count >= 0 && count <= SEARCH_MAX_COUNT)
            ;
        else {
            copies[ncopies] = strdup(v);
            if(!copies[ncopies]) {
                pa_resp_outcome(resp, 500, "fatal", "exception", "out of memory");
                rc = -1;
                break;
            }
            rc = add_filter(&q, name, copies[ncopies], resp);
            ncopies++;
            if(rc == 1) {
                rc = -1;
                pa_resp_outcome(resp, 400, "error", "not-supported",
                                strchr(name, ':')
                                    ? "search modifier '%.40s' is not supported (only "
                                      "characteristic-value-reference:identifier)"
                                    : "search parameter '%.40s=%.40s' is not supported (_id, identifier, "
                                      "name, code, characteristic, characteristic-value-reference, _count up "
                                      "to %d, _summary)",
                                name, v, SEARCH_MAX_COUNT);
            }
        }
    }
    if(rc)
        goto out;
    snprintf(limit_s, sizeof(limit_s), "%ld", summary_count ? 0 : count + 1);
    q.values[7] = cursor;
    /* the total, then one page by keyset on id; a roster's Group is built for the page only */
    pa_buf_addstr(&q.sql,
                  "), page AS (SELECT * FROM hits WHERE ($8::text IS NULL OR id > $8) ORDER BY id LIMIT $9::int) "
                  "SELECT (SELECT count(*) FROM hits), NULL UNION ALL (SELECT NULL, CASE WHEN p.roster THEN"
                  " (SELECT " GROUP_JSON("$5", "$7::bool") " FROM " ROSTER_FROM(
                      "$6") " WHERE r.id = p.id)"
                            " ELSE p.s::text END FROM page p ORDER BY p.id)");
    pa_err_clear(&err);
    res = pa_ctx_db(ctx, &db, &err) ? NULL : pa_db_query(db, &err, pa_buf_str(&q.sql), q.n, q.values);
    if(!res) {
        pa_resp_error(resp, &err);
        goto out;
    }
    pa_parse_long(PQgetvalue(res, 0, 0), &total);
    n = PQntuples(res) - 1;
    pa_buf_init(&b, PA_RESP_MAX_BODY);
    pa_buf_printf(&b, "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":%ld,\"link\":[", total);
    add_link(&b, ctx, req, "self", cursor, 1);
    if(n > count) {
        /* the extra row says there is a next page, which starts after this one's last */
        json_object *last = json_tokener_parse(PQgetvalue(res, (int)count, 1));

        add_link(&b, ctx, req, "next", json_object_get_string(json_object_object_get(last, "id")), 0);
        json_object_put(last);
        n = (int)count;
    }
    pa_buf_addstr(&b, "],\"entry\":[");
    for(i = 1; i <= (size_t)n; i++) {
        json_object *g = fhir_ordered(PQgetvalue(res, (int)i, 1));

        if(!g || !json_object_get_string(json_object_object_get(g, "id"))) {
            json_object_put(g);
            continue;
        }
        pa_buf_printf(&b, "%s{\"fullUrl\":\"%s/Group/%s\",\"resource\":%s,\"search\":{\"mode\":\"match\"}}",
                      b.data[b.len - 1] == '[' ? "" : ",", ctx->cfg->base_url,
                      json_object_get_string(json_object_object_get(g, "id")),
                      json_object_to_json_string_ext(g, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(g);
    }
    pa_buf_addstr(&b, "]}");
    pa_resp_text(resp, 200, PA_MT_FHIR_JSON, pa_buf_str(&b));
    pa_buf_free(&b);
out:
    PQclear(res);
    pa_buf_free(&q.sql);
    while(ncopies > 0)
        free(copies[--ncopies]);
}
