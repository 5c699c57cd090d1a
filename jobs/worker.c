/*
 * A worker process: takes one job at a time from the stream (a job another
 * runner left silent first), runs it by kind, and records the outcome.
 * Transient failures (database, Redis, disk) hand the job back for another
 * attempt; after PA_JOB_MAX_ATTEMPTS it fails for good.
 */
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kinds.h"
#include "pa_db.h"
#include "pa_jobfiles.h"
#include "pa_log.h"
#include "pa_util.h"
#include "progress.h"

#define BLOCK_MS 2000
#define RECONNECT_PAUSE_MS 1000

static int is_transient(int rc)
{
    return rc == PA_EDB || rc == PA_EREDIS || rc == PA_EIO || rc == PA_ENOMEM;
}

/*
 * What a failed job's client is told: what failed, in its own terms, and the
 * request to quote.  Never PostgreSQL's message, SQL or a path: those stay in
 * the log (under the job id, and the kick-off's request id).  The messages of
 * invalid input, limits and missing things are the runner's own words and
 * name nothing of the server.
 */
static void client_reason(const pa_job *job, const pa_err *err, char *out, size_t size)
{
    const struct job_kind *kind = job_kind_find(job->kind);
    const char *what = kind ? kind->what : "the job";
    const char *why;

    switch(err->code) {
    case PA_EINVAL:
    case PA_ETOOBIG:
    case PA_ENOTFOUND: why = err->msg; break;
    case PA_EIO: why = "its output files could not be written"; break;
    case PA_EDB:
    case PA_EDBQUERY: why = "the payer's data could not be read"; break;
    case PA_EREDIS: why = "the job queue could not be reached"; break;
    case PA_ENOMEM: why = "the server ran out of memory"; break;
    default: why = "an internal error"; break;
    }
    snprintf(out, size,
             "%s failed: %s; none of its output is served. The operator's log has the details under "
             "request id %s (job %s)",
             what, why, job->request_id[0] ? job->request_id : "-", job->id);
}

/* Mirrors the state into PostgreSQL; a failure here is only logged.  A job
 * that ended leaves nothing its kind kept while it ran. */
static void record_state(struct worker *w, pa_job *job, const char *state)
{
    const struct job_kind *kind = job_kind_find(job->kind);
    char *copy = strdup(state);
    pa_err err;

    pa_err_clear(&err);
    /* a request kept for the job (a member match's) holds PHI: it goes when
     * the job ends, however it ends */
    if(strcmp(state, "running"))
        pa_jobfiles_drop_request(w->cfg, job->id);
    if(!copy) {
        pa_warn("job %s: out of memory: its durable record is not updated to %s", job->id, state);
        return;
    }
    free(job->state);
    job->state = copy;
    if(pa_db_ensure(&w->db, w->cfg, &err)) {
        pa_warn("job %s: durable record not updated: %s", job->id, err.msg);
        return;
    }
    if(pa_job_db_update(w->db, job, &err))
        pa_warn("job %s: durable record not updated: %s", job->id, err.msg);
    /* what the kind kept goes whether or not the record could be updated */
    if(strcmp(state, "running") && kind && kind->on_end && kind->on_end(w->db, job->id, state, &err))
        pa_warn("job %s: what it kept while it ran is not removed: %s", job->id, err.msg);
}

/* Runs a begun job by its kind; *manifest (caller frees) when it is done. */
static int run_kind(struct worker *w, const pa_job *job, char **manifest, pa_err *err)
{
    const struct job_kind *kind = job_kind_find(job->kind);
    int rc;

    if(!kind)
        return pa_err_set(err, PA_EINVAL, "unknown job kind '%s'", job->kind);
    if(w->entry.part[0] && !kind->has_parts)
        return pa_err_set(err, PA_EINVAL, "a %s job has no parts", job->kind);
    rc = pa_db_ensure(&w->db, w->cfg, err);
    if(rc)
        return rc;
    return kind->run(w, job, manifest, err);
}

/* What the job's kind records before it is served. */
static int before_complete(struct worker *w, const pa_job *job, pa_err *err)
{
    const struct job_kind *kind = job_kind_find(job->kind);

    return kind && kind->before_complete ? kind->before_complete(w, job, err) : PA_OK;
}

/* Whether the entry is one part of a split job (not the whole job, nor its
 * last step). */
static int is_part(const pa_job_entry *e)
{
    return e->part[0] && strcmp(e->part, PA_PART_FINISH);
}

/* Whether a part's job ended elsewhere: failed by another of its parts (not
 * cancelled, which the caller hears from the durable record). */
static int ended_elsewhere(struct worker *w, const pa_job_entry *e)
{
    pa_job *now = NULL;
    pa_err err;
    int yes;

    if(!e->part[0] || pa_job_get(w->redis, e->jobid, &now, &err))
        return 0;
    yes = !strcmp(now->state, "failed") || !strcmp(now->state, "completed");
    pa_job_free(now);
    return yes;
}

/* The unit failed for good: its files go, the job is failed with a reason
 * its client may read, and the entry is settled. */
static void fail_unit(struct worker *w, pa_job *job, const pa_err *why)
{
    const pa_job_entry *e = &w->entry;
    char reason[1024];
    pa_err err;
    int rc;

    pa_error("job %s%s%s (request %s) failed: %s", e->jobid, e->part[0] ? " part " : "", e->part,
             job->request_id[0] ? job->request_id : "-", why->msg);
    client_reason(job, why, reason, sizeof(reason));
    free(job->error);
    job->error = strdup(reason);
    /* the files go first: a job that says failed never has files to serve */
    pa_jobfiles_remove(w->cfg, e->jobid);
    rc = pa_job_fail(w->redis, e->jobid, e->part, w->consumer, reason, pa_now_ms(), w->cfg->retention_seconds * 1000,
                     &err);
    if(rc == PA_OK || rc == PA_ENOTFOUND)
        record_state(w, job, "failed");
    if(rc == PA_OK || rc == PA_ENOTFOUND || rc == PA_ECANCELLED)
        pa_job_ack(w->redis, e, &err);
    else
        pa_warn("job %s: its failure is not recorded yet (%s); it stays claimed", e->jobid, err.msg);
}

/* The unit ran (rc PA_OK): a part's outputs are handed to the last step; a
 * job split into parts is settled already; a whole job or last step is
 * recorded (what its kind records first) and completed.  PA_OK when the
 * entry is settled, an error code for settle_unit otherwise. */
static int complete_unit(struct worker *w, pa_job *job, char **manifest, pa_err *err)
{
    const pa_job_entry *e = &w->entry;
    int rc;

    if(is_part(e)) {
        /* the part's outputs, for the last step; it is queued after the last part */
        rc = pa_job_part_done(w->redis, e, w->consumer, *manifest, err);
        if(rc == PA_OK)
            pa_info("job %s part %s done", e->jobid, e->part);
        return rc;
    }
    if(!*manifest)
        return PA_OK; /* pa_job_split queued the parts and settled the entry */
    /* what is served is recorded first (a record of an export cancelled in
     * the instant between is the error to prefer to a disclosure unrecorded) */
    rc = before_complete(w, job, err);
    if(rc == PA_OK)
        rc = pa_job_complete(w->redis, e->jobid, e->part, w->consumer, *manifest, pa_now_ms(),
                             w->cfg->retention_seconds * 1000, err);
    if(rc != PA_OK)
        return rc;
    free(job->manifest);
    job->manifest = *manifest;
    *manifest = NULL;
    record_state(w, job, "completed");
    pa_job_ack(w->redis, e, err);
    pa_info("job %s completed", e->jobid);
    return PA_OK;
}

/* Settles the entry of a unit that did not complete, by what stopped it
 * (rc, err): lost, cancelled, taken over, stopping, transient, failed. */
static void settle_unit(struct worker *w, pa_job *job, int rc, long attempts, const pa_err *why)
{
    const pa_job_entry *e = &w->entry;
    const char *jobid = e->jobid;
    pa_err err;

    if(rc == PA_ENOTFOUND && !progress_cancelled(w, jobid)) {
        /* Redis lost the job: its durable row stays open and the janitor
         * queues it again; this stream entry is done with */
        pa_warn("job %s: its state is gone from Redis; it will be recovered from PostgreSQL", jobid);
        pa_job_ack(w->redis, e, &err);
    }
    else if(rc == PA_ECANCELLED && ended_elsewhere(w, e)) {
        /* another part failed the job: what this one wrote goes too */
        pa_jobfiles_remove(w->cfg, jobid);
        pa_job_ack(w->redis, e, &err);
        pa_info("job %s part %s stopped: the job ended", jobid, e->part);
    }
    else if(rc == PA_ECANCELLED || rc == PA_ENOTFOUND) {
        /* Redis learns it too, if it did not know (the janitor then purges) */
        pa_job_mark_cancelled(w->redis, jobid, job->owner, w->cfg->claim_idle_seconds * 2000, &err);
        pa_jobfiles_remove(w->cfg, jobid);
        record_state(w, job, "cancelled");
        pa_job_ack(w->redis, e, &err);
        pa_info("job %s cancelled; its files are removed", jobid);
    }
    else if(rc == PA_ESTATE) {
        /* this worker stalled and another owns the job now: touch nothing */
        pa_warn("job %s: %s; leaving it to that runner", jobid, why->msg);
    }
    else if(rc == PA_ESTOPPED) {
        pa_job_release(w->redis, w->consumer, e, w->cfg->claim_idle_seconds * 1000, &err);
        pa_info("job %s%s%s handed back at its last checkpoint (runner stopping)", jobid, e->part[0] ? " part " : "",
                e->part);
    }
    else if(is_transient(rc) && attempts < PA_JOB_MAX_ATTEMPTS) {
        /* left pending: this or another runner takes it over after claim_idle_seconds */
        pa_warn("job %s%s%s interrupted (%s); it will be retried", jobid, e->part[0] ? " part " : "", e->part,
                why->msg);
        progress_pause_ms(RECONNECT_PAUSE_MS);
    }
    else {
        fail_unit(w, job, why);
    }
}

/* Runs the begun unit of job, unless it has been tried too often or its
 * client cancelled it; *manifest (caller frees) when it ran. */
static int run_unit(struct worker *w, pa_job *job, long attempts, char **manifest, pa_err *err)
{
    const pa_job_entry *e = &w->entry;
    int rc;

    if(attempts > PA_JOB_MAX_ATTEMPTS) {
        pa_error("job %s%s%s: giving up after %d attempts", e->jobid, e->part[0] ? " part " : "", e->part,
                 PA_JOB_MAX_ATTEMPTS);
        /* failed for good, whatever the last attempt's trouble was */
        return pa_err_set(err, PA_EINVAL, "it could not be completed in %d attempts", PA_JOB_MAX_ATTEMPTS);
    }
    /* the durable record has the last word: a job cancelled there is never
     * started or completed, even if Redis missed the cancellation */
    if(progress_cancelled(w, e->jobid))
        return pa_err_set(err, PA_ECANCELLED, "the job was cancelled");
    if(e->part[0])
        pa_info("job %s (%s) part %s started, attempt %ld", e->jobid, job->kind, e->part, attempts);
    else
        pa_info("job %s (%s) started, attempt %ld%s", e->jobid, job->kind, attempts,
                job->checkpoint ? ", resuming" : "");
    if(!e->part[0])
        record_state(w, job, "running");
    rc = run_kind(w, job, manifest, err);
    if(rc == PA_OK && progress_cancelled(w, e->jobid))
        rc = pa_err_set(err, PA_ECANCELLED, "the job was cancelled");
    return rc;
}

/* Runs one claimed unit (a whole job, a part, a last step) and settles its
 * stream entry. */
static void run_job(struct worker *w)
{
    const pa_job_entry *e = &w->entry;
    pa_job *job = NULL;
    char *manifest = NULL;
    long attempts = 0;
    pa_err err;
    int rc;

    pa_err_clear(&err);
    pa_log_set_context(e->jobid);
    rc = pa_job_begin(w->redis, e->jobid, e->part, w->consumer, pa_now_ms(), &attempts, &err);
    if(rc == 0) {
        /* cancelled or already settled: nothing to do */
        pa_job_ack(w->redis, e, &err);
        goto out;
    }
    if(rc > 0) {
        rc = pa_job_get(w->redis, e->jobid, &job, &err);
        if(rc == PA_ENOTFOUND) {
            pa_job_ack(w->redis, e, &err);
            goto out;
        }
    }
    if(rc < 0) {
        /* left pending: this or another runner takes it over after claim_idle_seconds */
        pa_warn("job %s%s%s interrupted (%s); it will be retried", e->jobid, e->part[0] ? " part " : "", e->part,
                err.msg);
        progress_pause_ms(RECONNECT_PAUSE_MS);
        goto out;
    }
    rc = run_unit(w, job, attempts, &manifest, &err);
    if(rc == PA_OK)
        rc = complete_unit(w, job, &manifest, &err);
    if(rc != PA_OK)
        settle_unit(w, job, rc, attempts, &err);
out:
    pa_log_set_context(NULL);
    free(manifest);
    pa_job_free(job);
}

/* Deletes this worker's consumer from the streams' group if it holds nothing. */
static void leave_group(struct worker *w)
{
    static const char *const streams[] = { PA_JOB_STREAM, PA_PART_STREAM };
    char key[256];
    pa_err err;
    redisReply *reply;
    size_t i;
    int idle;

    for(i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
        pa_redis_key(w->redis, key, sizeof(key), "%s", streams[i]);
        reply = pa_redis_cmd(w->redis, &err, "XPENDING %s %s - + 1 %s", key, PA_JOB_GROUP, w->consumer);
        if(!reply)
            return;
        idle = reply->type == REDIS_REPLY_ARRAY && reply->elements == 0;
        freeReplyObject(reply);
        if(!idle)
            continue;
        reply = pa_redis_cmd(w->redis, &err, "XGROUP DELCONSUMER %s %s %s", key, PA_JOB_GROUP, w->consumer);
        if(reply)
            freeReplyObject(reply);
    }
}

int worker_main(const pa_config *cfg, int index, volatile sig_atomic_t *stop)
{
    struct worker w;
    char host[64];
    pa_err err;
    int need_init = 1;
    int rc;

    memset(&w, 0, sizeof(w));
    w.cfg = cfg;
    w.stop = stop;
    if(gethostname(host, sizeof(host)))
        pa_strlcpy(host, "runner", sizeof(host));
    host[sizeof(host) - 1] = '\0';
    snprintf(w.consumer, sizeof(w.consumer), "%s-%d-w%d", host, (int)getpid(), index);
    pa_err_clear(&err);
    if(pa_redis_new(cfg, &w.redis, &err)) {
        pa_error("%s", err.msg);
        return 1;
    }
    pa_info("worker %s ready", w.consumer);
    while(!*stop) {
        /* (re)made after any error: a restarted Redis may have lost the group */
        rc = need_init ? pa_job_queue_init(w.redis, &err) : PA_OK;
        need_init = rc != PA_OK;
        if(!rc)
            rc = pa_job_next(w.redis, w.consumer, BLOCK_MS, cfg->claim_idle_seconds * 1000, &w.entry, &err);
        if(rc < 0) {
            need_init = 1;
            pa_warn("waiting for Redis: %s", err.msg);
            progress_pause_ms(RECONNECT_PAUSE_MS);
            continue;
        }
        if(rc == 1)
            run_job(&w);
    }
    leave_group(&w);
    pa_info("worker %s stopped", w.consumer);
    pa_redis_free(w.redis);
    if(w.db)
        PQfinish(w.db);
    if(w.db2)
        PQfinish(w.db2);
    if(w.replica[0])
        PQfinish(w.replica[0]);
    if(w.replica[1])
        PQfinish(w.replica[1]);
    return 0;
}
