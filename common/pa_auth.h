/*
 * pa_auth: who may ask.  Client secrets as salted PBKDF2 hashes compared in
 * constant time; SMART system scopes (v1 .read and v2 .rs forms) granted as
 * the intersection of what was asked and what the client may have; opaque
 * access tokens kept hashed in Redis; the jti replay guard.
 */
#ifndef PA_AUTH_H
#define PA_AUTH_H

#include "pa_err.h"
#include "pa_redis.h"

#define PA_TOKEN_LEN 64  /* 256 random bits, hex */
#define PA_TOKEN_TTL 300 /* seconds */
#define PA_SCOPE_MAX 2048

/* A new random secret (hex, 64 chars) into out. */
int pa_secret_new(char out[PA_TOKEN_LEN + 1]);

/* "pbkdf2-sha256$ITER$SALT$HASH" for secret; caller frees *out. */
int pa_secret_hash(const char *secret, char **out);

/* 1 if secret matches the stored hash, compared in constant time. */
int pa_secret_verify(const char *secret, const char *stored);

/*
 * Grants scopes from the space-separated request: each must be system/TYPE.PERMS
 * with TYPE * or a served type (or Group) and PERMS v1 (read, write, *) or v2
 * (letters of cruds in order).  Only reading is granted (.read / .rs), and
 * for admin clients also writing Group (rosters) and Consent (opt-outs).  PA_EINVAL (invalid_scope) with the
 * reason when a scope is malformed or nothing is left to grant.
 */
int pa_scope_grant(const char *requested, int admin, char granted[PA_SCOPE_MAX], pa_err *err);

/* True if the granted scopes let the client read resources of type. */
int pa_scope_allows(const char *granted, const char *type);

/* True if the granted scopes let the client change resources of type. */
int pa_scope_allows_write(const char *granted, const char *type);

typedef struct pa_token {
    char client_id[65];
    char npi[11];
    char org_npi[11];
    char scope[PA_SCOPE_MAX];
    int financial;
    int admin;
} pa_token;

/* Stores t under a new token (returned in out) that expires after ttl seconds. */
int pa_token_issue(pa_redis *r, const pa_token *t, long ttl, char out[PA_TOKEN_LEN + 1], pa_err *err);

/* Deletes every access token of a client at once (it was disabled, left the
 * network or had its secret rotated): the next request with one is 401.
 * *revoked (if given) is how many were live. */
int pa_token_revoke_client(pa_redis *r, const char *client_id, long *revoked, pa_err *err);

/* Finds the token a Bearer value names; PA_ENOTFOUND if unknown or expired. */
int pa_token_lookup(pa_redis *r, const char *bearer, pa_token *t, pa_err *err);

/* The Redis key of a Bearer value (HGETALL it); -1 if it cannot be a token. */
int pa_token_key(pa_redis *r, const char *bearer, char *key, size_t size);

/* The token of an HGETALL reply of its key, which it frees; PA_ENOTFOUND if
 * unknown or expired. */
int pa_token_from_reply(redisReply *reply, pa_token *t, pa_err *err);

/* Records a client's assertion jti until ttl; PA_EBUSY if it was seen before. */
int pa_jti_once(pa_redis *r, const char *client, const char *jti, long ttl, pa_err *err);

#endif
