/* Unit tests of common/: buffers, configuration, HTTP helpers, times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cu_main.h"
#include "pa_buf.h"
#include "pa_config.h"
#include "pa_fhir.h"
#include "pa_http.h"
#include "pa_httpc.h"
#include "pa_job.h"
#include "pa_jobfiles.h"
#include "pa_json.h"
#include "pa_jwt.h"
#include "pa_manifest.h"
#include "pa_pgarray.h"
#include "pa_strset.h"
#include "pa_util.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

static const char *minimal_config = "base_url = http://127.0.0.1:8080/fhir/\n"
                                    "data_dir = /tmp/pa-data\n"
                                    "pg_conninfo = host=127.0.0.1 port=5432 dbname=pa\n";

static void test_buf_limit(void)
{
    pa_buf b;

    pa_buf_init(&b, 8);
    CU_ASSERT_EQUAL(pa_buf_addstr(&b, "12345678"), PA_OK);
    CU_ASSERT_EQUAL(pa_buf_addstr(&b, "9"), PA_ETOOBIG);
    CU_ASSERT_STRING_EQUAL(pa_buf_str(&b), "12345678");
    CU_ASSERT_EQUAL(b.len, 8);
    pa_buf_reset(&b);
    CU_ASSERT_EQUAL(pa_buf_printf(&b, "%d-%s", 42, "x"), PA_OK);
    CU_ASSERT_STRING_EQUAL(pa_buf_str(&b), "42-x");
    CU_ASSERT_EQUAL(pa_buf_printf(&b, "%s", "toolong"), PA_ETOOBIG);
    pa_buf_free(&b);
    pa_buf_free(NULL);
}

static void test_buf_json_string(void)
{
    pa_buf b;

    pa_buf_init(&b, 1024);
    CU_ASSERT_EQUAL(pa_buf_add_json_string(&b, "a\"b\\c\n\x01"), PA_OK);
    CU_ASSERT_STRING_EQUAL(pa_buf_str(&b), "\"a\\\"b\\\\c\\n\\u0001\"");
    pa_buf_free(&b);
}

static void test_config_defaults(void)
{
    pa_config *cfg = NULL;
    pa_err err;

    CU_ASSERT_EQUAL_FATAL(pa_config_parse(minimal_config, "t.conf", &cfg, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(cfg->base_url, "http://127.0.0.1:8080/fhir"); /* slash dropped */
    CU_ASSERT_EQUAL(cfg->redis_port, 6379);
    CU_ASSERT_EQUAL(cfg->max_jobs_per_client, 3);
    CU_ASSERT_STRING_EQUAL(cfg->redis_prefix, "pa:");
    pa_config_free(cfg);
}

/* Each broken configuration is refused with a message naming the key. */
static void test_config_errors(void)
{
    static const struct {
        const char *text;
        const char *needle;
    } cases[] = {
        { "data_dir = /x\npg_conninfo = x\n", "base_url" },
        { "base_url = ftp://x\ndata_dir = /x\npg_conninfo = x\n", "base_url" },
        { "base_url = http://x\ndata_dir = rel\npg_conninfo = x\n", "data_dir" },
        { "base_url = http://x\ndata_dir = /x\npg_conninfo = x\nredis_port = 70000\n", "redis_port" },
        { "base_url = http://x\ndata_dir = /x\npg_conninfo = x\nredis_port = 12ab\n", "redis_port" },
        { "base_url = http://x\ndata_dir = /x\npg_conninfo = x\nredis_prot = 1\n", "redis_prot" },
        { "base_url = http://x\ndata_dir = /x\npg_conninfo = x\nlog_level = loud\n", "log_level" },
        { "base_url = http://x\nbase_url = http://y\ndata_dir = /x\npg_conninfo = x\n", "base_url" },
        { "base_url http://x\n", "key = value" },
    };
    size_t i;

    for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pa_config *cfg = NULL;
        pa_err err;

        pa_err_clear(&err);
        CU_ASSERT_EQUAL(pa_config_parse(cases[i].text, "t.conf", &cfg, &err), PA_ECONFIG);
        CU_ASSERT_PTR_NULL(cfg);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, cases[i].needle));
    }
}

/* source.NAME.FIELD: defaults, what each auth needs, typos refused. */
static void test_config_sources(void)
{
    static const struct {
        const char *lines;
        const char *needle; /* NULL: accepted */
    } cases[] = {
        { "source.payer.url = https://fhir.payer.example/r4\n", NULL },
        { "source.payer.url = ftp://x\n", "http or https" },
        { "source.payer.level = system\n", "source.payer.url is missing" },
        { "source.payer.url = http://x\nsource.payer.level = group/\n", "system, patient or group/ID" },
        { "source.payer.url = http://x\nsource.payer.auth = smart\nsource.payer.client_id = c\n"
          "source.payer.key_file = /k.pem\n",
          "needs source.payer.kid" },
        { "source.payer.url = http://x\nsource.payer.auth = secret\nsource.payer.client_id = c\n",
          "needs source.payer.secret_file" },
        { "source.payer.url = http://x\nsource.payer.auth = magic\n", "none, bearer, secret or smart" },
        { "source.payer.url = http://x\nsource.payer.paralel = 2\n", "unknown key 'source.payer.paralel'" },
        { "source.payer.url = http://x\nsource.payer.parallel = 17\n", "from 1 to 16" },
        { "source.payer.url = http://x\nsource.payer.url = http://y\n", "set twice" },
        { "source.pay er.url = http://x\n", "source.NAME.FIELD" },
    };
    size_t i;

    for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[1024];
        pa_config *cfg = NULL;
        pa_err err;
        int rc;

        snprintf(text, sizeof(text), "%s%s", minimal_config, cases[i].lines);
        pa_err_clear(&err);
        rc = pa_config_parse(text, "t.conf", &cfg, &err);
        if(!cases[i].needle) {
            CU_ASSERT_EQUAL_FATAL(rc, PA_OK);
            CU_ASSERT_EQUAL(cfg->nsources, 1);
            CU_ASSERT_STRING_EQUAL(pa_config_source_find(cfg, "payer")->level, "system");
            CU_ASSERT_STRING_EQUAL(pa_config_source_find(cfg, "payer")->auth, "none");
            CU_ASSERT_EQUAL(pa_config_source_find(cfg, "payer")->parallel, 4);
            CU_ASSERT_PTR_NULL(pa_config_source_find(cfg, "other"));
        }
        else {
            CU_ASSERT_EQUAL(rc, PA_ECONFIG);
            if(!strstr(err.msg, cases[i].needle))
                fprintf(stderr, "case %zu: %s\n", i, err.msg);
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, cases[i].needle));
        }
        pa_config_free(cfg);
    }
}

static void test_url_parse(void)
{
    pa_url u;

    CU_ASSERT_EQUAL_FATAL(pa_url_parse("https://fhir.example/r4/$export?_type=Patient", &u), PA_OK);
    CU_ASSERT(u.tls);
    CU_ASSERT_STRING_EQUAL(u.host, "fhir.example");
    CU_ASSERT_STRING_EQUAL(u.port, "443");
    CU_ASSERT_STRING_EQUAL(u.target, "/r4/$export?_type=Patient");
    CU_ASSERT_EQUAL_FATAL(pa_url_parse("http://127.0.0.1:8080", &u), PA_OK);
    CU_ASSERT_STRING_EQUAL(u.port, "8080");
    CU_ASSERT_STRING_EQUAL(u.target, "/");
    CU_ASSERT_EQUAL_FATAL(pa_url_parse("http://[::1]:81?x=1", &u), PA_OK);
    CU_ASSERT_STRING_EQUAL(u.host, "[::1]");
    CU_ASSERT_STRING_EQUAL(u.target, "/?x=1");
    CU_ASSERT_EQUAL(pa_url_parse("ftp://x/", &u), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_url_parse("http://user:pw@x/", &u), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_url_parse("http://x:80a/", &u), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_url_parse("http:///path", &u), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_url_parse("http://x/a b", &u), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_url_parse("http://x/#frag", &u), PA_EINVAL);
}

/* Answers as a server may frame them, read from memory. */
static void test_httpc_response(void)
{
    static const struct {
        const char *bytes;
        int rc;
        int status;
        const char *body;
    } cases[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA", PA_OK, 200, "hello" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n", PA_OK, 200,
          "abcde" },
        { "HTTP/1.0 404 Not Found\r\n\r\nto the close", PA_OK, 404, "to the close" },
        { "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", PA_OK, 204, "" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", PA_EIO, 200, NULL },
        { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", PA_EIO, 200, NULL },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", PA_EIO, 200, NULL },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", PA_EIO, 200, NULL },
        { "SMTP ready\r\n\r\n", PA_EIO, 0, NULL },
        { "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", PA_EIO, 200, NULL },
    };
    size_t i;

    for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        BIO *b = BIO_new_mem_buf(cases[i].bytes, -1);
        pa_httpc_resp r;
        pa_err err;

        pa_httpc_resp_init(&r);
        CU_ASSERT_EQUAL(pa_httpc_read_response(b, 0, NULL, NULL, 0, &r, &err), cases[i].rc);
        CU_ASSERT_EQUAL(r.status, cases[i].status);
        if(cases[i].body)
            CU_ASSERT_STRING_EQUAL(pa_buf_str(&r.body), cases[i].body);
        pa_httpc_resp_free(&r);
        BIO_free(b);
    }
    {
        const char *bytes = "HTTP/1.1 202 Accepted\r\nretry-after: 7\r\nX-Progress:  40%  \r\n"
                            "Content-Location: http://x/status/1\r\nContent-Length: 0\r\n\r\n";
        BIO *b = BIO_new_mem_buf(bytes, -1);
        pa_httpc_resp r;
        pa_err err;

        pa_httpc_resp_init(&r);
        CU_ASSERT_EQUAL(pa_httpc_read_response(b, 0, NULL, NULL, 0, &r, &err), PA_OK);
        CU_ASSERT_EQUAL(r.retry_after, 7);
        CU_ASSERT_STRING_EQUAL(r.x_progress, "40%");
        CU_ASSERT_STRING_EQUAL(r.content_location, "http://x/status/1");
        pa_httpc_resp_free(&r);
        BIO_free(b);
    }
}

/* A signed assertion verifies with the key it was signed with; RS384 for RSA. */
static void test_jwt_sign(void)
{
    int k;

    for(k = 0; k < 2; k++) { /* RSA, then EC */
        char path[] = "/tmp/pa-key-XXXXXX";
        int fd = mkstemp(path);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        EVP_PKEY *key =
            k == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048) : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        json_object *claims = json_object_new_object();
        char *token = NULL;
        pa_jwt jwt;
        pa_err err;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_PTR_NOT_NULL_FATAL(key);
        CU_ASSERT_EQUAL(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
        fclose(f);
        json_object_object_add(claims, "iss", json_object_new_string("c1"));
        CU_ASSERT_EQUAL_FATAL(pa_jwt_sign(path, "kid-1", claims, &token, &err), PA_OK);
        CU_ASSERT_EQUAL_FATAL(pa_jwt_parse(token, &jwt, &err), PA_OK);
        CU_ASSERT_STRING_EQUAL(pa_json_str(jwt.header, "alg"), k == 0 ? "RS384" : "ES384");
        CU_ASSERT_STRING_EQUAL(pa_json_str(jwt.header, "kid"), "kid-1");
        CU_ASSERT_STRING_EQUAL(pa_json_str(jwt.claims, "iss"), "c1");
        if(k == 0) {
            CU_ASSERT_EQUAL(EVP_DigestVerifyInit(ctx, NULL, EVP_sha384(), NULL, key), 1);
            CU_ASSERT_EQUAL(EVP_DigestVerify(ctx, jwt.sig, jwt.sig_len, (const unsigned char *)jwt.signing_input,
                                             strlen(jwt.signing_input)),
                            1);
        }
        else {
            CU_ASSERT_EQUAL(jwt.sig_len, 96); /* raw r || s */
        }
        {
            char *none = NULL;

            CU_ASSERT_NOT_EQUAL(pa_jwt_sign("/nonexistent.pem", "k", claims, &none, &err), PA_OK);
            CU_ASSERT_PTR_NULL(none);
        }
        pa_jwt_free(&jwt);
        free(token);
        json_object_put(claims);
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(key);
        unlink(path);
    }
}

static void test_config_missing_file(void)
{
    pa_config *cfg = NULL;
    pa_err err;

    CU_ASSERT_EQUAL(pa_config_load("/nonexistent/pa.conf", &cfg, &err), PA_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/pa.conf"));
}

static void test_accept(void)
{
    static const char *const fhir[] = { PA_MT_FHIR_JSON, PA_MT_JSON, NULL };

    CU_ASSERT_EQUAL(pa_accept_pick(NULL, fhir), 0);
    CU_ASSERT_EQUAL(pa_accept_pick("", fhir), 0);
    CU_ASSERT_EQUAL(pa_accept_pick("application/fhir+json", fhir), 0);
    CU_ASSERT_EQUAL(pa_accept_pick("application/json", fhir), 1);
    CU_ASSERT_EQUAL(pa_accept_pick("Application/FHIR+JSON; charset=utf-8", fhir), 0);
    CU_ASSERT_EQUAL(pa_accept_pick("application/fhir+json, */*; q=0.1", fhir), 0);
    CU_ASSERT_EQUAL(pa_accept_pick("*/*", fhir), 0);
    CU_ASSERT_EQUAL(pa_accept_pick("application/*", fhir), 0);
    CU_ASSERT_EQUAL(pa_accept_pick("application/json;q=0.9, application/fhir+json;q=0.5", fhir), 1);
    CU_ASSERT_EQUAL(pa_accept_pick("application/xml", fhir), -1);
    CU_ASSERT_EQUAL(pa_accept_pick("text/html, application/fhir+xml", fhir), -1);
    CU_ASSERT_EQUAL(pa_accept_pick("application/fhir+json;q=0", fhir), -1);
    CU_ASSERT_EQUAL(pa_accept_pick("text/*", fhir), -1);
}

static void test_media_type(void)
{
    CU_ASSERT_TRUE(pa_media_type_is("application/fhir+json; charset=UTF-8", PA_MT_FHIR_JSON));
    CU_ASSERT_TRUE(pa_media_type_is(" Application/Json ", PA_MT_JSON));
    CU_ASSERT_FALSE(pa_media_type_is("application/json-patch+json", PA_MT_JSON));
    CU_ASSERT_FALSE(pa_media_type_is(NULL, PA_MT_JSON));
}

static void test_query_parse(void)
{
    pa_param *p = NULL;
    size_t n = 0;
    pa_err err;

    CU_ASSERT_EQUAL_FATAL(
        pa_query_parse("_type=Patient%2CCoverage&_since=2024-01-01T00%3A00%3A00Z&x&&a+b=c+d", &p, &n, &err), PA_OK);
    CU_ASSERT_EQUAL_FATAL(n, 4);
    CU_ASSERT_STRING_EQUAL(p[0].name, "_type");
    CU_ASSERT_STRING_EQUAL(p[0].value, "Patient,Coverage");
    CU_ASSERT_STRING_EQUAL(p[1].value, "2024-01-01T00:00:00Z");
    CU_ASSERT_STRING_EQUAL(p[2].name, "x");
    CU_ASSERT_STRING_EQUAL(p[2].value, "");
    CU_ASSERT_STRING_EQUAL(p[3].name, "a b");
    CU_ASSERT_STRING_EQUAL(p[3].value, "c d");
    pa_params_free(p, n);
    CU_ASSERT_EQUAL(pa_query_parse("a=%zz", &p, &n, &err), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_query_parse("a=%00", &p, &n, &err), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_query_parse("a=%4", &p, &n, &err), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_query_parse(NULL, &p, &n, &err), PA_OK);
    CU_ASSERT_EQUAL(n, 0);
}

static void test_instant(void)
{
    int64_t ms = 0;
    char out[32];

    CU_ASSERT_EQUAL(pa_parse_instant("1970-01-01T00:00:00Z", &ms), PA_OK);
    CU_ASSERT_EQUAL(ms, 0);
    CU_ASSERT_EQUAL(pa_parse_instant("2024-02-29T12:30:15.250+02:00", &ms), PA_OK);
    CU_ASSERT_EQUAL(ms, 1709202615250LL);
    pa_instant_format(ms, out);
    CU_ASSERT_STRING_EQUAL(out, "2024-02-29T10:30:15.250Z");
    CU_ASSERT_EQUAL(pa_parse_instant("2023-02-29T00:00:00Z", &ms), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_instant("2024-01-01", &ms), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_instant("2024-01-01T00:00:00", &ms), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_instant("2024-13-01T00:00:00Z", &ms), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_instant("2024-01-01T00:00:00Zjunk", &ms), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_instant("2024-01-01T00:00:00.Z", &ms), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_instant("yesterday", &ms), PA_EINVAL);
}

/* What PostgreSQL 15 itself reads from each instant, as microseconds since
 * 2000-01-01 ('...'::timestamptz): the loader's binary COPY must store the
 * very same values its text form did. */
static void test_instant_pg_micros(void)
{
    static const struct {
        const char *in;
        int64_t us;
    } cases[] = {
        { "2000-01-01T00:00:00Z", 0 },
        { "1999-12-31T23:59:59.999999Z", -1 },
        { "2024-02-29T12:30:15.250+02:00", INT64_C(762517815250000) },
        { "2016-12-31T23:59:60Z", INT64_C(536544000000000) },         /* a leap second: the next minute */
        { "2020-05-01T10:00:00.1234565Z", INT64_C(641642400123456) }, /* rounded as rint does */
        { "2020-05-01T10:00:00.1234575Z", INT64_C(641642400123458) },
        { "2020-05-01T10:00:00.123456789-14:00", INT64_C(641692800123457) },
        { "0001-01-01T00:00:00Z", INT64_C(-63082281600000000) },
        { "9999-12-31T23:59:59.9999995Z", INT64_C(252455616000000000) },
        { "1970-01-01T00:00:00.0000005Z", INT64_C(-946684800000000) },
    };
    size_t i;
    int64_t us;

    for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        us = 42;
        CU_ASSERT_EQUAL(pa_instant_pg_micros(cases[i].in, &us), PA_OK);
        CU_ASSERT_EQUAL(us, cases[i].us);
        if(us != cases[i].us)
            fprintf(stderr, "%s: %lld, not %lld\n", cases[i].in, (long long)us, (long long)cases[i].us);
    }
    CU_ASSERT_EQUAL(pa_instant_pg_micros("2024-01-01T00:00:00", &us), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_instant_pg_micros("2024-01-01T00:00:00.1234567890Z", &us), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_instant_pg_micros("2024-01-01T00:00:61Z", &us), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_instant_pg_micros("2024-01-01", &us), PA_EINVAL);
}

static void test_outcome_and_errors(void)
{
    pa_resp r;
    pa_err err;

    pa_resp_init(&r);
    CU_ASSERT_EQUAL(pa_resp_outcome(&r, 400, "error", "invalid", "bad \"%s\"", "x"), PA_OK);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_STRING_EQUAL(r.content_type, PA_MT_FHIR_JSON);
    CU_ASSERT_STRING_EQUAL(pa_buf_str(&r.body),
                           "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\","
                           "\"code\":\"invalid\",\"diagnostics\":\"bad \\\"x\\\"\"}]}");
    pa_err_set(&err, PA_EBUSY, "busy");
    pa_resp_error(&r, &err);
    CU_ASSERT_EQUAL(r.status, 429);
    pa_err_set(&err, PA_EDB, "db down");
    pa_resp_error(&r, &err);
    CU_ASSERT_EQUAL(r.status, 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(pa_buf_str(&r.body), "transient"));
    CU_ASSERT_PTR_NULL(strstr(pa_buf_str(&r.body), "db down"));
    pa_err_set(&err, PA_ENOTFOUND, "gone");
    pa_resp_error(&r, &err);
    CU_ASSERT_EQUAL(r.status, 404);
    CU_ASSERT_EQUAL(pa_resp_header(&r, "X-Bad", "a\r\nInjected: 1"), PA_EINVAL);
    CU_ASSERT_PTR_NULL(strstr(pa_buf_str(&r.headers), "Injected"));
    pa_resp_free(&r);
}

static void test_ids(void)
{
    char a[33], b[33];

    CU_ASSERT_EQUAL(pa_random_hex(a, 16), PA_OK);
    CU_ASSERT_EQUAL(pa_random_hex(b, 16), PA_OK);
    CU_ASSERT_EQUAL(strlen(a), 32);
    CU_ASSERT_NOT_EQUAL(strcmp(a, b), 0);
    /* request ids: 16 hex digits, none repeated over many calls, and a
     * forked child does not repeat its parent's */
    {
        char prev[17] = "", id[17] = "";
        int made = 1, distinct = 1, hex = 1, i, fds[2];
        pid_t pid;

        for(i = 0; i < 10000; i++) {
            made &= pa_request_id(id) == PA_OK;
            hex &= strlen(id) == 16 && strspn(id, "0123456789abcdef") == 16;
            distinct &= strcmp(id, prev) != 0;
            memcpy(prev, id, sizeof(prev));
        }
        CU_ASSERT_TRUE(made);
        CU_ASSERT_TRUE(hex);
        CU_ASSERT_TRUE(distinct);
        CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
        pid = fork();
        if(pid == 0) {
            pa_request_id(id);
            _exit(write(fds[1], id, 16) == 16 ? 0 : 1);
        }
        CU_ASSERT_EQUAL(pa_request_id(prev), PA_OK);
        CU_ASSERT_EQUAL(read(fds[0], id, 16), 16);
        id[16] = '\0';
        waitpid(pid, NULL, 0);
        close(fds[0]);
        close(fds[1]);
        CU_ASSERT_NOT_EQUAL(strcmp(id, prev), 0);
    }
    CU_ASSERT_TRUE(pa_fhir_id_valid("roster-1.a"));
    CU_ASSERT_FALSE(pa_fhir_id_valid(""));
    CU_ASSERT_FALSE(pa_fhir_id_valid("a/b"));
    CU_ASSERT_FALSE(pa_fhir_id_valid("a b"));
    CU_ASSERT_FALSE(pa_fhir_id_valid("12345678901234567890123456789012345678901234567890123456789012345"));
}

static int json_ok(const char *text)
{
    return pa_json_walk(text, strlen(text), NULL, NULL, NULL) == 0;
}

static void test_json_walk(void)
{
    static const char *const good[] = {
        "{}",       "[]",   " 0 ",
        "-0.5e+10", "1E3",  "\"\\u00e9\\ud83d\\ude00\\n\"",
        "true",     "null", "{\"a\":[1,{\"b\":false}],\"c\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}",
        NULL
    };
    static const char *const bad[] = { "",
                                       " ",
                                       "{",
                                       "[1,]",
                                       "{\"a\" 1}",
                                       "{\"a\":1,}",
                                       "01",
                                       "1.",
                                       "-",
                                       ".5",
                                       "1e",
                                       "tru",
                                       "nul",
                                       "\"a",
                                       "\"\\x\"",
                                       "\"\\ud83d\"",
                                       "\"\\ude00\"",
                                       "\"\xc0\xaf\"",
                                       "\"\xed\xa0\x80\"",
                                       "\"\xf4\x90\x80\x80\"",
                                       "\"\x01\"",
                                       "{} {}",
                                       "[1] x",
                                       "{'a':1}",
                                       "[NaN]",
                                       NULL };
    char deep[80], key[16];
    pa_err err;
    int i;

    for(i = 0; good[i]; i++)
        CU_ASSERT_TRUE(json_ok(good[i]));
    for(i = 0; bad[i]; i++)
        CU_ASSERT_FALSE(json_ok(bad[i]));
    /* as deep as json-c parses, and no deeper */
    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    deep[64] = '\0';
    CU_ASSERT_TRUE(json_ok(deep));
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    deep[66] = '\0';
    CU_ASSERT_FALSE(json_ok(deep));
    CU_ASSERT_EQUAL(pa_json_walk("[1, x]", 6, NULL, NULL, &err), PA_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "at byte 4"));
    CU_ASSERT_EQUAL(pa_json_string("\"a\\u0062\\\"c\"", 12, key, sizeof(key)), 0);
    CU_ASSERT_STRING_EQUAL(key, "ab\"c");
    CU_ASSERT_EQUAL(pa_json_string("\"abcdef\"", 8, key, 4), -1);
    CU_ASSERT_EQUAL(pa_json_string("12", 2, key, sizeof(key)), -1);
}

struct seen {
    char keys[8][16];
    int n;
};

static int remember(const char *key, const char *value, size_t len, void *ctx)
{
    struct seen *s = ctx;

    (void)value;
    (void)len;
    if(s->n < 8)
        snprintf(s->keys[s->n++], sizeof(s->keys[0]), "%s", key ? key : "-");
    return !strcmp(key ? key : "", "stop") ? 7 : 0;
}

static void test_json_visit(void)
{
    const char *obj = "{\"a\":{\"x\":1},\"r\\u0065f\":[2],\"stop\":3,\"z\":4}";
    struct seen s;

    memset(&s, 0, sizeof(s));
    /* members in order, keys decoded; a visitor's nonzero ends the walk */
    CU_ASSERT_EQUAL(pa_json_walk(obj, strlen(obj), remember, &s, NULL), 7);
    CU_ASSERT_EQUAL(s.n, 3);
    CU_ASSERT_STRING_EQUAL(s.keys[0], "a");
    CU_ASSERT_STRING_EQUAL(s.keys[1], "ref");
    memset(&s, 0, sizeof(s));
    CU_ASSERT_EQUAL(pa_json_walk("[1,[2],{}]", 10, remember, &s, NULL), 0);
    CU_ASSERT_EQUAL(s.n, 3);
    CU_ASSERT_STRING_EQUAL(s.keys[2], "-");
}

/* A tape holds what json-c would check and no more or less: the same
 * texts pass, every value is a node in text order, and what the tape says
 * about white space and keys is true. */
static void test_json_tape(void)
{
    static const char *const texts[] = { "{}",
                                         "[]",
                                         " 0 ",
                                         "\"\\u00e9\"",
                                         "{\"a\":[1,{\"b\":false}],\"c\":\"x\"}",
                                         "{\"a\":1,}",
                                         "01",
                                         "{} {}",
                                         "[1] x",
                                         "\"\\ud83d\"",
                                         "\"\xed\xa0\x80\"",
                                         NULL };
    const char *obj = "{\"a\":[1,{\"b\":false}],\"c\":\"x\\\"y\",\"d\":\"plain\",\"e\":null,\"c\":\"z\"}";
    pa_json_tape t = { 0 };
    char out[16];
    pa_err err;
    size_t a, b, c, d;
    int i;

    for(i = 0; texts[i]; i++)
        CU_ASSERT_EQUAL(pa_json_tape_parse(texts[i], strlen(texts[i]), &t, &err) == 0, json_ok(texts[i]));
    CU_ASSERT_EQUAL_FATAL(pa_json_tape_parse(obj, strlen(obj), &t, &err), 0);
    /* {, [, 1, {, false, "x\"y", "plain", null, "z" */
    CU_ASSERT_EQUAL(t.count, 9);
    CU_ASSERT_EQUAL(t.n[0].type, '{');
    CU_ASSERT_EQUAL(t.n[0].end, 9);
    CU_ASSERT_FALSE(t.spaced);
    CU_ASSERT_TRUE(t.dup_keys);
    CU_ASSERT_FALSE(t.odd_keys);
    a = pa_json_member(&t, obj, 0, "a");
    CU_ASSERT_EQUAL(a, 1);
    CU_ASSERT_EQUAL(t.n[a].type, '[');
    CU_ASSERT_EQUAL(t.n[a].end, 5);
    CU_ASSERT_EQUAL(t.n[2].type, '0');
    CU_ASSERT_EQUAL(t.n[2].key_len, 0);
    b = pa_json_member(&t, obj, 3, "b");
    CU_ASSERT_EQUAL(b, 4);
    CU_ASSERT_EQUAL(t.n[b].type, 'f');
    CU_ASSERT_EQUAL(t.n[b].len, 5);
    /* a key twice: the last, as json-c keeps */
    c = pa_json_member(&t, obj, 0, "c");
    CU_ASSERT_EQUAL(c, 8);
    CU_ASSERT_EQUAL(pa_json_node_string(&t, obj, c, out, sizeof(out)), 0);
    CU_ASSERT_STRING_EQUAL(out, "z");
    CU_ASSERT_FALSE(t.n[5].plain);
    CU_ASSERT_EQUAL(pa_json_node_string(&t, obj, 5, out, sizeof(out)), 0);
    CU_ASSERT_STRING_EQUAL(out, "x\"y");
    d = pa_json_member(&t, obj, 0, "d");
    CU_ASSERT_TRUE(t.n[d].plain);
    CU_ASSERT_EQUAL(pa_json_node_string(&t, obj, d, out, 5), -2);
    CU_ASSERT_EQUAL(pa_json_node_string(&t, obj, d, out, 6), 0);
    CU_ASSERT_EQUAL(pa_json_node_string(&t, obj, pa_json_member(&t, obj, 0, "e"), out, 6), -1);
    CU_ASSERT_EQUAL(pa_json_member(&t, obj, 0, "nothing"), 0);
    CU_ASSERT_EQUAL(pa_json_member(&t, obj, a, "a"), 0); /* not an object */
    /* white space outside strings, and an escaped key */
    CU_ASSERT_EQUAL(pa_json_tape_parse("{\"a b\":1}", 9, &t, &err), 0);
    CU_ASSERT_FALSE(t.spaced);
    CU_ASSERT_EQUAL(pa_json_tape_parse("{\"a\": 1}", 8, &t, &err), 0);
    CU_ASSERT_TRUE(t.spaced);
    CU_ASSERT_FALSE(t.dup_keys);
    CU_ASSERT_EQUAL(pa_json_tape_parse("{\"\\u0061\":1,\"a\":2}", 18, &t, &err), 0);
    CU_ASSERT_TRUE(t.odd_keys);
    /* the same message as the walk */
    CU_ASSERT_EQUAL(pa_json_tape_parse("[1, x]", 6, &t, &err), PA_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "at byte 4"));
    pa_json_tape_free(&t);
}

static void test_dates(void)
{
    char out[PA_TS_LEN], day[11];
    int64_t ms = 0;
    int y, m, d;

    /* instants before 1970 and years below 1000 render as FHIR reads them */
    CU_ASSERT_EQUAL(pa_parse_instant("1969-12-31T23:59:59.500Z", &ms), PA_OK);
    CU_ASSERT_EQUAL(ms, -500);
    pa_instant_format(ms, out);
    CU_ASSERT_STRING_EQUAL(out, "1969-12-31T23:59:59.500Z");
    CU_ASSERT_EQUAL(pa_parse_instant("0999-06-01T00:00:00Z", &ms), PA_OK);
    pa_instant_format(ms, out);
    CU_ASSERT_STRING_EQUAL(out, "0999-06-01T00:00:00.000Z");
    CU_ASSERT_EQUAL(pa_parse_instant("0000-01-01T00:00:00Z", &ms), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_instant("2024-01-01T24:00:00Z", &ms), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_instant("2024-00-01T00:00:00Z", &ms), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_instant("2024-04-31T00:00:00Z", &ms), PA_EINVAL);
    /* dates: the three precisions, each checked against the calendar */
    CU_ASSERT_EQUAL(pa_parse_date("2024", &y, &m, &d), PA_OK);
    CU_ASSERT(y == 2024 && m == 0 && d == 0);
    CU_ASSERT_EQUAL(pa_parse_date("2024-02-29", &y, &m, &d), PA_OK);
    CU_ASSERT_EQUAL(pa_parse_date("2023-02-29", &y, &m, &d), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_date("2024-13", &y, &m, &d), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_date("2024-00", &y, &m, &d), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_date("2024-01-32", &y, &m, &d), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_date("0000", &y, &m, &d), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_date("2024-1", &y, &m, &d), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_parse_date("24-01-01", &y, &m, &d), PA_EINVAL);
    /* a period's ends as days: a partial start is its first day, a partial end its last */
    CU_ASSERT_EQUAL(pa_fhir_day("2024-02", 1, day), PA_OK);
    CU_ASSERT_STRING_EQUAL(day, "2024-02-29");
    CU_ASSERT_EQUAL(pa_fhir_day("2023", 0, day), PA_OK);
    CU_ASSERT_STRING_EQUAL(day, "2023-01-01");
    CU_ASSERT_EQUAL(pa_fhir_day("2023-06-15T23:00:00-05:00", 0, day), PA_OK);
    CU_ASSERT_STRING_EQUAL(day, "2023-06-15");
    CU_ASSERT_EQUAL(pa_fhir_day("2023-06-31T00:00:00Z", 0, day), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_fhir_day(NULL, 0, day), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_fhir_date_ts("2024-13", out), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_fhir_date_ts("0999", out), PA_OK);
    CU_ASSERT_STRING_EQUAL(out, "0999-01-01T00:00:00Z");
}

static void test_utf8(void)
{
    char small[5];
    pa_buf b;

    CU_ASSERT(pa_utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    CU_ASSERT(!pa_utf8_valid("caf\xc3", 4));      /* cut inside a character */
    CU_ASSERT(!pa_utf8_valid("\xc0\xaf", 2));     /* overlong */
    CU_ASSERT(!pa_utf8_valid("\xed\xa0\x80", 3)); /* a surrogate */
    CU_ASSERT(!pa_utf8_valid("\xff", 1));
    CU_ASSERT(!pa_utf8_valid("a\0b", 3)); /* a NUL byte */
    /* truncation backs off to a character's start */
    CU_ASSERT_EQUAL(pa_strlcpy(small, "ab\xc3\xa9z", sizeof(small)), PA_ETOOBIG);
    CU_ASSERT_STRING_EQUAL(small, "ab\xc3\xa9");
    CU_ASSERT_EQUAL(pa_strlcpy(small, "abc\xc3\xa9", sizeof(small)), PA_ETOOBIG);
    CU_ASSERT_STRING_EQUAL(small, "abc");
    /* text from a request scrubbed for a log line or a record */
    {
        char line[] = "a\nb\xff\xc3\xa9\x7f";

        CU_ASSERT_EQUAL(pa_utf8_scrub(line, strlen(line)), 3);
        CU_ASSERT_STRING_EQUAL(line, "a?b?\xc3\xa9?");
    }
    /* JSON written from bytes that are no UTF-8 stays valid JSON */
    pa_buf_init(&b, 64);
    CU_ASSERT_EQUAL(pa_buf_add_json_string(&b, "a\xff"
                                               "b\xc3"),
                    PA_OK);
    CU_ASSERT_STRING_EQUAL(pa_buf_str(&b), "\"a\xef\xbf\xbd"
                                           "b\xef\xbf\xbd\"");
    CU_ASSERT_EQUAL(pa_json_walk(b.data, b.len, NULL, NULL, NULL), 0);
    pa_buf_free(&b);
}

static void test_json_parse(void)
{
    json_object *o = NULL;
    pa_err err;

    CU_ASSERT_EQUAL(pa_json_parse("{\"a\":[1,2]}", 11, &o, &err), PA_OK);
    CU_ASSERT(json_object_is_type(o, json_type_object));
    json_object_put(o);
    /* json-c alone would take the first value and ignore the rest */
    CU_ASSERT_EQUAL(pa_json_parse("{}garbage", 9, &o, &err), PA_EINVAL);
    CU_ASSERT_PTR_NULL(o);
    CU_ASSERT_EQUAL(pa_json_parse("{} {}", 5, &o, &err), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_json_parse("{\"a\":\"x\\u0000y\"}", 17, &o, &err), PA_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "NUL"));
    CU_ASSERT_EQUAL(pa_json_parse("{\"a\":\"\xc3\"}", 8, &o, &err), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_json_parse("{\"a\":1}\0", 9, &o, &err), PA_EINVAL);
    /* scalars at the very end of the text (found by fuzzing) */
    CU_ASSERT_EQUAL(pa_json_parse("12", 2, &o, &err), PA_OK);
    CU_ASSERT_EQUAL(json_object_get_int(o), 12);
    json_object_put(o);
    CU_ASSERT_EQUAL(pa_json_parse("null", 4, &o, &err), PA_OK);
    CU_ASSERT_PTR_NULL(o);
}

/* t for an instant, through the parser the rest of the code uses */
static time_t at(const char *instant)
{
    int64_t ms = 0;

    CU_ASSERT_EQUAL(pa_parse_instant(instant, &ms), PA_OK);
    return (time_t)(ms / 1000);
}

static void test_business_deadline(void)
{
    long days[4];
    char out[32];

    CU_ASSERT_EQUAL(pa_parse_day_list("2026-11-26, 2026-12-25 2027-01-01", days, 4), 3);
    CU_ASSERT_EQUAL(days[0], 20261126);
    CU_ASSERT_EQUAL(days[2], 20270101);
    CU_ASSERT_EQUAL(pa_parse_day_list("", days, 4), 0);
    CU_ASSERT_EQUAL(pa_parse_day_list("2026-02-29", NULL, 0), -1);
    CU_ASSERT_EQUAL(pa_parse_day_list("2026-12-25x", NULL, 0), -1);
    CU_ASSERT_EQUAL(pa_parse_day_list("2026-12", NULL, 0), -1);
    {
        long one[1];

        CU_ASSERT_EQUAL(pa_parse_day_list("2026-12-25 2026-12-26", one, 1), -1);
    }
    CU_ASSERT(pa_timezone_known("UTC"));
    CU_ASSERT(!pa_timezone_known("Nowhere/Atlantis"));
    CU_ASSERT(!pa_timezone_known("../../etc/passwd"));
    CU_ASSERT(!pa_timezone_known("/etc/localtime"));
    CU_ASSERT(!pa_timezone_known(""));

    setenv("TZ", "UTC0", 1);
    tzset();
    /* Wednesday to Thursday, same time; the holiday pushes it to Friday */
    pa_instant_format((int64_t)pa_business_deadline(at("2026-11-25T10:00:00Z"), NULL, 0) * 1000, out);
    CU_ASSERT_STRING_EQUAL(out, "2026-11-26T10:00:00.000Z");
    pa_instant_format((int64_t)pa_business_deadline(at("2026-11-25T10:00:00Z"), days, 1) * 1000, out);
    CU_ASSERT_STRING_EQUAL(out, "2026-11-27T10:00:00.000Z");
    /* Friday to Monday */
    pa_instant_format((int64_t)pa_business_deadline(at("2026-11-27T15:30:00Z"), NULL, 0) * 1000, out);
    CU_ASSERT_STRING_EQUAL(out, "2026-11-30T15:30:00.000Z");
    /* asked on Saturday or Sunday: all of Monday */
    pa_instant_format((int64_t)pa_business_deadline(at("2026-11-28T10:00:00Z"), NULL, 0) * 1000, out);
    CU_ASSERT_STRING_EQUAL(out, "2026-12-01T00:00:00.000Z");
    pa_instant_format((int64_t)pa_business_deadline(at("2026-11-29T23:59:59Z"), NULL, 0) * 1000, out);
    CU_ASSERT_STRING_EQUAL(out, "2026-12-01T00:00:00.000Z");
    /* asked on a holiday (Christmas, a Friday): all of Monday */
    CU_ASSERT_EQUAL(pa_parse_day_list("2026-12-25", days, 4), 1);
    pa_instant_format((int64_t)pa_business_deadline(at("2026-12-25T09:00:00Z"), days, 1) * 1000, out);
    CU_ASSERT_STRING_EQUAL(out, "2026-12-29T00:00:00.000Z");
    /* local time: New York's clocks go forward on Sunday 8 March 2026;
     * Friday noon EST is Monday noon EDT, an hour earlier in UTC */
    setenv("TZ", "EST5EDT,M3.2.0,M11.1.0", 1);
    tzset();
    pa_instant_format((int64_t)pa_business_deadline(at("2026-03-06T17:00:00Z"), NULL, 0) * 1000, out);
    CU_ASSERT_STRING_EQUAL(out, "2026-03-09T16:00:00.000Z");
    unsetenv("TZ");
    tzset();
}

static void test_retry_after(void)
{
    pa_job job;

    memset(&job, 0, sizeof(job));
    job.created = 100000;
    /* no progress yet: 1 during the first max_seconds, then max_seconds */
    CU_ASSERT_EQUAL(pa_job_retry_after(&job, 100500, 2), 1);
    CU_ASSERT_EQUAL(pa_job_retry_after(&job, 103000, 2), 2);
    /* half done in 1 s: 1 s left */
    job.done = 5;
    job.total = 10;
    CU_ASSERT_EQUAL(pa_job_retry_after(&job, 101000, 5), 1);
    /* a tenth done in 1 s: 9 s left, capped at max_seconds */
    job.done = 1;
    CU_ASSERT_EQUAL(pa_job_retry_after(&job, 101000, 5), 5);
    CU_ASSERT_EQUAL(pa_job_retry_after(&job, 101000, 30), 9);
    /* 9 of 10 done in 0.9 s: under a second left, never 0 */
    job.done = 9;
    CU_ASSERT_EQUAL(pa_job_retry_after(&job, 100900, 2), 1);
    /* a clock behind the job, or progress past its total, never gives more than max_seconds */
    CU_ASSERT_EQUAL(pa_job_retry_after(&job, 0, 2), 1);
    job.done = 11;
    CU_ASSERT_EQUAL(pa_job_retry_after(&job, 200000, 2), 2);
}

/* The set holds each string once, grows past its first slots, walks what
 * it holds, and stops at its size without losing what it had. */
static void test_strset(void)
{
    pa_strset s;
    char key[32];
    size_t pos = 0, seen = 0;
    const char *str;
    int i, refused = 0;

    pa_strset_init(&s, 1 << 20);
    CU_ASSERT_FALSE(pa_strset_has(&s, "a", 1));
    for(i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof(key), "Encounter/e%d", i % 2500);

        refused += pa_strset_add(&s, key, (size_t)n) != PA_OK;
    }
    CU_ASSERT_EQUAL(refused, 0);
    CU_ASSERT_EQUAL(s.n, 2500);
    CU_ASSERT_TRUE(pa_strset_has(&s, "Encounter/e2499", 15));
    CU_ASSERT_FALSE(pa_strset_has(&s, "Encounter/e2500", 15));
    /* a prefix of a held string is not held */
    CU_ASSERT_FALSE(pa_strset_has(&s, "Encounter/e", 11));
    for(str = pa_strset_next(&s, &pos); str; str = pa_strset_next(&s, &pos))
        seen++;
    CU_ASSERT_EQUAL(seen, 2500);
    CU_ASSERT_EQUAL(pa_strset_add(&s, "x\0y", 3), PA_EINVAL);
    pa_strset_clear(&s);
    CU_ASSERT_EQUAL(s.n, 0);
    CU_ASSERT_FALSE(pa_strset_has(&s, "Encounter/e1", 12));
    pa_strset_free(&s);

    pa_strset_init(&s, 16);
    CU_ASSERT_EQUAL(pa_strset_add(&s, "0123456789", 10), PA_OK);
    CU_ASSERT_EQUAL(pa_strset_add(&s, "abcdefghij", 10), PA_ETOOBIG);
    CU_ASSERT_EQUAL(s.n, 1);
    CU_ASSERT_TRUE(pa_strset_has(&s, "0123456789", 10));
    CU_ASSERT_FALSE(pa_strset_has(&s, "abcdefghij", 10));
    CU_ASSERT_EQUAL(pa_strset_add(&s, "abc", 3), PA_OK);
    pa_strset_free(&s);
}

/* Every element of an array literal as PostgreSQL writes one, and no
 * element of a malformed one. */
static void test_pg_array(void)
{
    static const struct {
        const char *lit;
        const char *want; /* the elements joined with '|'; NULL: malformed */
    } cases[] = {
        { "{}", "" },
        { "{ref=Practitioner/p1,Encounter/e-1}", "ref=Practitioner/p1|Encounter/e-1" },
        { "{\"a,b\",\"c \\\"d\\\\\",NULL,\"NULL\",\"\"}", "a,b|c \"d\\|NULL|" },
        { "{NULL}", "" },
        { "{nuLL,x}", "x" },
        { "", NULL },
        { "{", NULL },
        { "{a", NULL },
        { "{a,}", NULL },
        { "{,a}", NULL },
        { "{a{b}", NULL },
        { "{{a}}", NULL },
        { "{\"a}", NULL },
        { "{\"a\"b}", NULL },
        { "{\"a\\", NULL },
        { "{a\"b}", NULL },
        { "x{a}", NULL },
    };
    pa_buf item, got;
    size_t i;

    pa_buf_init(&item, 64);
    pa_buf_init(&got, 1024);
    for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *p = cases[i].lit;
        int k;

        pa_buf_reset(&got);
        for(;;) {
            k = pa_pgarray_next(&p, &item);
            if(k <= 0)
                break;
            if(got.len)
                pa_buf_addstr(&got, "|");
            pa_buf_add(&got, pa_buf_str(&item), item.len);
        }
        if(cases[i].want) {
            CU_ASSERT_EQUAL(k, 0);
            CU_ASSERT_STRING_EQUAL(pa_buf_str(&got), cases[i].want);
            /* the end stays the end */
            CU_ASSERT_EQUAL(pa_pgarray_next(&p, &item), 0);
        }
        else
            CU_ASSERT_EQUAL(k, -1);
        if(cases[i].want ? k != 0 || strcmp(pa_buf_str(&got), cases[i].want) : k != -1)
            fprintf(stderr, "array literal case %zu (%s) failed\n", i, cases[i].lit);
    }
    /* an element larger than item's maximum is refused */
    {
        const char *p = "{0123456789012345678901234567890123456789012345678901234567890123456789}";

        CU_ASSERT_EQUAL(pa_pgarray_next(&p, &item), -1);
    }
    pa_buf_free(&item);
    pa_buf_free(&got);
}

/* The job file layout: paths and URLs built from the config, a URL split
 * back into job and name, and a name from a URL checked before it reaches
 * the file system. */
static void test_jobfiles(void)
{
    static const char id[] = "0123456789abcdef0123456789abcdef";
    pa_config cfg;
    char out[256];
    char small[24];
    const char *jid, *name;
    size_t n;

    memset(&cfg, 0, sizeof(cfg));
    cfg.data_dir = (char *)"/var/lib/pa";
    cfg.base_url = (char *)"https://payer.example/fhir";
    CU_ASSERT_EQUAL(pa_jobfiles_dir(&cfg, id, out, sizeof(out)), PA_OK);
    CU_ASSERT_STRING_EQUAL(out, "/var/lib/pa/jobs/0123456789abcdef0123456789abcdef");
    CU_ASSERT_EQUAL(pa_jobfiles_path(&cfg, id, "Patient-1.ndjson", out, sizeof(out)), PA_OK);
    CU_ASSERT_STRING_EQUAL(out, "/var/lib/pa/jobs/0123456789abcdef0123456789abcdef/Patient-1.ndjson");
    CU_ASSERT_EQUAL(pa_jobfiles_request(&cfg, id, out, sizeof(out)), PA_OK);
    CU_ASSERT_STRING_EQUAL(out, "/var/lib/pa/requests/0123456789abcdef0123456789abcdef.json");
    CU_ASSERT_EQUAL(pa_jobfiles_url(&cfg, id, "Patient-1.ndjson", out, sizeof(out)), PA_OK);
    CU_ASSERT_STRING_EQUAL(out,
                           "https://payer.example/fhir/bulkfiles/0123456789abcdef0123456789abcdef/Patient-1.ndjson");
    /* what does not fit is refused, never cut */
    CU_ASSERT_EQUAL(pa_jobfiles_dir(&cfg, id, small, sizeof(small)), PA_ETOOBIG);
    CU_ASSERT_STRING_EQUAL(small, "");
    CU_ASSERT_EQUAL(pa_jobfiles_name("Claim", 0, 2, out, sizeof(out)), PA_OK);
    CU_ASSERT_STRING_EQUAL(out, "Claim-2.ndjson");
    CU_ASSERT_EQUAL(pa_jobfiles_name("Claim", 3, 1, out, sizeof(out)), PA_OK);
    CU_ASSERT_STRING_EQUAL(out, "Claim-3-1.ndjson");
    /* a URL splits back into job and name, whatever its base */
    CU_ASSERT_EQUAL(pa_jobfiles_url_split("http://other:9/x/bulkfiles/abc/Claim-3-1.ndjson", &jid, &n, &name), PA_OK);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(strncmp(jid, "abc", 3), 0);
    CU_ASSERT_STRING_EQUAL(name, "Claim-3-1.ndjson");
    CU_ASSERT_EQUAL(pa_jobfiles_url_split("http://h/files/abc/Claim-1.ndjson", &jid, &n, &name), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_jobfiles_url_split("http://h/bulkfiles//Claim-1.ndjson", &jid, &n, &name), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_jobfiles_url_split("Claim-1.ndjson", &jid, &n, &name), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_jobfiles_url_split("/bulkfiles/abc", &jid, &n, &name), PA_EINVAL);
    CU_ASSERT_TRUE(pa_jobfiles_name_ok("Patient-1.ndjson"));
    CU_ASSERT_TRUE(pa_jobfiles_name_ok("OperationOutcome-2-1.ndjson"));
    CU_ASSERT_FALSE(pa_jobfiles_name_ok(".ndjson"));
    CU_ASSERT_FALSE(pa_jobfiles_name_ok(".hidden.ndjson"));
    CU_ASSERT_FALSE(pa_jobfiles_name_ok("../x.ndjson"));
    CU_ASSERT_FALSE(pa_jobfiles_name_ok("a/b.ndjson"));
    CU_ASSERT_FALSE(pa_jobfiles_name_ok("Patient-1.json"));
    CU_ASSERT_FALSE(pa_jobfiles_name_ok("Patient 1.ndjson"));
    memset(out, 'a', 121);
    memcpy(out + 121, ".ndjson", 8);
    CU_ASSERT_FALSE(pa_jobfiles_name_ok(out));
    out[120] = '\0';
    memcpy(out + 120, ".ndjson", 8);
    CU_ASSERT_TRUE(pa_jobfiles_name_ok(out));
}

/* A manifest built for a job lists each file where the responder finds it
 * again, by job and name, even under another base URL. */
static void test_manifest(void)
{
    static const char id[] = "0123456789abcdef0123456789abcdef";
    json_object *output = json_object_new_array();
    json_object *deleted = json_object_new_array();
    json_object *error = json_object_new_array();
    pa_manifest_list list = PA_MANIFEST_OUTPUT;
    pa_config cfg;
    pa_job job;
    char *manifest = NULL;
    char type[64];
    pa_err err;

    memset(&cfg, 0, sizeof(cfg));
    memset(&job, 0, sizeof(job));
    cfg.data_dir = (char *)"/var/lib/pa";
    cfg.base_url = (char *)"https://old.example/fhir";
    pa_strlcpy(job.id, id, sizeof(job.id));
    job.request = (char *)"https://old.example/fhir/Group/g1/$davinci-data-export";
    job.ttime = 1700000000000;
    CU_ASSERT_EQUAL(pa_manifest_add_file(output, &cfg, id, "Claim", "Claim-1.ndjson", 7, &err), PA_OK);
    CU_ASSERT_EQUAL(pa_manifest_add_file(deleted, &cfg, id, "Bundle", "Bundle-1.ndjson", 1, &err), PA_OK);
    CU_ASSERT_EQUAL(pa_manifest_add_file(error, &cfg, id, "OperationOutcome", "OperationOutcome-1.ndjson", 2, &err),
                    PA_OK);
    /* a list that could not be made is an error, not a crash */
    CU_ASSERT_EQUAL(pa_manifest_add_file(NULL, &cfg, id, "Claim", "Claim-9.ndjson", 1, &err), PA_ENOMEM);
    CU_ASSERT_EQUAL(pa_manifest_build(&job, output, deleted, error, &manifest, &err), PA_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(manifest);
    CU_ASSERT_PTR_NOT_NULL(strstr(manifest, "\"url\":\"https://old.example/fhir/bulkfiles/"
                                            "0123456789abcdef0123456789abcdef/Claim-1.ndjson\",\"count\":7"));
    CU_ASSERT_PTR_NOT_NULL(strstr(manifest, "\"transactionTime\":\"2023-11-14T22:13:20"));
    CU_ASSERT_EQUAL(pa_manifest_find(manifest, id, "Claim-1.ndjson", &list, type, sizeof(type)), PA_OK);
    CU_ASSERT_EQUAL(list, PA_MANIFEST_OUTPUT);
    CU_ASSERT_STRING_EQUAL(type, "Claim");
    CU_ASSERT_EQUAL(pa_manifest_find(manifest, id, "Bundle-1.ndjson", &list, type, sizeof(type)), PA_OK);
    CU_ASSERT_EQUAL(list, PA_MANIFEST_DELETED);
    CU_ASSERT_STRING_EQUAL(type, "Bundle");
    CU_ASSERT_EQUAL(pa_manifest_find(manifest, id, "OperationOutcome-1.ndjson", &list, type, sizeof(type)), PA_OK);
    CU_ASSERT_EQUAL(list, PA_MANIFEST_ERROR);
    /* not listed: another name, another job, a prefix of a name */
    CU_ASSERT_EQUAL(pa_manifest_find(manifest, id, "Claim-2.ndjson", &list, type, sizeof(type)), PA_ENOTFOUND);
    CU_ASSERT_EQUAL(
        pa_manifest_find(manifest, "0123456789abcdef0123456789abcdee", "Claim-1.ndjson", &list, type, sizeof(type)),
        PA_ENOTFOUND);
    CU_ASSERT_EQUAL(pa_manifest_find(manifest, "0123456789abcdef", "Claim-1.ndjson", &list, type, sizeof(type)),
                    PA_ENOTFOUND);
    CU_ASSERT_EQUAL(pa_manifest_find("{\"output\":[", id, "Claim-1.ndjson", &list, type, sizeof(type)), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_manifest_find("[]", id, "Claim-1.ndjson", &list, type, sizeof(type)), PA_EINVAL);
    free(manifest);
}

int main(void)
{
    static const struct cu_test tests[] = {
        { "one business day, in the payer's time zone", test_business_deadline },
        { "buffer keeps its maximum", test_buf_limit },
        { "instants read as PostgreSQL reads them", test_instant_pg_micros },
        { "buffer escapes JSON strings", test_buf_json_string },
        { "config applies defaults", test_config_defaults },
        { "config errors name the key", test_config_errors },
        { "config missing file names the path", test_config_missing_file },
        { "config sources: defaults, what each auth needs, typos", test_config_sources },
        { "URLs for the HTTP client", test_url_parse },
        { "HTTP responses framed every way, and malformed", test_httpc_response },
        { "JWT client assertions signed (RS384, ES384)", test_jwt_sign },
        { "Accept negotiation", test_accept },
        { "media type comparison", test_media_type },
        { "query string parsing", test_query_parse },
        { "FHIR instants", test_instant },
        { "OperationOutcome and error mapping", test_outcome_and_errors },
        { "ids", test_ids },
        { "JSON walked in place, strictly", test_json_walk },
        { "JSON members and elements visited", test_json_visit },
        { "JSON tapes: values in place, keys as json-c keeps them", test_json_tape },
        { "dates and instants to FHIR's grammar and calendar", test_dates },
        { "UTF-8 checked, never cut inside a character", test_utf8 },
        { "request JSON parsed strictly", test_json_parse },
        { "Retry-After follows a job's progress", test_retry_after },
        { "string sets: each string once, bounded", test_strset },
        { "PostgreSQL array literals read, malformed ones refused", test_pg_array },
        { "job files: paths, URLs and names, built and split", test_jobfiles },
        { "manifests: files listed, found again by job and name", test_manifest },
        { NULL, NULL },
    };

    return cu_run("common", tests);
}
