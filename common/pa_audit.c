/*
 * The audit trail: a Redis stream in front of audit_event (see pa_audit.h).
 */
#include "pa_audit.h"
#include "pa_util.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_db.h"
#include "pa_log.h"

#define STREAM "audit"
#define GROUP "store"
#define MAX_BATCH 1000

/* audit_event's columns as the stream's fields, in insert order */
static const struct {
    const char *name;
    const char *type;
} cols[] = {
    { "at", "timestamptz" },      { "request_id", "text" }, { "client_id", "text" }, { "npi", "text" },
    { "method", "text" },         { "endpoint", "text" },   { "operation", "text" }, { "group_id", "text" },
    { "members", "integer" },     { "job_id", "text" },     { "outcome", "text" },   { "status", "integer" },
    { "duration_ms", "integer" }, { "detail", "text" },
};
#define NCOLS (sizeof(cols) / sizeof(cols[0]))

/* The event's values in cols order; NULL where it has none.  nums holds the
 * numbers' text. */
static void event_values(const pa_audit_event *e, char nums[3][24], const char *v[NCOLS])
{
    snprintf(nums[0], sizeof(nums[0]), "%ld", e->members);
    snprintf(nums[1], sizeof(nums[1]), "%d", e->status);
    snprintf(nums[2], sizeof(nums[2]), "%lld", e->duration_ms);
    v[0] = e->at;
    v[1] = e->request_id;
    v[2] = e->client_id;
    v[3] = e->npi;
    v[4] = e->method;
    v[5] = e->endpoint;
    v[6] = e->operation;
    v[7] = e->group_id;
    v[8] = e->members >= 0 ? nums[0] : NULL;
    v[9] = e->job_id;
    v[10] = e->outcome;
    v[11] = nums[1];
    v[12] = nums[2];
    v[13] = e->detail;
}

int pa_audit_queue(pa_redis *r, const pa_audit_event *e, pa_err *err)
{
    const char *argv[3 + 2 * NCOLS];
    const char *v[NCOLS];
    char nums[3][24];
    char key[128];
    redisReply *reply;
    int argc = 0;
    size_t i;

    event_values(e, nums, v);
    argv[argc++] = "XADD";
    argv[argc++] = pa_redis_key(r, key, sizeof(key), STREAM);
    argv[argc++] = "*";
    for(i = 0; i < NCOLS; i++) {
        if(!v[i] || !*v[i])
            continue;
        argv[argc++] = cols[i].name;
        argv[argc++] = v[i];
    }
    reply = pa_redis_argv(r, err, argc, argv, NULL);
    if(!reply)
        return PA_EREDIS;
    freeReplyObject(reply);
    return PA_OK;
}

/* Inserts the events of rows (a JSON array of objects keyed by column);
 * an event already stored is left as it is. */
static int insert_rows(PGconn *db, json_object *rows, pa_err *err)
{
    char sql[2048];
    int n = snprintf(sql, sizeof(sql), "INSERT INTO audit_event (");
    const char *values[1];
    PGresult *res;
    size_t i;

    for(i = 0; i < NCOLS; i++)
        n += snprintf(sql + n, sizeof(sql) - (size_t)n, "%s%s", i ? ", " : "", cols[i].name);
    n += snprintf(sql + n, sizeof(sql) - (size_t)n, ") SELECT ");
    for(i = 0; i < NCOLS; i++)
        n += snprintf(sql + n, sizeof(sql) - (size_t)n, i ? ", %s" : "coalesce(%s, now())", cols[i].name);
    n += snprintf(sql + n, sizeof(sql) - (size_t)n, " FROM jsonb_to_recordset($1::jsonb) AS x(");
    for(i = 0; i < NCOLS; i++)
        n += snprintf(sql + n, sizeof(sql) - (size_t)n, "%s%s %s", i ? ", " : "", cols[i].name, cols[i].type);
    snprintf(sql + n, sizeof(sql) - (size_t)n, ") ON CONFLICT DO NOTHING");
    values[0] = json_object_to_json_string_ext(rows, JSON_C_TO_STRING_PLAIN);
    res = pa_db_query(db, err, sql, 1, values);
    if(!res)
        return PA_EDB;
    PQclear(res);
    return PA_OK;
}

/* A column's value as JSON text PostgreSQL takes: a value made of a request's
 * bytes (its path, say) may hold some that are no UTF-8, and jsonb would
 * refuse the whole batch for one. */
static json_object *column_value(const char *v, size_t n)
{
    char *copy = strndup(v, n);
    json_object *o;

    if(!copy)
        return NULL;
    pa_utf8_scrub(copy, strlen(copy));
    o = json_object_new_string(copy);
    free(copy);
    return o;
}

int pa_audit_insert(PGconn *db, const pa_audit_event *e, pa_err *err)
{
    json_object *rows = json_object_new_array();
    json_object *row = json_object_new_object();
    const char *v[NCOLS];
    char nums[3][24];
    size_t i;
    int rc;

    event_values(e, nums, v);
    for(i = 0; i < NCOLS; i++)
        if(v[i] && *v[i])
            json_object_object_add(row, cols[i].name, column_value(v[i], strlen(v[i])));
    json_object_array_add(rows, row);
    rc = insert_rows(db, rows, err);
    json_object_put(rows);
    return rc;
}

/* The row of one stream entry ([id, [field, value, ...]]); NULL for an entry
 * deleted meanwhile. */
static json_object *entry_row(const redisReply *entry)
{
    const redisReply *fields;
    json_object *row;
    size_t i, k;

    if(entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 || entry->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    fields = entry->element[1];
    row = json_object_new_object();
    for(i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i];
        const redisReply *v = fields->element[i + 1];

        if(f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        for(k = 0; k < NCOLS; k++)
            if(!strcmp(f->str, cols[k].name))
                json_object_object_add(row, cols[k].name, column_value(v->str, v->len));
    }
    return row;
}

/* Stores the entries (an array of stream entries), then acknowledges and
 * deletes them from the stream.  Returns how many there were, or -1. */
static long store_entries(pa_redis *r, PGconn *db, const char *key, const redisReply *entries, pa_err *err)
{
    const char *argv[3 + MAX_BATCH];
    json_object *rows;
    redisReply *reply;
    size_t i;
    int n = 0;

    if(!entries || entries->type != REDIS_REPLY_ARRAY || !entries->elements)
        return 0;
    rows = json_object_new_array();
    for(i = 0; i < entries->elements && n < MAX_BATCH; i++) {
        const redisReply *e = entries->element[i];
        json_object *row = entry_row(e);

        if(row)
            json_object_array_add(rows, row);
        if(e->type == REDIS_REPLY_ARRAY && e->elements && e->element[0]->type == REDIS_REPLY_STRING)
            argv[3 + n++] = e->element[0]->str;
    }
    if(json_object_array_length(rows) && insert_rows(db, rows, err)) {
        if(PQstatus(db) != CONNECTION_OK) {
            json_object_put(rows);
            return -1; /* they stay queued until PostgreSQL is back */
        }
        /* one the table refuses must not hold up the others: stored one by
         * one, and what cannot be stored goes to the log */
        for(i = 0; i < json_object_array_length(rows); i++) {
            json_object *one = json_object_new_array();
            json_object *row = json_object_array_get_idx(rows, i);

            json_object_array_add(one, json_object_get(row));
            if(insert_rows(db, one, err))
                pa_warn("audit event not storable (%s): %s", err->msg,
                        json_object_to_json_string_ext(row, JSON_C_TO_STRING_PLAIN));
            json_object_put(one);
        }
        pa_err_clear(err);
    }
    json_object_put(rows);
    /* stored: only now may they leave the stream */
    argv[0] = "XACK";
    argv[1] = key;
    argv[2] = GROUP;
    reply = pa_redis_argv(r, err, 3 + n, argv, NULL);
    if(!reply)
        return -1;
    freeReplyObject(reply);
    argv[1] = "XDEL";
    argv[2] = key;
    reply = pa_redis_argv(r, err, 2 + n, argv + 1, NULL);
    if(!reply)
        return -1;
    freeReplyObject(reply);
    return n;
}

long pa_audit_drain(pa_redis *r, PGconn *db, const char *consumer, long batch, int max_batches, long stale_ms,
                    pa_err *err)
{
    char key[128];
    char count[24], idle[24];
    redisReply *reply;
    long total = 0;
    long got;
    int i;

    if(batch < 1 || batch > MAX_BATCH)
        batch = MAX_BATCH;
    snprintf(count, sizeof(count), "%ld", batch);
    snprintf(idle, sizeof(idle), "%ld", stale_ms);
    pa_redis_key(r, key, sizeof(key), STREAM);
    reply = pa_redis_cmd(r, err, "XGROUP CREATE %s %s 0 MKSTREAM", key, GROUP);
    if(reply)
        freeReplyObject(reply);
    else if(!strstr(err->msg, "BUSYGROUP"))
        return -1;
    pa_err_clear(err);

    /* what a drainer that died had read but not stored */
    reply = pa_redis_cmd(r, err, "XAUTOCLAIM %s %s %s %s 0-0 COUNT %s", key, GROUP, consumer, idle, count);
    if(!reply)
        return -1;
    got = store_entries(r, db, key, reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 ? reply->element[1] : NULL,
                        err);
    freeReplyObject(reply);
    if(got < 0)
        return -1;
    total += got;

    for(i = 0; i < max_batches; i++) {
        const redisReply *entries = NULL;

        reply = pa_redis_cmd(r, err, "XREADGROUP GROUP %s %s COUNT %s STREAMS %s >", GROUP, consumer, count, key);
        if(!reply)
            return -1;
        /* [[key, entries]], or nil when nothing is new */
        if(reply->type == REDIS_REPLY_ARRAY && reply->elements && reply->element[0]->type == REDIS_REPLY_ARRAY &&
           reply->element[0]->elements >= 2)
            entries = reply->element[0]->element[1];
        got = store_entries(r, db, key, entries, err);
        freeReplyObject(reply);
        if(got < 0)
            return -1;
        total += got;
        if(got < batch)
            break;
    }
    return total;
}

int pa_audit_prune_drainers(pa_redis *r, long idle_ms, long *pruned, pa_err *err)
{
    char key[128];

    *pruned = 0;
    pa_redis_key(r, key, sizeof(key), STREAM);
    if(pa_redis_prune_consumers(r, key, GROUP, idle_ms, pruned, err)) {
        /* no stream or group yet: nothing to forget */
        if(strstr(err->msg, "no such key") || strstr(err->msg, "NOGROUP")) {
            pa_err_clear(err);
            return PA_OK;
        }
        return PA_EREDIS;
    }
    return PA_OK;
}
