/* pa_strset: a set of strings in one arena. */
#include "pa_strset.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pa_err.h"

void pa_strset_init(pa_strset *s, size_t max_bytes)
{
    memset(s, 0, sizeof(*s));
    /* offsets are 32-bit */
    pa_buf_init(&s->arena, max_bytes < UINT32_MAX - 1 ? max_bytes : UINT32_MAX - 1);
}

void pa_strset_free(pa_strset *s)
{
    if(!s)
        return;
    pa_buf_free(&s->arena);
    free(s->slots);
    s->slots = NULL;
    s->nslots = s->n = 0;
}

void pa_strset_clear(pa_strset *s)
{
    pa_buf_reset(&s->arena);
    if(s->slots)
        memset(s->slots, 0, s->nslots * sizeof(*s->slots));
    s->n = 0;
}

/* FNV-1a */
static uint64_t hash(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    size_t i;

    for(i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* The slot holding the n bytes at p, or the empty one where they would go. */
static size_t find(const pa_strset *s, const char *p, size_t n)
{
    size_t mask = s->nslots - 1, i = (size_t)hash(p, n) & mask;

    while(s->slots[i]) {
        const char *have = s->arena.data + s->slots[i] - 1;

        if(!strncmp(have, p, n) && !have[n])
            break;
        i = (i + 1) & mask;
    }
    return i;
}

/* Doubles the slots (the set stays at most half full). */
static int grow(pa_strset *s)
{
    size_t nslots = s->nslots ? s->nslots * 2 : 1024, i;
    uint32_t *old = s->slots;
    size_t nold = s->nslots;

    s->slots = calloc(nslots, sizeof(*s->slots));
    if(!s->slots) {
        s->slots = old;
        return PA_ENOMEM;
    }
    s->nslots = nslots;
    for(i = 0; i < nold; i++)
        if(old[i]) {
            const char *str = s->arena.data + old[i] - 1;

            s->slots[find(s, str, strlen(str))] = old[i];
        }
    free(old);
    return PA_OK;
}

int pa_strset_add(pa_strset *s, const char *p, size_t n)
{
    size_t at = s->arena.len, i;
    int rc;

    if(memchr(p, '\0', n))
        return PA_EINVAL;
    if((s->n + 1) * 2 > s->nslots) {
        rc = grow(s);
        if(rc)
            return rc;
    }
    i = find(s, p, n);
    if(s->slots[i])
        return PA_OK;
    rc = pa_buf_add(&s->arena, p, n);
    rc = rc ? rc : pa_buf_add(&s->arena, "", 1);
    if(rc) {
        pa_buf_truncate(&s->arena, at);
        return rc;
    }
    s->slots[i] = (uint32_t)at + 1;
    s->n++;
    return PA_OK;
}

int pa_strset_has(const pa_strset *s, const char *p, size_t n)
{
    return s->n && s->slots[find(s, p, n)];
}

const char *pa_strset_next(const pa_strset *s, size_t *pos)
{
    const char *str;

    if(*pos >= s->arena.len)
        return NULL;
    str = s->arena.data + *pos;
    *pos += strlen(str) + 1;
    return str;
}
