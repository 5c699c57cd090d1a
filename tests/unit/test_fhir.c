/* Unit tests of common/pa_fhir (types, extraction, NPIs, the non-financial
 * EOB) and of the loader's binary COPY rows (admin/copybin). */
#include <json-c/json.h>
#include <string.h>

#include "copybin.h"
#include "cu_main.h"
#include "fhirload.h"
#include "pa_fhir.h"
#include "pa_pgarray.h"

static void test_types(void)
{
    CU_ASSERT_PTR_NOT_NULL(pa_fhir_type_find("ExplanationOfBenefit"));
    CU_ASSERT_PTR_NULL(pa_fhir_type_find("Claim"));
    CU_ASSERT_PTR_NULL(pa_fhir_type_find("patient"));
    CU_ASSERT_PTR_NULL(pa_fhir_type_find("Organization")->patient_path);
    CU_ASSERT_STRING_EQUAL(pa_fhir_type_find("Patient")->patient_path, "");
}

static void test_npi(void)
{
    CU_ASSERT_TRUE(pa_npi_valid("1234567893")); /* the CMS worked example */
    CU_ASSERT_TRUE(pa_npi_valid("1245319599"));
    CU_ASSERT_FALSE(pa_npi_valid("1234567890"));
    CU_ASSERT_FALSE(pa_npi_valid("123456789"));
    CU_ASSERT_FALSE(pa_npi_valid("12345678931"));
    CU_ASSERT_FALSE(pa_npi_valid("12345678a3"));
}

/* The NPI among a resource's identifiers, read through its tape. */
static void test_npi_found(void)
{
    const char *text = "{\"resourceType\":\"Practitioner\",\"identifier\":[{\"system\":\"urn:x\",\"value\":\"1\"},"
                       "{\"system\":\"http://hl7.org/fhir/sid/us-npi\",\"value\":\"1234567893\"}]}";
    pa_json_tape t = { 0 };
    char npi[16];
    pa_err err;

    CU_ASSERT_EQUAL_FATAL(pa_json_tape_parse(text, strlen(text), &t, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(fhirload_npi(text, &t, npi, sizeof(npi)));
    CU_ASSERT_STRING_EQUAL(npi, "1234567893");
    /* one that does not fit comes cut short, never valid */
    CU_ASSERT_PTR_NOT_NULL(fhirload_npi(text, &t, npi, 4));
    CU_ASSERT_STRING_EQUAL(npi, "123");
    CU_ASSERT_FALSE(pa_npi_valid(npi));
    text = "{\"resourceType\":\"Practitioner\",\"identifier\":{\"system\":\"http://hl7.org/fhir/sid/us-npi\"}}";
    CU_ASSERT_EQUAL_FATAL(pa_json_tape_parse(text, strlen(text), &t, &err), 0);
    CU_ASSERT_PTR_NULL(fhirload_npi(text, &t, npi, sizeof(npi)));
    pa_json_tape_free(&t);
}

static void test_refs_and_dates(void)
{
    char id[65], ts[PA_TS_LEN];

    CU_ASSERT_EQUAL(pa_fhir_ref_id("Patient/p-1", "Patient", id, sizeof(id)), PA_OK);
    CU_ASSERT_STRING_EQUAL(id, "p-1");
    CU_ASSERT_EQUAL(pa_fhir_ref_id("https://payer.example/fhir/Patient/9", "Patient", id, sizeof(id)), PA_OK);
    CU_ASSERT_STRING_EQUAL(id, "9");
    CU_ASSERT_EQUAL(pa_fhir_ref_id("Practitioner/9", "Patient", id, sizeof(id)), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_fhir_ref_id("XPatient/9", "Patient", id, sizeof(id)), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_fhir_ref_id("Patient/", "Patient", id, sizeof(id)), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_fhir_ref_id("#contained", "Patient", id, sizeof(id)), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_fhir_date_ts("2019", ts), PA_OK);
    CU_ASSERT_STRING_EQUAL(ts, "2019-01-01T00:00:00Z");
    CU_ASSERT_EQUAL(pa_fhir_date_ts("2019-07", ts), PA_OK);
    CU_ASSERT_STRING_EQUAL(ts, "2019-07-01T00:00:00Z");
    CU_ASSERT_EQUAL(pa_fhir_date_ts("2019-07-04", ts), PA_OK);
    CU_ASSERT_STRING_EQUAL(ts, "2019-07-04T00:00:00Z");
    CU_ASSERT_EQUAL(pa_fhir_date_ts("2019-07-04T10:00:00-05:00", ts), PA_OK);
    CU_ASSERT_EQUAL(pa_fhir_date_ts("2019-02-30", ts), PA_EINVAL);
    CU_ASSERT_EQUAL(pa_fhir_date_ts("July 4", ts), PA_EINVAL);
}

/* fhirload_extract of o as json-c writes it, read through its tape. */
static int extract(json_object *o, const char *type, fhirload_facts *f, pa_err *err)
{
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    pa_json_tape t = { 0 };
    int rc = pa_json_tape_parse(text, strlen(text), &t, err);

    if(!rc)
        rc = fhirload_extract(text, &t, pa_fhir_type_find(type), f, err);
    pa_json_tape_free(&t);
    return rc;
}

static void test_extract(void)
{
    const char *obs =
        "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"meta\":{\"lastUpdated\":\"2024-03-01T00:00:00Z\"},"
        "\"status\":\"final\",\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":\"laboratory\"}]}],"
        "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"4548-4\"},{\"code\":\"x\\\"y\"}]},"
        "\"subject\":{\"reference\":\"Patient/m1\"},\"effectiveDateTime\":\"2023-11-05\"}";
    json_object *o = json_tokener_parse(obs);
    fhirload_facts f;
    pa_err err;

    fhirload_facts_init(&f);
    CU_ASSERT_EQUAL_FATAL(extract(o, "Observation", &f, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(f.patient_id, "m1");
    CU_ASSERT_STRING_EQUAL(f.last_updated, "2024-03-01T00:00:00Z");
    CU_ASSERT_STRING_EQUAL(f.clin_start, "2023-11-05T00:00:00Z");
    CU_ASSERT_STRING_EQUAL(f.clin_end, "");
    CU_ASSERT_STRING_EQUAL(pa_buf_str(&f.tokens),
                           "{\"category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory\","
                           "\"category=laboratory\",\"code=http://loinc.org|4548-4\",\"code=4548-4\","
                           "\"code=|x\\\"y\",\"code=x\\\"y\",\"status=final\"}");
    json_object_put(o);

    /* dates the member and coverage tables keep must be dates */
    o = json_tokener_parse("{\"resourceType\":\"Patient\",\"id\":\"p1\",\"birthDate\":\"1970-02-30\"}");
    CU_ASSERT_EQUAL(extract(o, "Patient", &f, &err), PA_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "birthDate '1970-02-30'"));
    json_object_put(o);
    o = json_tokener_parse(
        "{\"resourceType\":\"Coverage\",\"id\":\"c1\",\"beneficiary\":{\"reference\":\"Patient/p1\"},"
        "\"period\":{\"start\":\"2020-01-01\",\"end\":\"2020-13-01\"}}");
    CU_ASSERT_EQUAL(extract(o, "Coverage", &f, &err), PA_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'2020-13-01' is not a FHIR date"));
    json_object_put(o);
    o = json_tokener_parse("{\"resourceType\":\"Patient\",\"id\":\"p1\",\"birthDate\":\"1970-02\"}");
    CU_ASSERT_EQUAL(extract(o, "Patient", &f, &err), PA_OK);
    json_object_put(o);

    /* a compartment resource without its patient is refused */
    o = json_tokener_parse("{\"resourceType\":\"Condition\",\"id\":\"c1\",\"subject\":{\"reference\":\"Group/1\"}}");
    CU_ASSERT_EQUAL(extract(o, "Condition", &f, &err), PA_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "Patient reference"));
    json_object_put(o);
    o = json_tokener_parse("{\"resourceType\":\"Condition\",\"id\":\"c1\",\"subject\":{\"reference\":\"Patient/1\"},"
                           "\"meta\":{\"lastUpdated\":\"yesterday\"}}");
    CU_ASSERT_EQUAL(extract(o, "Condition", &f, &err), PA_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "lastUpdated"));
    json_object_put(o);
    /* Provenance belongs to the patient among its targets */
    o = json_tokener_parse(
        "{\"resourceType\":\"Provenance\",\"id\":\"v1\",\"target\":[{\"reference\":\"Condition/c1\"},"
        "{\"reference\":\"Patient/m7\"}]}");
    CU_ASSERT_EQUAL(extract(o, "Provenance", &f, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(f.patient_id, "m7");
    json_object_put(o);
    fhirload_facts_free(&f);
}

/* An EOB with every financial element the CARIN BB Basis profiles leave out. */
static const char *full_eob =
    "{\"resourceType\":\"ExplanationOfBenefit\",\"id\":\"e1\","
    "\"meta\":{\"profile\":[\"http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Inpatient-Institutional|2.2.0\"]},"
    "\"status\":\"active\",\"use\":\"claim\",\"patient\":{\"reference\":\"Patient/m1\"},"
    "\"adjudication\":[{\"category\":{\"coding\":[{\"code\":\"benefitpaymentstatus\"}]},\"reason\":{\"text\":\"innetwork\"}},"
    "{\"category\":{\"coding\":[{\"code\":\"paidtoprovider\"}]},\"amount\":{\"value\":10,\"currency\":\"USD\"}}],"
    "\"item\":[{\"sequence\":1,\"unitPrice\":{\"value\":5},\"factor\":1,\"net\":{\"value\":5},"
    "\"adjudication\":[{\"category\":{\"coding\":[{\"code\":\"submitted\"}]},\"amount\":{\"value\":5}},"
    "{\"category\":{\"coding\":[{\"code\":\"allowedunits\"}]},\"value\":2}],"
    "\"detail\":[{\"sequence\":1,\"net\":{\"value\":3},\"adjudication\":[{\"category\":{\"text\":\"x\"},\"amount\":{\"value\":3}}],"
    "\"subDetail\":[{\"sequence\":1,\"unitPrice\":{\"value\":1},\"adjudication\":[{\"category\":{\"text\":\"y\"},\"amount\":{\"value\":1}}]}]}]}],"
    "\"addItem\":[{\"net\":{\"value\":9},\"adjudication\":[{\"category\":{\"text\":\"z\"},\"amount\":{\"value\":9}}]}],"
    "\"total\":[{\"category\":{\"text\":\"submitted\"},\"amount\":{\"value\":10}}],"
    "\"payment\":{\"type\":{\"text\":\"complete\"},\"amount\":{\"value\":10}},"
    "\"benefitBalance\":[{\"category\":{\"text\":\"medical\"}}]}";

static int has(json_object *o, const char *path)
{
    json_object *v = o;
    char key[64];

    while(*path) {
        size_t n = strcspn(path, ".");

        snprintf(key, sizeof(key), "%.*s", (int)n, path);
        if(key[0] >= '0' && key[0] <= '9') {
            if(!json_object_is_type(v, json_type_array) || (size_t)(key[0] - '0') >= json_object_array_length(v))
                return 0;
            v = json_object_array_get_idx(v, key[0] - '0');
        }
        else if(!json_object_object_get_ex(v, key, &v)) {
            return 0;
        }
        path += n;
        if(*path == '.')
            path++;
    }
    return 1;
}

static void test_nonfinancial(void)
{
    static const char *const gone[] = { "total",
                                        "payment",
                                        "benefitBalance",
                                        "adjudication.1",
                                        "item.0.unitPrice",
                                        "item.0.factor",
                                        "item.0.net",
                                        "item.0.adjudication.1",
                                        "item.0.detail.0.net",
                                        "item.0.detail.0.adjudication",
                                        "item.0.detail.0.subDetail.0.unitPrice",
                                        "item.0.detail.0.subDetail.0.adjudication",
                                        "addItem.0.net",
                                        "addItem.0.adjudication",
                                        NULL };
    static const char *const kept[] = { "adjudication.0.reason",
                                        "item.0.adjudication.0.value",
                                        "item.0.sequence",
                                        "item.0.detail.0.subDetail.0.sequence",
                                        "patient.reference",
                                        "status",
                                        NULL };
    json_object *eob = json_tokener_parse(full_eob);
    json_object *nf = fhirload_nonfinancial(eob);
    size_t i;

    CU_ASSERT_PTR_NOT_NULL_FATAL(nf);
    for(i = 0; gone[i]; i++) {
        if(has(nf, gone[i]))
            CU_FAIL(gone[i]);
        CU_ASSERT_FALSE(has(nf, gone[i]));
    }
    for(i = 0; kept[i]; i++)
        CU_ASSERT_TRUE(has(nf, kept[i]));
    /* no amount anywhere in the non-financial form */
    CU_ASSERT_PTR_NULL(strstr(json_object_to_json_string(nf), "\"amount\""));
    CU_ASSERT_STRING_EQUAL(
        json_object_get_string(
            json_object_array_get_idx(json_object_object_get(json_object_object_get(nf, "meta"), "profile"), 0)),
        "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Inpatient-Institutional-Basis");
    /* the full form is untouched */
    CU_ASSERT_TRUE(has(eob, "total.0.amount"));
    CU_ASSERT_TRUE(has(eob, "item.0.net"));
    json_object_put(nf);
    json_object_put(eob);
}

/* The Basis profile of an EOB whose source named none comes from its claim type. */
static void test_basis_profile_added(void)
{
    static const struct {
        const char *eob, *profile;
    } cases[] = {
        { "{\"resourceType\":\"ExplanationOfBenefit\",\"use\":\"claim\",\"type\":{\"coding\":[{\"system\":"
          "\"http://terminology.hl7.org/CodeSystem/claim-type\",\"code\":\"pharmacy\"}]}}",
          "C4BB-ExplanationOfBenefit-Pharmacy-Basis" },
        { "{\"resourceType\":\"ExplanationOfBenefit\",\"meta\":{\"profile\":[\"http://example.org/x\"]},"
          "\"type\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/claim-type\",\"code\":"
          "\"professional\"}]}}",
          "C4BB-ExplanationOfBenefit-Professional-NonClinician-Basis" },
        { "{\"resourceType\":\"ExplanationOfBenefit\",\"type\":{\"coding\":[{\"system\":"
          "\"http://terminology.hl7.org/CodeSystem/claim-type\",\"code\":\"institutional\"}]},\"subType\":{\"coding\":"
          "[{\"system\":\"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType\",\"code\":"
          "\"inpatient\"}]}}",
          "C4BB-ExplanationOfBenefit-Inpatient-Institutional-Basis" },
        { "{\"resourceType\":\"ExplanationOfBenefit\",\"type\":{\"coding\":[{\"system\":"
          "\"http://terminology.hl7.org/CodeSystem/claim-type\",\"code\":\"institutional\"}]}}",
          "C4BB-ExplanationOfBenefit-Outpatient-Institutional-Basis" },
        /* a prior authorization keeps its PDex profile only; an unknown type gets none */
        { "{\"resourceType\":\"ExplanationOfBenefit\",\"use\":\"preauthorization\",\"type\":{\"coding\":[{"
          "\"system\":\"http://terminology.hl7.org/CodeSystem/claim-type\",\"code\":\"pharmacy\"}]}}",
          NULL },
        { "{\"resourceType\":\"ExplanationOfBenefit\",\"type\":{\"coding\":[{\"system\":\"urn:x\",\"code\":\"y\"}]}}",
          NULL },
    };
    size_t i;

    for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_object *eob = json_tokener_parse(cases[i].eob);
        json_object *nf = fhirload_nonfinancial(eob);
        const char *s = json_object_to_json_string(nf);

        CU_ASSERT_PTR_NOT_NULL_FATAL(nf);
        if(cases[i].profile) {
            CU_ASSERT_PTR_NOT_NULL(strstr(s, cases[i].profile));
        }
        else {
            CU_ASSERT_PTR_NULL(strstr(s, "-Basis"));
        }
        /* only the non-financial form says so */
        CU_ASSERT_PTR_NULL(strstr(json_object_to_json_string(eob), "-Basis"));
        json_object_put(nf);
        json_object_put(eob);
    }
}

/* A reference to a shared type is a ref= token, one to a compartment type
 * (not Patient) is in refs: once each, however alike the ids (org-1 is not
 * org-10), absolute ones too. */
static void test_ref_tokens(void)
{
    json_object *o = json_tokener_parse(
        "{\"resourceType\":\"Condition\",\"id\":\"c1\",\"subject\":{\"reference\":\"Patient/m1\"},"
        "\"encounter\":{\"reference\":\"https://payer.example/fhir/Encounter/e1\"},"
        "\"recorder\":{\"reference\":\"Organization/org-10\"},\"asserter\":{\"reference\":\"Organization/org-1\"},"
        "\"evidence\":[{\"detail\":[{\"reference\":\"Organization/org-1\"},{\"reference\":\"Nonesuch/x\"},"
        "{\"reference\":\"#contained\"},{\"reference\":\"Medication/m\\\"q\"}]}]}");
    fhirload_facts f;
    pa_err err;

    fhirload_facts_init(&f);
    CU_ASSERT_EQUAL_FATAL(extract(o, "Condition", &f, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(pa_buf_str(&f.tokens), "{\"ref=Organization/org-10\",\"ref=Organization/org-1\"}");
    CU_ASSERT_STRING_EQUAL(pa_buf_str(&f.refs), "{\"Encounter/e1\"}");
    fhirload_facts_free(&f);
    json_object_put(o);
}

/* Whether the non-financial form written from text is what json-c writes
 * of its stripped tree, byte for byte, with and without a new lastUpdated. */
static int nonfinancial_text_is_tree(const char *text)
{
    pa_json_tape t = { 0 };
    pa_buf out;
    pa_err err;
    int lu, same = 1;

    pa_buf_init(&out, 1 << 20);
    for(lu = 0; lu < 2; lu++) {
        json_object *tree = json_tokener_parse(text), *meta;
        const char *want;

        if(!tree || pa_json_tape_parse(text, strlen(text), &t, &err)) {
            json_object_put(tree);
            same = 0;
            break;
        }
        if(lu) {
            /* as the loader does before it strips */
            if(!json_object_object_get_ex(tree, "meta", &meta) || !json_object_is_type(meta, json_type_object)) {
                meta = json_object_new_object();
                json_object_object_add(tree, "meta", meta);
            }
            json_object_object_add(meta, "lastUpdated", json_object_new_string("@@now@@"));
        }
        fhirload_strip_financial(tree);
        want = json_object_to_json_string_ext(tree, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        pa_buf_reset(&out);
        if(fhirload_nonfinancial_text(text, &t, lu ? "@@now@@" : NULL, &out) || strcmp(pa_buf_str(&out), want)) {
            fprintf(stderr, "\n%d text: %s\n  tree: %s\n", lu, pa_buf_str(&out), want);
            same = 0;
        }
        json_object_put(tree);
    }
    pa_json_tape_free(&t);
    pa_buf_free(&out);
    return same;
}

/* Every rule, and every shape json-c's tree takes in its place. */
static void test_nonfinancial_text(void)
{
    static const char *const eobs[] = {
        "{\"resourceType\":\"ExplanationOfBenefit\",\"id\":\"e2\",\"meta\":{\"lastUpdated\":\"2024-01-01T00:00:00Z\","
        "\"profile\":[\"http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Pharmacy|1.2.0\","
        "\"http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Oral-Basis\",7,\"x\"]},"
        "\"item\":[3,{\"adjudication\":[{\"amount\":null},{\"amount\":{}}],\"detail\":{\"net\":1}},"
        "{\"subDetail\":[{\"factor\":2,\"item\":[{\"net\":1}]}]}],\"adjudication\":{\"amount\":1},\"addItem\":[]}",
        /* no meta: one is added, with the Basis profile of the claim type */
        "{\"resourceType\":\"ExplanationOfBenefit\",\"use\":\"claim\",\"type\":{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/claim-type\",\"code\":\"pharmacy\"}]},\"total\":[]}",
        /* meta and profile that are no object or array */
        "{\"resourceType\":\"ExplanationOfBenefit\",\"meta\":7,\"type\":{\"coding\":[{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/claim-type\",\"code\":\"institutional\"}]}}",
        "{\"resourceType\":\"ExplanationOfBenefit\",\"meta\":{\"profile\":\"p\",\"source\":\"s\"},\"type\":{\"coding\":"
        "[{\"system\":\"http://terminology.hl7.org/CodeSystem/claim-type\",\"code\":\"institutional\"}]},"
        "\"subType\":{\"coding\":[{\"system\":\"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType\","
        "\"code\":\"inpatient\"}]}}",
        "{\"resourceType\":\"ExplanationOfBenefit\",\"meta\":{},\"use\":\"preauthorization\",\"type\":{\"coding\":[{"
        "\"system\":\"http://terminology.hl7.org/CodeSystem/claim-type\",\"code\":\"oral\"}]}}",
        "{\"resourceType\":\"ExplanationOfBenefit\",\"meta\":{\"profile\":[]},\"type\":{\"coding\":[{"
        "\"system\":\"http://terminology.hl7.org/CodeSystem/claim-type\",\"code\":\"vision\"}]},\"payment\":{}}",
        "{}",
    };
    pa_json_tape t = { 0 };
    pa_buf long_profile, out;
    pa_err err;
    size_t i;
    int k;

    CU_ASSERT_TRUE(nonfinancial_text_is_tree(full_eob));
    for(i = 0; i < sizeof(eobs) / sizeof(eobs[0]); i++)
        CU_ASSERT_TRUE(nonfinancial_text_is_tree(eobs[i]));
    /* profiles of any length: a long version, a long URL */
    pa_buf_init(&long_profile, 1 << 20);
    for(k = 0; k < 2; k++) {
        pa_buf_reset(&long_profile);
        pa_buf_addstr(&long_profile,
                      "{\"resourceType\":\"ExplanationOfBenefit\",\"meta\":{\"profile\":[\"http://hl7.org/"
                      "fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Pharmacy");
        for(i = 0; i < (k ? 5000u : 600u); i++)
            pa_buf_addstr(&long_profile, k ? "x" : (i ? "1" : "|"));
        pa_buf_addstr(&long_profile, "\"]},\"type\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
                                     "claim-type\",\"code\":\"oral\"}]}}");
        CU_ASSERT_TRUE(nonfinancial_text_is_tree(pa_buf_str(&long_profile)));
    }
    pa_buf_free(&long_profile);
    pa_buf_init(&out, 64);
    CU_ASSERT_EQUAL(pa_json_tape_parse("[1]", 3, &t, &err), 0);
    CU_ASSERT_EQUAL(fhirload_nonfinancial_text("[1]", &t, NULL, &out), PA_EINVAL);
    pa_json_tape_free(&t);
    pa_buf_free(&out);
}

/* The text with a new meta.lastUpdated is what json-c writes of the tree
 * once json_object_object_add has set it, whatever meta was. */
static void test_with_last_updated(void)
{
    static const char *const texts[] = {
        "{\"resourceType\":\"Patient\",\"meta\":{\"lastUpdated\":\"2024-01-01T00:00:00Z\",\"source\":\"s\"},\"id\":\"p\"}",
        "{\"resourceType\":\"Patient\",\"meta\":{\"profile\":[\"x\"]},\"id\":\"p\"}",
        "{\"resourceType\":\"Patient\",\"meta\":{},\"id\":\"p\"}",
        "{\"resourceType\":\"Patient\",\"meta\":[1],\"id\":\"p\"}",
        "{\"resourceType\":\"Patient\",\"id\":\"p\"}",
        "{\"meta\":{\"lastUpdated\":7}}",
        "{}",
    };
    pa_json_tape t = { 0 };
    pa_buf out;
    pa_err err;
    size_t i;

    pa_buf_init(&out, 1 << 16);
    for(i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_object *tree = json_tokener_parse(texts[i]), *meta;

        CU_ASSERT_PTR_NOT_NULL_FATAL(tree);
        CU_ASSERT_EQUAL_FATAL(pa_json_tape_parse(texts[i], strlen(texts[i]), &t, &err), 0);
        pa_buf_reset(&out);
        CU_ASSERT_EQUAL(fhirload_with_last_updated(texts[i], &t, "@@now@@", &out), 0);
        if(!json_object_object_get_ex(tree, "meta", &meta) || !json_object_is_type(meta, json_type_object)) {
            meta = json_object_new_object();
            json_object_object_add(tree, "meta", meta);
        }
        json_object_object_add(meta, "lastUpdated", json_object_new_string("@@now@@"));
        CU_ASSERT_STRING_EQUAL(pa_buf_str(&out), json_object_to_json_string_ext(
                                                     tree, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(tree);
    }
    CU_ASSERT_EQUAL(pa_json_tape_parse("[]", 2, &t, &err), 0);
    CU_ASSERT_EQUAL(fhirload_with_last_updated("[]", &t, "x", &out), PA_EINVAL);
    pa_json_tape_free(&t);
    pa_buf_free(&out);
}

/* b's bytes from off on are exactly want[0..n). */
static int bytes_are(const pa_buf *b, size_t off, const char *want, size_t n)
{
    return b->len - off == n && !memcmp(b->data + off, want, n);
}

static void test_copybin_fields(void)
{
    pa_buf b;

    pa_buf_init(&b, 4096);
    CU_ASSERT_EQUAL(copybin_row(&b, 13), PA_OK);
    CU_ASSERT(bytes_are(&b, 0, "\0\15", 2));
    pa_buf_reset(&b);
    CU_ASSERT_EQUAL(copybin_str(&b, "a\tb\\"), PA_OK); /* as it is: nothing escaped */
    CU_ASSERT(bytes_are(&b, 0, "\0\0\0\4a\tb\\", 8));
    pa_buf_reset(&b);
    CU_ASSERT_EQUAL(copybin_opt(&b, ""), PA_OK);
    CU_ASSERT(bytes_are(&b, 0, "\377\377\377\377", 4));
    pa_buf_reset(&b);
    CU_ASSERT_EQUAL(copybin_int8(&b, -2), PA_OK);
    CU_ASSERT(bytes_are(&b, 0, "\0\0\0\10\377\377\377\377\377\377\377\376", 12));
    pa_buf_reset(&b);
    CU_ASSERT_EQUAL(copybin_bool(&b, 7), PA_OK);
    CU_ASSERT(bytes_are(&b, 0, "\0\0\0\1\1", 5));
    pa_buf_reset(&b);
    /* 2000-01-01T00:00:01Z: one second after PostgreSQL's epoch */
    CU_ASSERT_EQUAL(copybin_time(&b, "2000-01-01T00:00:01Z"), PA_OK);
    CU_ASSERT(bytes_are(&b, 0, "\0\0\0\10\0\0\0\0\0\17\102\100", 12));
    pa_buf_reset(&b);
    CU_ASSERT_EQUAL(copybin_time(&b, ""), PA_OK);
    CU_ASSERT(bytes_are(&b, 0, "\377\377\377\377", 4));
    CU_ASSERT_EQUAL(copybin_time(&b, "2000-01-01"), PA_EINVAL);
    pa_buf_free(&b);
}

static void test_copybin_arrays(void)
{
    pa_buf b, lit;
    size_t before;

    pa_buf_init(&b, 4096);
    pa_buf_init(&lit, 4096);
    /* empty: no dimension, text's element type (25) */
    CU_ASSERT_EQUAL(copybin_text_array(&b, "{}"), PA_OK);
    CU_ASSERT(bytes_are(&b, 0,
                        "\0\0\0\14"
                        "\0\0\0\0"
                        "\0\0\0\0"
                        "\0\0\0\31",
                        16));
    pa_buf_reset(&b);
    /* what pa_pgarray_add builds, quotes and backslashes included */
    pa_buf_addstr(&lit, "{");
    pa_pgarray_add(&lit, "ref=Organization/o1");
    pa_pgarray_add(&lit, "a\"b\\c");
    pa_pgarray_add(&lit, NULL);
    pa_buf_addstr(&lit, "}");
    CU_ASSERT_EQUAL(copybin_text_array(&b, pa_buf_str(&lit)), PA_OK);
    {
        static const char want[] = "\0\0\0\0"                  /* the length, checked below */
                                   "\0\0\0\1\0\0\0\1\0\0\0\31" /* one dimension, a NULL, text */
                                   "\0\0\0\3\0\0\0\1"          /* three elements from 1 */
                                   "\0\0\0\23ref=Organization/o1"
                                   "\0\0\0\5a\"b\\c"
                                   "\377\377\377\377";
        size_t n = sizeof(want) - 1;

        CU_ASSERT_EQUAL_FATAL(b.len, n);
        CU_ASSERT(!memcmp(b.data + 4, want + 4, n - 4));
        CU_ASSERT_EQUAL((size_t)((unsigned char)b.data[2] << 8 | (unsigned char)b.data[3]), n - 4);
    }
    /* anything else is refused */
    before = b.len;
    CU_ASSERT_EQUAL(copybin_text_array(&b, "a,b"), PA_EINVAL);
    CU_ASSERT_EQUAL(copybin_text_array(&b, "{a}"), PA_EINVAL);
    CU_ASSERT_EQUAL(copybin_text_array(&b, "{\"a\""), PA_EINVAL);
    CU_ASSERT_EQUAL(copybin_text_array(&b, "{\"a\"}x"), PA_EINVAL);
    CU_ASSERT_EQUAL(copybin_text_array(&b, "{\"a\"\"b\"}"), PA_EINVAL);
    CU_ASSERT_EQUAL(copybin_text_array(&b, "{\"a\\"), PA_EINVAL);
    CU_ASSERT(b.len >= before);
    pa_buf_free(&b);
    pa_buf_free(&lit);
}

int main(void)
{
    static const struct cu_test tests[] = {
        { "a non-financial EOB always names its Basis profile", test_basis_profile_added },
        { "served types", test_types },
        { "binary COPY fields", test_copybin_fields },
        { "binary COPY text arrays from array literals", test_copybin_arrays },
        { "NPI check digits", test_npi },
        { "the NPI among the identifiers", test_npi_found },
        { "references and dates", test_refs_and_dates },
        { "facts extracted for the store", test_extract },
        { "references to stored types become tokens", test_ref_tokens },
        { "the non-financial EOB lacks every financial element", test_nonfinancial },
        { "the non-financial EOB written from its text is the tree's", test_nonfinancial_text },
        { "a new meta.lastUpdated written into the text as into the tree", test_with_last_updated },
        { NULL, NULL },
    };

    return cu_run("fhir", tests);
}
