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
#include <stdint.h>

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

/*
 * A tape: every value of a JSON text as a node, in the order of the text,
 * found by one strict scan (pa_json_walk's) without building a tree.  Node 0
 * is the whole text; the children of a container i are i + 1, then each
 * child's end, up to i's end.  Offsets are into the text scanned, which the
 * tape does not keep.
 */
typedef struct pa_json_node {
    uint32_t at, len;      /* the value's text (a string's quotes included) */
    uint32_t key, key_len; /* an object member's name, quotes included; key_len 0 otherwise */
    uint32_t end;          /* the index after its last descendant */
    char type;             /* '{', '[', '"', '0' (a number), 't', 'f' or 'n' */
    unsigned char plain;   /* a string without escapes: its value is its text between the quotes */
} pa_json_node;

typedef struct pa_json_tape {
    pa_json_node *n;
    size_t count, cap;
    int spaced;   /* white space outside the strings */
    int dup_keys; /* an object has a key twice (json-c keeps the last) */
    int odd_keys; /* a key has an escape (so dup_keys may miss a repeat) */
    int oom;
} pa_json_tape;

/* Checks text[0..len) as pa_json_walk does and fills t (its memory kept
 * from one text to the next; zero it before the first).  0, PA_EINVAL with
 * err saying what is wrong and where, or PA_ENOMEM. */
int pa_json_tape_parse(const char *text, size_t len, pa_json_tape *t, pa_err *err);
void pa_json_tape_free(pa_json_tape *t);

/* The node of object i's member named key (the last of that name), or 0. */
size_t pa_json_member(const pa_json_tape *t, const char *text, size_t i, const char *key);

/* Node i's string value, decoded into out (size bytes, NUL-terminated): 0,
 * -1 if i is no string (or 0), -2 if it does not fit. */
int pa_json_node_string(const pa_json_tape *t, const char *text, size_t i, char *out, size_t size);

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

/* The string at o.key, or NULL when o is NULL or o.key is absent or not a
 * string: walks a json-c tree without json-c's aborts on a wrong type. */
const char *pa_json_str(struct json_object *o, const char *key);

/* The value at o.key, or NULL when o is NULL or o.key is absent. */
struct json_object *pa_json_get(struct json_object *o, const char *key);

#endif
