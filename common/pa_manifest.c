#include "pa_manifest.h"

#include <stdlib.h>
#include <string.h>

#include "pa_jobfiles.h"
#include "pa_util.h"

static const char *const list_names[] = { "output", "deleted", "error" };

int pa_manifest_add_file(json_object *list, const pa_config *cfg, const char *jobid, const char *type, const char *name,
                         int64_t count, pa_err *err)
{
    json_object *item, *t, *u, *c;
    char url[1024];

    if(pa_jobfiles_url(cfg, jobid, name, url, sizeof(url)))
        return pa_err_set(err, PA_ETOOBIG, "the URL of file %s is too long", name);
    item = json_object_new_object();
    t = json_object_new_string(type);
    u = json_object_new_string(url);
    c = json_object_new_int64(count);
    /* json-c aborts on a list that is no array; a missing member would be a
     * manifest entry that says nothing: either is out of memory, said so */
    if(!json_object_is_type(list, json_type_array) || !item || !t || !u || !c) {
        json_object_put(item);
        json_object_put(t);
        json_object_put(u);
        json_object_put(c);
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    /* json_object_object_add and json_object_array_add take the references */
    json_object_object_add(item, "type", t);
    json_object_object_add(item, "url", u);
    json_object_object_add(item, "count", c);
    if(json_object_array_add(list, item)) {
        json_object_put(item);
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    return PA_OK;
}

int pa_manifest_build(const pa_job *job, json_object *output, json_object *deleted, json_object *error, char **manifest,
                      pa_err *err)
{
    json_object *m = json_object_new_object();
    char ttime[32];

    *manifest = NULL;
    if(!m) {
        json_object_put(output);
        json_object_put(deleted);
        json_object_put(error);
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    }
    pa_instant_format(job->ttime, ttime);
    /* json_object_object_add takes the lists' references */
    json_object_object_add(m, "transactionTime", json_object_new_string(ttime));
    json_object_object_add(m, "request", json_object_new_string(job->request));
    json_object_object_add(m, "requiresAccessToken", json_object_new_boolean(1));
    json_object_object_add(m, "output", output);
    if(deleted)
        json_object_object_add(m, "deleted", deleted);
    json_object_object_add(m, "error", error);
    *manifest = strdup(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(m);
    return *manifest ? PA_OK : pa_err_set(err, PA_ENOMEM, "out of memory");
}

/* Whether entry (a manifest file entry) is file name of job jobid; its type
 * in type when it is. */
static int entry_is(json_object *entry, const char *jobid, const char *name, char *type, size_t size)
{
    json_object *url, *t;
    const char *id, *file;
    size_t id_len;

    if(!json_object_object_get_ex(entry, "url", &url) || !json_object_is_type(url, json_type_string) ||
       pa_jobfiles_url_split(json_object_get_string(url), &id, &id_len, &file) || id_len != strlen(jobid) ||
       strncmp(id, jobid, id_len) || strcmp(file, name))
        return 0;
    if(!json_object_object_get_ex(entry, "type", &t) || !json_object_is_type(t, json_type_string))
        return 0;
    pa_strlcpy(type, json_object_get_string(t), size);
    return 1;
}

int pa_manifest_find(const char *manifest, const char *jobid, const char *name, pa_manifest_list *list, char *type,
                     size_t size)
{
    json_object *m = json_tokener_parse(manifest);
    int rc = PA_ENOTFOUND;
    size_t k, i;

    if(!m || !json_object_is_type(m, json_type_object)) {
        json_object_put(m);
        return PA_EINVAL;
    }
    for(k = 0; rc == PA_ENOTFOUND && k < sizeof(list_names) / sizeof(list_names[0]); k++) {
        json_object *a;

        if(!json_object_object_get_ex(m, list_names[k], &a) || !json_object_is_type(a, json_type_array))
            continue;
        for(i = 0; rc == PA_ENOTFOUND && i < json_object_array_length(a); i++)
            if(entry_is(json_object_array_get_idx(a, i), jobid, name, type, size)) {
                *list = (pa_manifest_list)k;
                rc = PA_OK;
            }
    }
    json_object_put(m);
    return rc;
}
