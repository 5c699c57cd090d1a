/*
 * pa-admin client ...: the registry of API clients; pa-admin audit: what they
 * asked.  A provider client is bound to the NPI (and optionally the
 * organization NPI) it acts for; an --admin client is the payer's own and is
 * bound to no provider.  Keys are registered as a JWKS (public keys only);
 * a secret, for sandboxes, is shown once and stored as a salted hash.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "pa_auth.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_guard.h"
#include "pa_jwt.h"
#include "pa_util.h"

#define JWKS_MAX (256 * 1024)

static void client_usage(void)
{
    fprintf(stderr, "usage: pa-admin client add --name NAME (--npi NPI [--org-npi NPI] | --admin)\n"
                    "                           (--jwks FILE [--jwks-url URL] | --secret) [--financial]\n"
                    "       pa-admin client list [--no-header]\n"
                    "       pa-admin client show ID\n"
                    "       pa-admin client disable|enable ID\n"
                    "       pa-admin client rotate-secret ID\n"
                    "       pa-admin client unflag ID          clear the enumeration guard's flag and spent budget\n"
                    "       pa-admin client set-jwks ID FILE [--jwks-url URL]\n");
}

/* Reads and checks a JWKS file: public keys only, each usable, each with a
 * kid.  Returns the compact JSON (caller frees) or NULL after saying why. */
static char *read_jwks(const char *path)
{
    json_object *jwks = json_object_from_file(path);
    json_object *keys;
    char *out = NULL;
    size_t i;

    if(!jwks) {
        fprintf(stderr, "pa-admin: cannot read a JSON JWKS from %s\n", path);
        return NULL;
    }
    if(!json_object_object_get_ex(jwks, "keys", &keys) || !json_object_is_type(keys, json_type_array) ||
       json_object_array_length(keys) == 0) {
        fprintf(stderr, "pa-admin: %s is not a JWKS: it needs a non-empty \"keys\" array\n", path);
        goto out;
    }
    for(i = 0; i < json_object_array_length(keys); i++) {
        json_object *k = json_object_array_get_idx(keys, i), *v;
        EVP_PKEY *pkey = NULL;
        pa_err err;

        if(json_object_object_get_ex(k, "d", &v)) {
            fprintf(stderr, "pa-admin: key %zu of %s is a private key: register the public key only\n", i, path);
            goto out;
        }
        if(!json_object_object_get_ex(k, "kid", &v) || !json_object_is_type(v, json_type_string)) {
            fprintf(stderr, "pa-admin: key %zu of %s has no kid\n", i, path);
            goto out;
        }
        if(!pa_jwk_alg(k) || pa_jwk_to_pkey(k, &pkey, &err)) {
            fprintf(stderr, "pa-admin: key %zu of %s cannot verify RS384, ES384, RS256 or ES256 signatures\n", i, path);
            goto out;
        }
        EVP_PKEY_free(pkey);
    }
    out = strdup(json_object_to_json_string_ext(jwks, JSON_C_TO_STRING_PLAIN));
    if(out && strlen(out) > JWKS_MAX) {
        fprintf(stderr, "pa-admin: %s is larger than %d bytes\n", path, JWKS_MAX);
        free(out);
        out = NULL;
    }
out:
    json_object_put(jwks);
    return out;
}

/* Warns (it is not an error: the directory may be loaded later) when an NPI
 * is not in network today: token requests will be refused until it is. */
static void warn_network(const char *npi)
{
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    PGresult *res;
    pa_err err;

    if(admin_connect(&cfg, &db))
        return;
    res = pa_db_query(db, &err,
                      "SELECT 1 FROM provider WHERE npi = $1 AND in_network"
                      " AND (network_start IS NULL OR network_start <= current_date)"
                      " AND (network_end IS NULL OR network_end >= current_date)",
                      1, &npi);
    if(res && PQntuples(res) == 0)
        fprintf(stderr,
                "pa-admin: warning: NPI %s is not in network today; its token requests will be "
                "refused until it is\n",
                npi);
    PQclear(res);
    PQfinish(db);
    pa_config_free(cfg);
}

static int client_add(int argc, char **argv)
{
    const char *name = NULL, *npi = NULL, *org_npi = NULL, *jwks_file = NULL, *jwks_url = NULL;
    int secret = 0, financial = 0, admin = 0;
    char id[17], plain[PA_TOKEN_LEN + 1];
    char *jwks = NULL, *hash = NULL;
    const char *values[9];
    int i;
    int ret = 1;

    for(i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if(!strcmp(a, "--secret"))
            secret = 1;
        else if(!strcmp(a, "--financial"))
            financial = 1;
        else if(!strcmp(a, "--admin"))
            admin = 1;
        else if(v && !strcmp(a, "--name"))
            name = argv[++i];
        else if(v && !strcmp(a, "--npi"))
            npi = argv[++i];
        else if(v && !strcmp(a, "--org-npi"))
            org_npi = argv[++i];
        else if(v && !strcmp(a, "--jwks"))
            jwks_file = argv[++i];
        else if(v && !strcmp(a, "--jwks-url"))
            jwks_url = argv[++i];
        else {
            client_usage();
            return 2;
        }
    }
    if(!name || (!jwks_file && !secret) || (admin && (npi || org_npi)) || (!admin && !npi)) {
        client_usage();
        fprintf(stderr, "pa-admin: a client needs --name, a key (--jwks FILE) or --secret, and either --npi "
                        "(a provider's client) or --admin (the payer's own, bound to no provider)\n");
        return 2;
    }
    if((npi && !pa_npi_valid(npi)) || (org_npi && !pa_npi_valid(org_npi))) {
        fprintf(stderr, "pa-admin: %s is not a valid NPI (check digit)\n", npi && !pa_npi_valid(npi) ? npi : org_npi);
        return 1;
    }
    jwks = jwks_file ? read_jwks(jwks_file) : NULL;
    if(jwks_file && !jwks)
        return 1;
    if(secret && (pa_secret_new(plain) || pa_secret_hash(plain, &hash))) {
        fprintf(stderr, "pa-admin: no random bytes for a secret\n");
        goto out;
    }
    if(pa_random_hex(id, 8))
        goto out;
    values[0] = id;
    values[1] = name;
    values[2] = npi;
    values[3] = org_npi;
    values[4] = jwks;
    values[5] = jwks_url;
    values[6] = hash;
    values[7] = financial ? "true" : "false";
    values[8] = admin ? "true" : "false";
    if(admin_exec("INSERT INTO client (id, name, npi, org_npi, jwks, jwks_url, secret_hash, financial, admin) "
                  "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8::bool, $9::bool)",
                  9, values, NULL))
        goto out;
    if(npi)
        warn_network(npi);
    /* for scripts: the id alone on the first line, the secret (shown once) on the second */
    printf("%s\n", id);
    if(secret)
        printf("%s\n", plain);
    ret = 0;
out:
    free(jwks);
    free(hash);
    return ret;
}

int cmd_client(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    long rows = 0;
    int rc;

    if(!strcmp(sub, "add"))
        return client_add(argc, argv);
    if(!strcmp(sub, "list")) {
        int no_header = argc == 3 && !strcmp(argv[2], "--no-header");

        if(argc > 3 || (argc == 3 && !no_header)) {
            client_usage();
            return 2;
        }
        return admin_list(
            "SELECT id, name, coalesce(npi, '') AS npi, coalesce(org_npi, '') AS org_npi,"
            " concat_ws('+', CASE WHEN jwks IS NOT NULL THEN 'jwks' END,"
            "  CASE WHEN secret_hash IS NOT NULL THEN 'secret' END) AS auth,"
            " CASE WHEN financial THEN 'yes' ELSE 'no' END AS financial,"
            " CASE WHEN admin THEN 'yes' ELSE 'no' END AS admin,"
            " CASE WHEN enabled THEN 'yes' ELSE 'no' END AS enabled,"
            " coalesce(to_char(flagged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\" ') || flag_reason, '')"
            " AS flagged FROM client ORDER BY created_at, id",
            0, NULL, no_header);
    }
    if(argc < 3) {
        client_usage();
        return 2;
    }
    if(!strcmp(sub, "show") && argc == 3)
        return admin_list("SELECT id, name, coalesce(npi, '') AS npi, coalesce(org_npi, '') AS org_npi,"
                          " coalesce((SELECT string_agg(k->>'kid' || ' (' || (k->>'kty') || ')', ' ')"
                          "  FROM jsonb_array_elements(jwks->'keys') k), '') AS keys,"
                          " coalesce(jwks_url, '') AS jwks_url, secret_hash IS NOT NULL AS secret,"
                          " financial, admin, enabled, created_at, updated_at FROM client WHERE id = $1",
                          1, (const char *const *)&argv[2], 0);
    if((!strcmp(sub, "disable") || !strcmp(sub, "enable")) && argc == 3) {
        const char *values[2] = { argv[2], !strcmp(sub, "enable") ? "true" : "false" };

        rc = admin_exec("UPDATE client SET enabled = $2::bool, updated_at = now() WHERE id = $1", 2, values, &rows);
        if(!rc && rows == 1 && !strcmp(sub, "disable"))
            rc = admin_revoke_tokens("SELECT $1::text", 1, values);
    }
    else if(!strcmp(sub, "unflag") && argc == 3) {
        pa_config *cfg = NULL;
        PGconn *db = NULL;
        pa_redis *redis = NULL;
        pa_err err;

        if(admin_connect(&cfg, &db))
            return 1;
        pa_err_clear(&err);
        rc = pa_redis_open(cfg, &redis, &err);
        if(!rc)
            rc = pa_guard_clear(redis, db, argv[2], &err);
        if(rc)
            fprintf(stderr, "pa-admin: %s\n", err.msg);
        pa_redis_free(redis);
        PQfinish(db);
        pa_config_free(cfg);
        return rc ? 1 : 0;
    }
    else if(!strcmp(sub, "rotate-secret") && argc == 3) {
        char plain[PA_TOKEN_LEN + 1];
        char *hash = NULL;
        const char *values[2] = { argv[2], NULL };

        if(pa_secret_new(plain) || pa_secret_hash(plain, &hash))
            return 1;
        values[1] = hash;
        rc = admin_exec("UPDATE client SET secret_hash = $2, updated_at = now() WHERE id = $1", 2, values, &rows);
        free(hash);
        /* the old secret's tokens go with it */
        if(!rc && rows == 1)
            rc = admin_revoke_tokens("SELECT $1::text", 1, values);
        if(!rc && rows == 1)
            printf("%s\n", plain);
    }
    else if(!strcmp(sub, "set-jwks") && (argc == 4 || (argc == 6 && !strcmp(argv[4], "--jwks-url")))) {
        char *jwks = read_jwks(argv[3]);
        const char *values[3] = { argv[2], jwks, argc == 6 ? argv[5] : NULL };

        if(!jwks)
            return 1;
        rc = admin_exec("UPDATE client SET jwks = $2::jsonb, jwks_url = coalesce($3, jwks_url), updated_at = now() "
                        "WHERE id = $1",
                        3, values, &rows);
        free(jwks);
    }
    else {
        client_usage();
        return 2;
    }
    if(!rc && rows != 1) {
        fprintf(stderr, "pa-admin: no client %s\n", argv[2]);
        return 1;
    }
    return rc;
}

/* The columns an AuditEvent is built from, shared by both kinds. */
#define AE_RECORDED "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* clang-format off */
#define AE_AGENT                                                                                                 \
    "json_build_array(json_build_object('requestor', true, 'who', json_build_object('identifier',"              \
    "  json_build_object('system', 'urn:provider-access:client', 'value', coalesce(client_id, 'unauthenticated'))),"\
    "  'policy', CASE WHEN npi IS NOT NULL THEN json_build_array('urn:npi:' || npi) END))"
/* clang-format on */
/* clang-format off */
#define AE_SOURCE                                                                                                \
    "json_build_object('observer', json_build_object('display', 'provider-access'),"                          \
    "  'type', json_build_array(json_build_object('system',"                                                    \
    "  'http://terminology.hl7.org/CodeSystem/security-source-type', 'code', '3')))"
/* clang-format on */
#define AE_FILTER "($1::text IS NULL OR client_id = $1) AND ($2::timestamptz IS NULL OR at >= $2::timestamptz)"

/* Requests: a RESTful interaction, the client as requesting agent, the Group
 * and the job as entities; outcome 0 / 4 / 8. */
/* clang-format off */
#define AUDIT_EVENTS_SQL                                                                                         \
    "SELECT at, 0 AS k, id, json_strip_nulls(json_build_object('resourceType', 'AuditEvent', 'id', 'ae-' || id,"  \
    " 'type', json_build_object('system', 'http://terminology.hl7.org/CodeSystem/audit-event-type', 'code', 'rest'),"\
    " 'action', CASE WHEN method = 'GET' THEN 'R' WHEN method = 'DELETE' THEN 'D' ELSE 'E' END,"                \
    " 'recorded', " AE_RECORDED ","                                                                              \
    " 'outcome', CASE outcome WHEN 'success' THEN '0' WHEN 'refused' THEN '4' ELSE '8' END,"                    \
    " 'outcomeDesc', detail, 'agent', " AE_AGENT ", 'source', " AE_SOURCE ","                                    \
    " 'entity', (SELECT json_agg(e) FROM (SELECT json_build_object('what', json_build_object('reference', 'Group/' || group_id)) e"\
    "   WHERE group_id IS NOT NULL UNION ALL SELECT json_build_object('what', json_build_object('identifier',"    \
    "   json_build_object('system', 'urn:provider-access:job', 'value', job_id))) WHERE job_id IS NOT NULL) x),"   \
    " 'extension', json_build_array(json_build_object('url', 'urn:provider-access:request',"                     \
    "  'valueString', method || ' ' || endpoint || ' -> ' || status || ' (' || request_id || ', ' || duration_ms || ' ms)'))"\
    "))::text AS auditevent FROM audit_event WHERE " AE_FILTER
/* clang-format on */

/* Disclosures: an export (DICOM 110106) or a query (110112, a member match)
 * for treatment, the member as the entity (patient role) with what the
 * client got in its details, then the Group and the job. */
/* clang-format off */
#define DISCLOSURE_EVENTS_SQL                                                                                    \
    "SELECT at, 1 AS k, id, json_strip_nulls(json_build_object('resourceType', 'AuditEvent', 'id', 'di-' || id," \
    " 'type', json_build_object('system', 'http://dicom.nema.org/resources/ontology/DCM', 'code',"              \
    "  CASE operation WHEN 'export' THEN '110106' ELSE '110112' END, 'display',"                                  \
    "  CASE operation WHEN 'export' THEN 'Export' ELSE 'Query' END),"                                            \
    " 'subtype', json_build_array(json_build_object('system', 'urn:provider-access:disclosure', 'code', outcome)),"\
    " 'action', CASE operation WHEN 'export' THEN 'R' ELSE 'E' END, 'recorded', " AE_RECORDED ", 'outcome', '0',"\
    " 'outcomeDesc', outcome || coalesce(' (' || reason || ')', ''),"                                             \
    " 'purposeOfEvent', json_build_array(json_build_object('coding', json_build_array(json_build_object("         \
    "  'system', 'http://terminology.hl7.org/CodeSystem/v3-ActReason', 'code', 'TREAT')))),"                     \
    " 'agent', " AE_AGENT ", 'source', " AE_SOURCE ","                                                           \
    " 'entity', (SELECT json_agg(e) FROM ("                                                                     \
    "  SELECT json_build_object('what', json_build_object('reference', 'Patient/' || patient_id),"              \
    "   'type', json_build_object('system', 'http://terminology.hl7.org/CodeSystem/audit-entity-type', 'code', '1'),"\
    "   'role', json_build_object('system', 'http://terminology.hl7.org/CodeSystem/object-role', 'code', '1'),"   \
    "   'detail', (SELECT json_agg(json_build_object('type', t, 'valueString', v)) FROM (VALUES ('outcome', outcome),"\
    "    ('reason', reason), ('submitted', entry || ':' || submitted), ('_type', CASE types WHEN '' THEN '(every type)' ELSE types END), ('_typeFilter', type_filter),"\
    "    ('_since', " AE_INSTANT("since") "), ('_until', " AE_INSTANT("until") ")) d(t, v) WHERE v IS NOT NULL)) e"  \
    "  WHERE patient_id IS NOT NULL UNION ALL"                                                                   \
    "  SELECT json_build_object('what', json_build_object('reference', 'Group/' || group_id)) WHERE group_id IS NOT NULL"\
    "  UNION ALL SELECT json_build_object('what', json_build_object('identifier', json_build_object("            \
    "   'system', 'urn:provider-access:job', 'value', job_id))) WHERE job_id IS NOT NULL) x),"                   \
    " 'extension', json_build_array(json_build_object('url', 'urn:provider-access:request', 'valueString', request_id))"\
    "))::text FROM disclosure WHERE " AE_FILTER
/* clang-format on */
#define AE_INSTANT(c) "to_char(" c " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

int cmd_audit(int argc, char **argv)
{
    const char *client = NULL, *since = NULL, *limit = "1000";
    int export = 0, no_header = 0;
    const char *values[3];
    long v;
    int i;

    for(i = 1; i < argc; i++) {
        if(!strcmp(argv[i], "--export"))
            export = 1;
        else if(!strcmp(argv[i], "--no-header"))
            no_header = 1;
        else if(!strcmp(argv[i], "--client") && i + 1 < argc)
            client = argv[++i];
        else if(!strcmp(argv[i], "--since") && i + 1 < argc)
            since = argv[++i];
        else if(!strcmp(argv[i], "--limit") && i + 1 < argc && !pa_parse_long(argv[i + 1], &v) && v > 0)
            limit = argv[++i];
        else {
            fprintf(stderr, "usage: pa-admin audit [--client ID] [--since TIME] [--limit N] [--no-header] [--export]\n"
                            "  the newest N (default 1000), oldest first; --export writes FHIR AuditEvent NDJSON\n");
            return 2;
        }
    }
    if(since) {
        char ts[PA_TS_LEN];

        if(pa_fhir_date_ts(since, ts)) {
            fprintf(stderr, "pa-admin: --since takes a date or an instant (2026-11-01 or 2026-11-01T08:00:00Z)\n");
            return 2;
        }
    }
    values[0] = client;
    values[1] = since;
    values[2] = limit;
    /* the newest --limit, oldest first */
    if(export)
        return admin_list("SELECT auditevent FROM (SELECT * FROM (" AUDIT_EVENTS_SQL " UNION ALL " DISCLOSURE_EVENTS_SQL
                          ") e ORDER BY at DESC, k DESC, id DESC LIMIT $3::int) n ORDER BY at, k, id",
                          3, values, 1);
    return admin_list(
        "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at, request_id,"
        " coalesce(client_id, '') AS client, coalesce(npi, '') AS npi, method, endpoint,"
        " coalesce(operation, '') AS operation, coalesce(group_id, '') AS group_id,"
        " coalesce(members::text, '') AS members, coalesce(job_id, '') AS job_id, outcome, status,"
        " duration_ms, coalesce(detail, '') AS detail FROM (SELECT * FROM audit_event"
        " WHERE ($1::text IS NULL OR client_id = $1) AND ($2::timestamptz IS NULL OR at >= $2::timestamptz)"
        " ORDER BY id DESC LIMIT $3::int) n ORDER BY id",
        3, values, no_header);
}

int cmd_downloads(int argc, char **argv)
{
    const char *values[3] = { NULL, NULL, "1000" };
    int no_header = 0;
    long v;
    int i;

    for(i = 1; i < argc; i++) {
        if(!strcmp(argv[i], "--client") && i + 1 < argc)
            values[0] = argv[++i];
        else if(!strcmp(argv[i], "--patient") && i + 1 < argc)
            values[1] = argv[++i];
        else if(!strcmp(argv[i], "--limit") && i + 1 < argc && !pa_parse_long(argv[i + 1], &v) && v > 0)
            values[2] = argv[++i];
        else if(!strcmp(argv[i], "--no-header"))
            no_header = 1;
        else {
            fprintf(stderr, "usage: pa-admin downloads [--client ID] [--patient ID] [--limit N] [--no-header]\n"
                            "  what provider-download exports gave each client, member by member\n");
            return 2;
        }
    }
    return admin_list("SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at, client_id,"
                      " group_id, patient_id, job_id, types, filters FROM download_record"
                      " WHERE ($1::text IS NULL OR client_id = $1) AND ($2::text IS NULL OR patient_id = $2)"
                      " ORDER BY at DESC, group_id, patient_id LIMIT $3::int",
                      3, values, no_header);
}
