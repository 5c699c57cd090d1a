/*
 * pa_buf: a growable byte buffer with a hard maximum size, always kept
 * NUL-terminated so that text can be used as a C string.  Every buffer is
 * created with the largest size it may ever reach; growing past it fails with
 * PA_ETOOBIG and leaves the content as it was.
 */
#ifndef PA_BUF_H
#define PA_BUF_H

#include <stddef.h>

typedef struct pa_buf {
    char *data; /* NULL until something is added */
    size_t len;
    size_t cap;
    size_t max;
} pa_buf;

void pa_buf_init(pa_buf *b, size_t max);
void pa_buf_free(pa_buf *b);
void pa_buf_reset(pa_buf *b);                /* empties, keeps the memory */
void pa_buf_truncate(pa_buf *b, size_t len); /* back to its first len bytes (len <= b->len) */

int pa_buf_add(pa_buf *b, const void *p, size_t n);
int pa_buf_addstr(pa_buf *b, const char *s);
int pa_buf_printf(pa_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s as a JSON string literal, quotes included. */
int pa_buf_add_json_string(pa_buf *b, const char *s);

/* The content as a C string; "" for an empty buffer (never NULL). */
const char *pa_buf_str(const pa_buf *b);

/* Hands the content over to the caller (to free) and empties the buffer. */
char *pa_buf_steal(pa_buf *b);

#endif
