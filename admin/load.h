/*
 * The loader's shared state (load.c) and its parts for PDex Groups
 * (groups.c) and CSV feeds (feeds.c).
 */
#ifndef PA_LOAD_H
#define PA_LOAD_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "pa_buf.h"
#include "pa_err.h"
#include "pa_fhir.h"

#define PA_LOAD_MAX_LINE (64 * 1024 * 1024)

struct deferred_group;

typedef struct load_ctx {
    PGconn *db;
    pa_buf batch;             /* COPY rows not yet sent */
    long batch_rows;
    char batch_file[1024];
    long batch_first_line;
    long batch_last_line;
    /* hashes of the batch's (type, id): a batch that names no resource twice
     * merges without sorting itself first (load.c: batch_key) */
    uint64_t batch_keys[16384];
    int batch_repeats;
    /* the batch whose merge is in flight (load.c: batch_send, batch_wait) */
    long pending_rows;
    char pending_file[1024];
    long pending_first_line, pending_last_line;
    long pending_inserted, pending_updated;
    long seq;
    pa_fhir_facts facts;
    /* counts */
    long seen, loaded, inserted, updated, unchanged, deleted, rejected, groups, feed_rows;
    /* Groups wait until every resource is in */
    struct deferred_group *groups_head;
    struct deferred_group *groups_tail;
    int tty;
    int progress_shown;
    int64_t started;
    int64_t last_progress;
} load_ctx;

/* Reports a rejected line or row on stderr and counts it. */
void load_report(load_ctx *l, const char *file, long line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Deletes resources (types and ids: Postgres array literals), leaving
 * tombstones; *n is how many existed. */
int load_delete(PGconn *db, const char *types, const char *ids, long *n, pa_err *err);

/* groups.c: PDex rosters, treatment relationships and opt-outs as Groups. */
int load_groups_init(load_ctx *l, pa_err *err);
int load_group_defer(load_ctx *l, json_object *group, const char *file, long line); /* takes group */
int load_groups_flush(load_ctx *l, pa_err *err);
void load_groups_free(load_ctx *l);

/* feeds.c: CSV feeds, recognised by their header line. */
int load_csv(load_ctx *l, const char *file, pa_err *err);

#endif
