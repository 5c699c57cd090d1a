/*
 * The export job's own parts (jobs/export.c): its outputs and checkpoint
 * (export_out.c) and its queries (export_sql.c).  Nothing else includes it.
 */
#ifndef PA_JOBS_EXPORT_H
#define PA_JOBS_EXPORT_H
#include <json-c/json.h>
#include <stdint.h>

#include "elements.h"
#include "members.h"
#include "pa_buf.h"
#include "pa_err.h"
#include "pa_fhir.h"
#include "pa_strset.h"
#include "kinds.h"
#include "progress.h"

#define MAX_OUTS 32
#define WRITE_BUF (256 * 1024)
#define MAX_FILES_PER_TYPE 10000
#define MAX_SQL_VALUES 64
#define SQL_MAX (64 * 1024)
#define CHECKPOINT_EVERY_MS 1000
#define MAX_LANES 3
/* A chunk's references (export_chunk) are sent to export_ref once the chunk
 * ends; early, by an idle lane, once they hold export_refs_batch_bytes; and
 * at once, on a connection of their own, once they hold twice that. */
#define REFS_ARENA_BYTES(BATCH) (4 * (size_t)(BATCH) + (2u << 20))
/* How long a unit waits for the hot standby to replay what was committed
 * before it starts; then it reads the primary. */
#define REPLICA_WAIT_MS 5000
/* How long a worker that could not use the hot standby reads the primary
 * before it tries the standby again. */
#define REPLICA_RETRY_MS 30000

enum out_kind { OUT_RESOURCE, OUT_SHARED, OUT_DELETED, OUT_ERROR };

/* One output: finished files and the one being written. */
struct type_out {
    char type[64]; /* resource type; "Bundle" for deleted, "OperationOutcome" for errors */
    enum out_kind kind;
    long file_no;      /* current file, from 1 */
    long long bytes;   /* bytes in the current file */
    long count;        /* lines in the current file */
    json_object *done; /* finished files: [{"name", "count"}] */
    int fd;
    pa_buf sql;          /* the query for one chunk of this type */
    const char **values; /* fixed */
    const char *fixed[MAX_SQL_VALUES];
    int nvalues;
    pa_buf wbuf; /* lines not yet written to the current file */
    int subset;  /* _elements names this type: keep only what `keep` says */
    struct elements keep;
};

struct export
{
    struct worker *w;
    const pa_job *job;
    json_object *params; /* owned: borrowed strings point into it */
    char dir[1024];
    const char *group, *npi, *org_npi;
    struct member_scope scope; /* who the export covers (the subset: patients) */
    int shared_all;            /* an admin's system-level export: every shared resource, not only those referenced */
    /* Postgres array literal of the patient subset, "" for all: quoted ids
     * and commas, as many as a kick-off accepts */
    char patients[(PA_FHIR_ID_MAX + 3) * PA_EXPORT_MAX_PATIENTS + 3];
    char ttime[32], since[32], until[32];
    int financial;
    int record_downloads;              /* exportType provider-download: remember who got what */
    pa_buf asked_types, asked_filters; /* as the client gave them, joined with commas */
    struct type_out out[MAX_OUTS];
    size_t nout;
    char after[256]; /* last member id done (keyset) */
    long done;       /* chunks done */
    long total;      /* chunks in all */
    int shared_done; /* the referenced shared resources are written */
    /* export_chunk's connections: the worker's; then its second one on the
     * primary, or (export_database) two on the hot standby, which run the
     * types' queries while the primary's runs the references' and members' */
    PGconn *lane_db[MAX_LANES];
    int nlanes;
    int replica;
    uint64_t prepared[MAX_LANES]; /* per lane: the queries it has prepared (bit i: out[i], MAX_OUTS: members) */
    int backend[MAX_LANES];       /* per lane: the server process they were prepared in */
    int64_t cost[MAX_OUTS + 1]; /* per chunk query: how long it took the last chunk (µs), to send the longest first */
    pa_buf shared;              /* the array literal of the shared types exported */
    pa_buf scratch;             /* a line cut down by _elements */
    int want_refs;              /* shared types are asked for: gather the members' references */
    int gather_refs;            /* the references are gathered: for the shared types, or the floor's error lines */
    int resumed;                /* going on from a checkpoint */
    /* A split export (export_part_members): the whole job's entry plans the
     * parts, each part writes its members' files, the last step the shared
     * pass and the manifest. */
    int planning;            /* the whole job's entry, splitting it: writes the error file only */
    long part;               /* the part this unit writes (1..n), 0 for the whole job or the last step */
    int finishing;           /* a split job's last step */
    int members_done;        /* no member is left to write (a part's, or the last step's) */
    long nmembers;           /* members in all (count_chunks) */
    json_object *bounds;     /* a split job's part bounds: the last member id of each part but the last */
    json_object *part_outs;  /* the last step's: each part's outputs, as export_part_outputs wrote them */
    char hi[256];            /* a part's last member id ("" for none) */
    struct type_out refs;    /* a chunk's references into export_ref (no file; wbuf: their array literal) */
    pa_strset refs_set;      /* the references its rows brought, not sent yet */
    pa_strset refs_stored;   /* the "ref=" ones this unit has stored (so many chunks name the same few) */
    int refs_waiting;        /* some were sent early: export_ref holds this unit's "+" and "-" rows */
    char unit_key[24];       /* those rows' key: the part (0 for a whole job) */
    pa_buf ref_item;         /* one reference read from a row */
    PGconn *refs_db;         /* the connection references are sent on while every lane is busy (opened then) */
    struct type_out members; /* a chunk's members into export_member (no file): its disclosures */
};

/* Outputs (export_out.c). */

/* Opens t's current file, cut to what the last checkpoint wrote. */
int export_open_current(struct export *x, struct type_out *t, pa_err *err);
/* Appends one NDJSON line (cut down by _elements when t asks), splitting
 * files at export_file_max_bytes. */
int export_add_line(struct export *x, struct type_out *t, const char *json, size_t n, pa_err *err);
/* Writes t's buffered lines to its file. */
int export_flush(struct type_out *t, pa_err *err);
/* Syncs every current file: what a checkpoint says was written must be. */
int export_sync(struct export *x, pa_err *err);
/* One warning OperationOutcome line (code, msg) of the error file t. */
int export_error_line(struct export *x, struct type_out *t, pa_buf *line, const char *code, const char *msg,
                      pa_err *err);
/* A new output (NULL past MAX_OUTS). */
struct type_out *export_add_out(struct export *x, const char *type, enum out_kind kind);
/* The resume point as JSON (caller frees), and its reading: a checkpoint
 * that cannot be used starts the job over (x->resumed stays 0). */
char *export_checkpoint(const struct export *x);
int export_restore(struct export *x, const char *cp, pa_err *err);
/* Closes the files and builds the manifest, listing first the parts'
 * files (x->part_outs); empty files go. */
int export_finish(struct export *x, char **manifest, pa_err *err);
/* A part's end: closes its files; *outputs (caller frees) lists each
 * output's files, for the last step's manifest. */
int export_part_outputs(struct export *x, char **outputs, pa_err *err);
/* Whether this unit writes t: a part its members' types and tombstones, the
 * last step the shared types and the error file, the planning entry the
 * error file, the whole job everything. */
int export_writes(const struct export *x, const struct type_out *t);
/* Removes the files an earlier attempt of this part wrote. */
void export_remove_part_files(struct export *x);
/* A job parameter: an integer (0 when absent), a string ("" when absent). */
int64_t param_i64(json_object *o, const char *k);
const char *param_str(json_object *o, const char *k);

/* Queries (export_sql.c). */

/* The query of one compartment type for a chunk of members (after
 * export_refs_setup: its rows bring their references when they are gathered). */
int export_type_sql(struct export *x, struct type_out *t, json_object *filters, pa_err *err);
/* The members' tombstones since _since. */
int export_deleted_sql(struct export *x, struct type_out *t, json_object *types);
/* The array literals of the types exported, whether references are
 * gathered, and the statement that stores them. */
int export_refs_setup(struct export *x, pa_err *err);
#endif
