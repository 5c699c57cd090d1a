/*
 * pa_filter: Bulk Data _typeFilter queries ("Observation?code=...&date=ge2020")
 * checked at kick-off and turned into SQL over the columns the loader
 * extracted (tokens, clin_start, created).  Anything this server cannot
 * evaluate exactly is refused, never ignored: an ignored filter would export
 * more than was asked for.  docs/EXPORT.md lists what is supported.
 */
#ifndef PA_FILTER_H
#define PA_FILTER_H

#include <json-c/json.h>

#include "pa_buf.h"
#include "pa_err.h"

#define PA_FILTER_MAX_VALUES 128

/* What the filters of one type may add to its export query: placeholders
 * and bytes of SQL (the runner's query buffers are sized to hold them). */
#define PA_FILTER_SQL_VALUES 56
#define PA_FILTER_SQL_BYTES (32 * 1024)

/*
 * Parses one _typeFilter query and appends it to filters[Type] (an object of
 * arrays of queries; queries of one type are OR'ed, conditions within one are
 * AND'ed).  PA_ENOTSUP naming a parameter, modifier, prefix or token form
 * this server does not support (what Prefer: handling=lenient may ignore);
 * PA_EINVAL for a malformed query or a type it does not export.
 */
int pa_filter_add(json_object *filters, const char *query, pa_err *err);

/* Checks at kick-off that the queries of every type in filters turn into SQL
 * within PA_FILTER_SQL_VALUES and PA_FILTER_SQL_BYTES; PA_ETOOBIG naming the
 * type otherwise, so that no accepted export fails for it later. */
int pa_filter_check(json_object *filters, pa_err *err);

/* The search parameters _typeFilter supports for type, as "a, b, c" (for
 * messages and the CapabilityStatement); "" if none. */
const char *pa_filter_params(const char *type, char *out, size_t size);

/*
 * Appends to sql " AND (...)" for the queries of one type, with placeholders
 * from $first on; values receives borrowed strings (from queries), *n how
 * many.  Nothing is appended for NULL or empty queries.
 */
int pa_filter_sql(json_object *queries, pa_buf *sql, int first, const char **values, int *n, int max);

#endif
