/*
 * Bulk Data's _elements: an export that asks for it keeps, of each resource
 * of a type it names, only the top-level elements listed and those FHIR R4
 * makes mandatory (resourceType, id, meta always), and marks it SUBSETTED in
 * meta.tag.  Only such exports parse their lines; the others copy them.
 */
#ifndef PA_JOBS_ELEMENTS_H
#define PA_JOBS_ELEMENTS_H
#include <json-c/json.h>
#include <stddef.h>

#include "pa_buf.h"

/* The elements one type keeps (names are borrowed from the job's params). */
struct elements {
    const char *type;
    const char *names[128]; /* the kick-off takes 64 for every type and 64 for each */
    size_t n;
};

/* What a type keeps by the job's "elements" parameter ({"*": [names for
 * every type], "Type": [names]}): 1 and *out filled when the type is
 * subsetted, 0 when it is exported whole (no name applies to it). */
int elements_for(json_object *elements, const char *type, struct elements *out);

/* Writes into out (reset first) the line n bytes long cut down to what e
 * keeps, compact, SUBSETTED in meta.tag.  PA_EINVAL for a line that is not
 * a JSON object. */
int elements_apply(const struct elements *e, const char *line, size_t n, pa_buf *out);

#endif
