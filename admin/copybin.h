/*
 * copybin: rows in PostgreSQL's binary COPY format, as the loader sends
 * them.  Text goes as its bytes (nothing to escape on this side, nothing to
 * unescape on the server's), times as integers, arrays as counted
 * elements: the server stores what it is given without reading it.
 *
 * A buffer holds rows only; copybin_header and copybin_trailer frame one
 * COPY.  Each function appends to b and returns 0 or pa_buf's error.
 */
#ifndef PA_ADMIN_COPYBIN_H
#define PA_ADMIN_COPYBIN_H

#include <stddef.h>
#include <stdint.h>

#include "pa_buf.h"

/* The signature, flags and header extension that open a binary COPY. */
extern const char copybin_header[19];
/* The field count of -1 that ends one. */
extern const char copybin_trailer[2];

/* Starts a row of nfields fields. */
int copybin_row(pa_buf *b, int nfields);

int copybin_null(pa_buf *b);
int copybin_text(pa_buf *b, const char *s, size_t n);
int copybin_str(pa_buf *b, const char *s);
/* s, or NULL when s is "". */
int copybin_opt(pa_buf *b, const char *s);
int copybin_int8(pa_buf *b, int64_t v);
int copybin_bool(pa_buf *b, int v);

/* A timestamptz from a FHIR instant (as pa_fhir_date_ts writes it), NULL
 * when it is "": PA_EINVAL if it is not one. */
int copybin_time(pa_buf *b, const char *instant);

/* A text[] from the array literal pa_pgarray_add builds ("{}" or
 * quoted elements, and NULL): PA_EINVAL if it is not one. */
int copybin_text_array(pa_buf *b, const char *literal);

/* Starts a field whose length is known once it is written: *at is where
 * copybin_end_field writes it. */
int copybin_begin_field(pa_buf *b, size_t *at);
void copybin_end_field(pa_buf *b, size_t at);

/* Writes v as a big-endian 8-byte integer at p (a time put in place later). */
void copybin_put_int8(char *p, int64_t v);

#endif
