/*
 * pa_strset: a set of strings in one arena (an export chunk's references,
 * gathered from the rows its queries return).
 */
#ifndef PA_STRSET_H
#define PA_STRSET_H
#include <stddef.h>
#include <stdint.h>

#include "pa_buf.h"

typedef struct pa_strset {
    pa_buf arena;    /* the strings, each NUL-terminated */
    uint32_t *slots; /* open addressing: an offset into arena + 1, 0 for empty */
    size_t nslots;   /* a power of two, or 0 before the first add */
    size_t n;        /* strings held */
} pa_strset;

/* An empty set holding at most max_bytes of strings. */
void pa_strset_init(pa_strset *s, size_t max_bytes);
void pa_strset_free(pa_strset *s);
/* Empties the set, keeping its memory. */
void pa_strset_clear(pa_strset *s);
/* Adds the n bytes at p (once however often they are added); PA_ETOOBIG
 * past the set's size. */
int pa_strset_add(pa_strset *s, const char *p, size_t n);
/* Whether the set holds the n bytes at p. */
int pa_strset_has(const pa_strset *s, const char *p, size_t n);
/* Walks the strings: *pos starts at 0; NULL after the last. */
const char *pa_strset_next(const pa_strset *s, size_t *pos);

#endif
