/* _typeFilter compilation: a query either is refused or becomes SQL within
 * the limits the runner's buffers are sized for. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pa_filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_object *filters = json_object_new_object();
    char *q = malloc(size + 1);
    const char *values[PA_FILTER_SQL_VALUES];
    pa_buf sql;
    pa_err err;
    int n;

    if(!q || !filters)
        abort();
    memcpy(q, data, size);
    q[size] = '\0';
    /* several queries in one input, one a line */
    for(char *line = q, *next; line; line = next) {
        next = strchr(line, '\n');
        if(next)
            *next++ = '\0';
        pa_filter_add(filters, line, &err);
    }
    if(pa_filter_check(filters, &err) == PA_OK) {
        pa_buf_init(&sql, PA_FILTER_SQL_BYTES);
        json_object_object_foreach(filters, type, queries)
        {
            (void)type;
            pa_buf_reset(&sql);
            if(pa_filter_sql(queries, &sql, 8, values, &n, PA_FILTER_SQL_VALUES))
                abort(); /* pa_filter_check said it fits */
        }
        pa_buf_free(&sql);
    }
    json_object_put(filters);
    free(q);
    return 0;
}
