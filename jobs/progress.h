/*
 * What a running job reports to, and hears from, the world around it: its
 * progress and resume point, a cancellation, the runner stopping.  Every
 * job kind calls these; they call nothing of any kind's.
 */
#ifndef PA_JOBS_PROGRESS_H
#define PA_JOBS_PROGRESS_H

#include "pa_err.h"
#include "pa_job.h"
#include "worker.h"

/* Saves progress and resume point, keeps the job claimed and honours
 * cancellation and shutdown: PA_ECANCELLED or PA_ESTOPPED to stop now. */
int progress_checkpoint(struct worker *w, const pa_job *job, long done, long total, const char *checkpoint,
                        pa_err *err);

/* Whether the durable record (PostgreSQL) says the client cancelled job id:
 * it has the last word, even when Redis missed the cancellation. */
int progress_cancelled(struct worker *w, const char *id);

/* Sleeps ms milliseconds. */
void progress_pause_ms(long ms);

/* The pause export_chunk_pause_ms asks for between chunks (tests use it to
 * land crashes mid-job). */
void progress_chunk_pause(const struct worker *w);

#endif
