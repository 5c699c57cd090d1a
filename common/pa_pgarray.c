#include "pa_pgarray.h"

#include <string.h>
#include <strings.h>

#include "pa_err.h"

int pa_pgarray_add(pa_buf *b, const char *item)
{
    const char *run;
    int rc = b->len > 1 ? pa_buf_add(b, ",", 1) : PA_OK;

    if(rc || !item)
        return rc ? rc : pa_buf_addstr(b, "NULL");
    rc = pa_buf_add(b, "\"", 1);
    for(run = item; !rc && *item; item++) {
        if(*item != '"' && *item != '\\')
            continue;
        rc = pa_buf_add(b, run, (size_t)(item - run));
        if(!rc)
            rc = pa_buf_add(b, "\\", 1);
        run = item;
    }
    if(!rc)
        rc = pa_buf_add(b, run, (size_t)(item - run));
    return rc ? rc : pa_buf_add(b, "\"", 1);
}

/* A quoted element at s (just past its opening quote), unescaped into item;
 * the literal just past its closing quote, NULL when malformed. */
static const char *quoted(const char *s, pa_buf *item)
{
    for(;;) {
        const char *run = s;

        while(*s && *s != '"' && *s != '\\')
            s++;
        if(pa_buf_add(item, run, (size_t)(s - run)))
            return NULL;
        if(*s == '"')
            return s + 1;
        if(*s != '\\' || !s[1])
            return NULL;
        if(pa_buf_add(item, s + 1, 1))
            return NULL;
        s += 2;
    }
}

int pa_pgarray_next(const char **p, pa_buf *item)
{
    const char *s = *p;

    for(;;) {
        const char *start;

        pa_buf_reset(item);
        if(*s == '}')
            return 0;
        if(*s != '{' && *s != ',')
            return -1;
        if(*s == '{' && s != *p)
            return -1;
        s++;
        if(*s == '}' && s[-1] == '{') {
            *p = s;
            return 0;
        }
        if(*s == '"') {
            s = quoted(s + 1, item);
            if(!s || (*s != ',' && *s != '}'))
                return -1;
            *p = s;
            return 1;
        }
        start = s;
        while(*s && *s != ',' && *s != '}' && *s != '{' && *s != '"' && *s != '\\')
            s++;
        if(s == start || (*s != ',' && *s != '}'))
            return -1;
        *p = s;
        if((size_t)(s - start) == 4 && !strncasecmp(start, "NULL", 4))
            continue;
        return pa_buf_add(item, start, (size_t)(s - start)) ? -1 : 1;
    }
}
