/*
 * pa_redis: one Redis connection with a command timeout, reconnecting on the
 * next command after any I/O error (hiredis leaves a context unusable once
 * c->err is set).  Key names are built with the configured prefix.
 */
#ifndef PA_REDIS_H
#define PA_REDIS_H

#include <hiredis/hiredis.h>

#include "pa_config.h"
#include "pa_err.h"

typedef struct pa_redis pa_redis;

/* A connection that connects at its first command (and again after any
 * I/O error): for a long-lived process that must start while Redis is
 * down.  *out (freed with pa_redis_free) is NULL when it is not PA_OK
 * (PA_ENOMEM). */
int pa_redis_new(const pa_config *cfg, pa_redis **out, pa_err *err);
/* pa_redis_new, connected now: PA_EREDIS (and *out NULL) when Redis cannot
 * be reached or refuses the password. */
int pa_redis_open(const pa_config *cfg, pa_redis **out, pa_err *err);
void pa_redis_free(pa_redis *r);

/*
 * Runs a command (hiredis format: %s strings, %b binary with length).
 * Returns the reply (freeReplyObject it) or NULL with err set, also when Redis
 * answered with an error reply.  Reconnects once if the connection broke.
 */
redisReply *pa_redis_cmd(pa_redis *r, pa_err *err, const char *fmt, ...);

/* Same with an argv vector (for commands with a variable number of args). */
redisReply *pa_redis_argv(pa_redis *r, pa_err *err, int argc, const char **argv, const size_t *lens);

/* Runs n read commands (argv vectors) in one round trip: replies[i] answers
 * argvs[i], each the caller's to free.  On any failure (an error reply
 * included) none is kept, and err says why. */
int pa_redis_pipeline(pa_redis *r, int n, const int *argcs, const char *const *const *argvs, redisReply **replies,
                      pa_err *err);

/* Writes prefix + fmt into out (size bytes); returns out. */
const char *pa_redis_key(const pa_redis *r, char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Forgets the consumers of a stream's group that have been idle idle_ms
 * with nothing pending; *pruned counts them. */
int pa_redis_prune_consumers(pa_redis *r, const char *key, const char *group, long idle_ms, long *pruned, pa_err *err);

/* Waits, for at most max_ms, while Redis answers LOADING (it is reading its
 * data set after a restart); calls on_wait once if it has to.  An error
 * other than LOADING, or LOADING past max_ms, is returned at once. */
int pa_redis_wait_loaded(pa_redis *r, long max_ms, void (*on_wait)(void), pa_err *err);

/* The per-command timeout in milliseconds (blocking reads must stay below it). */
long pa_redis_timeout_ms(const pa_redis *r);

#endif
