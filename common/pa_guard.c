/*
 * The member-match enumeration guard (see pa_guard.h).  Redis keeps, per
 * client, the budget spent in the current window and, per demographics key,
 * the coverage ids sent with it; both expire with the window.
 */
#include "pa_guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_db.h"
#include "pa_log.h"
#include "pa_util.h"

/* KEYS: the spent counter.  ARGV: window (s), repeat weight, then pairs of
 * demographics set key and coverage id.  A miss costs 1, or the repeat weight
 * when its demographics came with another id before.  Returns the new total. */
static const char lua_charge[] =
    "local total = 0 "
    "for i = 3, #ARGV, 2 do "
    "  redis.call('SADD', ARGV[i], ARGV[i + 1]) "
    "  redis.call('EXPIRE', ARGV[i], ARGV[1]) "
    "  if redis.call('SCARD', ARGV[i]) > 1 then total = total + tonumber(ARGV[2]) else total = total + 1 end "
    "end "
    "local spent = redis.call('INCRBY', KEYS[1], total) "
    "if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end "
    "return spent";

int pa_guard_over(pa_redis *r, const pa_config *cfg, const char *client, long *retry_after, pa_err *err)
{
    char key[256];
    redisReply *reply;
    long long spent = 0, ttl = 0;

    *retry_after = 0;
    pa_redis_key(r, key, sizeof(key), "guard:%s", client);
    reply = pa_redis_cmd(r, err, "GET %s", key);
    if(!reply)
        return PA_EREDIS;
    if(reply->type == REDIS_REPLY_STRING)
        spent = strtoll(reply->str, NULL, 10);
    freeReplyObject(reply);
    if(spent < cfg->match_nonmatch_budget)
        return 0;
    reply = pa_redis_cmd(r, err, "TTL %s", key);
    if(!reply)
        return PA_EREDIS;
    if(reply->type == REDIS_REPLY_INTEGER)
        ttl = reply->integer;
    freeReplyObject(reply);
    *retry_after = ttl > 0 ? (long)ttl : cfg->match_budget_window_seconds;
    return 1;
}

int pa_guard_charge(pa_redis *r, PGconn *db, const pa_config *cfg, const char *client, json_object *misses, int *over,
                    pa_err *err)
{
    size_t n = json_object_is_type(misses, json_type_array) ? json_object_array_length(misses) : 0;
    const char **argv = NULL;
    char(*keys)[256] = NULL, (*ids)[65] = NULL;
    char counter[256], window[24], weight[24];
    redisReply *reply;
    size_t i;
    int rc = PA_OK;

    *over = 0;
    if(!n)
        return PA_OK;
    argv = calloc(2 * n + 6, sizeof(*argv));
    keys = calloc(n, sizeof(*keys));
    ids = calloc(n, sizeof(*ids));
    if(!argv || !keys || !ids) {
        rc = pa_err_set(err, PA_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(window, sizeof(window), "%ld", cfg->match_budget_window_seconds);
    snprintf(weight, sizeof(weight), "%ld", cfg->match_repeat_weight);
    argv[0] = "EVAL";
    argv[1] = lua_charge;
    argv[2] = "1";
    argv[3] = pa_redis_key(r, counter, sizeof(counter), "guard:%s", client);
    argv[4] = window;
    argv[5] = weight;
    for(i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(misses, i);
        char d[65];

        /* digests only: Redis never holds the demographics or ids */
        pa_sha256_hex(json_object_get_string(json_object_array_get_idx(m, 0)), d);
        pa_sha256_hex(json_object_get_string(json_object_array_get_idx(m, 1)), ids[i]);
        pa_redis_key(r, keys[i], sizeof(keys[i]), "guard:%s:%s", client, d);
        argv[6 + 2 * i] = keys[i];
        argv[7 + 2 * i] = ids[i];
    }
    reply = pa_redis_argv(r, err, (int)(6 + 2 * n), argv, NULL);
    if(!reply) {
        rc = PA_EREDIS;
        goto out;
    }
    *over = reply->type == REDIS_REPLY_INTEGER && reply->integer >= cfg->match_nonmatch_budget;
    freeReplyObject(reply);
    if(*over) {
        pa_warn("security: client %s spent its budget of unmatched members (%ld a window of %ld s): "
                "its member matches are refused until the window ends",
                client, cfg->match_nonmatch_budget, cfg->match_budget_window_seconds);
        if(db && pa_guard_flag(db, client, "over its budget of unmatched members (member id guessing?)", err))
            pa_warn("client %s: not flagged: %s", client, err->msg);
    }
out:
    free(argv);
    free(keys);
    free(ids);
    return rc;
}

int pa_guard_flag(PGconn *db, const char *client, const char *reason, pa_err *err)
{
    const char *values[2] = { client, reason };

    return pa_db_exec_params(db, err,
                             "UPDATE client SET flagged_at = coalesce(flagged_at, now()),"
                             " flag_reason = coalesce(flag_reason, $2) WHERE id = $1",
                             2, values);
}

int pa_guard_clear(pa_redis *r, PGconn *db, const char *client, pa_err *err)
{
    const char *values[1] = { client };
    char key[256];
    redisReply *reply;
    int rc =
        pa_db_exec_params(db, err, "UPDATE client SET flagged_at = NULL, flag_reason = NULL WHERE id = $1", 1, values);

    if(rc)
        return rc;
    reply = pa_redis_cmd(r, err, "DEL %s", pa_redis_key(r, key, sizeof(key), "guard:%s", client));
    if(!reply)
        return PA_EREDIS;
    freeReplyObject(reply);
    return PA_OK;
}
