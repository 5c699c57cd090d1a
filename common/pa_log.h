/*
 * pa_log: leveled log lines to a file (opened O_APPEND, each line written
 * with a single write so that lines of concurrent processes never mix) or to
 * standard error.  Each line carries the program name, pid and, while one is
 * set, the request or job id.  Callers must never pass tokens or PHI.
 */
#ifndef PA_LOG_H
#define PA_LOG_H

enum { PA_LOG_DEBUG = 0, PA_LOG_INFO = 1, PA_LOG_WARN = 2, PA_LOG_ERROR = 3 };

/* path NULL, "" or "-" logs to standard error.  Returns 0 or PA_EIO. */
int pa_log_open(const char *prog, const char *path, const char *level);
void pa_log_close(void);

/* Reopens the log file (after logrotate moved it). */
int pa_log_reopen(void);

/* Asks for the log file to be reopened before the next line is written:
 * async-signal-safe, for a SIGHUP handler.  Every process that installs one
 * (the runner's supervisor and workers, the responders) leaves a rotated
 * file at its next line. */
void pa_log_reopen_later(void);

/* The id printed on each line until cleared with NULL. */
void pa_log_set_context(const char *id);

void pa_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pa_debug(...) pa_log(PA_LOG_DEBUG, __VA_ARGS__)
#define pa_info(...) pa_log(PA_LOG_INFO, __VA_ARGS__)
#define pa_warn(...) pa_log(PA_LOG_WARN, __VA_ARGS__)
#define pa_error(...) pa_log(PA_LOG_ERROR, __VA_ARGS__)

#endif
