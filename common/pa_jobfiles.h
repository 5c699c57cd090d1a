/*
 * pa_jobfiles: where a job's files live and the URLs they are served at,
 * the one contract the responders and the runner share about them:
 *
 *   data_dir/jobs/<id>/<name>        the files a job wrote (flat: no folders)
 *   data_dir/requests/<id>.json      a request kept for the runner (a match's)
 *   base_url/bulkfiles/<id>/<name>   the URL a manifest lists for a file
 *
 * A file is named by the runner (pa_jobfiles_name) and found again by the
 * responder through the job's manifest, by job id and file name: the URL's
 * base is not compared, so a base_url that differs between the runner's and
 * the responder's configuration does not hide a job's files.
 *
 * Builders write into out (size bytes) and return PA_OK, or PA_ETOOBIG when
 * the result does not fit (out then holds an empty string).
 */
#ifndef PA_JOBFILES_H
#define PA_JOBFILES_H
#include <stddef.h>

#include "pa_buf.h"
#include "pa_config.h"
#include "pa_err.h"

/* The longest file name a job writes, and so the longest one served. */
#define PA_JOBFILES_NAME_MAX 127

/* data_dir/jobs/<id>, the folder of job id's files. */
int pa_jobfiles_dir(const pa_config *cfg, const char *id, char *out, size_t size);
/* data_dir/jobs/<id>/<name>. */
int pa_jobfiles_path(const pa_config *cfg, const char *id, const char *name, char *out, size_t size);
/* base_url/bulkfiles/<id>/<name>, the URL a manifest lists. */
int pa_jobfiles_url(const pa_config *cfg, const char *id, const char *name, char *out, size_t size);
/* data_dir/requests/<id>.json, where job id's request is kept. */
int pa_jobfiles_request(const pa_config *cfg, const char *id, char *out, size_t size);

/*
 * The name of the n-th file of type written by a job ("Patient-1.ndjson"),
 * or by part `part` of a split one ("Patient-3-1.ndjson") when part > 0.
 */
int pa_jobfiles_name(const char *type, long part, long n, char *out, size_t size);

/* Whether name is a file name a job may have written: no path, no dot-file,
 * ends in .ndjson, at most PA_JOBFILES_NAME_MAX bytes.  What the responder
 * checks before a name from a URL reaches the file system. */
int pa_jobfiles_name_ok(const char *name);

/*
 * Splits a manifest URL ".../bulkfiles/<id>/<name>" into the job id (a
 * pointer to it and its length) and the file name (*name, NUL-terminated, a
 * pointer into url).  PA_EINVAL when url does not end that way.
 */
int pa_jobfiles_url_split(const char *url, const char **id, size_t *id_len, const char **name);

/*
 * Writes job id's request (len bytes) to its place whole: to a temporary
 * file, synced, then renamed, so that a runner that takes the job never
 * reads half of it.  Makes data_dir/requests if it is missing.
 */
int pa_jobfiles_keep_request(const pa_config *cfg, const char *id, const void *body, size_t len, pa_err *err);

/* Removes job id's kept request; PA_OK if there was none. */
int pa_jobfiles_drop_request(const pa_config *cfg, const char *id);

/* Removes data_dir/jobs/<id> and everything in it; PA_OK if it was not
 * there, PA_EIO if it could not be removed. */
int pa_jobfiles_remove(const pa_config *cfg, const char *id);

/*
 * The ids of the jobs that have files (which = "jobs") or a kept request
 * (which = "requests") on disk, appended to ids as a PostgreSQL array
 * literal ("{id,id}"); how many.  Names that are not a job's are skipped.
 */
int pa_jobfiles_list(const pa_config *cfg, const char *which, pa_buf *ids);

#endif
