/*
 * pa-admin sync SOURCE: the payer's data pulled from a FHIR server it runs
 * already, by a Bulk Data export, and loaded.
 *
 * 1. Kick-off: GET [base]/$export (or Patient/$export, Group/ID/$export)
 *    with _type and, after the first sync, _since the transactionTime of
 *    the last one (sync_source.transaction_time).  The status URL is
 *    recorded at once.
 * 2. Poll it, waiting as Retry-After says, up to --wait seconds; the
 *    manifest is recorded when it comes.
 * 3. Download its files (output, then deleted) with up to source.parallel
 *    connections, gzip accepted, each to a spool file as it arrives, no
 *    more than twice that many ahead of the loader; load each in order as
 *    soon as it is whole, recording it as loaded (a file whose Bundle
 *    entries wait for the end of the load is recorded then).
 * 4. Then, and only then, the transactionTime becomes the next sync's
 *    _since, and the export is deleted on the server.
 * An interrupted sync resumes where it stopped: the same export, the files
 * not loaded yet.  Tokens: none, a static bearer token, a client secret, or
 * a SMART Backend Services client assertion; a token refused mid-way is
 * fetched again once.
 */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "load.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_httpc.h"
#include "pa_jwt.h"
#include "pa_util.h"

#define TOKEN_MAX 8192
#define DOWNLOAD_TRIES 4
#define POLL_DEFAULT_S 2
#define POLL_MAX_S 120

#define MANIFEST_FILES_MAX 100000

struct file {
    char *url;
    char *path; /* its spool file */
    int state;  /* F_* */
    int tries;
    int status; /* the last HTTP status */
    char why[600];
};

enum { F_PENDING, F_RUNNING, F_DONE, F_FAILED, F_LOADED };

struct sync {
    const pa_config_source *src;
    PGconn *db;
    pa_httpc_opts http;
    char token[TOKEN_MAX]; /* "" = none */
    int with_token;        /* downloads carry it (requiresAccessToken) */
    /* the downloads */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct file *files;
    int nfiles;
    int window;  /* how far ahead of the loader downloads may go */
    int loading; /* the file the loader waits for */
    int stop;
    long long bytes;
    char spool[4096];
};

static int say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int say(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "pa-admin sync: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

/* application/x-www-form-urlencoded, unreserved characters kept. */
static int form_add(pa_buf *b, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = pa_buf_printf(b, "%s%s=", b->len ? "&" : "", name);

    for(; !rc && *value; value++) {
        unsigned char c = (unsigned char)*value;

        if((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c))
            rc = pa_buf_add(b, value, 1);
        else
            rc = pa_buf_printf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
    }
    return rc;
}

static int read_secret_file(const char *path, char *out, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if(!f)
        return say("cannot read %s: %s", path, strerror(errno));
    n = fread(out, 1, size - 1, f);
    fclose(f);
    out[n] = '\0';
    while(n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = '\0';
    if(!n || n == size - 1)
        return say("%s is empty or too long", path);
    return 0;
}

/* What an error answer says: an OperationOutcome's diagnostics, an OAuth
 * error, else the start of the body. */
static void answer_text(const pa_httpc_resp *r, char *out, size_t size)
{
    json_object *o = json_tokener_parse(pa_buf_str(&r->body)), *v;
    const char *t = NULL;

    if(o && json_object_object_get_ex(o, "issue", &v) && json_object_array_length(v) > 0) {
        json_object *issue = json_object_array_get_idx(v, 0), *d;

        if(json_object_object_get_ex(issue, "diagnostics", &d))
            t = json_object_get_string(d);
    }
    if(!t && o && json_object_object_get_ex(o, "error_description", &v))
        t = json_object_get_string(v);
    if(!t && o && json_object_object_get_ex(o, "error", &v))
        t = json_object_get_string(v);
    snprintf(out, size, "%.300s", t ? t : r->body.len ? pa_buf_str(&r->body) : "(no body)");
    json_object_put(o);
}

/* The token endpoint: configured, or from .well-known/smart-configuration. */
static int token_url(struct sync *s, char *out, size_t size)
{
    char url[4200];
    pa_httpc_resp r;
    pa_err err;
    json_object *o;
    int rc = 2;

    if(*s->src->token_url)
        return pa_strlcpy(out, s->src->token_url, size) ? say("token_url is too long") : 0;
    snprintf(url, sizeof(url), "%s/.well-known/smart-configuration", s->src->url);
    pa_httpc_resp_init(&r);
    if(pa_httpc_request("GET", url, (const char *[]){ "Accept: application/json", NULL }, NULL, 0, &s->http, NULL, NULL,
                        &r, &err)) {
        say("%s", err.msg);
        goto out;
    }
    o = json_tokener_parse(pa_buf_str(&r.body));
    if(r.status != 200 || !pa_json_str(o, "token_endpoint") || pa_strlcpy(out, pa_json_str(o, "token_endpoint"), size))
        say("no token_endpoint at %s (HTTP %d): set source.%s.token_url", url, r.status, s->src->name);
    else
        rc = 0;
    json_object_put(o);
out:
    pa_httpc_resp_free(&r);
    return rc;
}

/* The client assertion of SMART Backend Services, signed with the key. */
static int assertion(struct sync *s, const char *aud, char **out)
{
    unsigned char rnd[16];
    char jti[40];
    json_object *claims = json_object_new_object();
    pa_err err;
    int i, rc;

    if(RAND_bytes(rnd, sizeof(rnd)) != 1)
        return say("no random bytes for the assertion's jti");
    for(i = 0; i < 16; i++)
        snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
    json_object_object_add(claims, "iss", json_object_new_string(s->src->client_id));
    json_object_object_add(claims, "sub", json_object_new_string(s->src->client_id));
    json_object_object_add(claims, "aud", json_object_new_string(aud));
    json_object_object_add(claims, "exp", json_object_new_int64(pa_now_ms() / 1000 + 300));
    json_object_object_add(claims, "jti", json_object_new_string(jti));
    rc = pa_jwt_sign(s->src->key_file, s->src->kid, claims, out, &err);
    json_object_put(claims);
    return rc ? say("%s", err.msg) : 0;
}

/* A fresh access token in s->token (none for auth none). */
static int get_token(struct sync *s)
{
    char url[2048], secret[1024], basic[2200], *jwt = NULL;
    pa_buf form;
    pa_httpc_resp r;
    pa_err err;
    json_object *o;
    int rc = 2;

    s->token[0] = '\0';
    if(!strcmp(s->src->auth, "none"))
        return 0;
    if(!strcmp(s->src->auth, "bearer"))
        return read_secret_file(s->src->token_file, s->token, sizeof(s->token));
    if(token_url(s, url, sizeof(url)))
        return 2;
    pa_buf_init(&form, 65536);
    pa_httpc_resp_init(&r);
    if(form_add(&form, "grant_type", "client_credentials") || form_add(&form, "scope", s->src->scope)) {
        say("the token request is too large (source.%s.scope)", s->src->name);
        goto out;
    }
    if(!strcmp(s->src->auth, "secret")) {
        char pair[1200];

        if(read_secret_file(s->src->secret_file, secret, sizeof(secret)))
            goto out;
        snprintf(pair, sizeof(pair), "%s:%s", s->src->client_id, secret);
        snprintf(basic, sizeof(basic), "Authorization: Basic ");
        if(EVP_EncodeBlock((unsigned char *)basic + strlen(basic), (const unsigned char *)pair, (int)strlen(pair)) <=
           0) {
            say("the client secret cannot be encoded");
            goto out;
        }
    }
    else {
        if(assertion(s, url, &jwt))
            goto out;
        if(form_add(&form, "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") ||
           form_add(&form, "client_assertion", jwt)) {
            say("the token request is too large");
            goto out;
        }
    }
    if(pa_httpc_request("POST", url,
                        (const char *[]){ "Content-Type: application/x-www-form-urlencoded", "Accept: application/json",
                                          jwt ? NULL : basic, NULL },
                        form.data, form.len, &s->http, NULL, NULL, &r, &err)) {
        say("the token endpoint %s: %s", url, err.msg);
        goto out;
    }
    o = json_tokener_parse(pa_buf_str(&r.body));
    if(r.status != 200 || !pa_json_str(o, "access_token") ||
       pa_strlcpy(s->token, pa_json_str(o, "access_token"), sizeof(s->token))) {
        char why[400];

        answer_text(&r, why, sizeof(why));
        say("the token endpoint %s refused (HTTP %d): %s", url, r.status, why);
        s->token[0] = '\0';
    }
    else
        rc = 0;
    json_object_put(o);
out:
    free(jwt);
    pa_buf_free(&form);
    pa_httpc_resp_free(&r);
    return rc;
}

/* A request with the token (once fetched again when refused). */
static int call(struct sync *s, const char *method, const char *url, const char *accept, pa_httpc_resp *r,
                int *refreshed)
{
    char auth[TOKEN_MAX + 40], acc[200];
    pa_err err;

    for(;;) {
        const char *h[4] = { acc, NULL, NULL, NULL };

        snprintf(acc, sizeof(acc), "Accept: %s", accept);
        if(s->token[0]) {
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s", s->token);
            h[1] = auth;
        }
        if(!strcmp(method, "GET") && strstr(url, "$export"))
            h[h[1] ? 2 : 1] = "Prefer: respond-async";
        pa_buf_reset(&r->body);
        if(pa_httpc_request(method, url, h, NULL, 0, &s->http, NULL, NULL, r, &err))
            return say("%s %s: %s", method, url, err.msg);
        if(r->status != 401 || *refreshed || !strcmp(s->src->auth, "none") || !strcmp(s->src->auth, "bearer"))
            return 0;
        *refreshed = 1;
        if(get_token(s))
            return 2;
    }
}

/* The kick-off URL: level, _type, _since. */
static int kickoff_url(struct sync *s, const char *since, char *out, size_t size)
{
    pa_buf q;
    const char *lvl = s->src->level;
    int n;

    pa_buf_init(&q, 8192);
    /* a _type or _since left out would ask for more than meant: never quietly */
    if((*s->src->types && form_add(&q, "_type", s->src->types)) || (since && form_add(&q, "_since", since))) {
        pa_buf_free(&q);
        return say("source.%s.types is too long", s->src->name);
    }
    if(!strcmp(lvl, "system"))
        n = snprintf(out, size, "%s/$export%s%s", s->src->url, q.len ? "?" : "", pa_buf_str(&q));
    else if(!strcmp(lvl, "patient"))
        n = snprintf(out, size, "%s/Patient/$export%s%s", s->src->url, q.len ? "?" : "", pa_buf_str(&q));
    else
        n = snprintf(out, size, "%s/Group/%s/$export%s%s", s->src->url, lvl + 6, q.len ? "?" : "", pa_buf_str(&q));
    pa_buf_free(&q);
    return n >= (int)size ? say("the kick-off URL is too long") : 0;
}

static int kickoff(struct sync *s, const char *since, char *status_url, size_t size)
{
    char url[8192], why[400];
    pa_httpc_resp r;
    int refreshed = 0, rc;

    if(kickoff_url(s, since, url, sizeof(url)))
        return 2;
    pa_httpc_resp_init(&r);
    rc = call(s, "GET", url, "application/fhir+json", &r, &refreshed);
    if(!rc && (r.status != 202 || !r.content_location[0])) {
        answer_text(&r, why, sizeof(why));
        rc = say("the export was refused (HTTP %d): %s", r.status, why);
    }
    if(!rc && pa_strlcpy(status_url, r.content_location, size))
        rc = say("the status URL is too long");
    if(!rc)
        say("%s export started%s%s", s->src->name, since ? ", changes since " : " (full)", since ? since : "");
    pa_httpc_resp_free(&r);
    return rc;
}

/* Polls until the manifest comes (*manifest, JSON text) or wait_s pass. */
static int poll(struct sync *s, const char *status_url, long wait_s, char **manifest)
{
    int64_t until = pa_mono_ms() + wait_s * 1000;
    pa_httpc_resp r;
    char why[400], last[128] = "";
    int refreshed = 0, rc = 0;

    *manifest = NULL;
    pa_httpc_resp_init(&r);
    for(;;) {
        long delay;

        rc = call(s, "GET", status_url, "application/json", &r, &refreshed);
        if(rc)
            break;
        if(r.status == 200) {
            *manifest = strdup(pa_buf_str(&r.body));
            rc = *manifest ? 0 : say("out of memory");
            break;
        }
        if(r.status != 202 && r.status != 429 && r.status != 503) {
            answer_text(&r, why, sizeof(why));
            rc = say("the export failed (HTTP %d): %s%s", r.status, why,
                     r.status == 404 || r.status == 410 ? " (run again with --restart for a new export)" : "");
            break;
        }
        if(r.x_progress[0] && strcmp(r.x_progress, last)) {
            say("waiting for the export: %s", r.x_progress);
            pa_strlcpy(last, r.x_progress, sizeof(last));
        }
        delay = r.retry_after >= 1 ? r.retry_after : POLL_DEFAULT_S;
        if(delay > POLL_MAX_S)
            delay = POLL_MAX_S;
        if(pa_mono_ms() + delay * 1000 > until) {
            rc = say("the export is not ready after %ld s; run again to go on waiting for it", wait_s);
            break;
        }
        sleep((unsigned)delay);
        refreshed = 0;
    }
    pa_httpc_resp_free(&r);
    return rc;
}

static int write_sink(const char *data, size_t n, void *ctx)
{
    return fwrite(data, 1, n, (FILE *)ctx) == n ? 0 : PA_EIO;
}

/* Downloads one file to its spool path: F_DONE, or F_FAILED with its
 * status and why (set before the state, which the caller sets under the
 * lock). */
static int download(struct sync *s, struct file *f, const char *token)
{
    char auth[TOKEN_MAX + 40];
    const char *h[4] = { "Accept: application/fhir+ndjson", "Accept-Encoding: gzip", NULL, NULL };
    pa_httpc_resp r;
    pa_err err;
    FILE *out = fopen(f->path, "w");
    int rc;

    if(token[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h[2] = auth;
    }
    pa_httpc_resp_init(&r);
    if(!out) {
        snprintf(f->why, sizeof(f->why), "cannot write the spool file: %s", strerror(errno));
        pa_httpc_resp_free(&r);
        return F_FAILED;
    }
    rc = pa_httpc_request("GET", f->url, h, NULL, 0, &s->http, write_sink, out, &r, &err);
    if(fclose(out) && !rc)
        rc = pa_err_set(&err, PA_EIO, "cannot write %s", f->path);
    f->status = r.status;
    if(rc)
        snprintf(f->why, sizeof(f->why), "%s", err.msg);
    else if(r.status != 200)
        snprintf(f->why, sizeof(f->why), "HTTP %d", r.status);
    /* gzip the loader reads itself; anything else would load as garbage */
    else if(r.content_encoding[0] && strcasecmp(r.content_encoding, "gzip") &&
            strcasecmp(r.content_encoding, "identity")) {
        snprintf(f->why, sizeof(f->why), "a Content-Encoding this client does not read: %.40s", r.content_encoding);
        rc = PA_EIO;
    }
    pa_httpc_resp_free(&r);
    return rc || r.status != 200 ? F_FAILED : F_DONE;
}

static void *downloader(void *arg)
{
    struct sync *s = arg;

    pthread_mutex_lock(&s->mu);
    while(!s->stop) {
        int i, state;
        char token[TOKEN_MAX];

        for(i = 0; i < s->nfiles && s->files[i].state != F_PENDING; i++)
            ;
        /* nothing to take (a failed file may come back), or too far ahead */
        if(i == s->nfiles || i > s->loading + s->window) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        s->files[i].state = F_RUNNING;
        memcpy(token, s->with_token ? s->token : "", s->with_token ? sizeof(token) : 1);
        pthread_mutex_unlock(&s->mu);
        state = download(s, &s->files[i], token);
        pthread_mutex_lock(&s->mu);
        s->files[i].state = state;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Waits for file i: 0 when it is whole, 2 when it failed for good. */
static int wait_file(struct sync *s, int i)
{
    struct file *f = &s->files[i];
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    s->loading = i;
    pthread_cond_broadcast(&s->cv);
    while(rc < 0) {
        if(f->state == F_DONE) {
            rc = 0;
        }
        else if(f->state == F_FAILED) {
            int gone = f->status == 404 || f->status == 410;

            f->tries++;
            if(gone || f->tries >= DOWNLOAD_TRIES) {
                rc = say("file %d (%s) failed to download%s: %s%s", i + 1, f->url, gone ? "" : " after retries", f->why,
                         gone ? " (gone from the server: run again with --restart for a new export)"
                              : " (run again to resume)");
                break;
            }
            say("file %d: %s; trying again", i + 1, f->why);
            /* a new token under the lock: the downloaders copy it under it */
            if(f->status == 401 && strcmp(s->src->auth, "none") && strcmp(s->src->auth, "bearer")) {
                if(get_token(s)) {
                    rc = 2;
                    break;
                }
            }
            else {
                pthread_mutex_unlock(&s->mu);
                sleep(1u << f->tries);
                pthread_mutex_lock(&s->mu);
            }
            f->state = F_PENDING;
            pthread_cond_broadcast(&s->cv);
        }
        else
            pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* The last segment of a URL's path (no query), safe as a file name. */
static const char *base_name(const char *url, char name[256])
{
    const char *q = url + strcspn(url, "?#"), *p = q;
    size_t n, i;

    while(p > url && p[-1] != '/')
        p--;
    n = (size_t)(q - p) < 255 ? (size_t)(q - p) : 255;
    for(i = 0; i < n; i++)
        name[i] = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", p[i]) ? p[i] : '_';
    name[n] = '\0';
    return n ? name : "file";
}

/* The files of the manifest: output, then deleted. */
static int manifest_files(struct sync *s, json_object *m)
{
    static const char *const parts[] = { "output", "deleted" };
    json_object *errors;
    size_t k, i;
    int n = 0;

    /* what the server could not export: said, not loaded */
    if(json_object_object_get_ex(m, "error", &errors) && json_object_is_type(errors, json_type_array) &&
       json_object_array_length(errors) > 0)
        say("the source reports %zu file(s) of errors (OperationOutcomes) with this export, the first at %.300s",
            json_object_array_length(errors),
            pa_json_str(json_object_array_get_idx(errors, 0), "url")
                ? pa_json_str(json_object_array_get_idx(errors, 0), "url")
                : "(no url)");

    for(k = 0; k < 2; k++) {
        json_object *arr;

        if(json_object_object_get_ex(m, parts[k], &arr) && json_object_is_type(arr, json_type_array))
            n += (int)json_object_array_length(arr);
    }
    if(n > MANIFEST_FILES_MAX)
        return say("the manifest lists %d files, more than the %d a sync takes", n, MANIFEST_FILES_MAX);
    s->files = calloc((size_t)n + 1, sizeof(*s->files));
    if(!s->files)
        return say("out of memory");
    for(k = 0; k < 2; k++) {
        json_object *arr;

        if(!json_object_object_get_ex(m, parts[k], &arr) || !json_object_is_type(arr, json_type_array))
            continue;
        for(i = 0; i < json_object_array_length(arr); i++) {
            const char *url = pa_json_str(json_object_array_get_idx(arr, i), "url");
            struct file *f = &s->files[s->nfiles];
            char name[256];
            size_t size;

            if(!url || (strncmp(url, "https://", 8) && strncmp(url, "http://", 7)) || strlen(url) > 4000)
                return say("the manifest lists a file without a usable url");
            /* named as the server names it, for the load's reports */
            base_name(url, name);
            size = strlen(s->spool) + strlen(name) + 16;
            f->url = strdup(url);
            f->path = malloc(size);
            if(!f->url || !f->path)
                return say("out of memory");
            snprintf(f->path, size, "%s/%d-%s", s->spool, s->nfiles + 1, name);
            s->nfiles++;
        }
    }
    return 0;
}

/* Removes the files of the spool folder (what a killed sync left). */
static void clear_spool(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4400];

    if(!d)
        return;
    for(e = readdir(d); e; e = readdir(d)) {
        if(e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* The source's spool folder, ours alone (0700, not a link), emptied. */
static int open_spool(const char *dir)
{
    struct stat st;

    if(mkdir(dir, 0700) && errno != EEXIST)
        return say("cannot make the spool folder %s: %s", dir, strerror(errno));
    if(lstat(dir, &st) || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
        return say("%s is not a folder of this user's alone: remove it", dir);
    clear_spool(dir);
    return 0;
}

static int record_loaded(struct sync *s, int i)
{
    char idx[16];
    pa_err err;
    const char *v[2] = { s->src->name, idx };
    PGresult *res;

    snprintf(idx, sizeof(idx), "%d", i);
    res =
        pa_db_query(s->db, &err, "UPDATE sync_source SET files_loaded = files_loaded || $2::int WHERE name = $1", 2, v);
    PQclear(res);
    return res ? 0 : say("%s", err.msg);
}

/* Downloads what is not loaded yet and loads it, in order. */
static int transfer(struct sync *s, load_ctx *l, const int *loaded, int nloaded)
{
    pthread_t th[16];
    int nth = 0, i, k, rc = 0;
    long files_done = 0;
    pa_err err;

    for(k = 0; k < nloaded; k++)
        if(loaded[k] >= 0 && loaded[k] < s->nfiles)
            s->files[loaded[k]].state = F_LOADED;
    if(nloaded)
        say("resuming: %d of the export's %d files were loaded before", nloaded, s->nfiles);
    s->window = (int)s->src->parallel * 2;
    for(i = 0; i < s->src->parallel && i < s->nfiles; i++)
        if(!pthread_create(&th[nth], NULL, downloader, s))
            nth++;
    if(s->nfiles && !nth)
        return say("cannot start the downloads");
    for(i = 0; !rc && i < s->nfiles; i++) {
        int before;

        pthread_mutex_lock(&s->mu);
        before = s->files[i].state == F_LOADED;
        pthread_mutex_unlock(&s->mu);
        if(before)
            continue;
        rc = wait_file(s, i);
        if(!rc && (load_file(l, s->files[i].path, &err) || load_flush(l, &err)))
            rc = say("loading file %d: %s", i + 1, err.msg);
        unlink(s->files[i].path);
        /* a file whose Bundle entries wait for the end is loaded only then */
        if(!rc && !load_bundles_waiting(l))
            rc = record_loaded(s, i);
        files_done++;
        if(!rc && (l->tty || files_done % 20 == 0 || i == s->nfiles - 1))
            say("file %d of %d loaded", i + 1, s->nfiles);
    }
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for(i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    return rc;
}

/* One sync of a source at a time: a session lock, gone with the connection.
 * A sync killed a moment ago may still hold it until its server process
 * notices: waited for a few seconds. */
static int lock_source(PGconn *db, const char *name)
{
    const char *v[1] = { name };
    int tries;

    for(tries = 0; tries < 50; tries++) {
        pa_err err;
        PGresult *res = pa_db_query(db, &err, "SELECT pg_try_advisory_lock(872342, hashtext($1))", 1, v);
        int held = res && !strcmp(PQgetvalue(res, 0, 0), "t");

        PQclear(res);
        if(!res)
            return say("%s", err.msg);
        if(held)
            return 0;
        usleep(200000);
    }
    return say("a sync of %s is running already: let it end", name);
}

static int sync_usage(void)
{
    fprintf(stderr, "usage: pa-admin sync SOURCE [--full] [--restart] [--wait SECONDS] [--errors FILE]\n"
                    "  a Bulk Data export of the FHIR server configured as source.SOURCE.url, loaded:\n"
                    "  changes since the last sync (--full: everything); an interrupted sync resumes\n"
                    "  (--restart: drop the export under way and start a new one)\n");
    return 2;
}

/* The state of the source: *since of the next kick-off, the export under
 * way (status URL, manifest), the files of it loaded. */
struct state {
    char since[40];
    char status_url[4096];
    char *manifest;
    int *loaded;
    int nloaded;
};

static int read_state(struct sync *s, struct state *st)
{
    pa_err err;
    const char *v[1] = { s->src->name };
    PGresult *res = pa_db_query(
        s->db, &err,
        "SELECT coalesce(to_char(transaction_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ''),"
        " coalesce(status_url, ''), manifest::text, array_to_string(files_loaded, ' '),"
        " coalesce(to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '')"
        " FROM sync_source WHERE name = $1",
        1, v);
    char *p, *end;

    memset(st, 0, sizeof(*st));
    if(!res)
        return say("%s", err.msg);
    if(PQntuples(res) == 1) {
        pa_strlcpy(st->status_url, PQgetvalue(res, 0, 1), sizeof(st->status_url));
        /* the export under way asked since what it asked */
        pa_strlcpy(st->since, PQgetvalue(res, 0, st->status_url[0] ? 4 : 0), sizeof(st->since));
        if(!PQgetisnull(res, 0, 2))
            st->manifest = strdup(PQgetvalue(res, 0, 2));
        st->loaded = calloc((size_t)PQgetlength(res, 0, 3) / 2 + 1, sizeof(int));
        /* without them the sync would load again what it loaded */
        if(!st->loaded || (!PQgetisnull(res, 0, 2) && !st->manifest)) {
            PQclear(res);
            return say("out of memory");
        }
        for(p = PQgetvalue(res, 0, 3); *p; p = end) {
            st->loaded[st->nloaded++] = (int)strtol(p, &end, 10);
            if(end == p)
                break;
        }
    }
    PQclear(res);
    return 0;
}

/* A statement on the source's row: $1 its name, $2 a, $3 b (n of them). */
static int exec_state(struct sync *s, const char *sql, int n, const char *a, const char *b)
{
    pa_err err;
    const char *v[3] = { s->src->name, a, b };
    PGresult *res = pa_db_query(s->db, &err, sql, n, v);

    PQclear(res);
    return res ? 0 : say("%s", err.msg);
}

static int run_sync(struct sync *s, int full, int restart, long wait_s, FILE *errors)
{
    struct state st;
    load_ctx l;
    json_object *m = NULL;
    const char *tt = NULL;
    pa_err err;
    int rc, opened = 0;

    rc = read_state(s, &st);
    if(!rc && (restart || (full && st.status_url[0]))) {
        st.status_url[0] = '\0';
        free(st.manifest);
        st.manifest = NULL;
        st.nloaded = 0;
    }
    if(!rc && full && !st.status_url[0])
        st.since[0] = '\0';
    if(!rc)
        rc = get_token(s);
    if(!rc && !st.status_url[0]) {
        rc = kickoff(s, st.since[0] ? st.since : NULL, st.status_url, sizeof(st.status_url));
        if(!rc)
            rc = exec_state(s,
                            "INSERT INTO sync_source (name, status_url, since, started_at) VALUES ($1, $2,"
                            " nullif($3::text, '')::timestamptz, now()) ON CONFLICT (name) DO UPDATE SET"
                            " status_url = EXCLUDED.status_url, since = EXCLUDED.since, started_at = now(),"
                            " manifest = NULL, files_loaded = '{}'",
                            3, st.status_url, st.since);
    }
    else if(!rc && !st.manifest) {
        say("going on with the export under way");
    }
    if(!rc && !st.manifest) {
        rc = poll(s, st.status_url, wait_s, &st.manifest);
        if(!rc)
            rc = exec_state(s, "UPDATE sync_source SET manifest = $2::jsonb WHERE name = $1", 2, st.manifest, NULL);
    }
    if(!rc) {
        m = json_tokener_parse(st.manifest);
        tt = pa_json_str(m, "transactionTime");
        if(!tt)
            rc = say("the manifest has no transactionTime");
    }
    if(!rc)
        rc = open_spool(s->spool);
    if(!rc) {
        json_object *rat;

        s->with_token = json_object_object_get_ex(m, "requiresAccessToken", &rat) && json_object_get_boolean(rat);
        rc = manifest_files(s, m);
    }
    if(!rc) {
        opened = 1;
        if(load_open(&l, s->db, errors, &err))
            rc = say("%s", err.msg);
    }
    if(!rc)
        rc = transfer(s, &l, st.loaded, st.nloaded);
    if(!rc && load_finish(&l, &err))
        rc = say("%s", err.msg);
    if(!rc)
        rc = exec_state(s,
                        "UPDATE sync_source SET transaction_time = $2::timestamptz, synced_at = now(),"
                        " status_url = NULL, since = NULL, manifest = NULL, files_loaded = '{}'"
                        " WHERE name = $1",
                        2, tt, NULL);
    if(opened) {
        load_summary(&l, rc ? stderr : stdout);
        if(!rc && l.rejected)
            rc = 1;
        load_close(&l);
    }
    if(rc != 2 && tt) {
        pa_httpc_resp r;
        int refreshed = 0;

        printf("synced %s: %d files, transactionTime %s (the next sync asks for changes since then)\n", s->src->name,
               s->nfiles, tt);
        /* the export is done with: the server may let it go */
        pa_httpc_resp_init(&r);
        call(s, "DELETE", st.status_url, "application/json", &r, &refreshed);
        pa_httpc_resp_free(&r);
    }
    if(!rc || rc == 1) {
        clear_spool(s->spool);
        rmdir(s->spool);
    }
    json_object_put(m);
    free(st.manifest);
    free(st.loaded);
    return rc;
}

int cmd_sync(int argc, char **argv)
{
    struct sync s;
    pa_config *cfg = NULL;
    const char *name = NULL, *errors = NULL;
    FILE *errors_out = NULL;
    long wait_s = 86400;
    int i, full = 0, restart = 0, ret = 2;

    memset(&s, 0, sizeof(s));
    for(i = 1; i < argc; i++) {
        if(!strcmp(argv[i], "--full"))
            full = 1;
        else if(!strcmp(argv[i], "--restart"))
            restart = 1;
        else if(!strcmp(argv[i], "--wait") && i + 1 < argc && !pa_parse_long(argv[i + 1], &wait_s) && wait_s >= 0)
            i++;
        else if(!strcmp(argv[i], "--errors") && i + 1 < argc)
            errors = argv[++i];
        else if(argv[i][0] != '-' && !name)
            name = argv[i];
        else
            return sync_usage();
    }
    if(!name)
        return sync_usage();
    if(admin_connect(&cfg, &s.db))
        return 2;
    s.src = pa_config_source_find(cfg, name);
    if(!s.src) {
        say("no source %s in the configuration (source.%s.url = ...)", name, name);
        goto out;
    }
    if(errors) {
        errors_out = fopen(errors, "w");
        if(!errors_out) {
            say("cannot write %s: %s", errors, strerror(errno));
            goto out;
        }
    }
    s.http.ca_file = *s.src->ca_file ? s.src->ca_file : NULL;
    s.http.timeout_ms = 120000;
    s.http.body_max = 64 * 1024 * 1024;
    if(lock_source(s.db, name))
        goto out;
    snprintf(s.spool, sizeof(s.spool), "%s/pa-sync-%d-%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)geteuid(),
             name);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    ret = run_sync(&s, full, restart, wait_s, errors_out);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
out:
    if(errors_out)
        fclose(errors_out);
    for(i = 0; s.files && i < s.nfiles; i++) {
        free(s.files[i].url);
        free(s.files[i].path);
    }
    free(s.files);
    PQfinish(s.db);
    pa_config_free(cfg);
    return ret;
}
