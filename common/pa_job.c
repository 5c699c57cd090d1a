#include "pa_job.h"
#include "pa_db.h"
#include "pa_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYLEN 256

/* KEYS: active set, job hash, stream.  ARGV: max, id, field, value, ... */
static const char lua_submit[] =
    "if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end "
    "redis.call('HSET', KEYS[2], unpack(ARGV, 3)) "
    "redis.call('SADD', KEYS[1], ARGV[2]) "
    "redis.call('XADD', KEYS[3], '*', 'job', ARGV[2]) "
    "return 1";

/* KEYS: job hash, active set, due zset.  ARGV: owner, now, id, purge at. */
static const char lua_cancel[] =
    "local o = redis.call('HGET', KEYS[1], 'owner') "
    "if not o or o ~= ARGV[1] then return 0 end "
    "local st = redis.call('HGET', KEYS[1], 'state') "
    "if st == 'cancelled' then return 0 end "
    "redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished', ARGV[2]) "
    "redis.call('SREM', KEYS[2], ARGV[3]) "
    "redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3]) "
    "return 1";

/* Like lua_submit, for a job recovered from PostgreSQL: only if Redis lacks it. */
static const char lua_recover[] =
    "if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end "
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

/* Guard of the scripts below: 1 go on, 0 cancelled, -1 gone, -2 taken over. */
#define LUA_GUARD \
    "local st = redis.call('HGET', KEYS[1], 'state') " \
    "if not st then return -1 end " \
    "if st ~= 'running' then return 0 end " \
    "if redis.call('HGET', KEYS[1], 'runner') ~= ARGV[#ARGV] then return -2 end "

/* KEYS: job hash.  ARGV: done, total, checkpoint, runner. */
static const char lua_checkpoint[] =
    LUA_GUARD
    "redis.call('HSET', KEYS[1], 'done', ARGV[1], 'total', ARGV[2], 'checkpoint', ARGV[3]) "
    "return 1";

/* KEYS: job hash, due zset, active prefix.
 * ARGV: state, field, value, now, purge at, id, runner. */
static const char lua_finish[] =
    LUA_GUARD
    "redis.call('HSET', KEYS[1], 'state', ARGV[1], ARGV[2], ARGV[3], 'finished', ARGV[4]) "
    "redis.call('HDEL', KEYS[1], 'checkpoint') "
    "local o = redis.call('HGET', KEYS[1], 'owner') "
    "redis.call('SREM', KEYS[3] .. o, ARGV[6]) "
    "redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6]) "
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

int pa_job_new_id(char out[PA_JOB_ID_LEN + 1])
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

int pa_job_create(pa_job **out, const char *kind, const char *owner, const char *request,
                  const char *params, int64_t ttime, pa_err *err)
{
    pa_job *job = calloc(1, sizeof(*job));
    int rc = PA_OK;

    *out = NULL;
    if(!job)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    rc = pa_job_new_id(job->id);
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
static redisReply *run_script(pa_redis *r, pa_err *err, const char *script, int nkeys,
                              int nargs, const char **args)
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

static int script_int(pa_redis *r, pa_err *err, const char *script, int nkeys, int nargs,
                      const char **args, long long *out);

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

static int db_set_state(PGconn *db, const char *id, const char *state, const char *manifest,
                        const char *error, pa_err *err)
{
    const char *values[4] = { id, state, manifest, error };
    PGresult *res = pa_db_query(
        db, err,
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
    args[at++] = "kind";      args[at++] = job->kind;
    args[at++] = "owner";     args[at++] = job->owner;
    args[at++] = "state";     args[at++] = job->state;
    args[at++] = "request";   args[at++] = job->request;
    args[at++] = "params";    args[at++] = job->params;
    args[at++] = "ttime";     args[at++] = bufs[0];
    args[at++] = "created";   args[at++] = bufs[1];
    args[at++] = "attempts";  args[at++] = bufs[2];
    args[at++] = "request_id"; args[at++] = job->request_id;
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
        if(!strcmp(f, "kind")) sp = &job->kind;
        else if(!strcmp(f, "owner")) sp = &job->owner;
        else if(!strcmp(f, "state")) sp = &job->state;
        else if(!strcmp(f, "request")) sp = &job->request;
        else if(!strcmp(f, "params")) sp = &job->params;
        else if(!strcmp(f, "manifest")) sp = &job->manifest;
        else if(!strcmp(f, "error")) sp = &job->error;
        else if(!strcmp(f, "checkpoint")) sp = &job->checkpoint;
        else if(!strcmp(f, "ttime")) job->ttime = to_i64(v);
        else if(!strcmp(f, "created")) job->created = to_i64(v);
        else if(!strcmp(f, "finished")) job->finished = to_i64(v);
        else if(!strcmp(f, "done")) job->done = (long)to_i64(v);
        else if(!strcmp(f, "total")) job->total = (long)to_i64(v);
        else if(!strcmp(f, "attempts")) job->attempts = (long)to_i64(v);
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

int pa_job_cancel(pa_redis *r, PGconn *db, const char *id, const char *owner,
                  int64_t purge_after_ms, pa_err *err)
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

int pa_job_active_count(pa_redis *r, const char *owner, long *count, pa_err *err)
{
    char key[KEYLEN];
    redisReply *reply = pa_redis_cmd(r, err, "SCARD %s",
                                     pa_redis_key(r, key, sizeof(key), "active:%s", owner));

    if(!reply)
        return PA_EREDIS;
    *count = reply->type == REDIS_REPLY_INTEGER ? (long)reply->integer : 0;
    freeReplyObject(reply);
    return PA_OK;
}

int pa_job_queue_init(pa_redis *r, pa_err *err)
{
    char key[KEYLEN];
    pa_err tmp;
    redisReply *reply;

    pa_err_clear(&tmp);
    reply = pa_redis_cmd(r, &tmp, "XGROUP CREATE %s %s 0 MKSTREAM",
                         pa_redis_key(r, key, sizeof(key), PA_JOB_STREAM), PA_JOB_GROUP);
    if(reply) {
        freeReplyObject(reply);
        return PA_OK;
    }
    if(strstr(tmp.msg, "BUSYGROUP"))
        return PA_OK;
    return pa_err_set(err, PA_EREDIS, "%s", tmp.msg);
}

/* Reads [id, [field, value, ...]] into msgid/jobid; 1 if it holds a job. */
static int parse_entry(const redisReply *e, char msgid[64], char jobid[PA_JOB_ID_LEN + 1])
{
    const redisReply *fields;
    size_t i;

    if(e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    pa_strlcpy(msgid, e->element[0]->str, 64);
    fields = e->element[1];
    if(fields->type != REDIS_REPLY_ARRAY)
        return 0;
    for(i = 0; i + 1 < fields->elements; i += 2) {
        if(fields->element[i]->type == REDIS_REPLY_STRING && !strcmp(fields->element[i]->str, "job") &&
           fields->element[i + 1]->type == REDIS_REPLY_STRING &&
           fields->element[i + 1]->len == PA_JOB_ID_LEN) {
            memcpy(jobid, fields->element[i + 1]->str, PA_JOB_ID_LEN);
            jobid[PA_JOB_ID_LEN] = '\0';
            return 1;
        }
    }
    return 0;
}

int pa_job_next(pa_redis *r, const char *consumer, long block_ms, long idle_ms,
                char msgid[64], char jobid[PA_JOB_ID_LEN + 1], pa_err *err)
{
    char key[KEYLEN];
    redisReply *reply;
    int got = 0;
    size_t i;

    msgid[0] = '\0';
    pa_redis_key(r, key, sizeof(key), PA_JOB_STREAM);
    /* Redis 7: [next-id, [[id, fields], ...], [deleted ids]] */
    reply = pa_redis_cmd(r, err, "XAUTOCLAIM %s %s %s %ld 0-0 COUNT 1", key, PA_JOB_GROUP,
                         consumer, idle_ms);
    if(!reply)
        return PA_EREDIS;
    if(reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
       reply->element[1]->type == REDIS_REPLY_ARRAY)
        for(i = 0; !got && i < reply->element[1]->elements; i++)
            got = parse_entry(reply->element[1]->element[i], msgid, jobid);
    freeReplyObject(reply);
    if(got)
        return 1;
    if(msgid[0]) {
        /* an entry without a job id can never be worked: drop it */
        pa_job_ack(r, msgid, err);
        msgid[0] = '\0';
    }
    /* a blocking read must end before the socket timeout, or hiredis breaks */
    if(block_ms >= pa_redis_timeout_ms(r))
        block_ms = pa_redis_timeout_ms(r) / 2;
    reply = pa_redis_cmd(r, err, "XREADGROUP GROUP %s %s COUNT 1 BLOCK %ld STREAMS %s >",
                         PA_JOB_GROUP, consumer, block_ms, key);
    if(!reply)
        return PA_EREDIS;
    /* [[stream, [[id, fields]]]] or nil */
    if(reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
       reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2 &&
       reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY &&
       reply->element[0]->element[1]->elements == 1)
        got = parse_entry(reply->element[0]->element[1]->element[0], msgid, jobid);
    freeReplyObject(reply);
    if(!got && msgid[0]) {
        /* an entry without a job id can never be worked: drop it */
        pa_job_ack(r, msgid, err);
        msgid[0] = '\0';
    }
    return got;
}

static int script_int(pa_redis *r, pa_err *err, const char *script, int nkeys, int nargs,
                      const char **args, long long *out)
{
    redisReply *reply = run_script(r, err, script, nkeys, nargs, args);

    if(!reply)
        return PA_EREDIS;
    *out = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
    freeReplyObject(reply);
    return PA_OK;
}

int pa_job_begin(pa_redis *r, const char *id, const char *runner, int64_t now, long *attempts,
                 pa_err *err)
{
    char khash[KEYLEN], nows[24];
    const char *args[3];
    long long v;
    int rc;

    snprintf(nows, sizeof(nows), "%lld", (long long)now);
    args[0] = pa_redis_key(r, khash, sizeof(khash), "job:%s", id);
    args[1] = nows;
    args[2] = runner;
    rc = script_int(r, err, lua_begin, 1, 3, args, &v);
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

int pa_job_checkpoint(pa_redis *r, const char *id, const char *runner, long done, long total,
                      const char *checkpoint, pa_err *err)
{
    char khash[KEYLEN], sdone[24], stotal[24];
    const char *args[5];
    long long v;
    int rc;

    snprintf(sdone, sizeof(sdone), "%ld", done);
    snprintf(stotal, sizeof(stotal), "%ld", total);
    args[0] = pa_redis_key(r, khash, sizeof(khash), "job:%s", id);
    args[1] = sdone;
    args[2] = stotal;
    args[3] = checkpoint;
    args[4] = runner;
    rc = script_int(r, err, lua_checkpoint, 1, 5, args, &v);
    if(rc)
        return rc;
    return settled(v, err);
}

int pa_job_heartbeat(pa_redis *r, const char *consumer, const char *msgid, pa_err *err)
{
    char key[KEYLEN];
    redisReply *reply = pa_redis_cmd(r, err, "XCLAIM %s %s %s 0 %s JUSTID",
                                     pa_redis_key(r, key, sizeof(key), PA_JOB_STREAM),
                                     PA_JOB_GROUP, consumer, msgid);

    if(!reply)
        return PA_EREDIS;
    freeReplyObject(reply);
    return PA_OK;
}

static int finish(pa_redis *r, const char *id, const char *runner, const char *state,
                  const char *field, const char *value, int64_t now, int64_t retention_ms,
                  pa_err *err)
{
    char khash[KEYLEN], kdue[KEYLEN], kactive[KEYLEN], nows[24], purge[24];
    const char *args[10];
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
    args[9] = runner;
    rc = script_int(r, err, lua_finish, 3, 10, args, &v);
    if(rc)
        return rc;
    return settled(v, err);
}

int pa_job_complete(pa_redis *r, const char *id, const char *runner, const char *manifest,
                    int64_t now, int64_t retention_ms, pa_err *err)
{
    return finish(r, id, runner, "completed", "manifest", manifest, now, retention_ms, err);
}

int pa_job_fail(pa_redis *r, const char *id, const char *runner, const char *reason, int64_t now,
                int64_t retention_ms, pa_err *err)
{
    return finish(r, id, runner, "failed", "error", reason, now, retention_ms, err);
}

int pa_job_ack(pa_redis *r, const char *msgid, pa_err *err)
{
    char key[KEYLEN];
    redisReply *reply;

    pa_redis_key(r, key, sizeof(key), PA_JOB_STREAM);
    reply = pa_redis_cmd(r, err, "XACK %s %s %s", key, PA_JOB_GROUP, msgid);
    if(!reply)
        return PA_EREDIS;
    freeReplyObject(reply);
    /* the stream holds only work not yet done, so it never grows */
    reply = pa_redis_cmd(r, err, "XDEL %s %s", key, msgid);
    if(!reply)
        return PA_EREDIS;
    freeReplyObject(reply);
    return PA_OK;
}

int pa_job_release(pa_redis *r, const char *consumer, const char *msgid, long idle_ms,
                   pa_err *err)
{
    char key[KEYLEN];
    redisReply *reply;

    /* an idle time already past the takeover threshold hands it on at once */
    reply = pa_redis_cmd(r, err, "XCLAIM %s %s %s 0 %s IDLE %ld JUSTID",
                         pa_redis_key(r, key, sizeof(key), PA_JOB_STREAM), PA_JOB_GROUP,
                         consumer, msgid, idle_ms + 1000);
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
    reply = pa_redis_cmd(r, err, "ZRANGEBYSCORE %s -inf %lld LIMIT 0 %ld",
                         pa_redis_key(r, key, sizeof(key), "due"), (long long)now, (long)max);
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

    return pa_redis_prune_consumers(r, pa_redis_key(r, key, sizeof(key), PA_JOB_STREAM), PA_JOB_GROUP, idle_ms,
                                    pruned, err);
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
