/*
 * pa_pgarray: one-dimensional PostgreSQL array literals ("{a,"b c",NULL}"),
 * written element by element into a buffer and read back the same way: how
 * lists of ids and types travel to and from parameterised statements.
 */
#ifndef PA_PGARRAY_H
#define PA_PGARRAY_H

#include "pa_buf.h"

/* Appends one element to a PostgreSQL array literal being built in b (which
 * starts with "{"; the caller closes it with "}"): quoted and escaped, or
 * NULL when item is NULL. */
int pa_pgarray_add(pa_buf *b, const char *item);

/*
 * The next element of a one-dimensional PostgreSQL array literal ("{a,"b
 * c",NULL}") at *p, unescaped into item (which it empties first): 1 for an
 * element, 0 at the end, -1 when the literal is malformed or an element
 * does not fit item.  NULL elements are skipped.
 */
int pa_pgarray_next(const char **p, pa_buf *item);

#endif
