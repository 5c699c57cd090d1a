/*
 * pa_json: checking large JSON texts without building them.
 *
 * json-c builds every object with its own hash table: a 7 MB request takes
 * it half a second.  Where only a few fields of a large text matter before
 * the text is handed on (the asynchronous $provider-member-match kick-off),
 * these walk it in place instead, checking it as strictly as RFC 8259 asks
 * (UTF-8, no trailing text) and no deeper than json-c will later parse it.
 */
#ifndef PA_JSON_H
#define PA_JSON_H

#include <stddef.h>

#include "pa_err.h"

/* Nesting json-c parses by default: a text deeper than this is refused. */
#define PA_JSON_MAX_DEPTH 32

/* Called with each member of an object (key decoded, value as its JSON text),
 * or each element of an array (key NULL); nonzero stops the walk and is
 * returned. */
typedef int (*pa_json_visit)(const char *key, const char *value, size_t len, void *ctx);

/*
 * Checks that text[0..len) is exactly one JSON value, visiting the members
 * of the object (or the elements of the array) it is, if visit is not
 * NULL.  Returns 0, visit's nonzero return, or PA_EINVAL with err saying
 * what is wrong and where.  Keys longer than 255 bytes are visited
 * truncated.
 */
int pa_json_walk(const char *text, size_t len, pa_json_visit visit, void *ctx, pa_err *err);

/* True if text[0..len) is the start of a JSON value that it does not finish
 * (the first line of a pretty-printed document), with nothing wrong so far. */
int pa_json_prefix(const char *text, size_t len);

struct json_object;

/*
 * Parses text[0..len) into a json-c tree (*out, json_object_put it) only if
 * pa_json_walk finds it to be exactly one well-formed value: UTF-8, no
 * \u0000, nothing after it, no deeper than PA_JSON_MAX_DEPTH.  json-c alone
 * would take the first value of "{}garbage" and stop at a NUL byte.  The one
 * way request bodies become trees (the text "null" is *out NULL and 0).
 * PA_EINVAL with err saying what and where.
 */
int pa_json_parse(const char *text, size_t len, struct json_object **out, pa_err *err);

/* Decodes the JSON string value[0..len) into out (size bytes, NUL
 * terminated); -1 if it is no string or does not fit. */
int pa_json_string(const char *value, size_t len, char *out, size_t size);

#endif
