/*
 * pa_fhir: what the store needs to know about FHIR resources: the types it
 * serves and where each names its patient, the search tokens the loader
 * extracts (admin/fhirload.h reads them), references, dates and ids, NPI
 * check digits.
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

typedef struct pa_fhir_type {
    const char *name;
    const char *patient_path; /* "" for Patient itself, NULL for shared resources */
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

/* How a token search parameter is read from its element. */
typedef enum pa_fhir_token_kind {
    PA_FHIR_TOKEN_CC,     /* a CodeableConcept: each coding's system|code */
    PA_FHIR_TOKEN_CODING, /* a Coding */
    PA_FHIR_TOKEN_CODE    /* a code */
} pa_fhir_token_kind;

/* A search parameter the store extracts as tokens, and the element it is read
 * from: the loader extracts what _typeFilter may ask for, the one list. */
typedef struct pa_fhir_token_rule {
    const char *type;
    const char *param;
    const char *path; /* dotted, from the resource */
    pa_fhir_token_kind kind;
} pa_fhir_token_rule;

/* Every token rule; the last has a NULL type. */
const pa_fhir_token_rule *pa_fhir_token_rules(void);

/* The token search parameters extracted for type (NULL-terminated), or NULL. */
const char *const *pa_fhir_token_params(const char *type);

/* True if param is a token search parameter extracted for type. */
int pa_fhir_token_param(const char *type, const char *param);

/* True if npi is 10 digits with a valid Luhn check digit (prefix 80840). */
int pa_npi_valid(const char *npi);

#endif
