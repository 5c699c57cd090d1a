#include "kinds.h"

#include <string.h>

static const struct job_kind kinds[] = {
    { "export", "the export", 1, export_run, export_disclose, export_end },
    { "match", "the member match", 0, match_run, NULL, NULL },
};

const struct job_kind *job_kind_find(const char *name)
{
    size_t i;

    for(i = 0; name && i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if(!strcmp(kinds[i].name, name))
            return &kinds[i];
    return NULL;
}

int job_kinds_end(PGconn *db, const char *job_id, const char *state, pa_err *err)
{
    int first = PA_OK;
    size_t i;

    for(i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if(kinds[i].on_end) {
            int rc = kinds[i].on_end(db, job_id, state, err);

            if(rc && !first)
                first = rc;
        }
    return first;
}
