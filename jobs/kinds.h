/*
 * The kinds of job the runner knows, in one table: the worker and the
 * janitor find what to do with a job through it, never by comparing kind
 * names.  Each kind's functions live in its own file (export.c, match.c).
 */
#ifndef PA_JOBS_KINDS_H
#define PA_JOBS_KINDS_H

#include <libpq-fe.h>

#include "pa_err.h"
#include "pa_job.h"
#include "worker.h"

struct job_kind {
    const char *name; /* pa_job.kind */
    const char *what; /* the job in a failure's words to its client: "the export" */
    int has_parts;    /* a job of this kind may be split into parts (pa_job_split) */
    /*
     * Runs the unit w->entry names (the whole job, or a part or last step of
     * a split one): *manifest (caller frees) is the Bulk Data manifest, a
     * part's outputs, or NULL when the job was split into parts instead.
     * PA_ECANCELLED, PA_ESTOPPED or another error code otherwise.
     */
    int (*run)(struct worker *w, const pa_job *job, char **manifest, pa_err *err);
    /* What must be recorded before the job is served (NULL: nothing). */
    int (*before_complete)(struct worker *w, const pa_job *job, pa_err *err);
    /*
     * The job ended in state (completed, failed, cancelled, or expired when
     * the janitor purges it): removes what the kind keeps in PostgreSQL while
     * a job runs.  Idempotent; NULL when there is nothing.
     */
    int (*on_end)(PGconn *db, const char *job_id, const char *state, pa_err *err);
};

/* The kind named name, or NULL. */
const struct job_kind *job_kind_find(const char *name);

/* Calls every kind's on_end for job_id (the janitor, which knows a job's id
 * but not its kind); the first error is returned, every kind is called. */
int job_kinds_end(PGconn *db, const char *job_id, const char *state, pa_err *err);

/* The export (export.c). */
int export_run(struct worker *w, const pa_job *job, char **manifest, pa_err *err);
/*
 * Records a finished export's disclosures (table disclosure): each member it
 * wrote as exported, with the types and _since/_until asked, and each member
 * of its Group an opt-out kept out as withheld.  Called once the files are
 * ready and before the job is completed: a job is never served without its
 * records.  Idempotent.
 */
int export_disclose(struct worker *w, const pa_job *job, pa_err *err);
/* Removes the references and members an export gathered while it ran, and,
 * when it was cancelled, the downloads it prepared and never gave. */
int export_end(PGconn *db, const char *job_id, const char *state, pa_err *err);

/* The asynchronous $provider-member-match (match.c). */
int match_run(struct worker *w, const pa_job *job, char **manifest, pa_err *err);

#endif
