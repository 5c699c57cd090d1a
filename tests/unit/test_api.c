/*
 * Unit tests of the responder's routing and of the checks its handlers make
 * before touching PostgreSQL.  Tokens are real: issued into a throwaway
 * Redis this program starts on a free port, and looked up by the router as
 * in production.  The paths that need PostgreSQL are covered by the
 * integration tests.
 */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "cu_main.h"
#include "pa_auth.h"
#include "pa_fhir.h"
#include "pa_match.h"

static pa_config *cfg;
static pa_redis *redis; /* the throwaway Redis, shared by every test's context */
static pid_t redis_pid;
static char redis_dir[] = "/tmp/pa-test-api.XXXXXX";
static char bearer[PA_TOKEN_LEN + 8]; /* "Bearer <token>": client-a, every type read */
static const char *authorization;     /* what call() sends: make_ctx sets bearer */

struct call {
    pa_req req;
    pa_resp resp;
    json_object *json;
};

/* Runs one request through the router; the body, if any, is parsed. */
static void call(struct call *c, pa_ctx *ctx, const char *method, const char *path, const char *query,
                 const char *accept, const char *prefer, const char *content_type, const char *body)
{
    memset(&c->req, 0, sizeof(c->req));
    c->req.method = method;
    c->req.path = path;
    c->req.query = query ? query : "";
    c->req.accept = accept;
    c->req.prefer = prefer;
    c->req.content_type = content_type;
    c->req.body = body ? body : "";
    c->req.body_len = body ? strlen(body) : 0;
    c->req.script_name = "/fhir";
    /* a local client, as Apache tells it; TLS is tested in test_plain_http */
    c->req.remote_addr = "127.0.0.1";
    c->req.authorization = authorization;
    strcpy(c->req.request_id, "test");
    pa_resp_init(&c->resp);
    pa_api_handle(ctx, &c->req, &c->resp);
    c->json = json_tokener_parse(pa_buf_str(&c->resp.body));
}

static void done(struct call *c)
{
    json_object_put(c->json);
    pa_req_clear(&c->req);
    pa_resp_free(&c->resp);
}

static const char *jstr(json_object *o, const char *path)
{
    char key[64];
    const char *dot;

    while(o && (dot = strchr(path, '.'))) {
        snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
        if(!json_object_object_get_ex(o, key, &o))
            return NULL;
        path = dot + 1;
    }
    return o && json_object_object_get_ex(o, path, &o) ? json_object_get_string(o) : NULL;
}

static const char *issue_code(json_object *oo)
{
    json_object *issues;

    if(!oo || !json_object_object_get_ex(oo, "issue", &issues))
        return NULL;
    return jstr(json_object_array_get_idx(issues, 0), "code");
}

static pa_ctx make_ctx(void)
{
    pa_ctx ctx;

    memset(&ctx, 0, sizeof(ctx));
    ctx.cfg = cfg;
    ctx.client_id = "";
    ctx.redis = redis;
    authorization = bearer;
    return ctx;
}

/* "Bearer <token>" in out for a token of client-a with scope, issued into
 * the throwaway Redis as the token endpoint issues one. */
static int issue(const char *scope, char *out, size_t size)
{
    pa_token t;
    char token[PA_TOKEN_LEN + 1];
    pa_err err;

    memset(&t, 0, sizeof(t));
    strcpy(t.client_id, "client-a");
    strcpy(t.npi, "1234567893");
    snprintf(t.scope, sizeof(t.scope), "%s", scope);
    if(pa_token_issue(redis, &t, 300, token, &err))
        return -1;
    snprintf(out, size, "Bearer %s", token);
    return 0;
}

/* A TCP port nobody listens on now. */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if(fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) && !getsockname(fd, (struct sockaddr *)&a, &len))
        port = ntohs(a.sin_port);
    if(fd >= 0)
        close(fd);
    return port;
}

/* Starts redis-server on a free loopback port in a scratch folder, with the
 * configuration the tests use (cfg) pointing at it; waits until it answers. */
static int start_redis(void)
{
    char conf[512], port_s[16];
    const struct timespec pause = { 0, 50 * 1000000L };
    pa_err err;
    int port = free_port(), i;

    if(port < 0 || !mkdtemp(redis_dir))
        return -1;
    snprintf(port_s, sizeof(port_s), "%d", port);
    redis_pid = fork();
    if(redis_pid == 0) {
        /* a test that crashes takes its Redis with it */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execlp("redis-server", "redis-server", "--port", port_s, "--bind", "127.0.0.1", "--dir", redis_dir, "--save",
               "", "--appendonly", "no", "--logfile", "redis.log", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    if(redis_pid < 0)
        return -1;
    snprintf(conf, sizeof(conf),
             "base_url = http://127.0.0.1:8080/fhir\ndata_dir = /tmp/x\npg_conninfo = x\nredis_port = %d\n", port);
    if(pa_config_parse(conf, "test.conf", &cfg, &err))
        return -1;
    for(i = 0; i < 100; i++) {
        if(pa_redis_open(cfg, &redis, &err) == PA_OK)
            return 0;
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "redis-server on port %d did not answer: %s\n", port, err.msg);
    return -1;
}

static void stop_redis(void)
{
    char path[128];

    pa_redis_free(redis);
    if(redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
    }
    snprintf(path, sizeof(path), "%s/dump.rdb", redis_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/redis.log", redis_dir);
    unlink(path);
    rmdir(redis_dir);
}

static void test_metadata(void)
{
    pa_ctx ctx = make_ctx();
    struct call c;

    call(&c, &ctx, "GET", "/metadata", NULL, "application/fhir+json", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 200);
    CU_ASSERT_STRING_EQUAL(c.resp.content_type, "application/fhir+json");
    CU_ASSERT_STRING_EQUAL(jstr(c.json, "resourceType"), "CapabilityStatement");
    CU_ASSERT_STRING_EQUAL(jstr(c.json, "fhirVersion"), "4.0.1");
    CU_ASSERT_STRING_EQUAL(jstr(c.json, "implementation.url"), "http://127.0.0.1:8080/fhir");
    CU_ASSERT_PTR_NOT_NULL(strstr(pa_buf_str(&c.resp.body), "group-export"));
    done(&c);
    /* the document is kept between requests, but never past a change of
     * base_url: another configuration gets its own */
    {
        pa_config other = *cfg;
        pa_ctx ctx2 = make_ctx();
        char body[16384];

        call(&c, &ctx, "GET", "/metadata", NULL, NULL, NULL, NULL, NULL);
        snprintf(body, sizeof(body), "%s", pa_buf_str(&c.resp.body));
        done(&c);
        other.base_url = (char *)"https://payer.example/fhir";
        ctx2.cfg = &other;
        call(&c, &ctx2, "GET", "/metadata", NULL, NULL, NULL, NULL, NULL);
        CU_ASSERT_STRING_EQUAL(jstr(c.json, "implementation.url"), "https://payer.example/fhir");
        CU_ASSERT_PTR_NOT_NULL(strstr(pa_buf_str(&c.resp.body), "https://payer.example/fhir/auth/token"));
        done(&c);
        call(&c, &ctx, "GET", "/metadata", NULL, NULL, NULL, NULL, NULL);
        CU_ASSERT_STRING_EQUAL(pa_buf_str(&c.resp.body), body);
        done(&c);
    }
}

static void test_negotiation(void)
{
    pa_ctx ctx = make_ctx();
    struct call c;

    call(&c, &ctx, "GET", "/metadata", NULL, "application/fhir+xml", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 406);
    CU_ASSERT_STRING_EQUAL(jstr(c.json, "resourceType"), "OperationOutcome");
    done(&c);
    call(&c, &ctx, "GET", "/metadata", "_format=xml", NULL, NULL, NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 406);
    done(&c);
    call(&c, &ctx, "GET", "/metadata", "_format=json", "*/*", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 200);
    done(&c);
}

static void test_smart_config(void)
{
    pa_ctx ctx = make_ctx();
    struct call c;

    /* SMART: application/json whatever Accept says */
    call(&c, &ctx, "GET", "/.well-known/smart-configuration", NULL, "text/html", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 200);
    CU_ASSERT_STRING_EQUAL(c.resp.content_type, "application/json");
    CU_ASSERT_STRING_EQUAL(jstr(c.json, "token_endpoint"), "http://127.0.0.1:8080/fhir/auth/token");
    CU_ASSERT_PTR_NOT_NULL(strstr(pa_buf_str(&c.resp.body), "client-confidential-asymmetric"));
    done(&c);
}

static void test_not_found_and_method(void)
{
    pa_ctx ctx = make_ctx();
    struct call c;

    call(&c, &ctx, "GET", "/Nothing/here", NULL, NULL, NULL, NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 404);
    CU_ASSERT_STRING_EQUAL(issue_code(c.json), "not-found");
    done(&c);
    call(&c, &ctx, "DELETE", "/metadata", NULL, NULL, NULL, NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 405);
    CU_ASSERT_PTR_NOT_NULL(strstr(pa_buf_str(&c.resp.headers), "Allow: GET, HEAD"));
    done(&c);
    call(&c, &ctx, "PUT", "/bulkstatus/abc", NULL, NULL, NULL, NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 405);
    CU_ASSERT_PTR_NOT_NULL(strstr(pa_buf_str(&c.resp.headers), "DELETE"));
    done(&c);
    call(&c, &ctx, "GET", "/metadata", "a=%zz", NULL, NULL, NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 400);
    done(&c);
}

static void test_broken_config_answers_503(void)
{
    pa_ctx ctx = make_ctx();
    struct call c;

    ctx.cfg = NULL;
    pa_err_set(&ctx.cfg_err, PA_ECONFIG, "t.conf: required key base_url is missing");
    call(&c, &ctx, "GET", "/metadata", NULL, NULL, NULL, NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 503);
    CU_ASSERT_STRING_EQUAL(issue_code(c.json), "transient");
    CU_ASSERT_PTR_NOT_NULL(strstr(pa_buf_str(&c.resp.body), "configuration error"));
    /* the file and key are for the operator's log, not for the caller */
    CU_ASSERT_PTR_NULL(strstr(pa_buf_str(&c.resp.body), "t.conf"));
    done(&c);
}

/* GET /metadata from addr, over TLS when https is "on". */
static void call_from(struct call *c, pa_ctx *ctx, const char *addr, const char *https)
{
    memset(&c->req, 0, sizeof(c->req));
    c->req.method = "GET";
    c->req.path = "/metadata";
    c->req.query = "";
    c->req.remote_addr = addr;
    c->req.https = https;
    strcpy(c->req.request_id, "test");
    pa_resp_init(&c->resp);
    pa_api_handle(ctx, &c->req, &c->resp);
    c->json = json_tokener_parse(pa_buf_str(&c->resp.body));
}

/* Plain HTTP from anywhere but loopback is refused with the URL to use. */
static void test_plain_http(void)
{
    pa_ctx ctx = make_ctx();
    pa_config *tls = NULL;
    pa_err err;
    struct call c;

    CU_ASSERT_EQUAL_FATAL(pa_config_parse("base_url = https://fhir.example.org/fhir\ndata_dir = /tmp/x\n"
                                          "pg_conninfo = x\n",
                                          "t", &tls, &err),
                          PA_OK);
    ctx.cfg = tls;
    call_from(&c, &ctx, "192.0.2.7", NULL);
    CU_ASSERT_EQUAL(c.resp.status, 403);
    CU_ASSERT_STRING_EQUAL(issue_code(c.json), "security");
    CU_ASSERT_PTR_NOT_NULL(strstr(pa_buf_str(&c.resp.body), "https://fhir.example.org/fhir/metadata"));
    done(&c);
    /* over TLS it is served; so is plain HTTP from loopback (health checks) */
    call_from(&c, &ctx, "192.0.2.7", "on");
    CU_ASSERT_EQUAL(c.resp.status, 200);
    done(&c);
    call_from(&c, &ctx, "::ffff:127.0.0.1", NULL);
    CU_ASSERT_EQUAL(c.resp.status, 200);
    done(&c);
    ctx.redis = NULL; /* the shared connection stays open for the other tests */
    pa_ctx_close(&ctx);
    pa_config_free(tls);
}

/* Kick-off checks answered before any server is asked. */
static void test_kickoff_rejections(void)
{
    static const struct {
        const char *method, *query, *accept, *prefer, *ctype, *body;
        int status;
        const char *needle;
    } cases[] = {
        { "GET", NULL, NULL, "respond-async", NULL, NULL, 400, "Accept" },
        { "GET", NULL, "application/xml", "respond-async", NULL, NULL, 406, "Accept" },
        { "GET", NULL, "application/fhir+json", NULL, NULL, NULL, 400, "respond-async" },
        { "GET", "_outputFormat=text/html", "application/fhir+json", "respond-async", NULL, NULL, 400,
          "_outputFormat" },
        { "GET", "_type=Patient,Bogus", "application/fhir+json", "respond-async", NULL, NULL, 400, "Bogus" },
        { "GET", "_since=yesterday", "application/fhir+json", "respond-async", NULL, NULL, 400, "_since" },
        { "GET", "_since=2999-01-01T00:00:00Z", "application/fhir+json", "respond-async", NULL, NULL, 400, "future" },
        { "GET", "_since=2020-01-01T00:00:00Z&_since=2021-01-01T00:00:00Z", "application/fhir+json", "respond-async",
          NULL, NULL, 400, "twice" },
        { "GET", "_typeFilter=Patient%3Ftelecom%3Dx", "application/fhir+json", "respond-async", NULL, NULL, 400,
          "_typeFilter" },
        { "POST", NULL, "application/fhir+json", "respond-async", "text/plain", "x", 415, "Parameters" },
        { "POST", NULL, "application/fhir+json", "respond-async", "application/fhir+json", "{nope", 400, "JSON" },
        { "POST", NULL, "application/fhir+json", "respond-async", "application/fhir+json",
          "{\"resourceType\":\"Patient\"}", 400, "Parameters" },
        { "POST", NULL, "application/fhir+json", "respond-async", "application/fhir+json",
          "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"_type\",\"valueString\":\"Claim\"}]}", 400,
          "Claim" },
        { "POST", NULL, "application/fhir+json", "respond-async", "application/fhir+json",
          "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"_type\"}]}", 400, "no value" },
    };
    pa_ctx ctx = make_ctx();
    size_t i;

    for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct call c;

        call(&c, &ctx, cases[i].method, "/Group/g1/$export", cases[i].query, cases[i].accept, cases[i].prefer,
             cases[i].ctype, cases[i].body);
        CU_ASSERT_EQUAL(c.resp.status, cases[i].status);
        CU_ASSERT_STRING_EQUAL(jstr(c.json, "resourceType"), "OperationOutcome");
        CU_ASSERT_PTR_NOT_NULL(strstr(pa_buf_str(&c.resp.body), cases[i].needle));
        done(&c);
    }
}

static void test_token_required(void)
{
    pa_ctx ctx = make_ctx();
    struct call c;

    authorization = NULL;
    call(&c, &ctx, "GET", "/Group/g1/$export", NULL, "application/fhir+json", "respond-async", NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 401);
    CU_ASSERT_STRING_EQUAL(issue_code(c.json), "login");
    CU_ASSERT_PTR_NOT_NULL(strstr(pa_buf_str(&c.resp.headers), "WWW-Authenticate: Bearer"));
    done(&c);
    call(&c, &ctx, "GET", "/bulkstatus/abc", NULL, NULL, NULL, NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 401);
    done(&c);
    /* discovery stays open */
    call(&c, &ctx, "GET", "/metadata", NULL, NULL, NULL, NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(pa_buf_str(&c.resp.body), "http://127.0.0.1:8080/fhir/auth/token"));
    done(&c);
    /* a token Redis does not have is unknown */
    authorization = "Bearer 0000000000000000000000000000000000000000000000000000000000000000";
    call(&c, &ctx, "GET", "/Group/g1/$export", NULL, "application/fhir+json", "respond-async", NULL, NULL);
    CU_ASSERT_EQUAL(c.resp.status, 401);
    CU_ASSERT_PTR_NOT_NULL(strstr(pa_buf_str(&c.resp.body), "unknown or has expired"));
    done(&c);
    {
        char narrow[PA_TOKEN_LEN + 8];

        ctx = make_ctx();
        CU_ASSERT_EQUAL_FATAL(issue("system/Observation.rs", narrow, sizeof(narrow)), 0);
        authorization = narrow;
        call(&c, &ctx, "GET", "/Group/g1/$export", NULL, "application/fhir+json", "respond-async", NULL, NULL);
        CU_ASSERT_EQUAL(c.resp.status, 403);
        CU_ASSERT_STRING_EQUAL(issue_code(c.json), "forbidden");
        done(&c);
    }
}

static void test_token_request_checks(void)
{
    static const struct {
        const char *ctype, *body;
        int status;
        const char *error;
    } cases[] = {
        { "application/json", "{}", 400, "invalid_request" },
        { "application/x-www-form-urlencoded", "scope=system%2F*.read", 400, "invalid_request" },
        { "application/x-www-form-urlencoded", "grant_type=password", 400, "unsupported_grant_type" },
        { "application/x-www-form-urlencoded",
          "grant_type=client_credentials&client_assertion_type=x&client_assertion=y", 401, "invalid_client" },
        { "application/x-www-form-urlencoded", "grant_type=client_credentials&grant_type=client_credentials", 400,
          "invalid_request" },
        { "application/x-www-form-urlencoded",
          "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=not.a",
          400, "invalid_request" },
    };
    pa_ctx ctx = make_ctx();
    size_t i;

    authorization = NULL;
    for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct call c;

        call(&c, &ctx, "POST", "/auth/token", NULL, NULL, NULL, cases[i].ctype, cases[i].body);
        CU_ASSERT_EQUAL(c.resp.status, cases[i].status);
        CU_ASSERT_STRING_EQUAL(c.resp.content_type, "application/json");
        CU_ASSERT_STRING_EQUAL(jstr(c.json, "error"), cases[i].error);
        done(&c);
    }
}

static void test_request_url(void)
{
    pa_ctx ctx = make_ctx();
    pa_req req;
    char *url;

    memset(&req, 0, sizeof(req));
    req.path = "/Group/1/$export";
    req.script_name = "/fhir";
    req.request_uri = "/fhir/Group/1/%24export?_type=Patient";
    url = pa_api_request_url(&ctx, &req);
    CU_ASSERT_STRING_EQUAL(url, "http://127.0.0.1:8080/fhir/Group/1/%24export?_type=Patient");
    free(url);
}

/* The kick-off's check without parsing (pa_match_check) refuses what
 * pa_match_parse refuses, with the same code and words, and counts the
 * members it counts; it also checks the dates (check_only), which the parse
 * leaves to it: the runner parses only requests the check accepted. */
static void test_match_check(void)
{
    static const struct {
        const char *body;
        int rc;
        const char *says;
        int check_only;
    } cases[] = {
        { "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"MemberBundle\",\"part\":[]},"
          "{\"part\":[{\"name\":\"x\"}],\"name\":\"MemberBundle\"}]}",
          PA_OK, NULL, 0 },
        { "{\"resourceType\":\"Parameters\",\"parameter\":[]}", PA_EINVAL, "no MemberBundle", 0 },
        { "{\"resourceType\":\"Bundle\",\"parameter\":[]}", PA_EINVAL, "must be a Parameters resource", 0 },
        { "{\"resourceType\":\"Parameters\"}", PA_EINVAL, "must be a Parameters resource", 0 },
        { "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"MemberBundle\"},{\"name\":\"Other\"}]}",
          PA_EINVAL, "parameter 1 ('Other') is not a MemberBundle", 0 },
        { "{\"resourceType\":\"Parameters\",\"parameter\":[1]}", PA_EINVAL, "parameter 0 ('') is not a MemberBundle",
          0 },
        { "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"MemberBundle\"},{\"name\":\"MemberBundle\"},"
          "{\"name\":\"MemberBundle\"}]}",
          PA_ETOOBIG, "3 members; the limit is 2", 0 },
        { "{\"resourceType\":\"Parameters\",", PA_EINVAL, "not valid JSON", 0 },
        { "", PA_EINVAL, "not valid JSON", 0 },
        /* a text that is an array (found by fuzzing: the check read a NULL key) */
        { "[\"resourceType\",{\"parameter\":[]}]", PA_EINVAL, "must be a Parameters resource", 0 },
        /* dates are checked before anything reads them */
        { "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"MemberBundle\",\"part\":[{\"name\":"
          "\"MemberPatient\",\"resource\":{\"birthDate\":\"1970-02-30\"}}]}]}",
          PA_EINVAL, "parameter 0 (MemberBundle): MemberPatient.birthDate '1970-02-30' is not a FHIR date", 1 },
        { "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"MemberBundle\"},{\"name\":\"MemberBundle\","
          "\"part\":[{\"name\":\"Consent\",\"resource\":{\"provision\":{\"period\":{\"end\":7}}}}]}]}",
          PA_EINVAL, "parameter 1 (MemberBundle): Consent.provision.period.end '(not a string)' is not a FHIR dateTime",
          1 },
        { "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"MemberBundle\",\"part\":[{\"name\":"
          "\"Consent\",\"resource\":{\"provision\":{\"period\":{\"start\":\"2024-02-29T08:00:00-05:00\"}}}}]},"
          "{\"name\":\"MemberBundle\"}]}",
          PA_OK, NULL, 0 },
    };
    size_t i;

    for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long n = -1;
        pa_err err;

        json_object *parsed = NULL;
        long parsed_n = -1;
        pa_err perr;

        pa_err_clear(&err);
        pa_err_clear(&perr);
        CU_ASSERT_EQUAL(pa_match_check(cases[i].body, strlen(cases[i].body), 2, &n, &err), cases[i].rc);
        if(cases[i].says) {
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, cases[i].says));
        }
        else {
            CU_ASSERT_EQUAL(n, 2);
        }
        if(cases[i].check_only)
            continue;
        CU_ASSERT_EQUAL(pa_match_parse(cases[i].body, 2, &parsed, &parsed_n, &perr), cases[i].rc);
        json_object_put(parsed);
        if(cases[i].says) {
            CU_ASSERT_PTR_NOT_NULL(strstr(perr.msg, cases[i].says));
        }
        else {
            CU_ASSERT_EQUAL(parsed_n, 2);
        }
        if(cases[i].says && (!strstr(err.msg, cases[i].says) || !strstr(perr.msg, cases[i].says)))
            fprintf(stderr, "match check case %zu: check says '%s', parse says '%s'\n", i, err.msg, perr.msg);
    }
}

/* Members the request itself rules out (no query): NonMatched, each
 * submitted Patient echoed once under an id unique in the Group. */
static void test_match_echo_ids(void)
{
    static const char bundle[] =
        "{\"name\":\"MemberBundle\",\"part\":[{\"name\":\"MemberPatient\",\"resource\":"
        "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"name\":[{\"family\":\"Doe\",\"given\":[\"J\"]}],"
        "\"birthDate\":\"1970-01-01\",\"gender\":\"female\"}}]}";
    const char *ids[] = { "p", "p", "p-2", "p", "q" };
    const char *want[] = { "p", "p-2", "p-2-2", "p-3", "q" };
    char one[512];
    pa_buf body;
    json_object *params = NULL, *contained, *members;
    pa_match_in in = { NULL, cfg, "1234567893", "", "g1" };
    pa_match_out out;
    long n = 0;
    size_t i;
    pa_err err;

    pa_buf_init(&body, 1 << 16);
    pa_buf_addstr(&body, "{\"resourceType\":\"Parameters\",\"parameter\":[");
    for(i = 0; i < 5; i++) {
        snprintf(one, sizeof(one), bundle, ids[i]);
        pa_buf_printf(&body, "%s%s", i ? "," : "", one);
    }
    pa_buf_addstr(&body, "]}");
    CU_ASSERT_EQUAL_FATAL(pa_match_parse(pa_buf_str(&body), 10, &params, &n, &err), PA_OK);
    pa_buf_free(&body);
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL_FATAL(pa_match_run(&in, params, &out, &err), PA_OK);
    CU_ASSERT_EQUAL(out.n_matched, 0);
    CU_ASSERT_EQUAL(out.n_nonmatched, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out.nonmatched);
    contained = pa_json_get(out.nonmatched, "contained");
    members = pa_json_get(out.nonmatched, "member");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(contained), 5);
    for(i = 0; i < 5; i++) {
        char ref[32];
        json_object *entity = pa_json_get(json_object_array_get_idx(members, i), "entity");

        CU_ASSERT_STRING_EQUAL(pa_json_str(json_object_array_get_idx(contained, i), "id"), want[i]);
        snprintf(ref, sizeof(ref), "#%s", want[i]);
        CU_ASSERT_STRING_EQUAL(pa_json_str(entity, "reference"), ref);
    }
    /* unique: no two contained Patients share an id */
    for(i = 0; i < 5; i++) {
        size_t j;

        for(j = i + 1; j < 5; j++)
            CU_ASSERT_STRING_NOT_EQUAL(pa_json_str(json_object_array_get_idx(contained, i), "id"),
                                       pa_json_str(json_object_array_get_idx(contained, j), "id"));
    }
    /* each member's disclosure record: its place, what was sent, what the caller was told and why */
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(out.outcomes), 5);
    for(i = 0; i < 5; i++) {
        json_object *o = json_object_array_get_idx(out.outcomes, i);

        CU_ASSERT_EQUAL(json_object_get_int(pa_json_get(o, "entry")), (int)i + 1);
        CU_ASSERT_STRING_EQUAL(pa_json_str(o, "submitted"), ids[i]);
        CU_ASSERT_PTR_NULL(pa_json_str(o, "patient_id"));
        CU_ASSERT_STRING_EQUAL(pa_json_str(o, "outcome"), "non-matched");
        CU_ASSERT_STRING_EQUAL(pa_json_str(o, "reason"), "bundle-incomplete");
    }
    CU_ASSERT_STRING_EQUAL(pa_match_reason_text("bundle-incomplete"),
                           "a MemberBundle needs MemberPatient, CoverageToMatch and Consent");
    CU_ASSERT_STRING_EQUAL(pa_match_reason_text("opted-out"), "the member opted out");
    CU_ASSERT_PTR_NULL(pa_match_reason_text("no-such-code"));
    CU_ASSERT_PTR_NULL(pa_match_reason_text(NULL));
    pa_match_out_free(&out);
    json_object_put(params);
}

/* A refusal's audit reason: the diagnostics, quoted values masked; a reason
 * already there is kept; an answer that is no OperationOutcome (or no JSON)
 * still gives one, and never crashes. */
static void test_audit_refusal(void)
{
    pa_ctx ctx = make_ctx();
    pa_resp resp;

    pa_resp_init(&resp);
    pa_resp_outcome(&resp, 400, "error", "invalid", "patient 'Patient/p1' is not a member of '%s'", "g1");
    pa_api_audit_refusal(&ctx, &resp, "refused");
    CU_ASSERT_STRING_EQUAL(ctx.audit.detail, "refused: patient '...' is not a member of '...'");
    pa_api_audit_refusal(&ctx, &resp, "again");
    CU_ASSERT_STRING_EQUAL(ctx.audit.detail, "refused: patient '...' is not a member of '...'");
    ctx.audit.detail[0] = '\0';
    pa_resp_text(&resp, 404, "text/plain", "not json");
    pa_api_audit_refusal(&ctx, &resp, "refused");
    CU_ASSERT_STRING_EQUAL(ctx.audit.detail, "refused: (no diagnostics)");
    ctx.audit.detail[0] = '\0';
    pa_resp_text(&resp, 400, "application/json", "{\"issue\":{\"diagnostics\":\"x\"}}");
    pa_api_audit_refusal(&ctx, &resp, "refused");
    CU_ASSERT_STRING_EQUAL(ctx.audit.detail, "refused: (no diagnostics)");
    ctx.audit.detail[0] = '\0';
    pa_resp_text(&resp, 200, "application/json", "{}");
    pa_api_audit_refusal(&ctx, &resp, "refused");
    CU_ASSERT_STRING_EQUAL(ctx.audit.detail, "");
    pa_resp_free(&resp);
}

int main(void)
{
    static const struct cu_test tests[] = {
        { "metadata is a CapabilityStatement", test_metadata },
        { "Accept and _format negotiation", test_negotiation },
        { "SMART configuration", test_smart_config },
        { "unknown path 404, wrong method 405", test_not_found_and_method },
        { "broken configuration answers 503", test_broken_config_answers_503 },
        { "plain HTTP refused but from loopback", test_plain_http },
        { "kick-off rejections", test_kickoff_rejections },
        { "request URL echoes the client's", test_request_url },
        { "a token is required, and its scope", test_token_required },
        { "token requests: RFC 6749 errors", test_token_request_checks },
        { "match: submitted Patients echoed under unique ids", test_match_echo_ids },
        { "match: the request checked without parsing it", test_match_check },
        { "a refusal's audit reason, quoted values masked", test_audit_refusal },
        { NULL, NULL },
    };
    int rc = 99;

    if(start_redis() == 0 && issue("system/*.read", bearer, sizeof(bearer)) == 0)
        rc = cu_run("api", tests);
    else
        fprintf(stderr, "test-api: cannot start a throwaway redis-server (is it installed?)\n");
    stop_redis();
    pa_config_free(cfg);
    return rc;
}
