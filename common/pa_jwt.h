/*
 * pa_jwt: what the token endpoint needs to verify a SMART Backend Services
 * client assertion: base64url, JWKs as OpenSSL keys, and a JWT's signature
 * checked with the algorithm its key allows (never the token's word alone).
 */
#ifndef PA_JWT_H
#define PA_JWT_H

#include <json-c/json.h>
#include <openssl/evp.h>
#include <stddef.h>

#include "pa_err.h"

#define PA_JWT_MAX 16384

typedef struct pa_jwt {
    json_object *header; /* owned */
    json_object *claims; /* owned */
    unsigned char *sig;  /* owned */
    size_t sig_len;
    char *signing_input; /* "header.payload", owned */
} pa_jwt;

/* Decodes base64url (no padding needed) into *out (caller frees). */
int pa_b64url_decode(const char *in, size_t n, unsigned char **out, size_t *out_len);

/* Splits and decodes a compact JWS; PA_EINVAL with the reason in err. */
int pa_jwt_parse(const char *token, pa_jwt *jwt, pa_err *err);
void pa_jwt_free(pa_jwt *jwt);

/*
 * The algorithm a JWK allows: its "alg" if it has one, else RS384 for RSA and
 * ES384/ES256 by the EC curve.  NULL if the key is not usable for signatures.
 */
const char *pa_jwk_alg(json_object *jwk);

/* An OpenSSL public key from an RSA (n, e) or EC P-256/P-384 (x, y) JWK. */
int pa_jwk_to_pkey(json_object *jwk, EVP_PKEY **out, pa_err *err);

/*
 * Verifies jwt's signature with jwk: the header's alg must be the one the key
 * allows (pa_jwk_alg); none and HMAC are refused whatever the key says.
 */
int pa_jwt_verify(const pa_jwt *jwt, json_object *jwk, pa_err *err);

/*
 * Signs claims as a compact JWS with the PEM private key in key_file: RS384
 * for RSA (2048 bits or more), ES384 or ES256 for EC P-384 or P-256 (raw
 * r || s).  *out is the token (caller frees).  For SMART Backend Services
 * client assertions (pa-admin sync).
 */
int pa_jwt_sign(const char *key_file, const char *kid, json_object *claims, char **out, pa_err *err);

#endif
