/*
 * fhirload: what the loader (pa-admin load, sync) reads from a payer's
 * resources before it stores them: their facts (patient, dates, search
 * tokens, references), a provider's NPI, and the CARIN BB non-financial
 * form of an ExplanationOfBenefit, all read from the text through its tape
 * (pa_json_tape_parse), never through a tree.
 */
#ifndef PA_ADMIN_FHIRLOAD_H
#define PA_ADMIN_FHIRLOAD_H

#include <json-c/json.h>

#include "pa_buf.h"
#include "pa_err.h"
#include "pa_fhir.h"
#include "pa_json.h"

/* Changes whenever fhirload_extract extracts something new, so that loading
 * the same data again refreshes what was extracted from it. */
#define FHIRLOAD_FACTS_VERSION "3"

/* Everything the store keeps beside the JSON text. */
typedef struct fhirload_facts {
    char patient_id[PA_FHIR_ID_MAX + 1]; /* "" for shared resources */
    char last_updated[PA_TS_LEN];        /* meta.lastUpdated, "" if absent */
    char clin_start[PA_TS_LEN];          /* timestamptz literals, "" if none */
    char clin_end[PA_TS_LEN];
    char created[PA_TS_LEN];
    pa_buf tokens; /* a PostgreSQL text[] literal */
    pa_buf refs;   /* text[] literal: the "Type/id" of its compartment references */
} fhirload_facts;

void fhirload_facts_init(fhirload_facts *f);
void fhirload_facts_free(fhirload_facts *f);

/*
 * Validates a resource of type t and extracts its facts: the patient
 * reference (required where the type has one), meta.lastUpdated (an instant
 * if present), dates and search tokens, including "ref=Type/id" for each
 * shared resource (Organization, Practitioner, ...) it references, and in
 * refs each resource of a compartment it references.  It reads the text
 * through its tape (pa_json_tape_parse), no tree: keys are compared as
 * written, so a text whose tape has dup_keys or odd_keys is read as json-c
 * writes its tree (json-c keeps a repeated key's last value and decodes
 * escapes).  A string value over 4 KB is read as absent (or as no date).
 * PA_EINVAL with the reason in err.
 */
int fhirload_extract(const char *text, const pa_json_tape *tape, const pa_fhir_type *t, fhirload_facts *f, pa_err *err);

/* The NPI among the identifiers of the resource text (read through its
 * tape) decoded into out (size bytes): out, or NULL when there is none.  A
 * value longer than out is given cut short (as written), so that it never
 * passes pa_npi_valid. */
const char *fhirload_npi(const char *text, const pa_json_tape *t, char *out, size_t size);

/*
 * The CARIN BB non-financial ("Basis") form of an ExplanationOfBenefit: a
 * new object without total, payment, benefitBalance, any adjudication that
 * carries an amount (claim, item, detail and sub-detail levels, added items
 * too), and the line-level unitPrice, factor and net; meta.profile names the
 * Basis profiles.  Caller frees with json_object_put.
 */
json_object *fhirload_nonfinancial(json_object *eob);

/* The same in place: eob itself loses its financial elements.  This tree
 * form is the reference fhirload_nonfinancial_text (what the loader uses) is
 * checked against, by the unit tests and the ndjson fuzz target. */
void fhirload_strip_financial(json_object *eob);

/*
 * The same written from the EOB's text through its tape, without a tree:
 * appends to out what json-c would write of the tree stripped by
 * fhirload_strip_financial, every value kept written as it was (so the same
 * JSON, byte for byte when the text is as json-c writes).  The tape must
 * have no dup_keys and no odd_keys.  meta.lastUpdated becomes last_updated
 * when not NULL, as the loader sets it before stripping.  0, PA_EINVAL
 * when the text is no object, or pa_buf's error.
 */
int fhirload_nonfinancial_text(const char *text, const pa_json_tape *t, const char *last_updated, pa_buf *out);

/*
 * Appends to out the resource text (read through its tape) with
 * meta.lastUpdated set to value: what json-c writes of its tree after
 * json_object_object_add sets it (a value replaced where it is, a member
 * added at the end of meta, a meta added at the end of the resource, a
 * meta that is no object replaced).  0, PA_EINVAL when the text is no
 * object, or pa_buf's error.
 */
int fhirload_with_last_updated(const char *text, const pa_json_tape *t, const char *value, pa_buf *out);

#endif
