#include "pa_redis.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "pa_util.h"

struct pa_redis {
    redisContext *c;
    char *host;
    char *password;
    int port;
    long timeout_ms;
    char prefix[64];
};

static struct timeval ms_to_tv(long ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

/* Where Redis is, for messages: the socket's path or host:port. */
static const char *redis_where(const pa_redis *r, char *out, size_t size)
{
    if(r->host[0] == '/')
        pa_strlcpy(out, r->host, size);
    else
        snprintf(out, size, "%s:%d", r->host, r->port);
    return out;
}

static int redis_connect(pa_redis *r, pa_err *err)
{
    struct timeval tv = ms_to_tv(r->timeout_ms);
    char where[300];

    if(r->c) {
        redisFree(r->c);
        r->c = NULL;
    }
    /* a path is a Unix socket: cheaper than TCP for every round trip */
    r->c = r->host[0] == '/' ? redisConnectUnixWithTimeout(r->host, tv) : redisConnectWithTimeout(r->host, r->port, tv);
    if(!r->c)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    if(r->c->err) {
        pa_err_set(err, PA_EREDIS, "cannot connect to Redis at %s: %s", redis_where(r, where, sizeof(where)),
                   r->c->errstr);
        redisFree(r->c);
        r->c = NULL;
        return PA_EREDIS;
    }
    /* the connect timeout covers only the connect: set it for commands too */
    if(redisSetTimeout(r->c, tv) != REDIS_OK) {
        redisFree(r->c);
        r->c = NULL;
        return pa_err_set(err, PA_EREDIS, "cannot set the Redis command timeout");
    }
    if(r->password[0]) {
        redisReply *reply = redisCommand(r->c, "AUTH %s", r->password);

        if(!reply || reply->type == REDIS_REPLY_ERROR) {
            /* no reply is a Redis that did not answer, not a wrong password */
            if(reply) {
                pa_err_set(err, PA_EREDIS, "Redis at %s refused redis_password: %.200s",
                           redis_where(r, where, sizeof(where)), reply->str);
                freeReplyObject(reply);
            }
            else {
                pa_err_set(err, PA_EREDIS, "Redis at %s did not answer within redis_timeout_ms (%ld ms): %s",
                           redis_where(r, where, sizeof(where)), r->timeout_ms, r->c->errstr);
            }
            redisFree(r->c);
            r->c = NULL;
            return PA_EREDIS;
        }
        freeReplyObject(reply);
    }
    return PA_OK;
}

int pa_redis_new(const pa_config *cfg, pa_redis **out, pa_err *err)
{
    pa_redis *r;

    *out = NULL;
    r = calloc(1, sizeof(*r));
    if(!r)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    r->host = strdup(cfg->redis_host);
    r->password = strdup(cfg->redis_password);
    if(!r->host || !r->password) {
        free(r->host);
        free(r->password);
        free(r);
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    r->port = (int)cfg->redis_port;
    r->timeout_ms = cfg->redis_timeout_ms;
    snprintf(r->prefix, sizeof(r->prefix), "%s", cfg->redis_prefix);
    *out = r;
    return PA_OK;
}

int pa_redis_open(const pa_config *cfg, pa_redis **out, pa_err *err)
{
    int rc = pa_redis_new(cfg, out, err);

    if(!rc)
        rc = redis_connect(*out, err);
    if(rc) {
        pa_redis_free(*out);
        *out = NULL;
    }
    return rc;
}

void pa_redis_free(pa_redis *r)
{
    if(!r)
        return;
    if(r->c)
        redisFree(r->c);
    free(r->host);
    free(r->password);
    free(r);
}

/* Turns a reply into the result convention: NULL + err for failures. */
static redisReply *check_reply(pa_redis *r, redisReply *reply, pa_err *err)
{
    if(!reply) {
        pa_err_set(err, PA_EREDIS, "Redis: %s", r->c && r->c->errstr[0] ? r->c->errstr : "no reply");
        return NULL;
    }
    if(reply->type == REDIS_REPLY_ERROR) {
        pa_err_set(err, PA_EREDIS, "Redis: %.400s", reply->str);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

/* Retries once on a broken connection: hiredis cannot reuse it. */
static int ensure_connected(pa_redis *r, pa_err *err)
{
    if(r->c && !r->c->err)
        return PA_OK;
    return redis_connect(r, err);
}

redisReply *pa_redis_cmd(pa_redis *r, pa_err *err, const char *fmt, ...)
{
    redisReply *reply = NULL;
    int attempt;
    va_list ap;

    for(attempt = 0; attempt < 2; attempt++) {
        if(ensure_connected(r, err))
            return NULL;
        va_start(ap, fmt);
        reply = redisvCommand(r->c, fmt, ap);
        va_end(ap);
        if(reply || !r->c->err || (r->c->err != REDIS_ERR_EOF && r->c->err != REDIS_ERR_IO))
            break;
    }
    return check_reply(r, reply, err);
}

redisReply *pa_redis_argv(pa_redis *r, pa_err *err, int argc, const char **argv, const size_t *lens)
{
    redisReply *reply = NULL;
    int attempt;

    for(attempt = 0; attempt < 2; attempt++) {
        if(ensure_connected(r, err))
            return NULL;
        reply = redisCommandArgv(r->c, argc, argv, lens);
        if(reply || !r->c->err || (r->c->err != REDIS_ERR_EOF && r->c->err != REDIS_ERR_IO))
            break;
    }
    return check_reply(r, reply, err);
}

int pa_redis_pipeline(pa_redis *r, int n, const int *argcs, const char *const *const *argvs, redisReply **replies,
                      pa_err *err)
{
    int attempt, i;

    for(i = 0; i < n; i++)
        replies[i] = NULL;
    for(attempt = 0; attempt < 2; attempt++) {
        int ok = 1;

        if(ensure_connected(r, err))
            return PA_EREDIS;
        for(i = 0; i < n && ok; i++)
            ok = redisAppendCommandArgv(r->c, argcs[i], (const char **)argvs[i], NULL) == REDIS_OK;
        for(i = 0; i < n && ok; i++)
            ok = redisGetReply(r->c, (void **)&replies[i]) == REDIS_OK;
        if(ok)
            break;
        for(i = 0; i < n; i++) {
            if(replies[i])
                freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
        /* a broken connection: once more on a new one (these are reads) */
        if(!r->c->err || (r->c->err != REDIS_ERR_EOF && r->c->err != REDIS_ERR_IO))
            break;
    }
    for(i = 0; i < n; i++) {
        int k;

        if(replies[i] && replies[i]->type != REDIS_REPLY_ERROR)
            continue;
        check_reply(r, replies[i], err); /* says why; frees an error reply */
        replies[i] = NULL;
        for(k = 0; k < n; k++) {
            if(replies[k])
                freeReplyObject(replies[k]);
            replies[k] = NULL;
        }
        return PA_EREDIS;
    }
    return PA_OK;
}

const char *pa_redis_key(const pa_redis *r, char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(out, size, "%s", r->prefix);

    if(n < 0 || (size_t)n >= size)
        return out;
    va_start(ap, fmt);
    vsnprintf(out + n, size - (size_t)n, fmt, ap);
    va_end(ap);
    return out;
}

long pa_redis_timeout_ms(const pa_redis *r)
{
    return r->timeout_ms;
}

int pa_redis_prune_consumers(pa_redis *r, const char *key, const char *group, long idle_ms, long *pruned, pa_err *err)
{
    redisReply *reply;
    size_t i;
    size_t k;

    *pruned = 0;
    reply = pa_redis_cmd(r, err, "XINFO CONSUMERS %s %s", key, group);
    if(!reply)
        return PA_EREDIS;
    for(i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        const redisReply *c = reply->element[i];
        const char *name = NULL;
        long long pending = -1;
        long long idle = 0;

        /* each consumer is a flat list: name, N, pending, N, idle, N, ... */
        for(k = 0; c->type == REDIS_REPLY_ARRAY && k + 1 < c->elements; k += 2) {
            const redisReply *f = c->element[k];
            const redisReply *v = c->element[k + 1];

            if(f->type != REDIS_REPLY_STRING)
                continue;
            if(!strcmp(f->str, "name") && v->type == REDIS_REPLY_STRING)
                name = v->str;
            else if(!strcmp(f->str, "pending") && v->type == REDIS_REPLY_INTEGER)
                pending = v->integer;
            else if(!strcmp(f->str, "idle") && v->type == REDIS_REPLY_INTEGER)
                idle = v->integer;
        }
        if(name && pending == 0 && idle >= idle_ms) {
            redisReply *del = pa_redis_cmd(r, err, "XGROUP DELCONSUMER %s %s %s", key, group, name);

            if(del) {
                freeReplyObject(del);
                (*pruned)++;
            }
        }
    }
    freeReplyObject(reply);
    return PA_OK;
}

int pa_redis_wait_loaded(pa_redis *r, long max_ms, void (*on_wait)(void), pa_err *err)
{
    int64_t deadline = pa_mono_ms() + max_ms;
    int waited = 0;

    for(;;) {
        redisReply *reply;
        int loading;

        if(ensure_connected(r, err))
            return PA_EREDIS;
        reply = redisCommand(r->c, "PING");
        loading = reply && reply->type == REDIS_REPLY_ERROR && !strncmp(reply->str, "LOADING", 7);
        if(!loading || pa_mono_ms() >= deadline) {
            reply = check_reply(r, reply, err);
            if(!reply)
                return PA_EREDIS;
            freeReplyObject(reply);
            return PA_OK;
        }
        freeReplyObject(reply);
        if(!waited && on_wait)
            on_wait();
        waited = 1;
        usleep(200 * 1000);
    }
}
