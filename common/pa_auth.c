#include "pa_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_fhir.h"
#include "pa_util.h"

#define PBKDF2_ITER 60000
#define SALT_BYTES 16
#define HASH_BYTES 32

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for(i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int pa_secret_new(char out[PA_TOKEN_LEN + 1])
{
    return pa_random_hex(out, PA_TOKEN_LEN / 2);
}

static int derive(const char *secret, const char *salt_hex, long iter, char out[2 * HASH_BYTES + 1])
{
    unsigned char dk[HASH_BYTES];

    if(PKCS5_PBKDF2_HMAC(secret, (int)strlen(secret), (const unsigned char *)salt_hex, (int)strlen(salt_hex), (int)iter,
                         EVP_sha256(), HASH_BYTES, dk) != 1)
        return PA_EIO;
    hex(dk, HASH_BYTES, out);
    return PA_OK;
}

int pa_secret_hash(const char *secret, char **out)
{
    char salt[2 * SALT_BYTES + 1], dk[2 * HASH_BYTES + 1];
    char buf[256];

    *out = NULL;
    if(pa_random_hex(salt, SALT_BYTES) || derive(secret, salt, PBKDF2_ITER, dk))
        return PA_EIO;
    snprintf(buf, sizeof(buf), "pbkdf2-sha256$%d$%s$%s", PBKDF2_ITER, salt, dk);
    *out = strdup(buf);
    return *out ? PA_OK : PA_ENOMEM;
}

int pa_secret_verify(const char *secret, const char *stored)
{
    char salt[2 * SALT_BYTES + 1], want[2 * HASH_BYTES + 1], got[2 * HASH_BYTES + 1];
    long iter = 0;

    if(!secret || !stored || sscanf(stored, "pbkdf2-sha256$%ld$%32[0-9a-f]$%64[0-9a-f]", &iter, salt, want) != 3 ||
       iter < 1000 || iter > 10000000 || strlen(want) != 2 * HASH_BYTES)
        return 0;
    if(derive(secret, salt, iter, got))
        return 0;
    return CRYPTO_memcmp(got, want, 2 * HASH_BYTES) == 0;
}

/* Parses one scope; *read and *write say what it asks for. */
static int parse_scope(const char *s, size_t n, char *type, size_t tsize, int *read, int *write, int *v2, pa_err *err)
{
    const char *dot;
    const char *perms;
    size_t tn, pn;

    if(n < 8 || strncmp(s, "system/", 7))
        return pa_err_set(err, PA_EINVAL, "scope '%.*s' is not a system/ scope", (int)(n > 80 ? 80 : n), s);
    dot = memchr(s + 7, '.', n - 7);
    if(!dot)
        return pa_err_set(err, PA_EINVAL, "scope '%.*s' has no permissions", (int)(n > 80 ? 80 : n), s);
    tn = (size_t)(dot - s - 7);
    perms = dot + 1;
    pn = n - (size_t)(perms - s);
    if(tn == 0 || tn >= tsize)
        return pa_err_set(err, PA_EINVAL, "scope '%.*s' names no resource type", (int)(n > 80 ? 80 : n), s);
    memcpy(type, s + 7, tn);
    type[tn] = '\0';
    if(strcmp(type, "*") && strcmp(type, "Group") && strcmp(type, "Consent") && !pa_fhir_type_find(type))
        return pa_err_set(err, PA_EINVAL, "scope '%.*s' names an unknown resource type", (int)(n > 80 ? 80 : n), s);
    *read = *write = *v2 = 0;
    if(pn == 4 && !strncmp(perms, "read", 4)) {
        *read = 1;
    }
    else if(pn == 5 && !strncmp(perms, "write", 5)) {
        *write = 1;
    }
    else if(pn == 1 && perms[0] == '*') {
        *read = *write = 1;
    }
    else {
        /* v2: a subsequence of "cruds" */
        const char *order = "cruds";
        size_t i;

        *v2 = 1;
        for(i = 0; i < pn; i++) {
            const char *at = strchr(order, perms[i]);

            if(!at || !perms[i])
                return pa_err_set(err, PA_EINVAL, "scope '%.*s' has unknown permissions", (int)(n > 80 ? 80 : n), s);
            order = at + 1;
            if(perms[i] == 'r' || perms[i] == 's')
                *read = 1;
            else
                *write = 1;
        }
    }
    return PA_OK;
}

int pa_scope_grant(const char *requested, int admin, char granted[PA_SCOPE_MAX], pa_err *err)
{
    const char *p = requested ? requested : "";
    size_t len = 0;

    granted[0] = '\0';
    while(*p) {
        char type[64], one[128];
        size_t n;
        int read, write, v2, rc, k;

        while(*p == ' ')
            p++;
        n = strcspn(p, " ");
        if(!n)
            break;
        rc = parse_scope(p, n, type, sizeof(type), &read, &write, &v2, err);
        if(rc)
            return rc;
        p += n;
        /* reading always; writing only Group (rosters) and Consent (members' opt-outs),
         * and only for the payer's admin clients */
        if(write && admin && (!strcmp(type, "Group") || !strcmp(type, "Consent")))
            k = snprintf(one, sizeof(one), "system/%s.%s", type,
                         v2 ? (read ? "cruds" : "cud") : (read ? "*" : "write"));
        else if(read)
            k = snprintf(one, sizeof(one), "system/%s.%s", type, v2 ? "rs" : "read");
        else
            continue;
        if(k < 0 || (size_t)k >= sizeof(one) || len + (size_t)k + 2 >= PA_SCOPE_MAX)
            return pa_err_set(err, PA_EINVAL, "too many scopes");
        if(strstr(granted, one))
            continue;
        len += (size_t)snprintf(granted + len, PA_SCOPE_MAX - len, "%s%s", len ? " " : "", one);
    }
    if(!len)
        return pa_err_set(err, PA_EINVAL,
                          requested && *requested
                              ? "none of the requested scopes can be granted (providers may only read)"
                              : "scope is required");
    return PA_OK;
}

static int scope_allows(const char *granted, const char *type, int want_write)
{
    const char *p = granted;

    while(*p) {
        char t[64];
        size_t n = strcspn(p, " ");
        int read, write, v2;

        if(n && !parse_scope(p, n, t, sizeof(t), &read, &write, &v2, NULL) && (want_write ? write : read) &&
           (!strcmp(t, "*") || !strcmp(t, type)))
            return 1;
        p += n;
        while(*p == ' ')
            p++;
    }
    return 0;
}

int pa_scope_allows(const char *granted, const char *type)
{
    return scope_allows(granted, type, 0);
}

int pa_scope_allows_write(const char *granted, const char *type)
{
    return scope_allows(granted, type, 1);
}

/* KEYS: token hash, the client's token set.  ARGV: ttl, field, value, ...
 * The set lets every token of a client be revoked at once; it lives as long
 * as the newest token in it. */
static const char lua_issue[] =
    "redis.call('HSET', KEYS[1], unpack(ARGV, 2)) "
    "redis.call('EXPIRE', KEYS[1], ARGV[1]) "
    "redis.call('SADD', KEYS[2], KEYS[1]) "
    "if redis.call('TTL', KEYS[2]) < tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[2], ARGV[1]) end "
    "return 1";

/* KEYS: the client's token set.  Deletes every token in it, and it. */
static const char lua_revoke[] =
    "local n = 0 "
    "for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do n = n + redis.call('DEL', k) end "
    "redis.call('DEL', KEYS[1]) "
    "return n";

int pa_token_issue(pa_redis *r, const pa_token *t, long ttl, char out[PA_TOKEN_LEN + 1], pa_err *err)
{
    char key[256], set[256], h[65], ttls[24], fin[4], adm[4];
    const char *argv[20];
    redisReply *reply;
    int n = 0;

    if(pa_random_hex(out, PA_TOKEN_LEN / 2))
        return pa_err_set(err, PA_EIO, "no random bytes for a token");
    /* only the hash is stored: a Redis dump holds no usable token */
    pa_sha256_hex(out, h);
    snprintf(ttls, sizeof(ttls), "%ld", ttl);
    snprintf(fin, sizeof(fin), "%d", t->financial);
    snprintf(adm, sizeof(adm), "%d", t->admin);
    argv[n++] = "EVAL";
    argv[n++] = lua_issue;
    argv[n++] = "2";
    argv[n++] = pa_redis_key(r, key, sizeof(key), "token:%s", h);
    argv[n++] = pa_redis_key(r, set, sizeof(set), "tokens:%s", t->client_id);
    argv[n++] = ttls;
    argv[n++] = "client";
    argv[n++] = t->client_id;
    argv[n++] = "npi";
    argv[n++] = t->npi;
    argv[n++] = "org_npi";
    argv[n++] = t->org_npi;
    argv[n++] = "scope";
    argv[n++] = t->scope;
    argv[n++] = "financial";
    argv[n++] = fin;
    argv[n++] = "admin";
    argv[n++] = adm;
    reply = pa_redis_argv(r, err, n, argv, NULL);
    if(!reply)
        return PA_EREDIS;
    freeReplyObject(reply);
    return PA_OK;
}

int pa_token_revoke_client(pa_redis *r, const char *client_id, long *revoked, pa_err *err)
{
    char set[256];
    const char *argv[4];
    redisReply *reply;

    argv[0] = "EVAL";
    argv[1] = lua_revoke;
    argv[2] = "1";
    argv[3] = pa_redis_key(r, set, sizeof(set), "tokens:%s", client_id);
    reply = pa_redis_argv(r, err, 4, argv, NULL);
    if(!reply)
        return PA_EREDIS;
    if(revoked)
        *revoked = reply->type == REDIS_REPLY_INTEGER ? (long)reply->integer : 0;
    freeReplyObject(reply);
    return PA_OK;
}

int pa_token_key(pa_redis *r, const char *bearer, char *key, size_t size)
{
    char h[65];

    if(strlen(bearer) != PA_TOKEN_LEN || strspn(bearer, "0123456789abcdef") != PA_TOKEN_LEN)
        return -1;
    pa_sha256_hex(bearer, h);
    pa_redis_key(r, key, size, "token:%s", h);
    return 0;
}

int pa_token_lookup(pa_redis *r, const char *bearer, pa_token *t, pa_err *err)
{
    char key[256];
    redisReply *reply;

    memset(t, 0, sizeof(*t));
    if(pa_token_key(r, bearer, key, sizeof(key)))
        return pa_err_set(err, PA_ENOTFOUND, "unknown token");
    reply = pa_redis_cmd(r, err, "HGETALL %s", key);
    if(!reply)
        return PA_EREDIS;
    return pa_token_from_reply(reply, t, err);
}

int pa_token_from_reply(redisReply *reply, pa_token *t, pa_err *err)
{
    size_t i;

    memset(t, 0, sizeof(*t));
    for(i = 0; reply->type == REDIS_REPLY_ARRAY && i + 1 < reply->elements; i += 2) {
        const char *f = reply->element[i]->str;
        const char *v = reply->element[i + 1]->str;

        if(!f || !v)
            continue;
        if(!strcmp(f, "client"))
            pa_strlcpy(t->client_id, v, sizeof(t->client_id));
        else if(!strcmp(f, "npi"))
            pa_strlcpy(t->npi, v, sizeof(t->npi));
        else if(!strcmp(f, "org_npi"))
            pa_strlcpy(t->org_npi, v, sizeof(t->org_npi));
        else if(!strcmp(f, "scope"))
            pa_strlcpy(t->scope, v, sizeof(t->scope));
        else if(!strcmp(f, "financial"))
            t->financial = v[0] == '1';
        else if(!strcmp(f, "admin"))
            t->admin = v[0] == '1';
    }
    freeReplyObject(reply);
    if(!t->client_id[0])
        return pa_err_set(err, PA_ENOTFOUND, "unknown or expired token");
    return PA_OK;
}

int pa_jti_once(pa_redis *r, const char *client, const char *jti, long ttl, pa_err *err)
{
    char key[256], h[65];
    redisReply *reply;
    int fresh;

    pa_sha256_hex(jti, h);
    reply = pa_redis_cmd(r, err, "SET %s 1 NX EX %ld", pa_redis_key(r, key, sizeof(key), "jti:%s:%s", client, h),
                         ttl < 1 ? 1 : ttl);
    if(!reply)
        return PA_EREDIS;
    fresh = reply->type == REDIS_REPLY_STATUS;
    freeReplyObject(reply);
    return fresh ? PA_OK : pa_err_set(err, PA_EBUSY, "jti was used before");
}
