/*
 * Unit tests of common/pa_jwt and pa_auth: keys made and tokens signed here
 * with OpenSSL, so every refusal is checked against a real signature.
 */
#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "pa_auth.h"
#include "pa_jwt.h"

static EVP_PKEY *rsa_key, *ec_key;

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i, o = 0;

    for(i = 0; i + 2 < n; i += 3) {
        out[o++] = t[in[i] >> 2];
        out[o++] = t[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        out[o++] = t[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        out[o++] = t[in[i + 2] & 63];
    }
    if(n - i == 1) {
        out[o++] = t[in[i] >> 2];
        out[o++] = t[(in[i] & 3) << 4];
    }
    else if(n - i == 2) {
        out[o++] = t[in[i] >> 2];
        out[o++] = t[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        out[o++] = t[(in[i + 1] & 15) << 2];
    }
    out[o] = '\0';
}

static char *bn_b64(EVP_PKEY *k, const char *name)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    char *out = malloc(2048);
    int n;

    EVP_PKEY_get_bn_param(k, name, &bn);
    n = BN_bn2bin(bn, buf);
    b64url(buf, (size_t)n, out);
    BN_free(bn);
    return out;
}

static json_object *rsa_jwk(const char *alg)
{
    char *n = bn_b64(rsa_key, OSSL_PKEY_PARAM_RSA_N), *e = bn_b64(rsa_key, OSSL_PKEY_PARAM_RSA_E);
    json_object *j = json_object_new_object();

    json_object_object_add(j, "kty", json_object_new_string("RSA"));
    json_object_object_add(j, "kid", json_object_new_string("r1"));
    json_object_object_add(j, "n", json_object_new_string(n));
    json_object_object_add(j, "e", json_object_new_string(e));
    if(alg)
        json_object_object_add(j, "alg", json_object_new_string(alg));
    free(n);
    free(e);
    return j;
}

static json_object *ec_jwk(void)
{
    unsigned char pub[97];
    size_t len = 0;
    char x[80], y[80];
    json_object *j = json_object_new_object();

    EVP_PKEY_get_octet_string_param(ec_key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub), &len);
    b64url(pub + 1, 48, x);
    b64url(pub + 49, 48, y);
    json_object_object_add(j, "kty", json_object_new_string("EC"));
    json_object_object_add(j, "kid", json_object_new_string("e1"));
    json_object_object_add(j, "crv", json_object_new_string("P-384"));
    json_object_object_add(j, "x", json_object_new_string(x));
    json_object_object_add(j, "y", json_object_new_string(y));
    return j;
}

/* header.payload signed with key as alg (the digest alg names), ES as r || s. */
static char *sign(EVP_PKEY *key, const char *header, const char *payload, const char *md_name, int raw_ec)
{
    char *out = malloc(8192);
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    size_t n;

    b64url((const unsigned char *)header, strlen(header), out);
    n = strlen(out);
    out[n++] = '.';
    b64url((const unsigned char *)payload, strlen(payload), out + n);
    EVP_DigestSignInit(m, NULL, EVP_get_digestbyname(md_name), NULL, key);
    EVP_DigestSign(m, sig, &sig_len, (const unsigned char *)out, strlen(out));
    EVP_MD_CTX_free(m);
    if(raw_ec) {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
        unsigned char rs[96];

        BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 48);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 48, 48);
        ECDSA_SIG_free(es);
        memcpy(sig, rs, 96);
        sig_len = 96;
    }
    n = strlen(out);
    out[n++] = '.';
    b64url(sig, sig_len, out + n);
    return out;
}

/* header.payload HMAC-SHA256 signed with the RSA key's public half (its
 * PEM text) as the secret: the key-confusion forgery a verifier that
 * trusts the token's alg would accept. */
static char *hs256_with_public_key(const char *header, const char *payload)
{
    char *out = malloc(8192);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long pem_len;
    size_t n;

    PEM_write_bio_PUBKEY(bio, rsa_key);
    pem_len = BIO_get_mem_data(bio, &pem);
    b64url((const unsigned char *)header, strlen(header), out);
    n = strlen(out);
    out[n++] = '.';
    b64url((const unsigned char *)payload, strlen(payload), out + n);
    HMAC(EVP_sha256(), pem, (int)pem_len, (const unsigned char *)out, strlen(out), mac, &mac_len);
    BIO_free(bio);
    n = strlen(out);
    out[n++] = '.';
    b64url(mac, mac_len, out + n);
    return out;
}

static int verify(const char *token, json_object *jwk, pa_err *err)
{
    pa_jwt jwt;
    int rc = pa_jwt_parse(token, &jwt, err);

    if(!rc)
        rc = pa_jwt_verify(&jwt, jwk, err);
    pa_jwt_free(&jwt);
    return rc;
}

static const char *claims = "{\"iss\":\"c1\",\"sub\":\"c1\",\"aud\":\"x\",\"exp\":1,\"jti\":\"a\"}";

static void test_rs384(void)
{
    json_object *jwk = rsa_jwk(NULL);
    char *t = sign(rsa_key, "{\"alg\":\"RS384\",\"kid\":\"r1\",\"typ\":\"JWT\"}", claims, "SHA384", 0);
    char *t256 = sign(rsa_key, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", claims, "SHA256", 0);
    char *bad;
    pa_err err;

    CU_ASSERT_EQUAL(verify(t, jwk, &err), PA_OK);
    /* RS256 only where the key says so */
    CU_ASSERT_EQUAL(verify(t256, jwk, &err), PA_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "does not match the registered key"));
    json_object_put(jwk);
    jwk = rsa_jwk("RS256");
    CU_ASSERT_EQUAL(verify(t256, jwk, &err), PA_OK);
    CU_ASSERT_EQUAL(verify(t, jwk, &err), PA_EINVAL);
    json_object_put(jwk);
    jwk = rsa_jwk(NULL);
    /* a changed payload no longer verifies */
    bad = strdup(t);
    bad[strchr(bad, '.') - bad + 5] ^= 1;
    CU_ASSERT_NOT_EQUAL(verify(bad, jwk, &err), PA_OK);
    free(bad);
    free(t);
    free(t256);
    json_object_put(jwk);
}

static void test_refused_algs(void)
{
    json_object *jwk = rsa_jwk(NULL);
    char none[1024], h[256], p[256];
    char *hs;
    pa_err err;

    b64url((const unsigned char *)"{\"alg\":\"none\",\"kid\":\"r1\"}", 25, h);
    b64url((const unsigned char *)claims, strlen(claims), p);
    snprintf(none, sizeof(none), "%s.%s.", h, p);
    CU_ASSERT_EQUAL(verify(none, jwk, &err), PA_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "refused"));
    /* HS256 signed with the public key as the secret: refused before any check */
    hs = hs256_with_public_key("{\"alg\":\"HS256\",\"kid\":\"r1\"}", claims);
    CU_ASSERT_EQUAL(verify(hs, jwk, &err), PA_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "refused"));
    free(hs);
    CU_ASSERT_EQUAL(verify("a.b", jwk, &err), PA_EINVAL);
    CU_ASSERT_EQUAL(verify("!!.??.**", jwk, &err), PA_EINVAL);
    json_object_put(jwk);
}

static void test_es384(void)
{
    json_object *jwk = ec_jwk();
    json_object *rsa = rsa_jwk(NULL);
    char *t = sign(ec_key, "{\"alg\":\"ES384\",\"kid\":\"e1\"}", claims, "SHA384", 1);
    char *der = sign(ec_key, "{\"alg\":\"ES384\",\"kid\":\"e1\"}", claims, "SHA384", 0);
    char *es256 = sign(ec_key, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", claims, "SHA256", 1);
    pa_err err;

    CU_ASSERT_STRING_EQUAL(pa_jwk_alg(jwk), "ES384");
    CU_ASSERT_EQUAL(verify(t, jwk, &err), PA_OK);
    /* a DER signature is not what JWS says */
    CU_ASSERT_EQUAL(verify(der, jwk, &err), PA_EINVAL);
    /* the curve decides the algorithm */
    CU_ASSERT_EQUAL(verify(es256, jwk, &err), PA_EINVAL);
    /* an ES384 token against an RSA key: the key decides */
    CU_ASSERT_EQUAL(verify(t, rsa, &err), PA_EINVAL);
    free(t);
    free(der);
    free(es256);
    json_object_put(jwk);
    json_object_put(rsa);
}

static void test_secrets(void)
{
    char secret[PA_TOKEN_LEN + 1];
    char *hash = NULL;

    CU_ASSERT_EQUAL(pa_secret_new(secret), PA_OK);
    CU_ASSERT_EQUAL(pa_secret_hash(secret, &hash), PA_OK);
    CU_ASSERT_PTR_NULL(strstr(hash, secret));
    CU_ASSERT_TRUE(pa_secret_verify(secret, hash));
    secret[0] = secret[0] == 'a' ? 'b' : 'a';
    CU_ASSERT_FALSE(pa_secret_verify(secret, hash));
    CU_ASSERT_FALSE(pa_secret_verify("", hash));
    CU_ASSERT_FALSE(pa_secret_verify("x", "plaintext"));
    free(hash);
}

static void test_scopes(void)
{
    static const struct {
        const char *asked;
        int admin;
        const char *granted; /* NULL: invalid_scope */
    } cases[] = {
        { "system/*.read", 0, "system/*.read" },
        { "system/*.rs", 0, "system/*.rs" },
        { "system/*.*", 0, "system/*.read" },
        { "system/*.cruds", 0, "system/*.rs" },
        { "system/Patient.read system/Patient.write", 0, "system/Patient.read" },
        { "system/Group.read system/Observation.rs", 0, "system/Group.read system/Observation.rs" },
        { "system/Patient.write", 0, NULL },
        { "system/Patient.u", 0, NULL },
        { "system/Patient.cud", 0, NULL },
        { "system/Group.write", 1, "system/Group.write" },
        { "system/Patient.write", 1, NULL },
        { "launch fhirUser", 0, NULL },
        { "patient/*.read", 0, NULL },
        { "system/UnknownResource.read", 0, NULL },
        { "system/Patient.unknownAction", 0, NULL },
        { "system/Patient.xyz", 0, NULL },
        { "system/Patient.sr", 0, NULL },
        { "", 0, NULL },
    };
    size_t i;

    for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char granted[PA_SCOPE_MAX];
        pa_err err;
        int rc = pa_scope_grant(cases[i].asked, cases[i].admin, granted, &err);

        if(cases[i].granted) {
            CU_ASSERT_EQUAL(rc, PA_OK);
            CU_ASSERT_STRING_EQUAL(granted, cases[i].granted);
        }
        else {
            CU_ASSERT_EQUAL(rc, PA_EINVAL);
        }
    }
    CU_ASSERT_TRUE(pa_scope_allows("system/*.read", "Patient"));
    CU_ASSERT_TRUE(pa_scope_allows("system/Group.rs system/Patient.rs", "Patient"));
    CU_ASSERT_FALSE(pa_scope_allows("system/Observation.read", "Patient"));
    CU_ASSERT_FALSE(pa_scope_allows("system/Group.write", "Group"));
    CU_ASSERT_FALSE(pa_scope_allows("", "Group"));
}

int main(void)
{
    static const struct cu_test tests[] = {
        { "RS384 verifies; RS256 only where the key says", test_rs384 },
        { "none, HMAC and malformed tokens are refused", test_refused_algs },
        { "ES384 raw signatures; the curve decides", test_es384 },
        { "secrets are salted hashes", test_secrets },
        { "scopes: intersection, read only, invalid_scope", test_scopes },
        { NULL, NULL },
    };
    int rc;

    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    if(!rsa_key || !ec_key)
        return 99;
    rc = cu_run("auth", tests);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    return rc;
}
