#include "pa_fhir.h"

#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>

#include "pa_pgarray.h"
#include "pa_util.h"

static const pa_fhir_type types[] = {
    { "Patient", "" },
    { "Coverage", "beneficiary" },
    { "ExplanationOfBenefit", "patient" },
    { "Condition", "subject" },
    { "Observation", "subject" },
    { "MedicationRequest", "subject" },
    { "Encounter", "subject" },
    { "Procedure", "subject" },
    { "Immunization", "patient" },
    { "AllergyIntolerance", "patient" },
    { "DiagnosticReport", "subject" },
    { "DocumentReference", "subject" },
    { "CarePlan", "subject" },
    { "CareTeam", "subject" },
    { "Goal", "subject" },
    { "Device", "patient" },
    { "Provenance", "target" },
    { "MedicationDispense", "subject" },
    { "ServiceRequest", "subject" },
    { "Specimen", "subject" },
    { "QuestionnaireResponse", "subject" },
    { "RelatedPerson", "patient" },
    { "Location", NULL },
    { "Medication", NULL },
    { "Organization", NULL },
    { "Practitioner", NULL },
    { "PractitionerRole", NULL },
};

#define NTYPES (sizeof(types) / sizeof(types[0]))

/* The search parameters _typeFilter can use, extracted as tokens. */
static const pa_fhir_token_rule tok_rules[] = {
    { "Observation", "category", "category", PA_FHIR_TOKEN_CC },
    { "Observation", "code", "code", PA_FHIR_TOKEN_CC },
    { "Observation", "status", "status", PA_FHIR_TOKEN_CODE },
    { "Condition", "category", "category", PA_FHIR_TOKEN_CC },
    { "Condition", "clinical-status", "clinicalStatus", PA_FHIR_TOKEN_CC },
    { "Condition", "code", "code", PA_FHIR_TOKEN_CC },
    { "ExplanationOfBenefit", "type", "type", PA_FHIR_TOKEN_CC },
    { "ExplanationOfBenefit", "use", "use", PA_FHIR_TOKEN_CODE },
    { "ExplanationOfBenefit", "status", "status", PA_FHIR_TOKEN_CODE },
    { "Encounter", "class", "class", PA_FHIR_TOKEN_CODING },
    { "Encounter", "type", "type", PA_FHIR_TOKEN_CC },
    { "Encounter", "status", "status", PA_FHIR_TOKEN_CODE },
    { "MedicationRequest", "status", "status", PA_FHIR_TOKEN_CODE },
    { "MedicationRequest", "intent", "intent", PA_FHIR_TOKEN_CODE },
    { "Procedure", "status", "status", PA_FHIR_TOKEN_CODE },
    { "Procedure", "code", "code", PA_FHIR_TOKEN_CC },
    { "Immunization", "status", "status", PA_FHIR_TOKEN_CODE },
    { "Immunization", "vaccine-code", "vaccineCode", PA_FHIR_TOKEN_CC },
    { "Coverage", "status", "status", PA_FHIR_TOKEN_CODE },
    { "AllergyIntolerance", "clinical-status", "clinicalStatus", PA_FHIR_TOKEN_CC },
    { "DiagnosticReport", "category", "category", PA_FHIR_TOKEN_CC },
    { "DiagnosticReport", "code", "code", PA_FHIR_TOKEN_CC },
    { "DiagnosticReport", "status", "status", PA_FHIR_TOKEN_CODE },
    { "DocumentReference", "type", "type", PA_FHIR_TOKEN_CC },
    { "DocumentReference", "category", "category", PA_FHIR_TOKEN_CC },
    { "DocumentReference", "status", "status", PA_FHIR_TOKEN_CODE },
    { "CarePlan", "status", "status", PA_FHIR_TOKEN_CODE },
    { "CarePlan", "category", "category", PA_FHIR_TOKEN_CC },
    { "Goal", "lifecycle-status", "lifecycleStatus", PA_FHIR_TOKEN_CODE },
    { "MedicationDispense", "status", "status", PA_FHIR_TOKEN_CODE },
    { "MedicationDispense", "type", "type", PA_FHIR_TOKEN_CC },
    { "MedicationDispense", "code", "medicationCodeableConcept", PA_FHIR_TOKEN_CC },
    { "ServiceRequest", "status", "status", PA_FHIR_TOKEN_CODE },
    { "ServiceRequest", "intent", "intent", PA_FHIR_TOKEN_CODE },
    { "ServiceRequest", "category", "category", PA_FHIR_TOKEN_CC },
    { "ServiceRequest", "code", "code", PA_FHIR_TOKEN_CC },
    { "Specimen", "type", "type", PA_FHIR_TOKEN_CC },
    { "Specimen", "status", "status", PA_FHIR_TOKEN_CODE },
    { "QuestionnaireResponse", "status", "status", PA_FHIR_TOKEN_CODE },
    { "RelatedPerson", "relationship", "relationship", PA_FHIR_TOKEN_CC },
    { "Medication", "code", "code", PA_FHIR_TOKEN_CC },
    { "Medication", "status", "status", PA_FHIR_TOKEN_CODE },
    { NULL, NULL, NULL, PA_FHIR_TOKEN_CODE },
};

int pa_fhir_element_name_valid(const char *name)
{
    size_t i, n = strlen(name);

    if(n > 3 && !strcmp(name + n - 3, "[x]"))
        n -= 3;
    if(!n || n > 64 || !isalpha((unsigned char)name[0]))
        return 0;
    for(i = 1; i < n; i++)
        if(!isalnum((unsigned char)name[i]))
            return 0;
    return 1;
}

const pa_fhir_type *pa_fhir_type_find(const char *name)
{
    size_t i;

    for(i = 0; i < NTYPES; i++)
        if(!strcmp(types[i].name, name))
            return &types[i];
    return NULL;
}

size_t pa_fhir_type_index(const pa_fhir_type *t)
{
    return (size_t)(t - types);
}

const char *const *pa_fhir_type_names(void)
{
    static const char *names[NTYPES + 1];
    size_t i;

    if(!names[0])
        for(i = 0; i < NTYPES; i++)
            names[i] = types[i].name;
    return names;
}

const char *const *pa_fhir_token_params(const char *type)
{
    static const char *lists[NTYPES][16];
    size_t t, i, n;

    for(t = 0; t < NTYPES; t++) {
        if(strcmp(types[t].name, type))
            continue;
        if(!lists[t][0])
            for(i = 0, n = 0; tok_rules[i].type && n < 15; i++)
                if(!strcmp(tok_rules[i].type, type))
                    lists[t][n++] = tok_rules[i].param;
        return lists[t][0] ? lists[t] : NULL;
    }
    return NULL;
}

const pa_fhir_token_rule *pa_fhir_token_rules(void)
{
    return tok_rules;
}

int pa_fhir_token_param(const char *type, const char *param)
{
    const char *const *p = pa_fhir_token_params(type);

    for(; p && *p; p++)
        if(!strcmp(*p, param))
            return 1;
    return 0;
}

int pa_fhir_ref_id(const char *ref, const char *type, char *out, size_t size)
{
    size_t tn = strlen(type);
    const char *p = ref;
    const char *slash;

    /* absolute references end in Type/id: take the last two segments */
    slash = strrchr(ref, '/');
    if(!slash)
        return PA_EINVAL;
    for(p = slash - 1; p > ref && p[-1] != '/'; p--)
        ;
    if((size_t)(slash - p) != tn || strncmp(p, type, tn) || !pa_fhir_id_valid(slash + 1))
        return PA_EINVAL;
    return pa_strlcpy(out, slash + 1, size) ? PA_EINVAL : PA_OK;
}

int pa_fhir_date_ts(const char *s, char out[PA_TS_LEN])
{
    int64_t ms;
    int y, m, d;

    if(pa_parse_date(s, &y, &m, &d) == PA_OK) {
        snprintf(out, PA_TS_LEN, "%04d-%02d-%02dT00:00:00Z", y, m ? m : 1, d ? d : 1);
        return PA_OK;
    }
    if(pa_parse_instant(s, &ms))
        return PA_EINVAL;
    return pa_strlcpy(out, s, PA_TS_LEN) ? PA_EINVAL : PA_OK;
}

int pa_fhir_day(const char *s, int last, char out[11])
{
    char date[11];
    int64_t ms;
    int y, m, d;

    out[0] = '\0';
    if(!s)
        return PA_EINVAL;
    if(strlen(s) > 10) {
        /* a dateTime: its own calendar day, as written */
        if(pa_parse_instant(s, &ms))
            return PA_EINVAL;
        snprintf(date, sizeof(date), "%.10s", s);
        s = date;
    }
    if(pa_parse_date(s, &y, &m, &d))
        return PA_EINVAL;
    if(!m)
        m = last ? 12 : 1;
    if(!d)
        d = last ? pa_days_in_month(y, m) : 1;
    snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
    return PA_OK;
}

int pa_npi_valid(const char *npi)
{
    /* Luhn over "80840" + the first nine digits; the tenth is the check digit */
    int sum = 24; /* the prefix 80840 contributes 24 */
    int i;

    if(strlen(npi) != 10 || strspn(npi, "0123456789") != 10)
        return 0;
    for(i = 8; i >= 0; i--) {
        int d = npi[i] - '0';

        if((8 - i) % 2 == 0) {
            d *= 2;
            if(d > 9)
                d -= 9;
        }
        sum += d;
    }
    return (10 - sum % 10) % 10 == npi[9] - '0';
}

int pa_fhir_id_valid(const char *s)
{
    size_t n = 0;

    for(; s[n]; n++) {
        char c = s[n];

        if(!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return 0;
        if(n >= 64)
            return 0;
    }
    return n > 0;
}
