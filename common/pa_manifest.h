/*
 * pa_manifest: the Bulk Data manifest of a finished job, written by the
 * runner and read back by the responder that serves its files.  Its file
 * URLs follow pa_jobfiles.h.
 */
#ifndef PA_MANIFEST_H
#define PA_MANIFEST_H
#include <json-c/json.h>
#include <stdint.h>

#include "pa_config.h"
#include "pa_err.h"
#include "pa_job.h"

/* Where a manifest lists a file. */
typedef enum pa_manifest_list {
    PA_MANIFEST_OUTPUT,  /* a resource type the job exported (or a match's results) */
    PA_MANIFEST_DELETED, /* Bundles naming resources of every exported type */
    PA_MANIFEST_ERROR    /* the job's OperationOutcomes */
} pa_manifest_list;

/* Appends to list (a manifest's output, deleted or error array) the entry
 * for file name of job jobid: its type, URL and line count. */
int pa_manifest_add_file(json_object *list, const pa_config *cfg, const char *jobid, const char *type, const char *name,
                         int64_t count, pa_err *err);

/* The manifest of job (*manifest, caller frees), listing output, deleted
 * (NULL: none) and error, which it takes over whatever it returns. */
int pa_manifest_build(const pa_job *job, json_object *output, json_object *deleted, json_object *error, char **manifest,
                      pa_err *err);

/*
 * Finds file name of job jobid in manifest: which list has it in *list and
 * its type in type (size bytes).  Compares the job id and file name of each
 * URL, never the base.  PA_ENOTFOUND when it is not listed, PA_EINVAL when
 * the manifest is unreadable.
 */
int pa_manifest_find(const char *manifest, const char *jobid, const char *name, pa_manifest_list *list, char *type,
                     size_t size);

#endif
