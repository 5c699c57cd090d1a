/*
 * POST /auth/token: SMART Backend Services client credentials.  A client
 * authenticates with a signed JWT assertion (private_key_jwt) checked against
 * its registered JWKS, or, where enabled for it, with a client secret (basic
 * or post).  It must be enabled and, unless it is a payer admin client, bound
 * to an NPI that is in network today.  Errors follow RFC 6749 section 5.2;
 * the real reason of an invalid_client goes to the audit event only.
 */
#include "api.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_jwt.h"
#include "pa_log.h"
#include "pa_util.h"

#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define CLOCK_SKEW 60
#define MAX_ASSERTION_LIFE 300

struct client {
    char id[65];
    int enabled, financial, admin;
    char npi[11], org_npi[11];
    json_object *jwks; /* owned */
    char jwks_url[512];
    char secret_hash[256];
};

/* An RFC 6749 error; detail (never sent) is kept for the audit event. */
static void oauth_error(pa_ctx *ctx, pa_resp *resp, int status, const char *error, const char *description,
                        const char *detail)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "error", json_object_new_string(error));
    json_object_object_add(o, "error_description", json_object_new_string(description));
    pa_resp_text(resp, status, PA_MT_JSON,
                 json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    pa_resp_header(resp, "Cache-Control", "no-store");
    if(status == 401)
        pa_resp_header(resp, "WWW-Authenticate", "Basic realm=\"provider-access\"");
    pa_strlcpy(ctx->audit.detail, detail ? detail : description, sizeof(ctx->audit.detail));
}

/* Answers 401 invalid_client, detail kept for the audit; -1, for the
 * checks that return it (the client is refused, and told). */
static int client_failed(pa_ctx *ctx, pa_resp *resp, const char *detail)
{
    oauth_error(ctx, resp, 401, "invalid_client", "client authentication failed", detail);
    return -1;
}

static const char *form_param(const pa_param *p, size_t n, const char *name, int *dup)
{
    const char *v = NULL;
    size_t i;

    for(i = 0; i < n; i++) {
        if(strcmp(p[i].name, name))
            continue;
        if(v)
            *dup = 1;
        v = p[i].value;
    }
    return v;
}

static int load_client(pa_ctx *ctx, const char *id, struct client *c, pa_err *err)
{
    const char *values[1] = { id };
    PGconn *db;
    PGresult *res;
    int rc;

    memset(c, 0, sizeof(*c));
    rc = pa_ctx_db(ctx, &db, err);
    if(rc)
        return rc;
    res = pa_db_query(db, err,
                      "SELECT id, enabled, financial, admin, coalesce(npi, ''), coalesce(org_npi, ''),"
                      " coalesce(jwks::text, ''), coalesce(jwks_url, ''), coalesce(secret_hash, '') "
                      "FROM client WHERE id = $1",
                      1, values);
    if(!res)
        return PA_EDB;
    if(PQntuples(res) != 1) {
        PQclear(res);
        return pa_err_set(err, PA_ENOTFOUND, "unknown client");
    }
    pa_strlcpy(c->id, PQgetvalue(res, 0, 0), sizeof(c->id));
    c->enabled = !strcmp(PQgetvalue(res, 0, 1), "t");
    c->financial = !strcmp(PQgetvalue(res, 0, 2), "t");
    c->admin = !strcmp(PQgetvalue(res, 0, 3), "t");
    pa_strlcpy(c->npi, PQgetvalue(res, 0, 4), sizeof(c->npi));
    pa_strlcpy(c->org_npi, PQgetvalue(res, 0, 5), sizeof(c->org_npi));
    c->jwks = PQgetvalue(res, 0, 6)[0] ? json_tokener_parse(PQgetvalue(res, 0, 6)) : NULL;
    pa_strlcpy(c->jwks_url, PQgetvalue(res, 0, 7), sizeof(c->jwks_url));
    pa_strlcpy(c->secret_hash, PQgetvalue(res, 0, 8), sizeof(c->secret_hash));
    PQclear(res);
    return PA_OK;
}

/* In network today: in the directory, flagged, and within its period. */
static int npi_in_network(pa_ctx *ctx, const char *npi, pa_err *err)
{
    const char *values[1] = { npi };
    PGconn *db;
    PGresult *res;
    int yes;

    if(pa_ctx_db(ctx, &db, err))
        return -1;
    res = pa_db_query(db, err,
                      "SELECT 1 FROM provider WHERE npi = $1 AND in_network"
                      " AND (network_start IS NULL OR network_start <= current_date)"
                      " AND (network_end IS NULL OR network_end >= current_date)",
                      1, values);
    if(!res)
        return -1;
    yes = PQntuples(res) == 1;
    PQclear(res);
    return yes;
}

static int64_t claim_int(json_object *claims, const char *k, int *present)
{
    json_object *v;

    *present = json_object_object_get_ex(claims, k, &v) &&
               (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double));
    return *present ? json_object_get_int64(v) : 0;
}

/* aud is our token URL, as a string or within an array. */
static int aud_ok(json_object *claims, const char *url)
{
    json_object *aud;
    size_t i;

    if(!json_object_object_get_ex(claims, "aud", &aud))
        return 0;
    if(json_object_is_type(aud, json_type_string))
        return !strcmp(json_object_get_string(aud), url);
    for(i = 0; json_object_is_type(aud, json_type_array) && i < json_object_array_length(aud); i++)
        if(!strcmp(json_object_get_string(json_object_array_get_idx(aud, i)), url))
            return 1;
    return 0;
}

/* The assertion's time and identity claims against now (its aud, exp, nbf,
 * iat, jti; a jku only if it is the client's registered one): 0 with *exp
 * set, or -1 once answered. */
static int check_claims(pa_ctx *ctx, pa_resp *resp, const pa_jwt *jwt, const struct client *c, int64_t now,
                        int64_t *exp)
{
    const char *jti = pa_json_str(jwt->claims, "jti"), *jku = pa_json_str(jwt->header, "jku");
    char url[1024];
    int64_t nbf, iat;
    int has_exp, has_nbf, has_iat;

    snprintf(url, sizeof(url), "%s/auth/token", ctx->cfg->base_url);
    *exp = claim_int(jwt->claims, "exp", &has_exp);
    nbf = claim_int(jwt->claims, "nbf", &has_nbf);
    iat = claim_int(jwt->claims, "iat", &has_iat);
    if(!aud_ok(jwt->claims, url))
        oauth_error(ctx, resp, 401, "invalid_client", "the assertion's aud must be the token URL", NULL);
    else if(!has_exp || *exp <= now - CLOCK_SKEW)
        oauth_error(ctx, resp, 401, "invalid_client", "the assertion has no exp or has expired", NULL);
    else if(*exp > now + MAX_ASSERTION_LIFE + CLOCK_SKEW)
        oauth_error(ctx, resp, 401, "invalid_client", "the assertion's exp is more than 5 minutes ahead", NULL);
    else if((has_nbf && nbf > now + CLOCK_SKEW) || (has_iat && iat > now + CLOCK_SKEW))
        oauth_error(ctx, resp, 401, "invalid_client", "the assertion is not valid yet (nbf or iat)", NULL);
    else if(!jti || !*jti)
        oauth_error(ctx, resp, 401, "invalid_client", "the assertion has no jti", NULL);
    else if(jku && strcmp(jku, c->jwks_url))
        /* keys are never fetched from where a token says */
        oauth_error(ctx, resp, 401, "invalid_client", "jku is not the client's registered JWKS URL", NULL);
    else
        return 0;
    return -1;
}

/* The one registered key of the client's with the assertion's kid whose type
 * fits its alg (the key decides how it is verified, never the token): the
 * key, or NULL once answered. */
static json_object *assertion_key(pa_ctx *ctx, pa_resp *resp, const pa_jwt *jwt, json_object *keys)
{
    const char *kid = pa_json_str(jwt->header, "kid"), *alg = pa_json_str(jwt->header, "alg");
    json_object *key = NULL;
    int matches = 0;
    size_t i;

    if(!kid) {
        oauth_error(ctx, resp, 401, "invalid_client", "the assertion header has no kid", NULL);
        return NULL;
    }
    for(i = 0; i < json_object_array_length(keys); i++) {
        json_object *k = json_object_array_get_idx(keys, i);
        const char *kk = pa_json_str(k, "kid"), *kty = pa_json_str(k, "kty");

        if(!kk || strcmp(kk, kid) || !kty || !alg)
            continue;
        if((alg[0] == 'R' && !strcmp(kty, "RSA")) || (alg[0] == 'E' && !strcmp(kty, "EC")) ||
           (alg[0] != 'R' && alg[0] != 'E')) {
            key = k;
            matches++;
        }
    }
    if(matches == 1)
        return key;
    oauth_error(ctx, resp, 401, "invalid_client",
                matches ? "more than one registered key has this kid" : "no registered key has this kid and type",
                NULL);
    return NULL;
}

/* Checks a client assertion: 0 with c loaded, or -1 when the request is
 * answered (refused, or an error). */
static int check_assertion(pa_ctx *ctx, pa_resp *resp, const char *assertion, struct client *c)
{
    pa_jwt jwt;
    pa_err err;
    pa_redis *redis;
    const char *iss, *sub;
    json_object *keys = NULL, *key;
    int64_t now = pa_now_ms() / 1000, exp = 0;
    int rc = -1;

    pa_err_clear(&err);
    if(pa_jwt_parse(assertion, &jwt, &err)) {
        oauth_error(ctx, resp, 400, "invalid_request", err.msg, NULL);
        return -1;
    }
    iss = pa_json_str(jwt.claims, "iss");
    sub = pa_json_str(jwt.claims, "sub");
    if(!iss || !sub || strcmp(iss, sub)) {
        client_failed(ctx, resp, "the assertion's iss and sub must both be the client_id");
        goto out;
    }
    rc = load_client(ctx, iss, c, &err);
    if(rc) {
        if(rc == PA_ENOTFOUND)
            client_failed(ctx, resp, "unknown client");
        else
            pa_resp_error(resp, &err);
        rc = -1;
        goto out;
    }
    rc = -1;
    pa_strlcpy(ctx->token.client_id, c->id, sizeof(ctx->token.client_id));
    if(!c->jwks || !json_object_object_get_ex(c->jwks, "keys", &keys) || !json_object_is_type(keys, json_type_array)) {
        client_failed(ctx, resp, "the client has no registered JWKS");
        goto out;
    }
    if(check_claims(ctx, resp, &jwt, c, now, &exp))
        goto out;
    key = assertion_key(ctx, resp, &jwt, keys);
    if(!key)
        goto out;
    if(pa_jwt_verify(&jwt, key, &err)) {
        oauth_error(ctx, resp, 401, "invalid_client", err.msg, NULL);
        goto out;
    }
    if(pa_ctx_redis(ctx, &redis, &err)) {
        pa_resp_error(resp, &err);
        goto out;
    }
    /* a jti is used once while its assertion could be: never replayed */
    rc = pa_jti_once(redis, c->id, pa_json_str(jwt.claims, "jti"), (long)(exp - now) + CLOCK_SKEW, &err);
    if(rc == PA_EBUSY)
        oauth_error(ctx, resp, 401, "invalid_client", "the assertion's jti was used before", "replayed jti");
    else if(rc)
        pa_resp_error(resp, &err);
    rc = rc ? -1 : 0;
out:
    pa_jwt_free(&jwt);
    return rc;
}

/* Checks client_secret_basic (Authorization: Basic) or client_secret_post:
 * 0 with c loaded, or -1 when the request is answered (refused, or an error). */
static int check_secret(pa_ctx *ctx, pa_resp *resp, const pa_req *req, const char *id, const char *secret,
                        struct client *c)
{
    char decoded[512];
    pa_err err;
    int rc;

    if(req->authorization && !strncasecmp(req->authorization, "Basic ", 6)) {
        unsigned char *raw = NULL;
        size_t len = 0, i;
        const char *b = req->authorization + 6;
        char url[512];
        char *colon;

        /* standard base64 into base64url, then decode */
        if(strlen(b) >= sizeof(url))
            return client_failed(ctx, resp, "Authorization header too long");
        for(i = 0; b[i]; i++)
            url[i] = b[i] == '+' ? '-' : b[i] == '/' ? '_' : b[i];
        url[i] = '\0';
        if(pa_b64url_decode(url, i, &raw, &len) || len >= sizeof(decoded)) {
            free(raw);
            return client_failed(ctx, resp, "malformed Basic credentials");
        }
        memcpy(decoded, raw, len);
        decoded[len] = '\0';
        free(raw);
        /* (a NUL would cut the id short; anything not UTF-8 is no client id) */
        if(!pa_utf8_valid(decoded, len))
            return client_failed(ctx, resp, "malformed Basic credentials");
        colon = strchr(decoded, ':');
        if(!colon)
            return client_failed(ctx, resp, "malformed Basic credentials");
        *colon = '\0';
        if(pa_url_decode(decoded, 1) || pa_url_decode(colon + 1, 1) || !pa_utf8_valid(decoded, strlen(decoded)) ||
           !pa_utf8_valid(colon + 1, strlen(colon + 1)))
            return client_failed(ctx, resp, "malformed Basic credentials");
        id = decoded;
        secret = colon + 1;
    }
    if(!id || !secret)
        return client_failed(ctx, resp, "no client authentication");
    pa_err_clear(&err);
    rc = load_client(ctx, id, c, &err);
    if(rc == PA_ENOTFOUND)
        return client_failed(ctx, resp, "unknown client");
    if(rc) {
        pa_resp_error(resp, &err);
        return -1;
    }
    pa_strlcpy(ctx->token.client_id, c->id, sizeof(ctx->token.client_id));
    if(!c->secret_hash[0])
        return client_failed(ctx, resp, "client secrets are not enabled for this client");
    if(!pa_secret_verify(secret, c->secret_hash))
        return client_failed(ctx, resp, "wrong client secret");
    return 0;
}

void pa_h_token(pa_ctx *ctx, pa_req *req, pa_resp *resp, char **args)
{
    pa_param *form = NULL;
    size_t nform = 0;
    struct client c;
    char granted[PA_SCOPE_MAX], token[PA_TOKEN_LEN + 1];
    const char *grant, *scope, *atype, *assertion;
    pa_redis *redis;
    pa_err err;
    int dup = 0, refused;

    (void)args;
    memset(&c, 0, sizeof(c));
    pa_err_clear(&err);
    ctx->audit.operation = "token";
    if(!pa_media_type_is(req->content_type, "application/x-www-form-urlencoded")) {
        oauth_error(ctx, resp, 400, "invalid_request", "the token request must be application/x-www-form-urlencoded",
                    NULL);
        return;
    }
    if(pa_query_parse(req->body, &form, &nform, &err)) {
        oauth_error(ctx, resp, 400, "invalid_request", "the form is malformed", NULL);
        return;
    }
    grant = form_param(form, nform, "grant_type", &dup);
    scope = form_param(form, nform, "scope", &dup);
    atype = form_param(form, nform, "client_assertion_type", &dup);
    assertion = form_param(form, nform, "client_assertion", &dup);
    if(dup) {
        oauth_error(ctx, resp, 400, "invalid_request", "a parameter is given twice", NULL);
        goto out;
    }
    if(!grant) {
        oauth_error(ctx, resp, 400, "invalid_request", "grant_type is required", NULL);
        goto out;
    }
    if(strcmp(grant, "client_credentials")) {
        oauth_error(ctx, resp, 400, "unsupported_grant_type", "only client_credentials is supported", NULL);
        goto out;
    }
    if(atype || assertion) {
        if(!atype || strcmp(atype, ASSERTION_TYPE)) {
            oauth_error(ctx, resp, 401, "invalid_client", "client_assertion_type must be " ASSERTION_TYPE, NULL);
            goto out;
        }
        if(!assertion) {
            oauth_error(ctx, resp, 400, "invalid_request", "client_assertion is required", NULL);
            goto out;
        }
        refused = check_assertion(ctx, resp, assertion, &c);
    }
    else {
        refused = check_secret(ctx, resp, req, form_param(form, nform, "client_id", &dup),
                               form_param(form, nform, "client_secret", &dup), &c);
    }
    if(refused)
        goto out;
    if(!c.enabled) {
        client_failed(ctx, resp, "the client is disabled");
        goto out;
    }
    if(!c.admin) {
        int in_npi = c.npi[0] ? npi_in_network(ctx, c.npi, &err) : 0;
        int in_org = c.org_npi[0] ? npi_in_network(ctx, c.org_npi, &err) : 1;

        if(in_npi < 0 || in_org < 0) {
            pa_resp_error(resp, &err);
            goto out;
        }
        if(!in_npi || !in_org) {
            client_failed(ctx, resp, "the client's NPI is not in network today");
            goto out;
        }
    }
    if(pa_scope_grant(scope, c.admin, granted, &err)) {
        oauth_error(ctx, resp, 400, "invalid_scope", err.msg, NULL);
        goto out;
    }
    pa_strlcpy(ctx->token.npi, c.npi, sizeof(ctx->token.npi));
    pa_strlcpy(ctx->token.org_npi, c.org_npi, sizeof(ctx->token.org_npi));
    pa_strlcpy(ctx->token.scope, granted, sizeof(ctx->token.scope));
    ctx->token.financial = c.financial;
    ctx->token.admin = c.admin;
    if(pa_ctx_redis(ctx, &redis, &err) || pa_token_issue(redis, &ctx->token, PA_TOKEN_TTL, token, &err)) {
        pa_resp_error(resp, &err);
        goto out;
    }
    {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "access_token", json_object_new_string(token));
        json_object_object_add(o, "token_type", json_object_new_string("bearer"));
        json_object_object_add(o, "expires_in", json_object_new_int(PA_TOKEN_TTL));
        json_object_object_add(o, "scope", json_object_new_string(granted));
        pa_resp_text(resp, 200, PA_MT_JSON,
                     json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
        pa_resp_header(resp, "Cache-Control", "no-store");
        pa_resp_header(resp, "Pragma", "no-cache");
    }
out:
    json_object_put(c.jwks);
    pa_params_free(form, nform);
}
