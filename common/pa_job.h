/*
 * pa_job: the asynchronous job model shared by the responder (submit, read,
 * cancel) and the runner (claim, checkpoint, finish).  docs/internals/jobs.md
 * describes the Redis layout and the state machine:
 *
 *   queued -> running -> completed | failed        (runner)
 *   queued | running | completed | failed -> cancelled   (client DELETE)
 *
 * Every transition that must not race another is one Lua script.  Each job
 * also has a durable row in PostgreSQL (table job) from which a lost Redis
 * is repopulated (pa_job_recover).
 */
#ifndef PA_JOB_H
#define PA_JOB_H

#include <libpq-fe.h>
#include <stdint.h>

#include "pa_err.h"
#include "pa_redis.h"

#define PA_JOB_ID_LEN 32
/* An export's `patient` subset: at most this many references (checked at
 * kick-off; the runner's member list is sized for it). */
#define PA_EXPORT_MAX_PATIENTS 1000
#define PA_JOB_MAX_ATTEMPTS 3
#define PA_JOB_STREAM "jobs"
/* The parts of split exports: read only when PA_JOB_STREAM has nothing, so
 * that a new job (a small one, or a big one's planning) never waits behind
 * another job's parts. */
#define PA_PART_STREAM "parts"
#define PA_JOB_GROUP "runners"
/* The part name of a split export's last step (the shared pass, the manifest). */
#define PA_PART_FINISH "finish"

typedef struct pa_job {
    char id[PA_JOB_ID_LEN + 1];
    char *kind;          /* "export" or "match" (jobs/kinds.c) */
    char *owner;         /* client id */
    char *state;         /* queued | running | completed | failed | cancelled */
    char *request;       /* the kick-off URL, for the manifest */
    char request_id[33]; /* the kick-off's X-Request-Id ("" if unknown) */
    char *params;        /* kind-specific parameters (JSON) */
    int64_t ttime;       /* transactionTime (ms): the kick-off instant, as pa_job_submit sets it */
    int64_t created;
    int64_t finished; /* completion or cancellation (ms), 0 if none */
    long done;        /* progress: chunks done of total (a split export: parts, and its last step) */
    long total;
    long parts;       /* a split export's parts, 0 for a job run whole */
    char *manifest;   /* when completed */
    char *error;      /* when failed */
    char *checkpoint; /* runner's resume point (JSON), NULL at first */
    long attempts;
} pa_job;

/*
 * Seconds a client should wait before its next poll (Retry-After), never more
 * than max_seconds nor less than 1: the time the job's progress (done of total
 * chunks since it was created) says is left; without progress yet, 1 during
 * the job's first max_seconds (most jobs are short), max_seconds after.
 */
long pa_job_retry_after(const pa_job *job, int64_t now_ms, long max_seconds);

/* Allocates a job with the given id/kind/owner/request/params (copied). */
int pa_job_create(pa_job **out, const char *kind, const char *owner, const char *request, const char *params,
                  int64_t ttime, pa_err *err);
void pa_job_free(pa_job *job);

/*
 * Records the job durably in PostgreSQL, then atomically (one script) checks
 * the owner's cap of queued+running jobs, writes the job hash and enqueues it.
 * PA_EBUSY when the owner already has max_active jobs.  Sets job->ttime
 * to the database's transactionTime (pa_transaction_time()).
 */
int pa_job_submit(pa_redis *r, PGconn *db, pa_job *job, long max_active, pa_err *err);

/* Reads a job; PA_ENOTFOUND if there is none. */
int pa_job_get(pa_redis *r, const char *id, pa_job **out, pa_err *err);

/* The Redis key of job id (HGETALL it); -1 if id cannot be a job's. */
int pa_job_key(pa_redis *r, const char *id, char *key, size_t size);

/* The job of an HGETALL reply of its key, which it frees; PA_ENOTFOUND if
 * there is none. */
int pa_job_from_reply(const char *id, redisReply *reply, pa_job **out, pa_err *err);

/*
 * Cancels (running or queued) or deletes (finished) the owner's job: after
 * it, the job answers 404 and its files are gone once the janitor runs
 * (purge_after_ms from now).  The durable record is changed first: if
 * PostgreSQL cannot be reached nothing changes (PA_EDB); if Redis cannot,
 * the job is cancelled all the same (no runner completes or starts it) and
 * PA_EREDIS says the rest is to be done by calling again.  PA_ENOTFOUND if
 * not the owner's or already cancelled.
 */
int pa_job_cancel(pa_redis *r, PGconn *db, const char *id, const char *owner, int64_t purge_after_ms, pa_err *err);

/* The Redis half of a cancellation (the runner's, when it finds the durable
 * record cancelled).  PA_ENOTFOUND if Redis has no such job running. */
int pa_job_mark_cancelled(pa_redis *r, const char *id, const char *owner, int64_t purge_after_ms, pa_err *err);

/* The owner's job as PostgreSQL recorded it, for when Redis has lost it
 * (*out, pa_job_free it): a queued or running one reads as queued.
 * PA_ENOTFOUND if there is none. */
int pa_job_db_read(PGconn *db, const char *id, const char *owner, pa_job **out, pa_err *err);

/* ---- runner side ---- */

/* Creates the streams and their consumer group if they do not exist. */
int pa_job_queue_init(pa_redis *r, pa_err *err);

/*
 * A unit of work taken from the queue: a whole job (part ""), one part of a
 * split export ("1" to "n", from PA_PART_STREAM), or a split export's last
 * step (PA_PART_FINISH, from PA_JOB_STREAM, queued when its last part is done).
 */
typedef struct pa_job_entry {
    char stream[16];
    char msgid[64];
    char jobid[PA_JOB_ID_LEN + 1];
    char part[16];
} pa_job_entry;

/*
 * Takes the next unit: first one whose runner has been silent idle_ms or
 * more (XAUTOCLAIM), else a new one, waiting up to block_ms (XREADGROUP);
 * PA_JOB_STREAM's before PA_PART_STREAM's.  Returns 1 with *e set, 0 when
 * there is none.
 */
int pa_job_next(pa_redis *r, const char *consumer, long block_ms, long idle_ms, pa_job_entry *e, pa_err *err);

/* queued|running -> running, attempts+1, runner (the worker's consumer name)
 * recorded as the one working on it.  For a part (part not NULL or ""): the
 * job must be running and the part not done; its own attempts and runner
 * are counted and recorded.  1: go ahead, 0: the job is finished, cancelled
 * or gone, or the part done, so only acknowledge it. */
int pa_job_begin(pa_redis *r, const char *id, const char *part, const char *runner, int64_t now, long *attempts,
                 pa_err *err);

/* Saves progress and the resume point in one step, only while the job is
 * running and the unit (whole job or part) still this runner's;
 * PA_ECANCELLED if the job is no longer running (cancelled; for a part,
 * also failed by another part), PA_ESTATE if another runner took the unit
 * over (this one stalled), PA_ENOTFOUND if Redis lost it (pa_job_recover
 * queues it again from PostgreSQL).  A part's progress is counted when it
 * is done (pa_job_part_done): done and total are then ignored. */
int pa_job_checkpoint(pa_redis *r, const char *id, const char *part, const char *runner, long done, long total,
                      const char *checkpoint, pa_err *err);

/* A part's field (name "cp": its checkpoint, "out": its outputs) into *out
 * (caller frees; NULL when unset). */
int pa_job_part_field(pa_redis *r, const char *id, const char *part, const char *name, char **out, pa_err *err);

/*
 * Splits a running job into nparts parts, in one step: the checkpoint the
 * parts and the last step start from, progress 0 of nparts + 1, the parts
 * queued on PA_PART_STREAM and the whole job's entry e acknowledged.  Errors
 * as for pa_job_checkpoint.
 */
int pa_job_split(pa_redis *r, const pa_job_entry *e, const char *runner, long nparts, const char *checkpoint,
                 pa_err *err);

/*
 * Records part e done with its outputs (JSON, read back by the last step),
 * counts it in the job's progress, queues the last step when it was the last
 * part, and acknowledges e, in one step (once: a part done twice counts
 * once).  Errors as for pa_job_checkpoint.
 */
int pa_job_part_done(pa_redis *r, const pa_job_entry *e, const char *runner, const char *outputs, pa_err *err);

/* Resets the entry's idle time so that no other runner takes it over. */
int pa_job_heartbeat(pa_redis *r, const char *consumer, const pa_job_entry *e, pa_err *err);

/* running -> completed with the manifest; PA_ECANCELLED or PA_ENOTFOUND as
 * for pa_job_checkpoint (part: the unit completing it, NULL or "" for a
 * whole job, PA_PART_FINISH for a split one). */
int pa_job_complete(pa_redis *r, const char *id, const char *part, const char *runner, const char *manifest,
                    int64_t now, int64_t retention_ms, pa_err *err);

/* running -> failed with a reason the client will see (by any unit of it). */
int pa_job_fail(pa_redis *r, const char *id, const char *part, const char *runner, const char *reason, int64_t now,
                int64_t retention_ms, pa_err *err);

/* Done with the entry: acknowledge and delete it from its stream. */
int pa_job_ack(pa_redis *r, const pa_job_entry *e, pa_err *err);

/* Gives the entry up so that another runner takes it at once. */
int pa_job_release(pa_redis *r, const char *consumer, const pa_job_entry *e, long idle_ms, pa_err *err);

/* Mirrors a job's state into its PostgreSQL row. */
int pa_job_db_update(PGconn *db, const pa_job *job, pa_err *err);

/* Ids of jobs due for purging (up to max); *ids freed with free() each and itself. */
int pa_job_due(pa_redis *r, int64_t now, size_t max, char ***ids, size_t *n, pa_err *err);

/* Deletes the job's Redis keys. */
int pa_job_forget(pa_redis *r, const char *id, pa_err *err);

/* Removes consumers (workers that are gone) holding nothing and silent for
 * idle_ms or more; *pruned says how many. */
int pa_job_prune_consumers(pa_redis *r, long idle_ms, long *pruned, pa_err *err);

/* Re-enqueues queued or running jobs that PostgreSQL has and Redis lost. */
int pa_job_recover(pa_redis *r, PGconn *db, long *recovered, pa_err *err);

#endif
