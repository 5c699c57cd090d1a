/*
 * A worker process of the runner: one supervisor (runner.c) forks --workers
 * of them; each takes jobs from the Redis stream and runs them by kind
 * (kinds.h), reporting through progress.h.
 */
#ifndef PA_JOBS_WORKER_H
#define PA_JOBS_WORKER_H

#include <libpq-fe.h>
#include <signal.h>
#include <stdint.h>

#include "pa_config.h"
#include "pa_job.h"
#include "pa_redis.h"

struct worker {
    const pa_config *cfg;
    pa_redis *redis;
    PGconn *db;
    PGconn *db2;                /* an export's second lane, kept between jobs */
    PGconn *replica[2];         /* its lanes on the hot standby (export_database), kept too */
    int64_t replica_skip_until; /* the standby could not be used: not tried again before (mono ms) */
    char consumer[128];
    pa_job_entry entry;          /* the stream entry being worked: a whole job, a part, a last step */
    volatile sig_atomic_t *stop; /* set by SIGTERM: finish the chunk, then hand over */
};

/* Runs until *stop; returns the process exit status. */
int worker_main(const pa_config *cfg, int index, volatile sig_atomic_t *stop);

#endif
