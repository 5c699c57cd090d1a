#include "pa_job.h"
#include "pa_db.h"
#include "pa_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYLEN 256

/* KEYS: active set, job hash, stream.  ARGV: max, id, field, value, ... */
static const char lua_submit[] = "if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end "
                                 "redis.call('HSET', KEYS[2], unpack(ARGV, 3)) "
                                 "redis.call('SADD', KEYS[1], ARGV[2]) "
                                 "redis.call('XADD', KEYS[3], '*', 'job', ARGV[2]) "
                                 "return 1";

/* KEYS: job hash, active set, due zset.  ARGV: owner, now, id, purge at. */
static const char lua_cancel[] = "local o = redis.call('HGET', KEYS[1], 'owner') "
                                 "if not o or o ~= ARGV[1] then return 0 end "
                                 "local st = redis.call('HGET', KEYS[1], 'state') "
                                 "if st == 'cancelled' then return 0 end "
                                 "redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished', ARGV[2]) "
                                 "redis.call('SREM', KEYS[2], ARGV[3]) "
                                 "redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3]) "
                                 "return 1";

/* Like lua_submit, for a job recovered from PostgreSQL: only if Redis lacks it. */
static const char lua_recover[] = "if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end "
                                  "redis.call('HSET', KEYS[2], unpack(ARGV, 3)) "
                                  "redis.call('SADD', KEYS[1], ARGV[2]) "
                                  "redis.call('XADD', KEYS[3], '*', 'job', ARGV[2]) "
                                  "return 1";

/* KEYS: job hash.  ARGV: now, runner.  The runner token makes a worker whose
 * job was taken over stop at its next checkpoint. */
static const char lua_begin[] =
    "local st = redis.call('HGET', KEYS[1], 'state') "
    "if st ~= 'queued' and st ~= 'running' then return -1 end "
    "redis.call('HSET', KEYS[1], 'state', 'running', 'started', ARGV[1], 'runner', ARGV[2]) "
    "return redis.call('HINCRBY', KEYS[1], 'attempts', 1)";

/* KEYS: job hash.  ARGV: the part's field prefix, runner, the part.  A part
 * runs only while its job does, only if this job was split into it (not an
 * entry left by a job Redis lost and that was queued again), and only until
 * it is done; the last step only once every part is. */
static const char lua_part_begin[] = "if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return -1 end "
                                     "local n = tonumber(redis.call('HGET', KEYS[1], 'parts')) "
                                     "if not n then return -1 end "
                                     "if ARGV[3] == '" PA_PART_FINISH "' then "
                                     "  if tonumber(redis.call('HGET', KEYS[1], 'done')) < n then return -1 end "
                                     "elseif tonumber(ARGV[3]) > n then return -1 end "
                                     "if redis.call('HEXISTS', KEYS[1], ARGV[1] .. 'out') == 1 then return -1 end "
                                     "redis.call('HSET', KEYS[1], ARGV[1] .. 'runner', ARGV[2]) "
                                     "return redis.call('HINCRBY', KEYS[1], ARGV[1] .. 'attempts', 1)";

/* Guard of the scripts below: 1 go on, 0 no longer running (cancelled, or
 * failed by another part), -1 gone, -2 taken over.  The last two ARGV are the
 * field naming the unit's runner and this runner. */
/* clang-format off */
#define LUA_GUARD \
    "local st = redis.call('HGET', KEYS[1], 'state') " \
    "if not st then return -1 end " \
    "if st ~= 'running' then return 0 end " \
    "if redis.call('HGET', KEYS[1], ARGV[#ARGV - 1]) ~= ARGV[#ARGV] then return -2 end "
/* clang-format on */

/* KEYS: job hash.  ARGV: checkpoint field, checkpoint, done ("" to leave
 * progress alone), total, runner field, runner. */
static const char lua_checkpoint[] =
    LUA_GUARD "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) "
              "if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'done', ARGV[3], 'total', ARGV[4]) end "
              "return 1";

/* KEYS: job hash, due zset, active prefix.
 * ARGV: state, field, value, now, purge at, id, runner field, runner. */
static const char lua_finish[] =
    LUA_GUARD "redis.call('HSET', KEYS[1], 'state', ARGV[1], ARGV[2], ARGV[3], 'finished', ARGV[4]) "
              "redis.call('HDEL', KEYS[1], 'checkpoint') "
              "local o = redis.call('HGET', KEYS[1], 'owner') "
              "redis.call('SREM', KEYS[3] .. o, ARGV[6]) "
              "redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6]) "
              "return 1";

/* KEYS: job hash, part stream, job stream.
 * ARGV: checkpoint, parts, total, id, the job's entry, runner field, runner. */
static const char lua_split[] =
    LUA_GUARD "redis.call('HSET', KEYS[1], 'checkpoint', ARGV[1], 'parts', ARGV[2], 'done', 0, 'total', ARGV[3]) "
              "for k = 1, tonumber(ARGV[2]) do redis.call('XADD', KEYS[2], '*', 'job', ARGV[4], 'part', k) end "
              "redis.call('XACK', KEYS[3], '" PA_JOB_GROUP "', ARGV[5]) "
              "redis.call('XDEL', KEYS[3], ARGV[5]) "
              "return 1";

/* KEYS: job hash, job stream, part stream.
 * ARGV: the part's field prefix, outputs, id, the part's entry, runner field, runner. */
static const char lua_part_done[] =
    LUA_GUARD "if redis.call('HSETNX', KEYS[1], ARGV[1] .. 'out', ARGV[2]) == 1 then "
              "  redis.call('HDEL', KEYS[1], ARGV[1] .. 'cp') "
              "  local n = redis.call('HINCRBY', KEYS[1], 'done', 1) "
              "  if n == tonumber(redis.call('HGET', KEYS[1], 'parts')) then "
              "    redis.call('XADD', KEYS[2], '*', 'job', ARGV[3], 'part', '" PA_PART_FINISH "') "
              "  end "
              "end "
              "redis.call('XACK', KEYS[3], '" PA_JOB_GROUP "', ARGV[4]) "
              "redis.call('XDEL', KEYS[3], ARGV[4]) "
              "return 1";

long pa_job_retry_after(const pa_job *job, int64_t now_ms, long max_seconds)
{
    int64_t elapsed = now_ms > job->created ? now_ms - job->created : 0;
    int64_t left_ms;
    long s;

    if(max_seconds < 1)
        return 1;
    if(job->total <= 0 || job->done <= 0 || job->done > job->total)
        return elapsed < max_seconds * 1000 ? 1 : max_seconds;
    left_ms = elapsed / job->done * (job->total - job->done);
    s = (long)((left_ms + 999) / 1000);
    return s < 1 ? 1 : s > max_seconds ? max_seconds : s;
}

/* A fresh 128-bit random job id. */
static int new_id(char out[PA_JOB_ID_LEN + 1])
{
    return pa_random_hex(out, PA_JOB_ID_LEN / 2);
}

void pa_job_free(pa_job *job)
{
    if(!job)
        return;
    free(job->kind);
    free(job->owner);
    free(job->state);
    free(job->request);
    free(job->params);
    free(job->manifest);
    free(job->error);
    free(job->checkpoint);
    free(job);
}

int pa_job_create(pa_job **out, const char *kind, const char *owner, const char *request, const char *params,
                  int64_t ttime, pa_err *err)
{
    pa_job *job = calloc(1, sizeof(*job));
    int rc = PA_OK;

    *out = NULL;
    if(!job)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    rc = new_id(job->id);
    if(rc) {
        pa_job_free(job);
        return pa_err_set(err, rc, "no random bytes for a job id");
    }
    job->kind = strdup(kind);
    job->owner = strdup(owner);
    job->state = strdup("queued");
    job->request = strdup(request);
    job->params = strdup(params);
    job->ttime = ttime;
    job->created = ttime;
    if(!job->kind || !job->owner || !job->state || !job->request || !job->params) {
        pa_job_free(job);
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    *out = job;
    return rc;
}

/* Runs a script with nkeys keys then args (all C strings). */
static redisReply *run_script(pa_redis *r, pa_err *err, const char *script, int nkeys, int nargs, const char **args)
{
    const char *argv[48];
    char nk[16];
    int i;

    if(nargs > 45)
        return NULL;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = nk;
    for(i = 0; i < nargs; i++)
        argv[3 + i] = args[i];
    return pa_redis_argv(r, err, 3 + nargs, argv, NULL);
}

static int script_int(pa_redis *r, pa_err *err, const char *script, int nkeys, int nargs, const char **args,
                      long long *out);

/* Records the job; its transactionTime is the database's
 * (pa_transaction_time(), sql/010_change_time.sql): every change stamped at
 * or before it is committed, so _since from it misses nothing. */
static int db_insert(PGconn *db, pa_job *job, pa_err *err)
{
    const char *values[7];
    PGresult *res;

    values[0] = job->id;
    values[1] = job->kind;
    values[2] = job->owner;
    values[3] = job->state;
    values[4] = job->request;
    values[5] = job->params;
    values[6] = job->request_id[0] ? job->request_id : NULL;
    res = pa_db_query(db, err,
                      "INSERT INTO job (id, kind, owner, state, request, params, transaction_time, request_id) "
                      "VALUES ($1, $2, $3, $4, $5, $6::jsonb, pa_transaction_time(), $7) "
                      "RETURNING (extract(epoch FROM transaction_time) * 1000)::bigint",
                      7, values);
    if(!res)
        return PA_EDB;
    job->ttime = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return PA_OK;
}

static int db_set_state(PGconn *db, const char *id, const char *state, const char *manifest, const char *error,
                        pa_err *err)
{
    const char *values[4] = { id, state, manifest, error };
    PGresult *res = pa_db_query(db, err,
                                "UPDATE job SET state = $2, manifest = coalesce($3::jsonb, manifest), "
                                "error = coalesce($4, error), updated_at = now(), "
                                "finished_at = CASE WHEN $2 IN ('completed', 'failed', 'cancelled') "
                                "THEN coalesce(finished_at, now()) ELSE finished_at END WHERE id = $1 "
                                /* a cancellation is final: nothing a runner reports undoes it */
                                "AND (state <> 'cancelled' OR $2 = 'cancelled')",
                                4, values);

    if(!res)
        return PA_EDB;
    PQclear(res);
    return PA_OK;
}

/* The hash's field/value pairs for a new job, in args from index at. */
static int job_fields(const pa_job *job, const char **args, int at, char bufs[3][24])
{
    snprintf(bufs[0], 24, "%lld", (long long)job->ttime);
    snprintf(bufs[1], 24, "%lld", (long long)job->created);
    snprintf(bufs[2], 24, "%d", 0);
    args[at++] = "kind";
    args[at++] = job->kind;
    args[at++] = "owner";
    args[at++] = job->owner;
    args[at++] = "state";
    args[at++] = job->state;
    args[at++] = "request";
    args[at++] = job->request;
    args[at++] = "params";
    args[at++] = job->params;
    args[at++] = "ttime";
    args[at++] = bufs[0];
    args[at++] = "created";
    args[at++] = bufs[1];
    args[at++] = "attempts";
    args[at++] = bufs[2];
    args[at++] = "request_id";
    args[at++] = job->request_id;
    return at;
}

int pa_job_submit(pa_redis *r, PGconn *db, pa_job *job, long max_active, pa_err *err)
{
    char kactive[KEYLEN], khash[KEYLEN], kstream[KEYLEN], maxs[24];
    char bufs[3][24];
    const char *args[32];
    redisReply *reply;
    int n;
    int rc;

    rc = db_insert(db, job, err);
    if(rc)
        return rc;
    snprintf(maxs, sizeof(maxs), "%ld", max_active);
    args[0] = pa_redis_key(r, kactive, sizeof(kactive), "active:%s", job->owner);
    args[1] = pa_redis_key(r, khash, sizeof(khash), "job:%s", job->id);
    args[2] = pa_redis_key(r, kstream, sizeof(kstream), PA_JOB_STREAM);
    args[3] = maxs;
    args[4] = job->id;
    n = job_fields(job, args, 5, bufs);
    reply = run_script(r, err, lua_submit, 3, n, args);
    if(!reply) {
        pa_err tmp;

        /* never let recovery run a job the client was told failed */
        db_set_state(db, job->id, "failed", NULL, "could not be queued", &tmp);
        return PA_EREDIS;
    }
    rc = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1 ? PA_OK : PA_EBUSY;
    freeReplyObject(reply);
    if(rc == PA_EBUSY) {
        const char *values[1] = { job->id };
        PGresult *res = pa_db_query(db, NULL, "DELETE FROM job WHERE id = $1", 1, values);

        PQclear(res);
        return pa_err_set(err, PA_EBUSY,
                          "this client already has %ld export or match jobs queued or running; "
                          "wait for one to finish or cancel one",
                          max_active);
    }
    return PA_OK;
}

static char *dup_or_null(const redisReply *v)
{
    return v->type == REDIS_REPLY_STRING ? strndup(v->str, v->len) : NULL;
}

static int64_t to_i64(const redisReply *v)
{
    long n = 0;
    char tmp[32];

    if(v->type != REDIS_REPLY_STRING || v->len >= sizeof(tmp))
        return 0;
    memcpy(tmp, v->str, v->len);
    tmp[v->len] = '\0';
    pa_parse_long(tmp, &n);
    return n;
}

int pa_job_key(pa_redis *r, const char *id, char *key, size_t size)
{
    if(strlen(id) != PA_JOB_ID_LEN || strspn(id, "0123456789abcdef") != PA_JOB_ID_LEN)
        return -1;
    pa_redis_key(r, key, size, "job:%s", id);
    return 0;
}

int pa_job_get(pa_redis *r, const char *id, pa_job **out, pa_err *err)
{
    char key[KEYLEN];
    redisReply *reply;

    *out = NULL;
    if(pa_job_key(r, id, key, sizeof(key)))
        return pa_err_set(err, PA_ENOTFOUND, "no such job");
    reply = pa_redis_cmd(r, err, "HGETALL %s", key);
    if(!reply)
        return PA_EREDIS;
    return pa_job_from_reply(id, reply, out, err);
}

int pa_job_from_reply(const char *id, redisReply *reply, pa_job **out, pa_err *err)
{
    pa_job *job = NULL;
    size_t i;
    int rc = PA_OK;

    *out = NULL;
    if(reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        rc = pa_err_set(err, PA_ENOTFOUND, "no such job");
        goto out;
    }
    job = calloc(1, sizeof(*job));
    if(!job) {
        rc = pa_err_set(err, PA_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(job->id, id, PA_JOB_ID_LEN + 1);
    for(i = 0; i + 1 < reply->elements; i += 2) {
        const char *f = reply->element[i]->str;
        const redisReply *v = reply->element[i + 1];
        char **sp = NULL;

        if(!f)
            continue;
        if(!strcmp(f, "kind"))
            sp = &job->kind;
        else if(!strcmp(f, "owner"))
            sp = &job->owner;
        else if(!strcmp(f, "state"))
            sp = &job->state;
        else if(!strcmp(f, "request"))
            sp = &job->request;
        else if(!strcmp(f, "params"))
            sp = &job->params;
        else if(!strcmp(f, "manifest"))
            sp = &job->manifest;
        else if(!strcmp(f, "error"))
            sp = &job->error;
        else if(!strcmp(f, "checkpoint"))
            sp = &job->checkpoint;
        else if(!strcmp(f, "ttime"))
            job->ttime = to_i64(v);
        else if(!strcmp(f, "created"))
            job->created = to_i64(v);
        else if(!strcmp(f, "finished"))
            job->finished = to_i64(v);
        else if(!strcmp(f, "done"))
            job->done = (long)to_i64(v);
        else if(!strcmp(f, "total"))
            job->total = (long)to_i64(v);
        else if(!strcmp(f, "parts"))
            job->parts = (long)to_i64(v);
        else if(!strcmp(f, "attempts"))
            job->attempts = (long)to_i64(v);
        else if(!strcmp(f, "request_id") && v->type == REDIS_REPLY_STRING)
            snprintf(job->request_id, sizeof(job->request_id), "%.*s", (int)v->len, v->str);
        if(sp) {
            free(*sp);
            *sp = dup_or_null(v);
        }
    }
    /* a hash without these is a leftover, never a job */
    if(!job->kind || !job->owner || !job->state || !job->request || !job->params) {
        rc = pa_err_set(err, PA_ENOTFOUND, "no such job");
        goto out;
    }
    *out = job;
    job = NULL;
out:
    pa_job_free(job);
    freeReplyObject(reply);
    return rc;
}

int pa_job_mark_cancelled(pa_redis *r, const char *id, const char *owner, int64_t purge_after_ms, pa_err *err)
{
    char khash[KEYLEN], kactive[KEYLEN], kdue[KEYLEN], now[24], purge[24];
    const char *args[7];
    long long v = 0;
    int64_t t = pa_now_ms();
    int rc;

    snprintf(now, sizeof(now), "%lld", (long long)t);
    snprintf(purge, sizeof(purge), "%lld", (long long)(t + purge_after_ms));
    args[0] = pa_redis_key(r, khash, sizeof(khash), "job:%s", id);
    args[1] = pa_redis_key(r, kactive, sizeof(kactive), "active:%s", owner);
    args[2] = pa_redis_key(r, kdue, sizeof(kdue), "due");
    args[3] = owner;
    args[4] = now;
    args[5] = id;
    args[6] = purge;
    rc = script_int(r, err, lua_cancel, 3, 7, args, &v);
    if(rc)
        return rc;
    return v == 1 ? PA_OK : pa_err_set(err, PA_ENOTFOUND, "no such job");
}

int pa_job_cancel(pa_redis *r, PGconn *db, const char *id, const char *owner, int64_t purge_after_ms, pa_err *err)
{
    const char *values[2] = { id, owner };
    PGresult *res;
    int now_cancelled, rc;

    /* the durable record first: once it says cancelled, no runner completes
     * or starts the job again, whatever Redis says or loses */
    res = pa_db_query(db, err,
                      "WITH c AS (UPDATE job SET state = 'cancelled', updated_at = now(), "
                      "finished_at = coalesce(finished_at, now()) WHERE id = $1 AND owner = $2 "
                      "AND state IN ('queued', 'running', 'completed', 'failed') RETURNING 1) "
                      "SELECT (SELECT count(*) FROM c), "
                      "(SELECT state FROM job WHERE id = $1 AND owner = $2)",
                      2, values);
    if(!res)
        return PA_EDB;
    now_cancelled = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "1");
    /* (a cancellation whose Redis half failed is finished by a second DELETE) */
    if(!now_cancelled && (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 1), "cancelled"))) {
        PQclear(res);
        return pa_err_set(err, PA_ENOTFOUND, "no such job");
    }
    PQclear(res);
    rc = pa_job_mark_cancelled(r, id, owner, purge_after_ms, err);
    /* Redis had lost the job: the durable cancellation is the whole of it */
    if(rc == PA_ENOTFOUND && now_cancelled)
        return PA_OK;
    return rc;
}

int pa_job_db_read(PGconn *db, const char *id, const char *owner, pa_job **out, pa_err *err)
{
    const char *values[2] = { id, owner };
    PGresult *res;
    pa_job *job;
    long v;

    *out = NULL;
    if(strlen(id) != PA_JOB_ID_LEN)
        return pa_err_set(err, PA_ENOTFOUND, "no such job");
    res = pa_db_query(db, err,
                      "SELECT kind, owner, state, request, params::text, manifest::text, error, "
                      "(extract(epoch FROM transaction_time) * 1000)::bigint, "
                      "(extract(epoch FROM created_at) * 1000)::bigint, "
                      "coalesce((extract(epoch FROM finished_at) * 1000)::bigint, 0), coalesce(request_id, '') "
                      "FROM job WHERE id = $1 AND owner = $2",
                      2, values);
    if(!res)
        return PA_EDB;
    if(PQntuples(res) != 1) {
        PQclear(res);
        return pa_err_set(err, PA_ENOTFOUND, "no such job");
    }
    job = calloc(1, sizeof(*job));
    if(!job) {
        PQclear(res);
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    memcpy(job->id, id, PA_JOB_ID_LEN + 1);
    job->kind = strdup(PQgetvalue(res, 0, 0));
    job->owner = strdup(PQgetvalue(res, 0, 1));
    /* a job Redis lost while queued or running is queued again by the janitor */
    job->state = strdup(strcmp(PQgetvalue(res, 0, 2), "running") ? PQgetvalue(res, 0, 2) : "queued");
    job->request = strdup(PQgetvalue(res, 0, 3));
    job->params = strdup(PQgetvalue(res, 0, 4));
    job->manifest = PQgetisnull(res, 0, 5) ? NULL : strdup(PQgetvalue(res, 0, 5));
    job->error = PQgetisnull(res, 0, 6) ? NULL : strdup(PQgetvalue(res, 0, 6));
    pa_parse_long(PQgetvalue(res, 0, 7), &v);
    job->ttime = v;
    pa_parse_long(PQgetvalue(res, 0, 8), &v);
    job->created = v;
    pa_parse_long(PQgetvalue(res, 0, 9), &v);
    job->finished = v;
    pa_strlcpy(job->request_id, PQgetvalue(res, 0, 10), sizeof(job->request_id));
    PQclear(res);
    if(!job->kind || !job->owner || !job->state || !job->request || !job->params) {
        pa_job_free(job);
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    *out = job;
    return PA_OK;
}

/* Whether part names a part of a split job (not the whole job). */
static int is_part(const char *part)
{
    return part && *part;
}

/* The field of the hash naming the unit's runner: "runner" for a whole job,
 * "part:<p>:runner" for a part. */
static const char *runner_field(const char *part, char *buf, size_t size)
{
    if(!is_part(part))
        return "runner";
    snprintf(buf, size, "part:%s:runner", part);
    return buf;
}

int pa_job_queue_init(pa_redis *r, pa_err *err)
{
    static const char *const streams[] = { PA_JOB_STREAM, PA_PART_STREAM };
    char key[KEYLEN];
    size_t i;

    for(i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
        pa_err tmp;
        redisReply *reply;

        pa_err_clear(&tmp);
        reply = pa_redis_cmd(r, &tmp, "XGROUP CREATE %s %s 0 MKSTREAM",
                             pa_redis_key(r, key, sizeof(key), "%s", streams[i]), PA_JOB_GROUP);
        if(reply)
            freeReplyObject(reply);
        else if(!strstr(tmp.msg, "BUSYGROUP"))
            return pa_err_set(err, PA_EREDIS, "%s", tmp.msg);
    }
    return PA_OK;
}

/* A part name as queued: PA_PART_FINISH, or a number from 1. */
static int valid_part(const char *s, size_t n)
{
    if(n == strlen(PA_PART_FINISH) && !memcmp(s, PA_PART_FINISH, n))
        return 1;
    return n > 0 && n < 10 && s[0] != '0' && strspn(s, "0123456789") >= n;
}

/* Reads [id, [field, value, ...]] into e (msgid, jobid, part); 1 if it
 * holds a job (and, from the part stream, a part). */
static int parse_entry(const redisReply *r, const char *stream, pa_job_entry *e)
{
    const redisReply *fields;
    size_t i;
    int job = 0;

    e->part[0] = '\0';
    if(r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    pa_strlcpy(e->stream, stream, sizeof(e->stream));
    pa_strlcpy(e->msgid, r->element[0]->str, sizeof(e->msgid));
    fields = r->element[1];
    if(fields->type != REDIS_REPLY_ARRAY)
        return 0;
    for(i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];

        if(f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if(!strcmp(f->str, "job") && v->len == PA_JOB_ID_LEN) {
            memcpy(e->jobid, v->str, PA_JOB_ID_LEN);
            e->jobid[PA_JOB_ID_LEN] = '\0';
            job = 1;
        }
        else if(!strcmp(f->str, "part") && valid_part(v->str, v->len)) {
            memcpy(e->part, v->str, v->len);
            e->part[v->len] = '\0';
        }
    }
    /* parts come from their stream only; the last step from the job stream */
    if(!strcmp(stream, PA_PART_STREAM))
        return job && e->part[0] && strcmp(e->part, PA_PART_FINISH);
    return job && (!e->part[0] || !strcmp(e->part, PA_PART_FINISH));
}

/* An entry without a job can never be worked: it is dropped. */
static void drop_unworkable(pa_redis *r, pa_job_entry *e)
{
    pa_err tmp;

    if(e->msgid[0])
        pa_job_ack(r, e, &tmp);
    e->msgid[0] = '\0';
}

/* One entry of stream whose runner has been silent idle_ms: 1, 0, or an error. */
static int claim_idle(pa_redis *r, const char *stream, const char *consumer, long idle_ms, pa_job_entry *e, pa_err *err)
{
    char key[KEYLEN];
    redisReply *reply;
    int got = 0;
    size_t i;

    e->msgid[0] = '\0';
    pa_redis_key(r, key, sizeof(key), "%s", stream);
    /* Redis 7: [next-id, [[id, fields], ...], [deleted ids]] */
    reply = pa_redis_cmd(r, err, "XAUTOCLAIM %s %s %s %ld 0-0 COUNT 1", key, PA_JOB_GROUP, consumer, idle_ms);
    if(!reply)
        return PA_EREDIS;
    if(reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 && reply->element[1]->type == REDIS_REPLY_ARRAY)
        for(i = 0; !got && i < reply->element[1]->elements; i++)
            got = parse_entry(reply->element[1]->element[i], stream, e);
    freeReplyObject(reply);
    if(!got)
        drop_unworkable(r, e);
    return got;
}

/*
 * A new entry: of PA_JOB_STREAM, else of PA_PART_STREAM, without waiting;
 * then of either, waiting up to block_ms.  A wait that ends with entries of
 * both keeps the job stream's and hands the part on at once.
 */
static int read_new(pa_redis *r, const char *consumer, long block_ms, long idle_ms, pa_job_entry *e, pa_err *err)
{
    char kjobs[KEYLEN], kparts[KEYLEN];
    redisReply *reply;
    int pass, got = 0;
    size_t i;

    pa_redis_key(r, kjobs, sizeof(kjobs), PA_JOB_STREAM);
    pa_redis_key(r, kparts, sizeof(kparts), PA_PART_STREAM);
    /* a blocking read must end before the socket timeout, or hiredis breaks */
    if(block_ms >= pa_redis_timeout_ms(r))
        block_ms = pa_redis_timeout_ms(r) / 2;
    for(pass = 0; pass < 3 && !got; pass++) {
        if(pass < 2)
            reply = pa_redis_cmd(r, err, "XREADGROUP GROUP %s %s COUNT 1 STREAMS %s >", PA_JOB_GROUP, consumer,
                                 pass ? kparts : kjobs);
        else
            reply = pa_redis_cmd(r, err, "XREADGROUP GROUP %s %s COUNT 1 BLOCK %ld STREAMS %s %s > >", PA_JOB_GROUP,
                                 consumer, block_ms, kjobs, kparts);
        if(!reply)
            return PA_EREDIS;
        /* [[stream, [[id, fields]]], ...] or nil */
        for(i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
            const redisReply *s = reply->element[i];
            const char *stream;
            pa_job_entry other;

            if(s->type != REDIS_REPLY_ARRAY || s->elements != 2 || s->element[0]->type != REDIS_REPLY_STRING ||
               s->element[1]->type != REDIS_REPLY_ARRAY || s->element[1]->elements != 1)
                continue;
            stream = !strcmp(s->element[0]->str, kparts) ? PA_PART_STREAM : PA_JOB_STREAM;
            if(got) {
                /* a second entry, read in the same wait: another runner's */
                memset(&other, 0, sizeof(other));
                if(parse_entry(s->element[1]->element[0], stream, &other))
                    pa_job_release(r, consumer, &other, idle_ms, err);
                else
                    drop_unworkable(r, &other);
                continue;
            }
            got = parse_entry(s->element[1]->element[0], stream, e);
            if(!got)
                drop_unworkable(r, e);
        }
        freeReplyObject(reply);
    }
    return got;
}

int pa_job_next(pa_redis *r, const char *consumer, long block_ms, long idle_ms, pa_job_entry *e, pa_err *err)
{
    int got;

    memset(e, 0, sizeof(*e));
    got = claim_idle(r, PA_JOB_STREAM, consumer, idle_ms, e, err);
    if(!got)
        got = claim_idle(r, PA_PART_STREAM, consumer, idle_ms, e, err);
    if(!got)
        got = read_new(r, consumer, block_ms, idle_ms, e, err);
    return got;
}

static int script_int(pa_redis *r, pa_err *err, const char *script, int nkeys, int nargs, const char **args,
                      long long *out)
{
    redisReply *reply = run_script(r, err, script, nkeys, nargs, args);

    if(!reply)
        return PA_EREDIS;
    *out = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
    freeReplyObject(reply);
    return PA_OK;
}

int pa_job_begin(pa_redis *r, const char *id, const char *part, const char *runner, int64_t now, long *attempts,
                 pa_err *err)
{
    char khash[KEYLEN], nows[24], prefix[32];
    const char *args[4];
    long long v;
    int rc;

    snprintf(nows, sizeof(nows), "%lld", (long long)now);
    args[0] = pa_redis_key(r, khash, sizeof(khash), "job:%s", id);
    if(is_part(part)) {
        snprintf(prefix, sizeof(prefix), "part:%s:", part);
        args[1] = prefix;
        args[2] = runner;
        args[3] = part;
        rc = script_int(r, err, lua_part_begin, 1, 4, args, &v);
    }
    else {
        args[1] = nows;
        args[2] = runner;
        rc = script_int(r, err, lua_begin, 1, 3, args, &v);
    }
    if(rc)
        return rc;
    *attempts = v > 0 ? (long)v : 0;
    return v > 0 ? 1 : 0;
}

/* The result of a script guarded on the state being running. */
static int settled(long long v, pa_err *err)
{
    if(v == 1)
        return PA_OK;
    if(v == 0)
        return pa_err_set(err, PA_ECANCELLED, "the job was cancelled");
    if(v == -2)
        return pa_err_set(err, PA_ESTATE, "another runner took the job over");
    return pa_err_set(err, PA_ENOTFOUND, "the job's state is gone from Redis");
}

int pa_job_checkpoint(pa_redis *r, const char *id, const char *part, const char *runner, long done, long total,
                      const char *checkpoint, pa_err *err)
{
    char khash[KEYLEN], sdone[24], stotal[24], cpfield[32], rfield[32];
    const char *args[7];
    long long v;
    int rc;

    snprintf(sdone, sizeof(sdone), "%ld", done);
    snprintf(stotal, sizeof(stotal), "%ld", total);
    /* a part's checkpoint is its own; the last step's is the job's */
    if(is_part(part) && strcmp(part, PA_PART_FINISH)) {
        snprintf(cpfield, sizeof(cpfield), "part:%s:cp", part);
        sdone[0] = '\0';
    }
    else {
        pa_strlcpy(cpfield, "checkpoint", sizeof(cpfield));
    }
    args[0] = pa_redis_key(r, khash, sizeof(khash), "job:%s", id);
    args[1] = cpfield;
    args[2] = checkpoint;
    args[3] = sdone;
    args[4] = stotal;
    args[5] = runner_field(part, rfield, sizeof(rfield));
    args[6] = runner;
    rc = script_int(r, err, lua_checkpoint, 1, 7, args, &v);
    if(rc)
        return rc;
    return settled(v, err);
}

int pa_job_part_field(pa_redis *r, const char *id, const char *part, const char *name, char **out, pa_err *err)
{
    char key[KEYLEN];
    redisReply *reply;

    *out = NULL;
    reply = pa_redis_cmd(r, err, "HGET %s part:%s:%s", pa_redis_key(r, key, sizeof(key), "job:%s", id), part, name);
    if(!reply)
        return PA_EREDIS;
    if(reply->type == REDIS_REPLY_STRING) {
        *out = strndup(reply->str, reply->len);
        if(!*out) {
            freeReplyObject(reply);
            return pa_err_set(err, PA_ENOMEM, "out of memory");
        }
    }
    freeReplyObject(reply);
    return PA_OK;
}

int pa_job_split(pa_redis *r, const pa_job_entry *e, const char *runner, long nparts, const char *checkpoint,
                 pa_err *err)
{
    char khash[KEYLEN], kparts[KEYLEN], kjobs[KEYLEN], sparts[24], stotal[24];
    const char *args[10];
    long long v;
    int rc;

    snprintf(sparts, sizeof(sparts), "%ld", nparts);
    snprintf(stotal, sizeof(stotal), "%ld", nparts + 1);
    args[0] = pa_redis_key(r, khash, sizeof(khash), "job:%s", e->jobid);
    args[1] = pa_redis_key(r, kparts, sizeof(kparts), PA_PART_STREAM);
    args[2] = pa_redis_key(r, kjobs, sizeof(kjobs), PA_JOB_STREAM);
    args[3] = checkpoint;
    args[4] = sparts;
    args[5] = stotal;
    args[6] = e->jobid;
    args[7] = e->msgid;
    args[8] = "runner";
    args[9] = runner;
    rc = script_int(r, err, lua_split, 3, 10, args, &v);
    if(rc)
        return rc;
    return settled(v, err);
}

int pa_job_part_done(pa_redis *r, const pa_job_entry *e, const char *runner, const char *outputs, pa_err *err)
{
    char khash[KEYLEN], kjobs[KEYLEN], kparts[KEYLEN], prefix[32], rfield[32];
    const char *args[9];
    long long v;
    int rc;

    snprintf(prefix, sizeof(prefix), "part:%s:", e->part);
    args[0] = pa_redis_key(r, khash, sizeof(khash), "job:%s", e->jobid);
    args[1] = pa_redis_key(r, kjobs, sizeof(kjobs), PA_JOB_STREAM);
    args[2] = pa_redis_key(r, kparts, sizeof(kparts), PA_PART_STREAM);
    args[3] = prefix;
    args[4] = outputs;
    args[5] = e->jobid;
    args[6] = e->msgid;
    args[7] = runner_field(e->part, rfield, sizeof(rfield));
    args[8] = runner;
    rc = script_int(r, err, lua_part_done, 3, 9, args, &v);
    if(rc)
        return rc;
    return settled(v, err);
}

int pa_job_heartbeat(pa_redis *r, const char *consumer, const pa_job_entry *e, pa_err *err)
{
    char key[KEYLEN];
    redisReply *reply =
        pa_redis_cmd(r, err, "XCLAIM %s %s %s 0 %s JUSTID", pa_redis_key(r, key, sizeof(key), "%s", e->stream),
                     PA_JOB_GROUP, consumer, e->msgid);

    if(!reply)
        return PA_EREDIS;
    freeReplyObject(reply);
    return PA_OK;
}

static int finish(pa_redis *r, const char *id, const char *part, const char *runner, const char *state,
                  const char *field, const char *value, int64_t now, int64_t retention_ms, pa_err *err)
{
    char khash[KEYLEN], kdue[KEYLEN], kactive[KEYLEN], nows[24], purge[24], rfield[32];
    const char *args[11];
    long long v;
    int rc;

    snprintf(nows, sizeof(nows), "%lld", (long long)now);
    snprintf(purge, sizeof(purge), "%lld", (long long)(now + retention_ms));
    args[0] = pa_redis_key(r, khash, sizeof(khash), "job:%s", id);
    args[1] = pa_redis_key(r, kdue, sizeof(kdue), "due");
    args[2] = pa_redis_key(r, kactive, sizeof(kactive), "active:");
    args[3] = state;
    args[4] = field;
    args[5] = value;
    args[6] = nows;
    args[7] = purge;
    args[8] = id;
    args[9] = runner_field(part, rfield, sizeof(rfield));
    args[10] = runner;
    rc = script_int(r, err, lua_finish, 3, 11, args, &v);
    if(rc)
        return rc;
    return settled(v, err);
}

int pa_job_complete(pa_redis *r, const char *id, const char *part, const char *runner, const char *manifest,
                    int64_t now, int64_t retention_ms, pa_err *err)
{
    return finish(r, id, part, runner, "completed", "manifest", manifest, now, retention_ms, err);
}

int pa_job_fail(pa_redis *r, const char *id, const char *part, const char *runner, const char *reason, int64_t now,
                int64_t retention_ms, pa_err *err)
{
    return finish(r, id, part, runner, "failed", "error", reason, now, retention_ms, err);
}

int pa_job_ack(pa_redis *r, const pa_job_entry *e, pa_err *err)
{
    char key[KEYLEN];
    redisReply *reply;

    pa_redis_key(r, key, sizeof(key), "%s", e->stream);
    reply = pa_redis_cmd(r, err, "XACK %s %s %s", key, PA_JOB_GROUP, e->msgid);
    if(!reply)
        return PA_EREDIS;
    freeReplyObject(reply);
    /* the stream holds only work not yet done, so it never grows */
    reply = pa_redis_cmd(r, err, "XDEL %s %s", key, e->msgid);
    if(!reply)
        return PA_EREDIS;
    freeReplyObject(reply);
    return PA_OK;
}

int pa_job_release(pa_redis *r, const char *consumer, const pa_job_entry *e, long idle_ms, pa_err *err)
{
    char key[KEYLEN];
    redisReply *reply;

    /* an idle time already past the takeover threshold hands it on at once */
    reply =
        pa_redis_cmd(r, err, "XCLAIM %s %s %s 0 %s IDLE %ld JUSTID", pa_redis_key(r, key, sizeof(key), "%s", e->stream),
                     PA_JOB_GROUP, consumer, e->msgid, idle_ms + 1000);
    if(!reply)
        return PA_EREDIS;
    freeReplyObject(reply);
    return PA_OK;
}

int pa_job_db_update(PGconn *db, const pa_job *job, pa_err *err)
{
    return db_set_state(db, job->id, job->state, job->manifest, job->error, err);
}

int pa_job_due(pa_redis *r, int64_t now, size_t max, char ***ids, size_t *n, pa_err *err)
{
    char key[KEYLEN];
    redisReply *reply;
    char **list = NULL;
    size_t i;
    size_t count = 0;

    *ids = NULL;
    *n = 0;
    reply = pa_redis_cmd(r, err, "ZRANGEBYSCORE %s -inf %lld LIMIT 0 %ld", pa_redis_key(r, key, sizeof(key), "due"),
                         (long long)now, (long)max);
    if(!reply)
        return PA_EREDIS;
    if(reply->type == REDIS_REPLY_ARRAY && reply->elements) {
        list = calloc(reply->elements, sizeof(*list));
        if(!list) {
            freeReplyObject(reply);
            return pa_err_set(err, PA_ENOMEM, "out of memory");
        }
        for(i = 0; i < reply->elements; i++) {
            const redisReply *e = reply->element[i];

            /* ids are checked: they become file paths */
            if(e->type != REDIS_REPLY_STRING || e->len != PA_JOB_ID_LEN ||
               strspn(e->str, "0123456789abcdef") != PA_JOB_ID_LEN)
                continue;
            list[count] = strdup(e->str);
            if(list[count])
                count++;
        }
    }
    freeReplyObject(reply);
    *ids = list;
    *n = count;
    return PA_OK;
}

int pa_job_forget(pa_redis *r, const char *id, pa_err *err)
{
    char khash[KEYLEN], kdue[KEYLEN];
    redisReply *reply;

    reply = pa_redis_cmd(r, err, "DEL %s", pa_redis_key(r, khash, sizeof(khash), "job:%s", id));
    if(!reply)
        return PA_EREDIS;
    freeReplyObject(reply);
    reply = pa_redis_cmd(r, err, "ZREM %s %s", pa_redis_key(r, kdue, sizeof(kdue), "due"), id);
    if(!reply)
        return PA_EREDIS;
    freeReplyObject(reply);
    return PA_OK;
}

int pa_job_prune_consumers(pa_redis *r, long idle_ms, long *pruned, pa_err *err)
{
    char key[KEYLEN];
    long more = 0;
    int rc = pa_redis_prune_consumers(r, pa_redis_key(r, key, sizeof(key), PA_JOB_STREAM), PA_JOB_GROUP, idle_ms,
                                      pruned, err);

    if(!rc)
        rc = pa_redis_prune_consumers(r, pa_redis_key(r, key, sizeof(key), PA_PART_STREAM), PA_JOB_GROUP, idle_ms,
                                      &more, err);
    *pruned += more;
    return rc;
}

int pa_job_recover(pa_redis *r, PGconn *db, long *recovered, pa_err *err)
{
    PGresult *res;
    int rc = PA_OK;
    int i;

    *recovered = 0;
    res = pa_db_query(db, err,
                      "SELECT id, kind, owner, request, params::text, "
                      "(extract(epoch FROM transaction_time) * 1000)::bigint, "
                      "(extract(epoch FROM created_at) * 1000)::bigint, coalesce(request_id, '') "
                      "FROM job WHERE state IN ('queued', 'running') "
                      /* a job being enqueued right now has its row a moment before its hash */
                      "AND created_at < now() - interval '10 seconds' ORDER BY created_at",
                      0, NULL);
    if(!res)
        return PA_EDB;
    for(i = 0; i < PQntuples(res) && !rc; i++) {
        char khash[KEYLEN], kactive[KEYLEN], kstream[KEYLEN];
        char bufs[3][24];
        const char *args[32];
        redisReply *reply;
        pa_job job;
        long t = 0;
        int n;

        memset(&job, 0, sizeof(job));
        if(pa_strlcpy(job.id, PQgetvalue(res, i, 0), sizeof(job.id)))
            continue;
        job.kind = PQgetvalue(res, i, 1);
        job.owner = PQgetvalue(res, i, 2);
        job.state = (char *)"queued";
        job.request = PQgetvalue(res, i, 3);
        job.params = PQgetvalue(res, i, 4);
        pa_parse_long(PQgetvalue(res, i, 5), &t);
        job.ttime = t;
        pa_parse_long(PQgetvalue(res, i, 6), &t);
        job.created = t;
        pa_strlcpy(job.request_id, PQgetvalue(res, i, 7), sizeof(job.request_id));
        args[0] = pa_redis_key(r, kactive, sizeof(kactive), "active:%s", job.owner);
        args[1] = pa_redis_key(r, khash, sizeof(khash), "job:%s", job.id);
        args[2] = pa_redis_key(r, kstream, sizeof(kstream), PA_JOB_STREAM);
        args[3] = "0"; /* unused: a recovered job was accepted already, so no cap */
        args[4] = job.id;
        n = job_fields(&job, args, 5, bufs);
        reply = run_script(r, err, lua_recover, 3, n, args);
        if(!reply) {
            rc = PA_EREDIS;
            break;
        }
        if(reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
            (*recovered)++;
        freeReplyObject(reply);
    }
    PQclear(res);
    return rc;
}
