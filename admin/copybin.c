/*
 * copybin: rows in PostgreSQL's binary COPY format (see copybin.h).  The
 * format: a header, then per row a 16-bit field count and per field a
 * 32-bit length (-1 for NULL) and that many bytes, all integers
 * big-endian; a count of -1 ends it.
 */
#include <string.h>

#include "copybin.h"
#include "pa_err.h"
#include "pa_util.h"

/* text's type, the element of text[] */
#define TEXT_OID 25

const char copybin_header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
const char copybin_trailer[2] = "\377\377";

static void put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static int add32(pa_buf *b, uint32_t v)
{
    char p[4];

    put32(p, v);
    return pa_buf_add(b, p, 4);
}

void copybin_put_int8(char *p, int64_t v)
{
    put32(p, (uint32_t)((uint64_t)v >> 32));
    put32(p + 4, (uint32_t)v);
}

int copybin_row(pa_buf *b, int nfields)
{
    char p[2] = { (char)(nfields >> 8), (char)nfields };

    return pa_buf_add(b, p, 2);
}

int copybin_null(pa_buf *b)
{
    return add32(b, UINT32_MAX);
}

int copybin_text(pa_buf *b, const char *s, size_t n)
{
    int rc = n > INT32_MAX ? PA_ETOOBIG : add32(b, (uint32_t)n);

    return rc ? rc : pa_buf_add(b, s, n);
}

int copybin_str(pa_buf *b, const char *s)
{
    return copybin_text(b, s, strlen(s));
}

int copybin_opt(pa_buf *b, const char *s)
{
    return *s ? copybin_str(b, s) : copybin_null(b);
}

int copybin_int8(pa_buf *b, int64_t v)
{
    char p[12];

    put32(p, 8);
    copybin_put_int8(p + 4, v);
    return pa_buf_add(b, p, sizeof(p));
}

int copybin_bool(pa_buf *b, int v)
{
    char p[5];

    put32(p, 1);
    p[4] = (char)(v != 0);
    return pa_buf_add(b, p, sizeof(p));
}

int copybin_time(pa_buf *b, const char *instant)
{
    int64_t us;

    if(!*instant)
        return copybin_null(b);
    if(pa_instant_pg_micros(instant, &us))
        return PA_EINVAL;
    return copybin_int8(b, us);
}

int copybin_begin_field(pa_buf *b, size_t *at)
{
    *at = b->len;
    return add32(b, 0);
}

void copybin_end_field(pa_buf *b, size_t at)
{
    put32(b->data + at, (uint32_t)(b->len - at - 4));
}

/* One element of the literal at *p (quoted, or NULL), appended; *p moves
 * past it. */
static int array_element(pa_buf *b, const char **p, int *has_null)
{
    const char *s = *p, *run;
    size_t at;
    int rc;

    if(!strncmp(s, "NULL", 4) && (s[4] == ',' || s[4] == '}')) {
        *has_null = 1;
        *p = s + 4;
        return copybin_null(b);
    }
    if(*s != '"')
        return PA_EINVAL;
    rc = copybin_begin_field(b, &at);
    for(run = ++s; !rc && *s != '"'; s++) {
        if(!*s)
            return PA_EINVAL;
        if(*s != '\\')
            continue;
        rc = pa_buf_add(b, run, (size_t)(s - run));
        run = ++s; /* the escaped character starts the next run */
        if(!*s)
            return PA_EINVAL;
    }
    if(!rc)
        rc = pa_buf_add(b, run, (size_t)(s - run));
    if(!rc)
        copybin_end_field(b, at);
    *p = s + 1;
    return rc;
}

int copybin_text_array(pa_buf *b, const char *literal)
{
    const char *p = literal;
    size_t at, head;
    uint32_t n = 0;
    int has_null = 0, rc;

    if(*p++ != '{')
        return PA_EINVAL;
    /* length, dimensions, null flag, element type, then (for a dimension)
     * its size and lower bound */
    rc = copybin_begin_field(b, &at);
    head = b->len;
    if(!rc)
        rc = pa_buf_add(b, "\0\0\0\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 20);
    while(!rc && *p != '}') {
        if(n && *p++ != ',')
            return PA_EINVAL;
        rc = array_element(b, &p, &has_null);
        n++;
    }
    if(rc || p[1])
        return rc ? rc : PA_EINVAL;
    if(n == 0) {
        /* an empty array has no dimension */
        pa_buf_truncate(b, head);
        rc = pa_buf_add(b, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
        if(rc)
            return rc;
        put32(b->data + head + 8, TEXT_OID);
    }
    else {
        put32(b->data + head + 4, (uint32_t)has_null);
        put32(b->data + head + 8, TEXT_OID);
        put32(b->data + head + 12, n);
    }
    copybin_end_field(b, at);
    return PA_OK;
}
