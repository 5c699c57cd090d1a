/*
 * pa_err: error codes shared by every module, and an error struct that
 * carries a human-readable detail to whoever maps it to an HTTP answer or an
 * exit message.  Functions return 0 on success or one of the negative codes.
 */
#ifndef PA_ERR_H
#define PA_ERR_H

#include <stddef.h>

enum {
    PA_OK = 0,
    PA_ENOMEM = -1,      /* allocation failed */
    PA_EINVAL = -2,      /* malformed input */
    PA_ETOOBIG = -3,     /* a named limit was exceeded */
    PA_ENOTFOUND = -4,   /* no such thing (or not the caller's) */
    PA_EIO = -5,         /* file system */
    PA_EREDIS = -6,      /* Redis unreachable or answered an error */
    PA_EDB = -7,         /* PostgreSQL unreachable or answered an error */
    PA_ECONFIG = -8,     /* configuration missing or invalid */
    PA_ESCHEMA = -9,     /* database schema older than this build needs */
    PA_EBUSY = -10,      /* a per-client cap was reached */
    PA_ESTATE = -11,     /* the thing exists but is in the wrong state */
    PA_ECANCELLED = -12, /* the job was cancelled while working on it */
    PA_ESTOPPED = -13,   /* the runner is shutting down; the job goes to another */
    PA_EDBQUERY = -14,   /* PostgreSQL refused a statement (not a lost connection): retrying will not help */
    PA_ENOTSUP = -15     /* well-formed, but not supported here */
};

typedef struct pa_err {
    int code;
    char msg[512];
} pa_err;

/* Records code and a printf-style detail in err (which may be NULL) and
 * returns code, so callers can write `return pa_err_set(err, ...)`. */
int pa_err_set(pa_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void pa_err_clear(pa_err *err);

/* A short constant name for a code ("not found", "database error", ...). */
const char *pa_err_name(int code);

#endif
