#include "pa_buf.h"
#include "pa_util.h"
#include "pa_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pa_buf_init(pa_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void pa_buf_free(pa_buf *b)
{
    if(!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void pa_buf_reset(pa_buf *b)
{
    pa_buf_truncate(b, 0);
}

void pa_buf_truncate(pa_buf *b, size_t len)
{
    if(len > b->len)
        return;
    b->len = len;
    if(b->data)
        b->data[len] = '\0';
}

/* Makes room for n more bytes plus the terminating NUL. */
static int buf_reserve(pa_buf *b, size_t n)
{
    size_t need;
    size_t cap;
    char *p;

    if(n > b->max || b->len > b->max - n)
        return PA_ETOOBIG;
    need = b->len + n + 1;
    if(need <= b->cap)
        return PA_OK;
    cap = b->cap ? b->cap : 256;
    while(cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    if(cap > b->max + 1)
        cap = b->max + 1;
    p = realloc(b->data, cap);
    if(!p)
        return PA_ENOMEM;
    b->data = p;
    b->cap = cap;
    return PA_OK;
}

int pa_buf_add(pa_buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);

    if(rc)
        return rc;
    if(n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return PA_OK;
}

int pa_buf_addstr(pa_buf *b, const char *s)
{
    return pa_buf_add(b, s, strlen(s));
}

int pa_buf_printf(pa_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    int rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if(n < 0)
        return PA_EINVAL;
    rc = buf_reserve(b, (size_t)n);
    if(rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return PA_OK;
}

int pa_buf_add_json_string(pa_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *run = p;
    int rc = pa_buf_add(b, "\"", 1);

    for(; !rc && *p; p++) {
        char esc[6];
        size_t n = 2;

        if(*p >= 0x80) {
            size_t k = pa_utf8_seq((const char *)p, strnlen((const char *)p, 4));

            if(k) {
                p += k - 1;
                continue;
            }
            /* a byte that is no UTF-8 (a client's, cut or forged) would make
             * the whole text invalid JSON: U+FFFD stands in for it */
            rc = pa_buf_add(b, run, (size_t)(p - run));
            if(!rc)
                rc = pa_buf_add(b, "\xEF\xBF\xBD", 3);
            run = p + 1;
            continue;
        }
        if(*p >= 0x20 && *p != '"' && *p != '\\')
            continue;
        rc = pa_buf_add(b, run, (size_t)(p - run));
        if(rc)
            break;
        esc[0] = '\\';
        switch(*p) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            n = 6;
        }
        rc = pa_buf_add(b, esc, n);
        run = p + 1;
    }
    if(!rc)
        rc = pa_buf_add(b, run, (size_t)(p - run));
    if(!rc)
        rc = pa_buf_add(b, "\"", 1);
    return rc;
}

const char *pa_buf_str(const pa_buf *b)
{
    return b->data ? b->data : "";
}

char *pa_buf_steal(pa_buf *b)
{
    char *p = b->data;

    if(!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
