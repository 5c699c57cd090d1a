/*
 * What a running job reports and hears (progress.h): checkpoints, a
 * cancellation, the runner stopping, the pause between chunks.
 */
#include "progress.h"

#include <string.h>
#include <time.h>

#include "pa_db.h"

void progress_pause_ms(long ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

int progress_cancelled(struct worker *w, const char *id)
{
    const char *values[1] = { id };
    PGresult *res;
    pa_err err;
    int yes;

    if(pa_db_ensure(&w->db, w->cfg, &err))
        return 0;
    res = pa_db_query(w->db, &err, "SELECT state = 'cancelled' FROM job WHERE id = $1", 1, values);
    yes = res && PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    return yes;
}

int progress_checkpoint(struct worker *w, const pa_job *job, long done, long total, const char *checkpoint, pa_err *err)
{
    int rc = pa_job_checkpoint(w->redis, job->id, w->entry.part, w->consumer, done, total, checkpoint, err);

    if(rc)
        return rc;
    rc = pa_job_heartbeat(w->redis, w->consumer, &w->entry, err);
    if(rc)
        return rc;
    /* a cancellation whose Redis half did not happen is heard here too */
    if(progress_cancelled(w, job->id))
        return pa_err_set(err, PA_ECANCELLED, "the job was cancelled");
    if(*w->stop)
        return pa_err_set(err, PA_ESTOPPED, "the runner is stopping");
    return PA_OK;
}

void progress_chunk_pause(const struct worker *w)
{
    if(w->cfg->export_chunk_pause_ms)
        progress_pause_ms(w->cfg->export_chunk_pause_ms);
}
