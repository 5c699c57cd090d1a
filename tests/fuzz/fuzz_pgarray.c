/* The reader of PostgreSQL array literals (the references an export's rows
 * bring): it never reads past the literal, and what it reads, written again
 * as a literal, reads back the same, each element once in a string set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pa_buf.h"
#include "pa_pgarray.h"
#include "pa_strset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *lit = malloc(size + 1);
    pa_buf item, again, item2;
    pa_strset set;
    const char *p, *q;
    int k = 0, k2;

    if(!lit)
        return 0;
    memcpy(lit, data, size);
    lit[size] = '\0';
    pa_buf_init(&item, 4096);
    pa_buf_init(&item2, 4096);
    pa_buf_init(&again, 1 << 20);
    pa_strset_init(&set, 1 << 20);
    pa_buf_addstr(&again, "{");
    for(p = lit;;) {
        k = pa_pgarray_next(&p, &item);
        if(k <= 0)
            break;
        if(p < lit || p > lit + size)
            abort();
        if(!memchr(pa_buf_str(&item), '\0', item.len)) {
            if(pa_strset_add(&set, pa_buf_str(&item), item.len) == 0 &&
               !pa_strset_has(&set, pa_buf_str(&item), item.len))
                abort();
        }
        pa_pgarray_add(&again, pa_buf_str(&item));
    }
    pa_buf_addstr(&again, "}");
    if(k == 0) {
        /* a literal read whole reads back element for element */
        const char *r = lit;

        q = pa_buf_str(&again);
        for(;;) {
            k2 = pa_pgarray_next(&q, &item2);
            k = pa_pgarray_next(&r, &item);
            if(k2 != k)
                abort();
            if(k <= 0)
                break;
            if(item.len != item2.len || memcmp(pa_buf_str(&item), pa_buf_str(&item2), item.len))
                abort();
        }
    }
    pa_strset_free(&set);
    pa_buf_free(&item);
    pa_buf_free(&item2);
    pa_buf_free(&again);
    free(lit);
    return 0;
}
