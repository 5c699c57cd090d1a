#include "pa_jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_fhir.h"
#include "pa_buf.h"
#include "pa_json.h"

static int b64val(int c)
{
    if(c >= 'A' && c <= 'Z')
        return c - 'A';
    if(c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if(c >= '0' && c <= '9')
        return c - '0' + 52;
    if(c == '-')
        return 62;
    if(c == '_')
        return 63;
    return -1;
}

int pa_b64url_decode(const char *in, size_t n, unsigned char **out, size_t *out_len)
{
    unsigned char *buf;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    size_t i;

    *out = NULL;
    *out_len = 0;
    while(n && in[n - 1] == '=')
        n--;
    if(n % 4 == 1)
        return PA_EINVAL;
    buf = malloc(n * 3 / 4 + 1);
    if(!buf)
        return PA_ENOMEM;
    for(i = 0; i < n; i++) {
        int v = b64val((unsigned char)in[i]);

        if(v < 0) {
            free(buf);
            return PA_EINVAL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if(bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits);
        }
    }
    *out = buf;
    *out_len = o;
    return PA_OK;
}

/* Decodes one base64url segment holding a JSON object. */
static json_object *segment_json(const char *s, size_t n)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    json_object *o = NULL;

    if(pa_b64url_decode(s, n, &raw, &len))
        return NULL;
    if(pa_json_parse((const char *)raw, len, &o, NULL) == PA_OK && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
    free(raw);
    return o;
}

void pa_jwt_free(pa_jwt *jwt)
{
    if(!jwt)
        return;
    json_object_put(jwt->header);
    json_object_put(jwt->claims);
    free(jwt->sig);
    free(jwt->signing_input);
    memset(jwt, 0, sizeof(*jwt));
}

int pa_jwt_parse(const char *token, pa_jwt *jwt, pa_err *err)
{
    const char *d1, *d2;
    size_t n = strlen(token);

    memset(jwt, 0, sizeof(*jwt));
    if(n > PA_JWT_MAX)
        return pa_err_set(err, PA_EINVAL, "the client assertion is longer than %d bytes", PA_JWT_MAX);
    d1 = strchr(token, '.');
    d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if(!d1 || !d2 || strchr(d2 + 1, '.'))
        return pa_err_set(err, PA_EINVAL, "the client assertion is not a signed JWT (three parts)");
    jwt->header = segment_json(token, (size_t)(d1 - token));
    jwt->claims = segment_json(d1 + 1, (size_t)(d2 - d1 - 1));
    jwt->signing_input = strndup(token, (size_t)(d2 - token));
    if(!jwt->header || !jwt->claims || !jwt->signing_input ||
       pa_b64url_decode(d2 + 1, strlen(d2 + 1), &jwt->sig, &jwt->sig_len)) {
        pa_jwt_free(jwt);
        return pa_err_set(err, PA_EINVAL, "the client assertion's parts are not base64url JSON");
    }
    return PA_OK;
}

const char *pa_jwk_alg(json_object *jwk)
{
    const char *kty = pa_json_str(jwk, "kty");
    const char *alg = pa_json_str(jwk, "alg");
    const char *crv = pa_json_str(jwk, "crv");
    const char *use = pa_json_str(jwk, "use");

    if(!kty || (use && strcmp(use, "sig")))
        return NULL;
    if(!strcmp(kty, "RSA")) {
        if(!alg)
            return "RS384";
        return !strcmp(alg, "RS384") || !strcmp(alg, "RS256") ? alg : NULL;
    }
    if(!strcmp(kty, "EC") && crv) {
        const char *want = !strcmp(crv, "P-384") ? "ES384" : !strcmp(crv, "P-256") ? "ES256" : NULL;

        return want && (!alg || !strcmp(alg, want)) ? want : NULL;
    }
    return NULL;
}

/* A base64url member of the JWK as a BIGNUM. */
static BIGNUM *jwk_bn(json_object *jwk, const char *k)
{
    const char *s = pa_json_str(jwk, k);
    unsigned char *raw = NULL;
    size_t len = 0;
    BIGNUM *bn;

    if(!s || pa_b64url_decode(s, strlen(s), &raw, &len) || len == 0) {
        free(raw);
        return NULL;
    }
    bn = BN_bin2bn(raw, (int)len, NULL);
    free(raw);
    return bn;
}

/* The raw bytes of a base64url member, expected to be exactly want long. */
static int jwk_fixed(json_object *jwk, const char *k, unsigned char *out, size_t want)
{
    const char *s = pa_json_str(jwk, k);
    unsigned char *raw = NULL;
    size_t len = 0;

    if(!s || pa_b64url_decode(s, strlen(s), &raw, &len) || len != want) {
        free(raw);
        return -1;
    }
    memcpy(out, raw, want);
    free(raw);
    return 0;
}

int pa_jwk_to_pkey(json_object *jwk, EVP_PKEY **out, pa_err *err)
{
    const char *kty = pa_json_str(jwk, "kty");
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    BIGNUM *n = NULL, *e = NULL;
    unsigned char pub[1 + 2 * 66];
    int rc = PA_EINVAL;

    *out = NULL;
    if(!bld || !kty)
        goto out;
    if(!strcmp(kty, "RSA")) {
        n = jwk_bn(jwk, "n");
        e = jwk_bn(jwk, "e");
        if(!n || !e || BN_num_bits(n) < 2048 || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
           !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
            goto out;
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    }
    else if(!strcmp(kty, "EC") && pa_json_str(jwk, "crv")) {
        const char *crv = pa_json_str(jwk, "crv");
        size_t cl = !strcmp(crv, "P-384") ? 48 : !strcmp(crv, "P-256") ? 32 : 0;

        /* the public point is 04 || x || y */
        pub[0] = 4;
        if(!cl || jwk_fixed(jwk, "x", pub + 1, cl) || jwk_fixed(jwk, "y", pub + 1 + cl, cl) ||
           !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, crv, 0) ||
           !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * cl))
            goto out;
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    }
    else {
        goto out;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    if(ctx && params && EVP_PKEY_fromdata_init(ctx) == 1 &&
       EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1)
        rc = PA_OK;
out:
    if(rc)
        pa_err_set(err, PA_EINVAL, "the key is not a usable RSA (2048 bits or more) or EC P-256/P-384 public key");
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(n);
    BN_free(e);
    return rc;
}

/* ES* signatures are r || s; OpenSSL verifies DER. */
static int ecdsa_der(const unsigned char *raw, size_t len, unsigned char **der, size_t *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)(len / 2), NULL);
    BIGNUM *s = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
    int n;

    *der = NULL;
    if(!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s)) {
        ECDSA_SIG_free(sig);
        BN_free(r);
        BN_free(s);
        return -1;
    }
    n = i2d_ECDSA_SIG(sig, der);
    ECDSA_SIG_free(sig);
    if(n <= 0)
        return -1;
    *der_len = (size_t)n;
    return 0;
}

int pa_jwt_verify(const pa_jwt *jwt, json_object *jwk, pa_err *err)
{
    const char *alg = pa_json_str(jwt->header, "alg");
    const char *allowed = pa_jwk_alg(jwk);
    const EVP_MD *md;
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *mctx = NULL;
    unsigned char *der = NULL;
    const unsigned char *sig = jwt->sig;
    size_t sig_len = jwt->sig_len;
    int rc = PA_EINVAL;

    if(!alg || !strcmp(alg, "none") || !strncmp(alg, "HS", 2))
        return pa_err_set(err, PA_EINVAL,
                          "alg '%s' is refused: only RS384, ES384 (and RS256/ES256 "
                          "where the key says so) are accepted",
                          alg ? alg : "(none)");
    if(!allowed || strcmp(alg, allowed))
        return pa_err_set(err, PA_EINVAL, "alg %s does not match the registered key (%s)", alg,
                          allowed ? allowed : "unusable key");
    md = !strcmp(alg + 2, "384") ? EVP_sha384() : EVP_sha256();
    if(alg[0] == 'E') {
        size_t want = !strcmp(alg, "ES384") ? 96 : 64;

        if(sig_len != want || ecdsa_der(sig, sig_len, &der, &sig_len))
            return pa_err_set(err, PA_EINVAL, "the signature is not a raw %s signature", alg);
        sig = der;
    }
    rc = pa_jwk_to_pkey(jwk, &pkey, err);
    if(rc)
        goto out;
    mctx = EVP_MD_CTX_new();
    if(!mctx || EVP_DigestVerifyInit(mctx, NULL, md, NULL, pkey) != 1 ||
       EVP_DigestVerify(mctx, sig, sig_len, (const unsigned char *)jwt->signing_input, strlen(jwt->signing_input)) != 1)
        rc = pa_err_set(err, PA_EINVAL, "the signature does not verify with the registered key");
out:
    EVP_MD_CTX_free(mctx);
    EVP_PKEY_free(pkey);
    OPENSSL_free(der);
    return rc;
}

static int b64url_add(pa_buf *b, const unsigned char *p, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i;
    int rc = PA_OK;

    for(i = 0; !rc && i < n; i += 3) {
        unsigned long v =
            (unsigned long)p[i] << 16 | (i + 1 < n ? (unsigned long)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        char out[4] = { abc[(v >> 18) & 63], abc[(v >> 12) & 63], abc[(v >> 6) & 63], abc[v & 63] };

        rc = pa_buf_add(b, out, i + 2 < n ? 4 : i + 1 < n ? 3 : 2);
    }
    return rc;
}

/* The raw r || s of a DER ECDSA signature, each size bytes. */
static int ecdsa_raw(const unsigned char *der, size_t der_len, size_t size, unsigned char *out)
{
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &der, (long)der_len);
    const BIGNUM *r, *s;
    int ok;

    if(!sig)
        return -1;
    ECDSA_SIG_get0(sig, &r, &s);
    ok = BN_bn2binpad(r, out, (int)size) == (int)size && BN_bn2binpad(s, out + size, (int)size) == (int)size;
    ECDSA_SIG_free(sig);
    return ok ? 0 : -1;
}

int pa_jwt_sign(const char *key_file, const char *kid, json_object *claims, char **out, pa_err *err)
{
    FILE *f = fopen(key_file, "r");
    EVP_PKEY *pkey = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    EVP_MD_CTX *mctx = NULL;
    json_object *header = json_object_new_object();
    const char *alg = NULL;
    unsigned char sig[1024], raw[132];
    size_t sig_len = sizeof(sig);
    pa_buf b;
    int rc = PA_EINVAL, bits = pkey ? EVP_PKEY_get_bits(pkey) : 0;

    *out = NULL;
    pa_buf_init(&b, PA_JWT_MAX);
    if(f)
        fclose(f);
    if(!pkey) {
        rc = pa_err_set(err, PA_EINVAL, "%s is not a readable PEM private key", key_file);
        goto out;
    }
    if(EVP_PKEY_is_a(pkey, "RSA") && bits >= 2048)
        alg = "RS384";
    else if(EVP_PKEY_is_a(pkey, "EC") && (bits == 384 || bits == 256))
        alg = bits == 384 ? "ES384" : "ES256";
    if(!alg || !header) {
        rc = pa_err_set(err, PA_EINVAL, "%s: only RSA (2048 bits or more) and EC P-384/P-256 keys sign", key_file);
        goto out;
    }
    json_object_object_add(header, "alg", json_object_new_string(alg));
    json_object_object_add(header, "typ", json_object_new_string("JWT"));
    if(kid)
        json_object_object_add(header, "kid", json_object_new_string(kid));
    {
        const char *h = json_object_to_json_string_ext(header, JSON_C_TO_STRING_PLAIN);
        const char *c = json_object_to_json_string_ext(claims, JSON_C_TO_STRING_PLAIN);

        rc = b64url_add(&b, (const unsigned char *)h, strlen(h)) || pa_buf_add(&b, ".", 1) ||
                     b64url_add(&b, (const unsigned char *)c, strlen(c))
                 ? PA_ETOOBIG
                 : PA_OK;
    }
    mctx = EVP_MD_CTX_new();
    if(!rc && (!mctx || EVP_DigestSignInit(mctx, NULL, alg[2] == '3' ? EVP_sha384() : EVP_sha256(), NULL, pkey) != 1 ||
               EVP_DigestSign(mctx, sig, &sig_len, (const unsigned char *)b.data, b.len) != 1))
        rc = pa_err_set(err, PA_EINVAL, "signing with %s failed", key_file);
    if(!rc && alg[0] == 'E') {
        size_t size = bits == 384 ? 48 : 32;

        if(ecdsa_raw(sig, sig_len, size, raw))
            rc = pa_err_set(err, PA_EINVAL, "signing with %s failed", key_file);
        else {
            memcpy(sig, raw, 2 * size);
            sig_len = 2 * size;
        }
    }
    if(!rc && (pa_buf_add(&b, ".", 1) || b64url_add(&b, sig, sig_len)))
        rc = pa_err_set(err, PA_ETOOBIG, "the assertion is too large");
    if(!rc)
        *out = pa_buf_steal(&b);
out:
    pa_buf_free(&b);
    json_object_put(header);
    EVP_MD_CTX_free(mctx);
    EVP_PKEY_free(pkey);
    return rc;
}
