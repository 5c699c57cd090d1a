/*
 * pa_fhir: what the store needs to know about FHIR resources: the types it
 * serves and where each names its patient, the dates and search tokens
 * extracted at load time, NPI check digits, and the CARIN BB non-financial
 * form of an ExplanationOfBenefit.
 */
#ifndef PA_FHIR_H
#define PA_FHIR_H

#include <json-c/json.h>
#include <stddef.h>

#include "pa_buf.h"
#include "pa_err.h"
#include "pa_json.h"

#define PA_NPI_SYSTEM "http://hl7.org/fhir/sid/us-npi"
#define PA_FHIR_ID_MAX 64
#define PA_TS_LEN 40

/* Changes whenever pa_fhir_extract extracts something new, so that loading
 * the same data again refreshes what was extracted from it. */
#define PA_FHIR_FACTS_VERSION "3"

typedef struct pa_fhir_type {
    const char *name;
    const char *patient_path;  /* "" for Patient itself, NULL for shared resources */
} pa_fhir_type;

/* True if s is 1..64 characters of [A-Za-z0-9.-] (a FHIR id). */
int pa_fhir_id_valid(const char *s);

/* Whether name is a top-level element name as _elements gives it (a
 * letter, then letters and digits; a choice as name[x]). */
int pa_fhir_element_name_valid(const char *name);

/* The type, or NULL if the store does not serve it. */
const pa_fhir_type *pa_fhir_type_find(const char *name);

/* The position of t (from pa_fhir_type_find) in pa_fhir_type_names(). */
size_t pa_fhir_type_index(const pa_fhir_type *t);

/* All served types, NULL-terminated, in a stable order. */
const char *const *pa_fhir_type_names(void);

/* Everything the store keeps beside the JSON text. */
typedef struct pa_fhir_facts {
    char patient_id[PA_FHIR_ID_MAX + 1]; /* "" for shared resources */
    char last_updated[PA_TS_LEN];        /* meta.lastUpdated, "" if absent */
    char clin_start[PA_TS_LEN];          /* timestamptz literals, "" if none */
    char clin_end[PA_TS_LEN];
    char created[PA_TS_LEN];
    pa_buf tokens;                       /* a PostgreSQL text[] literal */
    pa_buf refs;                         /* text[] literal: the "Type/id" of its compartment references */
} pa_fhir_facts;

void pa_fhir_facts_init(pa_fhir_facts *f);
void pa_fhir_facts_free(pa_fhir_facts *f);

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
int pa_fhir_extract(const char *text, const pa_json_tape *tape, const pa_fhir_type *t, pa_fhir_facts *f,
                    pa_err *err);

/* The id of a reference to a resource of `type` ("Patient/1", or an absolute
 * URL ending in it); PA_EINVAL if it is not one. */
int pa_fhir_ref_id(const char *ref, const char *type, char *out, size_t size);

/* Turns a FHIR date, dateTime or instant into a timestamptz literal (a
 * partial date becomes its first instant, UTC).  PA_EINVAL if malformed. */
int pa_fhir_date_ts(const char *s, char out[PA_TS_LEN]);

/* The calendar day (YYYY-MM-DD) of a FHIR date or dateTime: a partial date's
 * first day, or its last when last is set (a period's end).  PA_EINVAL if s
 * is not one (grammar and calendar both). */
int pa_fhir_day(const char *s, int last, char out[11]);

/* The token search parameters extracted for type (NULL-terminated), or NULL. */
const char *const *pa_fhir_token_params(const char *type);

/* True if param is a token search parameter extracted for type. */
int pa_fhir_token_param(const char *type, const char *param);

/* True if npi is 10 digits with a valid Luhn check digit (prefix 80840). */
int pa_npi_valid(const char *npi);

/* The NPI among the identifiers of the resource text (read through its
 * tape) decoded into out (size bytes): out, or NULL when there is none.  A
 * value longer than out is given cut short (as written), so that it never
 * passes pa_npi_valid. */
const char *pa_fhir_npi(const char *text, const pa_json_tape *t, char *out, size_t size);

/*
 * The CARIN BB non-financial ("Basis") form of an ExplanationOfBenefit: a
 * new object without total, payment, benefitBalance, any adjudication that
 * carries an amount (claim, item, detail and sub-detail levels, added items
 * too), and the line-level unitPrice, factor and net; meta.profile names the
 * Basis profiles.  Caller frees with json_object_put.
 */
json_object *pa_fhir_nonfinancial(json_object *eob);

/* The same in place: eob itself loses its financial elements (the loader's
 * way, once it has written the full form: no copy of the tree). */
void pa_fhir_strip_financial(json_object *eob);

/*
 * The same written from the EOB's text through its tape, without a tree:
 * appends to out what json-c would write of the tree stripped by
 * pa_fhir_strip_financial, every value kept written as it was (so the same
 * JSON, byte for byte when the text is as json-c writes).  The tape must
 * have no dup_keys and no odd_keys.  meta.lastUpdated becomes last_updated
 * when not NULL, as the loader sets it before stripping.  0, PA_EINVAL
 * when the text is no object, or pa_buf's error.
 */
int pa_fhir_nonfinancial_text(const char *text, const pa_json_tape *t, const char *last_updated, pa_buf *out);

/*
 * Appends to out the resource text (read through its tape) with
 * meta.lastUpdated set to value: what json-c writes of its tree after
 * json_object_object_add sets it (a value replaced where it is, a member
 * added at the end of meta, a meta added at the end of the resource, a
 * meta that is no object replaced).  0, PA_EINVAL when the text is no
 * object, or pa_buf's error.
 */
int pa_fhir_with_last_updated(const char *text, const pa_json_tape *t, const char *value, pa_buf *out);

#endif
