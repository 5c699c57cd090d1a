/*
 * The loader's shared state (load.c) and its parts for PDex Groups
 * (groups.c) and CSV feeds (feeds.c).
 */
#ifndef PA_LOAD_H
#define PA_LOAD_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>

#include "pa_buf.h"
#include "pa_err.h"
#include "fhirload.h"
#include "pa_fhir.h"

#define PA_LOAD_MAX_LINE (64 * 1024 * 1024)
/* A JSON text over several lines (a pretty-printed Bundle) */
#define PA_LOAD_MAX_DOC (256 * 1024 * 1024)
#define LOAD_REASONS_MAX 64
#define LOAD_EXAMPLES 3
#define LOAD_MAX_TYPES 64

/* A batch: rows sent by one COPY and stored in one transaction. */
#define BATCH_ROWS 5000
#define BATCH_BYTES (16 * 1024 * 1024)
/* Batches stored at once, each by a sender thread on a connection of its
 * own (loadsend.c). */
#define LOAD_SENDERS 2
/* The hash set of a batch's keys: twice a batch's rows and NPIs. */
#define LOAD_BATCH_KEYS 32768

/* In a direct batch, where the change time goes: as long as the instant
 * that replaces it once the batch's transaction has taken it. */
#define DIRECT_TIME "@@pa:change-time-direct@"
_Static_assert(sizeof(DIRECT_TIME) - 1 == 24, "the placeholder is as long as YYYY-MM-DDTHH:MM:SS.mmmZ");

/* A stored resource's meta.lastUpdated until it is merged: the merge puts
 * this server's change time in its place (sql/010_change_time.sql). */
#define CHANGE_TIME_VALUE "@@pa:change-time@@"
#define CHANGE_TIME_MARK "\"lastUpdated\":\"" CHANGE_TIME_VALUE "\""

/* The change time of a transaction that changes resources, taken after the
 * shared lock that pa_transaction_time() looks for (milliseconds, as the
 * FHIR instant written shows it), and that instant as the member lu. */
/* clang-format off */
#define CHANGE_TIME_CTE \
    "WITH lk AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(872341, 1)), " \
    "ct AS MATERIALIZED (SELECT t, '\"lastUpdated\":\"' || to_char(t AT TIME ZONE 'UTC'," \
    "  'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') || '\"' AS lu" \
    " FROM (SELECT date_trunc('milliseconds', clock_timestamp()) AS t FROM lk) now_)"
/* clang-format on */

/* A mark's kind: the place of a text change time (DIRECT_TIME) or of a
 * binary one (a timestamptz's 8 bytes), in a mark's lowest bit. */
#define MARK_TEXT 0
#define MARK_BINARY 1

struct deferred_group;
struct load_refs;

/* Offsets in a batch where its change time is to be written (load.c). */
struct load_marks {
    size_t *at;
    size_t n, cap;
};

/* Reports counted by reason (loadsum.c). */
typedef struct load_tally {
    struct {
        char *key;
        long count;
        char *examples[LOAD_EXAMPLES];
    } r[LOAD_REASONS_MAX];
    int n;
    long other; /* reasons past the first LOAD_REASONS_MAX */
} load_tally;

typedef struct load_ctx {
    PGconn *db;
    pa_buf batch; /* COPY rows not yet sent */
    long batch_rows;
    char batch_file[1024];      /* where the batch begins */
    char batch_last_file[1024]; /* and ends (a batch goes on across files) */
    long batch_first_line;
    long batch_last_line;
    /* hashes of the batch's (type, id): a batch that names no resource twice
     * merges without sorting itself first (load.c: batch_key); and of its
     * NPIs: batches that share none of these are stored at once */
    uint64_t batch_keys[LOAD_BATCH_KEYS];
    int batch_repeats;
    /* rows go straight into resource, not through the merge: the store was
     * empty when the load began, and nothing the load met was stored yet
     * (load.c: store_direct) */
    int direct;
    int batch_direct;        /* the batch being built is direct */
    struct load_marks marks; /* its change time's places */
    pa_buf derive;           /* its rows for member, coverage, directory */
    /* the batches in flight, which the sender threads store (loadsend.c):
     * the next batch goes to senders[next] */
    struct load_sender *senders[LOAD_SENDERS];
    int nsenders;
    int next;
    /* stored per type (pa_fhir_type_index): in the batch, merged */
    long batch_types[LOAD_MAX_TYPES];
    long type_loaded[LOAD_MAX_TYPES];
    long seq;
    fhirload_facts facts;
    pa_json_tape tape;     /* of the text the facts are read from */
    pa_buf scratch;        /* a tree's text, when the facts are read from it */
    pa_buf stored, nonfin; /* what is stored of a resource, and its non-financial form */
    /* counts */
    long seen, loaded, inserted, updated, unchanged, deleted, rejected, groups, feed_rows;
    long warnings, skipped;
    load_tally refused, warned, skipped_types;
    FILE *errors; /* --errors FILE: every report */
    long entry;   /* the Bundle entry being loaded, or -1 */
    /* Bundles: their references resolved across the load (bundle.c) */
    struct load_refs *refs;
    /* Groups wait until every resource is in */
    struct deferred_group *groups_head;
    struct deferred_group *groups_tail;
    int tty;
    int progress_shown;
    int64_t started;
    int64_t last_progress;
    long long bytes_total;   /* of every file to read */
    long long bytes_done;    /* of the files read */
    long long bytes_current; /* of the file being read */
} load_ctx;

/* load.c: a load on db (the caller's connection), every report also to
 * errors if not NULL; load_close frees what it holds. */
int load_open(load_ctx *l, PGconn *db, FILE *errors, pa_err *err);
/* Loads one file: FHIR NDJSON/JSON (plain or gzip), or a CSV feed.  Its
 * last rows may still be in a batch: load_flush stores them. */
int load_file(load_ctx *l, const char *path, pa_err *err);
/* After the FHIR files: the Bundle entries that waited, then the Groups. */
int load_finish(load_ctx *l, pa_err *err);
void load_close(load_ctx *l);

/* loadsum.c: counts a refused line, row or entry under its reason. */
void load_report(load_ctx *l, const char *file, long line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Counts something stored with a warning. */
void load_warn(load_ctx *l, const char *file, long line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Counts a resource of a type the server does not keep. */
void load_skip(load_ctx *l, const char *type, const char *file, long line);

/* The progress line: on a terminal at most five times a second, otherwise
 * a line every ten seconds; final clears it. */
void load_progress(load_ctx *l, const char *file, int final);

/* The end of a load: counts per type, and per reason with examples. */
void load_summary(load_ctx *l, FILE *out);
void load_summary_free(load_ctx *l);

/* load.c: checks a parsed resource (taken) and stages it.  text[0..n) is
 * its source when it is one whole line (stored as it is when compact),
 * NULL otherwise. */
int load_object(load_ctx *l, json_object *res, const char *text, size_t n, const char *file, long line, pa_err *err);

/* Stores what is staged, before another statement uses the connection. */
int load_flush(load_ctx *l, pa_err *err);

/* loadsend.c: the senders, each on a connection of its own (the first on
 * l->db) set up for a load; stopped, and their connections closed. */
int load_senders_start(load_ctx *l, pa_err *err);
void load_senders_stop(load_ctx *l);
/* Hands the batch built to a sender and starts the next. */
int load_batch_send(load_ctx *l, pa_err *err);
/* Notes where a change time is to be written in a batch. */
int load_mark_add(struct load_marks *m, size_t at, int kind);

/* Deletes the DELETE entries of a transaction or batch Bundle. */
int load_bundle_deletes(load_ctx *l, json_object *bundle, const char *file, long line, pa_err *err);

/* bundle.c: a Bundle's entries, their references rewritten to Type/id. */
int load_bundle(load_ctx *l, json_object *bundle, const char *file, long line, pa_err *err);
/* The entries whose references named what had not been read yet, once
 * everything else is. */
int load_bundles_finish(load_ctx *l, pa_err *err);
void load_bundles_free(load_ctx *l);
/* How many entries wait for load_bundles_finish. */
long load_bundles_waiting(const load_ctx *l);

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
