#include "pa_jobfiles.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pa_job.h"
#include "pa_pgarray.h"

#define BULKFILES "/bulkfiles/"

static int format(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int format(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    if(n < 0 || (size_t)n >= size) {
        if(size)
            out[0] = '\0';
        return PA_ETOOBIG;
    }
    return PA_OK;
}

int pa_jobfiles_dir(const pa_config *cfg, const char *id, char *out, size_t size)
{
    return format(out, size, "%s/jobs/%s", cfg->data_dir, id);
}

int pa_jobfiles_path(const pa_config *cfg, const char *id, const char *name, char *out, size_t size)
{
    return format(out, size, "%s/jobs/%s/%s", cfg->data_dir, id, name);
}

int pa_jobfiles_url(const pa_config *cfg, const char *id, const char *name, char *out, size_t size)
{
    return format(out, size, "%s" BULKFILES "%s/%s", cfg->base_url, id, name);
}

int pa_jobfiles_request(const pa_config *cfg, const char *id, char *out, size_t size)
{
    return format(out, size, "%s/requests/%s.json", cfg->data_dir, id);
}

int pa_jobfiles_name(const char *type, long part, long n, char *out, size_t size)
{
    if(part > 0)
        return format(out, size, "%s-%ld-%ld.ndjson", type, part, n);
    return format(out, size, "%s-%ld.ndjson", type, n);
}

int pa_jobfiles_name_ok(const char *name)
{
    static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    size_t n = strlen(name);

    return n > 7 && n <= PA_JOBFILES_NAME_MAX && name[0] != '.' && strspn(name, allowed) == n &&
           !strcmp(name + n - 7, ".ndjson");
}

int pa_jobfiles_url_split(const char *url, const char **id, size_t *id_len, const char **name)
{
    const char *slash = strrchr(url, '/');
    const char *start;

    if(!slash || slash == url)
        return PA_EINVAL;
    /* back from the last slash to the one before the id */
    start = slash;
    while(start > url && start[-1] != '/')
        start--;
    if(start == slash || (size_t)(start - url) < strlen(BULKFILES) ||
       strncmp(start - strlen(BULKFILES), BULKFILES, strlen(BULKFILES)))
        return PA_EINVAL;
    *id = start;
    *id_len = (size_t)(slash - start);
    *name = slash + 1;
    return PA_OK;
}

int pa_jobfiles_keep_request(const pa_config *cfg, const char *id, const void *body, size_t len, pa_err *err)
{
    char path[1024];
    char tmp[1100];
    FILE *f = NULL;
    int rc = PA_OK;

    /* tmp is longer than path: what fits in path fits in tmp */
    if(pa_jobfiles_request(cfg, id, path, sizeof(path)))
        return pa_err_set(err, PA_EIO, "the data_dir path is too long");
    format(tmp, sizeof(tmp), "%s/requests", cfg->data_dir);
    if(mkdir(tmp, 0750) && errno != EEXIST)
        return pa_err_set(err, PA_EIO, "cannot make %s: %s", tmp, strerror(errno));
    format(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if(!f)
        return pa_err_set(err, PA_EIO, "cannot write %s: %s", tmp, strerror(errno));
    if(fwrite(body, 1, len, f) != len || fflush(f) || fsync(fileno(f)))
        rc = PA_EIO;
    if(fclose(f) || rc || rename(tmp, path)) {
        unlink(tmp);
        return pa_err_set(err, PA_EIO, "cannot keep the request in %s", path);
    }
    return PA_OK;
}

int pa_jobfiles_drop_request(const pa_config *cfg, const char *id)
{
    char path[1024];

    if(pa_jobfiles_request(cfg, id, path, sizeof(path)))
        return PA_ETOOBIG;
    return unlink(path) == 0 || errno == ENOENT ? PA_OK : PA_EIO;
}

int pa_jobfiles_remove(const pa_config *cfg, const char *id)
{
    char path[1024];
    struct dirent *e;
    DIR *d;
    int dfd;

    if(pa_jobfiles_dir(cfg, id, path, sizeof(path)))
        return PA_ETOOBIG;
    d = opendir(path);
    if(!d)
        return errno == ENOENT ? PA_OK : PA_EIO;
    dfd = dirfd(d);
    for(e = readdir(d); e; e = readdir(d))
        if(strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlinkat(dfd, e->d_name, 0);
    closedir(d);
    return rmdir(path) == 0 || errno == ENOENT ? PA_OK : PA_EIO;
}

int pa_jobfiles_list(const pa_config *cfg, const char *which, pa_buf *ids)
{
    const char *suffix = !strcmp(which, "requests") ? ".json" : "";
    size_t sn = strlen(suffix);
    char path[1024];
    struct dirent *e;
    DIR *d;
    int n = 0;

    pa_buf_addstr(ids, "{");
    d = format(path, sizeof(path), "%s/%s", cfg->data_dir, which) ? NULL : opendir(path);
    for(e = d ? readdir(d) : NULL; e; e = readdir(d)) {
        char id[PA_JOB_ID_LEN + 1];

        if(strlen(e->d_name) != PA_JOB_ID_LEN + sn || strspn(e->d_name, "0123456789abcdef") != PA_JOB_ID_LEN ||
           strcmp(e->d_name + PA_JOB_ID_LEN, suffix))
            continue;
        memcpy(id, e->d_name, PA_JOB_ID_LEN);
        id[PA_JOB_ID_LEN] = '\0';
        if(!pa_pgarray_add(ids, id))
            n++;
    }
    if(d)
        closedir(d);
    pa_buf_addstr(ids, "}");
    return n;
}
