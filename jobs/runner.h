/*
 * The runner's internals: one supervisor process forks --workers worker
 * processes; each takes jobs from the Redis stream and runs them by kind.
 */
#ifndef PA_RUNNER_H
#define PA_RUNNER_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdint.h>

#include "pa_config.h"
#include "pa_err.h"
#include "pa_job.h"
#include "pa_redis.h"

typedef struct pa_worker {
    const pa_config *cfg;
    pa_redis *redis;
    PGconn *db;
    PGconn *db2;                    /* an export's second lane, kept between jobs */
    PGconn *replica[2];             /* its lanes on the hot standby (export_database), kept too */
    int64_t replica_skip_until;     /* the standby could not be used: not tried again before (mono ms) */
    char consumer[128];
    pa_job_entry entry;             /* the stream entry being worked: a whole job, a part, a last step */
    volatile sig_atomic_t *stop;    /* set by SIGTERM: finish the chunk, then hand over */
} pa_worker;

/* Runs until *stop; returns the process exit status. */
int pa_worker_main(const pa_config *cfg, int index, volatile sig_atomic_t *stop);

/*
 * Runs the unit w->entry names of an export job: the whole job, one part of
 * a split one, or a split one's last step.  On success *manifest (caller
 * frees) is the Bulk Data manifest; for a part, the part's outputs (for
 * pa_job_part_done); NULL when the whole job was split into parts instead
 * (pa_job_split queued them and settled the entry).  PA_ECANCELLED,
 * PA_ESTOPPED or another error code otherwise.  Resumes from the unit's
 * checkpoint when there is one.
 */
int pa_export_run(pa_worker *w, const pa_job *job, char **manifest, pa_err *err);

/* Removes what an export keeps in PostgreSQL while it runs (the references
 * and the members it gathered); the worker calls it when a job ends, however
 * it ends. */
int pa_export_forget(PGconn *db, const char *job_id, pa_err *err);

/*
 * Records a finished export's disclosures (table disclosure): each member it
 * wrote as exported, with the types and _since/_until asked, and each member
 * of its Group an opt-out kept out as withheld.  The worker calls it once the
 * files are ready and before the job is completed: a job is never served
 * without its records.  Idempotent.
 */
int pa_export_disclose(pa_worker *w, const pa_job *job, pa_err *err);

/* Runs a member-match job (the asynchronous $provider-member-match). */
int pa_match_job(pa_worker *w, const pa_job *job, char **manifest, pa_err *err);

/* Saves progress and resume point, keeps the job claimed and honours
 * cancellation and shutdown: PA_ECANCELLED or PA_ESTOPPED to stop now. */
int pa_worker_checkpoint(pa_worker *w, const pa_job *job, long done, long total,
                         const char *checkpoint, pa_err *err);

/* Sleeps ms milliseconds. */
void pa_worker_pause_ms(long ms);

/* The pause export_chunk_pause_ms asks for between chunks (tests use it to
 * land crashes mid-job). */
void pa_worker_chunk_pause(const pa_worker *w);

#endif
