#include "pa_log.h"
#include "pa_err.h"
#include "pa_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static int log_level = PA_LOG_INFO;
static char log_prog[32] = "provider-access";
static char log_path[1024];
static char log_ctx[80];
static volatile sig_atomic_t reopen_pending;

static int level_parse(const char *name)
{
    if(!name)
        return PA_LOG_INFO;
    if(!strcmp(name, "debug"))
        return PA_LOG_DEBUG;
    if(!strcmp(name, "warn"))
        return PA_LOG_WARN;
    if(!strcmp(name, "error"))
        return PA_LOG_ERROR;
    return PA_LOG_INFO;
}

static int open_path(void)
{
    int fd;

    if(!log_path[0])
        return 2;
    fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd < 0 ? -1 : fd;
}

int pa_log_open(const char *prog, const char *path, const char *level)
{
    int fd;

    snprintf(log_prog, sizeof(log_prog), "%s", prog ? prog : "provider-access");
    log_level = level_parse(level);
    if(!path || !*path || !strcmp(path, "-"))
        log_path[0] = '\0';
    else
        snprintf(log_path, sizeof(log_path), "%s", path);
    fd = open_path();
    if(fd < 0)
        return PA_EIO;
    pa_log_close();
    log_fd = fd;
    return PA_OK;
}

int pa_log_reopen(void)
{
    int fd;

    reopen_pending = 0;
    if(!log_path[0])
        return PA_OK;
    fd = open_path();
    if(fd < 0)
        return PA_EIO;
    pa_log_close();
    log_fd = fd;
    return PA_OK;
}

void pa_log_reopen_later(void)
{
    reopen_pending = 1;
}

void pa_log_close(void)
{
    if(log_fd > 2)
        close(log_fd);
    log_fd = 2;
}

void pa_log_set_context(const char *id)
{
    snprintf(log_ctx, sizeof(log_ctx), "%s", id ? id : "");
}

void pa_log(int level, const char *fmt, ...)
{
    static const char *names[] = { "debug", "info", "warn", "error" };
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int k;
    va_list ap;

    if(level < log_level || level < 0 || level > PA_LOG_ERROR)
        return;
    /* a rotated file is left at the first line after the signal (a failed
     * reopen keeps writing where it did) */
    if(reopen_pending)
        pa_log_reopen();
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof(line) - n, ".%03dZ %s %s[%d]%s%s ", (int)(tv.tv_usec / 1000), names[level], log_prog,
                 (int)pa_pid(), log_ctx[0] ? " id=" : "", log_ctx);
    if(k > 0)
        n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if(k > 0) {
        size_t from = n;

        n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
        /* a path or value from a request can hold a newline (a forged log
         * line) or bytes that are no text */
        pa_utf8_scrub(line + from, n - from);
    }
    if(n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* one write per line: concurrent writers never interleave within a line */
    while(write(log_fd, line, n) < 0 && errno == EINTR)
        ;
}
