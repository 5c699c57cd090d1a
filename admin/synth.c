/*
 * pa-admin synth: a synthetic payer, deterministic (the same --seed and
 * --today give the same bytes), written as FHIR NDJSON per type plus CSV
 * feeds, ready for `pa-admin load DIR`.
 *
 * The plan: one payer Organization; provider organizations, each with a
 * Location, practitioners and PractitionerRoles (valid NPIs; most in
 * network, see providers.csv); members with Patient, Coverage (some lapsed)
 * and a Provenance; per member a spread of encounters from 2014 to --today,
 * each with its claim (professional, institutional inpatient or outpatient;
 * pharmacy claims for prescriptions; full financial detail), conditions,
 * vital-sign and lab observations (LOINC), procedures; immunizations,
 * allergies and prior authorizations (approved, denied, pending); about 1%
 * of members have ten times as much.  Groups: an attribution roster per
 * provider organization, treatment relationships for a few members, a global
 * opt-out and provider-specific opt-outs; treatment relationships from
 * claims history (and some without claims) as a CSV feed.
 *
 * Every member's data comes from its own random stream (seed, member
 * number), so members do not depend on each other.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "admin.h"
#include "pa_buf.h"
#include "pa_fhir.h"
#include "pa_util.h"
#include "synth.h"

#define LINE_MAX_BYTES (1024 * 1024)
#define FIRST_YEAR 2014
#define PAYER_NAIC "98765"

#define US_CORE "http://hl7.org/fhir/us/core/StructureDefinition/"
#define C4BB "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
#define PDEX "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/"
#define LOINC "http://loinc.org"
#define SNOMED "http://snomed.info/sct"
#define ICD10 "http://hl7.org/fhir/sid/icd-10-cm"
#define RXNORM "http://www.nlm.nih.gov/research/umls/rxnorm"
#define CVX "http://hl7.org/fhir/sid/cvx"
#define CPT "http://www.ama-assn.org/go/cpt"
#define CLAIMTYPE "http://terminology.hl7.org/CodeSystem/claim-type"
#define ADJ "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication"
#define ADJ_CAT "http://terminology.hl7.org/CodeSystem/adjudication"

enum out {
    O_ORG,
    O_PRAC,
    O_ROLE,
    O_LOC,
    O_PAT,
    O_COV,
    O_PROV,
    O_ENC,
    O_EOB,
    O_COND,
    O_OBS,
    O_PROC,
    O_MED,
    O_IMM,
    O_ALG,
    O_MEDICATION,
    O_DISPENSE,
    O_SR,
    O_SPEC,
    O_QR,
    O_RP,
    O_GROUP,
    O_COUNT
};

static const char *const out_names[O_COUNT] = {
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "Patient",
    "Coverage",
    "Provenance",
    "Encounter",
    "ExplanationOfBenefit",
    "Condition",
    "Observation",
    "Procedure",
    "MedicationRequest",
    "Immunization",
    "AllergyIntolerance",
    "Medication",
    "MedicationDispense",
    "ServiceRequest",
    "Specimen",
    "QuestionnaireResponse",
    "RelatedPerson",
    "Group",
};

struct rng {
    uint64_t s;
};

static uint64_t next64(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A number in [0, n). */
static long pick(struct rng *r, long n)
{
    return n > 0 ? (long)(next64(r) % (uint64_t)n) : 0;
}

static int chance(struct rng *r, int percent)
{
    return pick(r, 100) < percent;
}

#define PICK(r, arr) ((arr)[pick((r), (long)(sizeof(arr) / sizeof((arr)[0])))])

static const char *const given_f[] = { "Mary",  "Linda", "Ana",   "Grace", "Mei",   "Fatima", "Olivia", "Sofia",
                                       "Amara", "Chloe", "Renée", "Zoë",   "Priya", "Hannah", "Lucía" };
static const char *const given_m[] = { "James", "Robert", "Liam", "Noah",  "Mateo",  "Wei",   "Omar", "Ethan",
                                       "Kwame", "Lucas",  "José", "Arjun", "Samuel", "Diego", "Ivan" };
static const char *const families[] = { "Smith",         "Johnson",  "Garcia", "Nguyen", "O'Brien",  "Williams",
                                        "Brown",         "Martínez", "Lee",    "Patel",  "Kowalski", "Okafor",
                                        "Jean-Baptiste", "Müller",   "Davis",  "Cohen",  "Rossi",    "Kim" };
static const char *const cities[] = { "Springfield", "Riverton", "Fairview", "Madison",
                                      "Georgetown",  "Salem",    "Franklin", "Clinton" };
static const char *const org_kinds[] = { "Family Medicine", "Cardiology Associates", "Community Hospital",
                                         "Pediatrics",      "Orthopedic Group",      "Health Partners" };

struct code {
    const char *code, *display;
};

static const struct code conditions[] = {
    { "E11.9", "Type 2 diabetes mellitus without complications" },
    { "I10", "Essential (primary) hypertension" },
    { "J45.909", "Unspecified asthma, uncomplicated" },
    { "E78.5", "Hyperlipidemia, unspecified" },
    { "M54.5", "Low back pain" },
    { "F41.1", "Generalized anxiety disorder" },
    { "J06.9", "Acute upper respiratory infection, unspecified" },
    { "N39.0", "Urinary tract infection, site not specified" },
};
struct obs {
    const char *code, *display, *unit, *ucode;
    int lo, hi;
    int lab;
};
static const struct obs observations[] = {
    { "8867-4", "Heart rate", "beats/minute", "/min", 55, 110, 0 },
    { "8480-6", "Systolic blood pressure", "mmHg", "mm[Hg]", 100, 170, 0 },
    { "29463-7", "Body weight", "kg", "kg", 45, 130, 0 },
    { "8310-5", "Body temperature", "Cel", "Cel", 36, 39, 0 },
    { "2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 70, 220, 1 },
    { "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "%", 5, 11, 1 },
    { "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 1, 3, 1 },
    { "2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 140, 280, 1 },
};
static const struct code procedures[] = {
    { "99213", "Office visit, established patient, low complexity" },
    { "99214", "Office visit, moderate complexity" },
    { "93000", "Electrocardiogram, complete" },
    { "71046", "Chest X-ray, 2 views" },
    { "36415", "Routine venipuncture" },
    { "20610", "Arthrocentesis, major joint" },
};
static const struct code drugs[] = {
    { "860975", "metformin hydrochloride 500 MG Oral Tablet" },
    { "314076", "lisinopril 10 MG Oral Tablet" },
    { "617312", "atorvastatin 20 MG Oral Tablet" },
    { "745679", "albuterol 0.09 MG/ACTUAT Inhaler" },
    { "197361", "amlodipine 5 MG Oral Tablet" },
    { "310965", "ibuprofen 200 MG Oral Tablet" },
};
static const struct code vaccines[] = {
    { "141", "Influenza, seasonal, injectable" },
    { "208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose" },
    { "115", "Tdap" },
    { "33", "pneumococcal polysaccharide PPV23" },
};
static const struct code allergies[] = {
    { "91936005", "Allergy to penicillin" },
    { "300913006", "Shellfish allergy" },
    { "418689008", "Allergy to grass pollen" },
    { "232347008", "Dander (animal) allergy" },
};

struct synth {
    FILE *out[O_COUNT];
    FILE *trl_csv;
    FILE *net_csv;
    pa_buf line;
    uint64_t seed;
    int64_t today_days; /* days since the epoch */
    long members;
    long npracs;
    long norgs;
    char (*prac_npi)[11];
    char (*org_npi)[11];
    long *optout_global; /* member numbers */
    long n_optout_global;
    struct synth_bundles *bundles; /* --bundles: what emit writes goes there */
    int failed;
};

/* An NPI from a 9-digit base, with its Luhn check digit. */
static void make_npi(long base, char out[11])
{
    int d;

    snprintf(out, 11, "1%08lu0", (unsigned long)base % 100000000UL);
    for(d = 0; d <= 9; d++) {
        out[9] = (char)('0' + d);
        if(pa_npi_valid(out))
            return;
    }
}

static void day_to_date(int64_t days, char out[11])
{
    time_t t = (time_t)(days * 86400);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

static int64_t year_start_days(int year)
{
    char buf[32];
    int64_t ms = 0;

    snprintf(buf, sizeof(buf), "%04d-01-01T00:00:00Z", year);
    pa_parse_instant(buf, &ms);
    return ms / 86400000;
}

/* The line buffer: printf with JSON strings by %s only for known-safe text;
 * names go through str(). */
static int emit(struct synth *s, enum out o)
{
    int rc;

    if(s->bundles && o != O_GROUP) {
        enum synth_bundle which = o == O_ORG || o == O_LOC                          ? SB_HOSPITAL
                                  : o == O_PRAC || o == O_ROLE || o == O_MEDICATION ? SB_PRACTITIONER
                                                                                    : SB_MEMBER;

        rc = synth_bundles_add(s->bundles, pa_buf_str(&s->line), which);
        s->failed |= rc != 0;
        pa_buf_reset(&s->line);
        return rc;
    }
    rc = pa_buf_addstr(&s->line, "\n");
    if(!rc && fwrite(s->line.data, 1, s->line.len, s->out[o]) != s->line.len)
        rc = PA_EIO;
    pa_buf_reset(&s->line);
    return rc;
}

#define P(...) pa_buf_printf(&s->line, __VA_ARGS__)

static void str(struct synth *s, const char *v)
{
    pa_buf_add_json_string(&s->line, v);
}

static void coding(struct synth *s, const char *sys, const char *code, const char *display)
{
    P("{\"system\":\"%s\",\"code\":\"%s\"", sys, code);
    if(display) {
        P(",\"display\":");
        str(s, display);
    }
    P("}");
}

static void cc(struct synth *s, const char *sys, const char *code, const char *display)
{
    P("{\"coding\":[");
    coding(s, sys, code, display);
    P("]}");
}

static void meta(struct synth *s, const char *profile, const char *updated)
{
    P("\"meta\":{\"lastUpdated\":\"%sT12:00:00Z\",\"profile\":[\"%s\"]}", updated, profile);
}

static void write_providers(struct synth *s, struct rng *r)
{
    long i;

    P("{\"resourceType\":\"Organization\",\"id\":\"payer\",");
    meta(s, "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Organization", "2024-01-01");
    P(",\"identifier\":[{\"system\":\"urn:oid:2.16.840.1.113883.6.300\",\"value\":\"" PAYER_NAIC "\"}],"
      "\"active\":true,\"type\":[");
    cc(s, "http://terminology.hl7.org/CodeSystem/organization-type", "pay", "Payer");
    P("],\"name\":\"Synthetic Health Plan\"}");
    emit(s, O_ORG);
    fprintf(s->net_csv, "npi,kind,name,in_network,network_start,network_end\n");
    for(i = 0; i < s->norgs; i++) {
        make_npi(200000 + i * 7, s->org_npi[i]);
        P("{\"resourceType\":\"Organization\",\"id\":\"org-%ld\",", i);
        meta(s, US_CORE "us-core-organization", "2024-01-01");
        P(",\"identifier\":[{\"system\":\"" PA_NPI_SYSTEM "\",\"value\":\"%s\"}],\"active\":true,"
          "\"name\":\"%s %s\",\"address\":[{\"city\":\"%s\",\"state\":\"IL\"}]}",
          s->org_npi[i], PICK(r, cities), org_kinds[i % 6], cities[i % 8]);
        emit(s, O_ORG);
        P("{\"resourceType\":\"Location\",\"id\":\"loc-%ld\",", i);
        meta(s, US_CORE "us-core-location", "2024-01-01");
        P(",\"status\":\"active\",\"name\":\"%s clinic\",\"managingOrganization\":{\"reference\":"
          "\"Organization/org-%ld\"}}",
          cities[i % 8], i);
        emit(s, O_LOC);
        /* one organization in ten is out of network, and one left in 2020 */
        fprintf(s->net_csv, "%s,organization,,%s,2015-01-01,%s\n", s->org_npi[i], i % 10 == 9 ? "false" : "true",
                i == 3 ? "2020-12-31" : "");
    }
    for(i = 0; i < s->npracs; i++) {
        const char *given = i % 2 ? PICK(r, given_f) : PICK(r, given_m);
        long org = i % s->norgs;

        make_npi(300000 + i * 13, s->prac_npi[i]);
        P("{\"resourceType\":\"Practitioner\",\"id\":\"prac-%ld\",", i);
        meta(s, US_CORE "us-core-practitioner", "2024-01-01");
        P(",\"identifier\":[{\"system\":\"" PA_NPI_SYSTEM
          "\",\"value\":\"%s\"}],\"active\":true,\"name\":[{\"family\":",
          s->prac_npi[i]);
        str(s, PICK(r, families));
        P(",\"given\":[");
        str(s, given);
        P("],\"prefix\":[\"Dr.\"]}]}");
        emit(s, O_PRAC);
        P("{\"resourceType\":\"PractitionerRole\",\"id\":\"role-%ld\",", i);
        meta(s, US_CORE "us-core-practitionerrole", "2024-01-01");
        P(",\"active\":true,\"practitioner\":{\"reference\":\"Practitioner/prac-%ld\"},\"organization\":"
          "{\"reference\":\"Organization/org-%ld\"},\"location\":[{\"reference\":\"Location/loc-%ld\"}]}",
          i, org, org);
        emit(s, O_ROLE);
        fprintf(s->net_csv, "%s,practitioner,,%s,2015-01-01,\n", s->prac_npi[i],
                org % 10 == 9 || i % 17 == 16 ? "false" : "true");
    }
    for(i = 0; i < (long)(sizeof(drugs) / sizeof(drugs[0])); i++) {
        P("{\"resourceType\":\"Medication\",\"id\":\"med-%s\",", drugs[i].code);
        meta(s, US_CORE "us-core-medication", "2024-01-01");
        P(",\"code\":");
        cc(s, RXNORM, drugs[i].code, drugs[i].display);
        P(",\"status\":\"active\"}");
        emit(s, O_MEDICATION);
    }
}

struct member {
    long n;
    char id[32];
    char birth[11];
    char cov_start[11];
    char cov_end[11];  /* "" while covered */
    int64_t from_days; /* first service day */
    int64_t to_days;   /* last service day */
    long pcp;          /* practitioner number */
};

/* The member's primary care practitioner: its own stream, so that rosters
 * can be written without generating the members again. */
static long member_pcp(const struct synth *s, long n)
{
    struct rng r = { s->seed ^ (0x9fb21c651e98df25ULL * (uint64_t)(n + 1)) };

    return pick(&r, s->npracs);
}

static void eob_financials(struct synth *s, struct rng *r, int cents)
{
    int paid = cents * (60 + (int)pick(r, 35)) / 100;

    P(",\"adjudication\":[{\"category\":");
    cc(s, "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudicationDiscriminator", "benefitpaymentstatus", NULL);
    P(",\"reason\":");
    cc(s, "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerBenefitPaymentStatus", "innetwork", NULL);
    P("}],\"total\":[{\"category\":");
    cc(s, ADJ_CAT, "submitted", NULL);
    P(",\"amount\":{\"value\":%d.%02d,\"currency\":\"USD\"}},{\"category\":", cents / 100, cents % 100);
    cc(s, ADJ_CAT, "benefit", NULL);
    P(",\"amount\":{\"value\":%d.%02d,\"currency\":\"USD\"}}],\"payment\":{\"type\":", paid / 100, paid % 100);
    cc(s, "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerClaimPaymentStatusCode", "paid", NULL);
    P(",\"amount\":{\"value\":%d.%02d,\"currency\":\"USD\"}}", paid / 100, paid % 100);
}

static void eob_item(struct synth *s, struct rng *r, int seq, const char *sys, const char *code, const char *display,
                     const char *date, int cents)
{
    P("{\"sequence\":%d,\"productOrService\":", seq);
    cc(s, sys, code, display);
    P(",\"servicedDate\":\"%s\",\"net\":{\"value\":%d.%02d,\"currency\":\"USD\"},\"adjudication\":[{\"category\":",
      date, cents / 100, cents % 100);
    cc(s, ADJ_CAT, "submitted", NULL);
    P(",\"amount\":{\"value\":%d.%02d,\"currency\":\"USD\"}},{\"category\":", cents / 100, cents % 100);
    cc(s, ADJ, "paidtoprovider", NULL);
    P(",\"amount\":{\"value\":%d.%02d,\"currency\":\"USD\"}}]}", cents * 7 / 1000, (cents * 7 / 10) % 100);
    (void)r;
}

/* One claim: professional, inpatient, outpatient, pharmacy or a prior authorization. */
static void write_eob(struct synth *s, struct rng *r, const struct member *m, const char *id, const char *kind,
                      const char *start, const char *end, long prac, const char *sys, const char *code,
                      const char *display, const char *enc_id)
{
    int preauth = !strcmp(kind, "preauth");
    int cents = 5000 + (int)pick(r, 400000);
    const char *profile = !strcmp(kind, "inpatient")    ? C4BB "C4BB-ExplanationOfBenefit-Inpatient-Institutional"
                          : !strcmp(kind, "outpatient") ? C4BB "C4BB-ExplanationOfBenefit-Outpatient-Institutional"
                          : !strcmp(kind, "pharmacy")   ? C4BB "C4BB-ExplanationOfBenefit-Pharmacy"
                          : preauth                     ? PDEX "pdex-priorauthorization"
                                                        : C4BB "C4BB-ExplanationOfBenefit-Professional-NonClinician";
    const char *type = !strcmp(kind, "inpatient") || !strcmp(kind, "outpatient") ? "institutional"
                       : !strcmp(kind, "pharmacy")                               ? "pharmacy"
                                                                                 : "professional";
    long org = prac % s->norgs;

    P("{\"resourceType\":\"ExplanationOfBenefit\",\"id\":\"%s\",", id);
    meta(s, profile, end);
    P(",\"identifier\":[{\"type\":");
    cc(s, "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType", "uc", NULL);
    P(",\"system\":\"https://synthetic-plan.example/claim-id\",\"value\":\"%s\"}],", id);
    if(preauth) {
        long roll = pick(r, 3);

        P("\"status\":\"active\",\"type\":");
        cc(s, CLAIMTYPE, type, NULL);
        P(",\"use\":\"preauthorization\",\"patient\":{\"reference\":\"Patient/%s\"},\"created\":\"%sT09:00:00Z\","
          "\"insurer\":{\"reference\":\"Organization/payer\"},\"provider\":{\"reference\":\"Practitioner/prac-%ld\"},"
          "\"outcome\":\"%s\",\"preAuthRef\":[\"PA-%s\"],\"adjudication\":[{\"category\":",
          m->id, start, prac, roll == 2 ? "queued" : "complete", id);
        cc(s, "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PDexAdjudicationCategoryDiscriminator", "denialreason",
           NULL);
        P(",\"reason\":");
        cc(s, "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PDexAdjudicationDiscriminator",
           roll == 0   ? "approved"
           : roll == 1 ? "denied"
                       : "pended",
           NULL);
        P("}],\"insurance\":[{\"focal\":true,\"coverage\":{\"reference\":\"Coverage/cov-%ld\"}}],\"item\":[", m->n);
        eob_item(s, r, 1, sys, code, display, start, cents);
        P("]}");
        emit(s, O_EOB);
        return;
    }
    P("\"status\":\"active\",\"type\":");
    cc(s, CLAIMTYPE, type, NULL);
    if(!strcmp(type, "institutional")) {
        P(",\"subType\":");
        cc(s, "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType", kind, NULL);
    }
    P(",\"use\":\"claim\",\"patient\":{\"reference\":\"Patient/%s\"},\"billablePeriod\":{\"start\":\"%s\",\"end\":\"%s\"},"
      "\"created\":\"%sT10:00:00Z\",\"insurer\":{\"reference\":\"Organization/payer\"},"
      "\"provider\":{\"reference\":\"Organization/org-%ld\"},\"outcome\":\"complete\",",
      m->id, start, end, end, org);
    P("\"careTeam\":[{\"sequence\":1,\"provider\":{\"reference\":\"Practitioner/prac-%ld\"},\"role\":", prac);
    cc(s, "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimCareTeamRole", "performing", NULL);
    P("}],");
    if(strcmp(type, "pharmacy")) {
        P("\"diagnosis\":[{\"sequence\":1,\"diagnosisCodeableConcept\":");
        cc(s, ICD10, conditions[m->n % 8].code, conditions[m->n % 8].display);
        P(",\"type\":[");
        cc(s, "http://terminology.hl7.org/CodeSystem/ex-diagnosistype", "principal", NULL);
        P("]}],");
    }
    if(enc_id[0])
        P("\"supportingInfo\":[{\"sequence\":1,\"category\":{\"coding\":[{\"system\":"
          "\"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType\",\"code\":\"clmrecvddate\"}]},"
          "\"timingDate\":\"%s\"}],",
          end);
    P("\"insurance\":[{\"focal\":true,\"coverage\":{\"reference\":\"Coverage/cov-%ld\"}}],\"item\":[", m->n);
    eob_item(s, r, 1, sys, code, display, start, cents);
    P("]");
    eob_financials(s, r, cents);
    P("}");
    emit(s, O_EOB);
}

/* One visit: the Encounter, what was observed and done, and its claim. */
/* A visit's order and specimen, from a stream of their own (the visit's other
 * resources stay what they were before these types were generated). */
static void write_orders(struct synth *s, const struct member *m, long k, const char *date, const char *enc, long prac,
                         const struct code *proc)
{
    struct rng x = { s->seed ^ (0x2545f4914f6cdd1dULL * (uint64_t)(m->n * 4096 + k + 1)) };

    if(chance(&x, 20)) {
        P("{\"resourceType\":\"ServiceRequest\",\"id\":\"sr-%ld-%ld\",", m->n, k);
        meta(s, US_CORE "us-core-servicerequest", date);
        P(",\"status\":\"completed\",\"intent\":\"order\",\"category\":[");
        cc(s, SNOMED, "387713003", "Surgical procedure");
        P("],\"code\":");
        cc(s, CPT, proc->code, proc->display);
        P(",\"subject\":{\"reference\":\"Patient/%s\"},\"encounter\":{\"reference\":\"Encounter/%s\"},"
          "\"occurrenceDateTime\":\"%s\",\"authoredOn\":\"%s\",\"requester\":{\"reference\":\"Practitioner/prac-%ld\"}}",
          m->id, enc, date, date, prac);
        emit(s, O_SR);
    }
    if(chance(&x, 15)) {
        P("{\"resourceType\":\"Specimen\",\"id\":\"spec-%ld-%ld\",", m->n, k);
        meta(s, US_CORE "us-core-specimen", date);
        P(",\"status\":\"available\",\"type\":");
        cc(s, SNOMED, "119297000", "Blood specimen");
        P(",\"subject\":{\"reference\":\"Patient/%s\"},\"collection\":{\"collectedDateTime\":\"%sT09:20:00Z\"}}", m->id,
          date);
        emit(s, O_SPEC);
    }
}

static void write_visit(struct synth *s, struct rng *r, const struct member *m, long k, int64_t day, FILE *trl)
{
    char date[11], end[11], enc[48], eob[48];
    long prac = chance(r, 60) ? m->pcp : pick(r, s->npracs);
    int inpatient = chance(r, 4);
    int stay = inpatient ? 1 + (int)pick(r, 6) : 0;
    const struct code *cond = &conditions[pick(r, 8)];
    const struct code *proc = &procedures[pick(r, 6)];
    long nobs = 1 + pick(r, 4);
    long i;

    day_to_date(day, date);
    day_to_date(day + stay, end);
    snprintf(enc, sizeof(enc), "enc-%ld-%ld", m->n, k);
    snprintf(eob, sizeof(eob), "eob-%ld-%ld", m->n, k);
    P("{\"resourceType\":\"Encounter\",\"id\":\"%s\",", enc);
    meta(s, US_CORE "us-core-encounter", end);
    P(",\"status\":\"finished\",\"class\":");
    coding(s, "http://terminology.hl7.org/CodeSystem/v3-ActCode", inpatient ? "IMP" : "AMB",
           inpatient ? "inpatient encounter" : "ambulatory");
    P(",\"type\":[");
    cc(s, CPT, proc->code, proc->display);
    P("],\"subject\":{\"reference\":\"Patient/%s\"},\"participant\":[{\"individual\":{\"reference\":"
      "\"Practitioner/prac-%ld\"}}],\"period\":{\"start\":\"%sT09:00:00Z\",\"end\":\"%sT10:00:00Z\"},"
      "\"serviceProvider\":{\"reference\":\"Organization/org-%ld\"}}",
      m->id, prac, date, end, prac % s->norgs);
    emit(s, O_ENC);
    if(chance(r, 40)) {
        P("{\"resourceType\":\"Condition\",\"id\":\"cond-%ld-%ld\",", m->n, k);
        meta(s, US_CORE "us-core-condition-encounter-diagnosis", date);
        P(",\"clinicalStatus\":");
        cc(s, "http://terminology.hl7.org/CodeSystem/condition-clinical", chance(r, 70) ? "active" : "resolved", NULL);
        P(",\"verificationStatus\":");
        cc(s, "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", NULL);
        P(",\"category\":[");
        cc(s, "http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis", NULL);
        P("],\"code\":");
        cc(s, ICD10, cond->code, cond->display);
        P(",\"subject\":{\"reference\":\"Patient/%s\"},\"encounter\":{\"reference\":\"Encounter/%s\"},"
          "\"onsetDateTime\":\"%s\",\"recordedDate\":\"%s\"}",
          m->id, enc, date, date);
        emit(s, O_COND);
    }
    for(i = 0; i < nobs; i++) {
        const struct obs *o = &observations[pick(r, 8)];
        long v = o->lo + pick(r, o->hi - o->lo + 1);

        P("{\"resourceType\":\"Observation\",\"id\":\"obs-%ld-%ld-%ld\",", m->n, k, i);
        meta(s, o->lab ? US_CORE "us-core-observation-lab" : "http://hl7.org/fhir/StructureDefinition/vitalsigns",
             date);
        P(",\"status\":\"final\",\"category\":[");
        cc(s, "http://terminology.hl7.org/CodeSystem/observation-category", o->lab ? "laboratory" : "vital-signs",
           NULL);
        P("],\"code\":");
        cc(s, LOINC, o->code, o->display);
        P(",\"subject\":{\"reference\":\"Patient/%s\"},\"encounter\":{\"reference\":\"Encounter/%s\"},"
          "\"effectiveDateTime\":\"%sT09:30:00Z\",\"valueQuantity\":{\"value\":%ld,\"unit\":\"%s\","
          "\"system\":\"http://unitsofmeasure.org\",\"code\":\"%s\"}}",
          m->id, enc, date, v, o->unit, o->ucode);
        emit(s, O_OBS);
    }
    if(chance(r, 30)) {
        P("{\"resourceType\":\"Procedure\",\"id\":\"proc-%ld-%ld\",", m->n, k);
        meta(s, US_CORE "us-core-procedure", date);
        P(",\"status\":\"completed\",\"code\":");
        cc(s, CPT, proc->code, proc->display);
        P(",\"subject\":{\"reference\":\"Patient/%s\"},\"encounter\":{\"reference\":\"Encounter/%s\"},"
          "\"performedDateTime\":\"%sT09:15:00Z\",\"performer\":[{\"actor\":{\"reference\":\"Practitioner/prac-%ld\"}}]}",
          m->id, enc, date, prac);
        emit(s, O_PROC);
    }
    write_eob(s, r, m, eob,
              inpatient       ? "inpatient"
              : chance(r, 15) ? "outpatient"
                              : "professional",
              date, end, prac, CPT, proc->code, proc->display, enc);
    if(chance(r, 25)) {
        const struct code *d = &drugs[pick(r, 6)];

        snprintf(eob, sizeof(eob), "rx-%ld-%ld", m->n, k);
        P("{\"resourceType\":\"MedicationRequest\",\"id\":\"%s\",", eob);
        meta(s, US_CORE "us-core-medicationrequest", date);
        P(",\"status\":\"%s\",\"intent\":\"order\",\"medicationCodeableConcept\":",
          chance(r, 60) ? "active" : "completed");
        cc(s, RXNORM, d->code, d->display);
        P(",\"subject\":{\"reference\":\"Patient/%s\"},\"encounter\":{\"reference\":\"Encounter/%s\"},"
          "\"authoredOn\":\"%s\",\"requester\":{\"reference\":\"Practitioner/prac-%ld\"}}",
          m->id, enc, date, prac);
        emit(s, O_MED);
        P("{\"resourceType\":\"MedicationDispense\",\"id\":\"disp-%ld-%ld\",", m->n, k);
        meta(s, PDEX "pdex-medicationdispense", date);
        P(",\"status\":\"completed\",\"medicationReference\":{\"reference\":\"Medication/med-%s\"},"
          "\"subject\":{\"reference\":\"Patient/%s\"},\"authorizingPrescription\":[{\"reference\":"
          "\"MedicationRequest/%s\"}],\"type\":",
          d->code, m->id, eob);
        cc(s, "http://terminology.hl7.org/CodeSystem/v3-ActCode", "FF", "First Fill");
        P(",\"quantity\":{\"value\":30},\"daysSupply\":{\"value\":30},\"whenHandedOver\":\"%sT16:00:00Z\"}", date);
        emit(s, O_DISPENSE);
        snprintf(eob, sizeof(eob), "eob-rx-%ld-%ld", m->n, k);
        write_eob(s, r, m, eob, "pharmacy", date, date, prac, RXNORM, d->code, d->display, "");
    }
    write_orders(s, m, k, date, enc, prac, proc);
    /* the claims history is where most treatment relationships come from */
    if(day >= s->today_days - 730)
        fprintf(trl, "%s,%s,%s,,claims\n", m->id, s->prac_npi[prac], date);
}

/* A member's emergency contact and screening questionnaire, from a stream of
 * their own. */
static void write_member_forms(struct synth *s, const struct member *m)
{
    struct rng x = { s->seed ^ (0x7a3c5b1e9d2f4860ULL * (uint64_t)(m->n + 1)) };
    char date[11];

    if(chance(&x, 20)) {
        P("{\"resourceType\":\"RelatedPerson\",\"id\":\"rp-%ld\",", m->n);
        meta(s, US_CORE "us-core-relatedperson", m->cov_start);
        P(",\"active\":true,\"patient\":{\"reference\":\"Patient/%s\"},\"relationship\":[", m->id);
        cc(s, "http://terminology.hl7.org/CodeSystem/v2-0131", "C", "Emergency Contact");
        P("],\"name\":[{\"family\":");
        str(s, PICK(&x, families));
        P(",\"given\":[");
        str(s, PICK(&x, given_f));
        P("]}]}");
        emit(s, O_RP);
    }
    if(chance(&x, 25)) {
        long a = pick(&x, 4), b = pick(&x, 4);

        day_to_date(m->from_days + pick(&x, m->to_days - m->from_days + 1), date);
        P("{\"resourceType\":\"QuestionnaireResponse\",\"id\":\"qr-%ld\",", m->n);
        meta(s, US_CORE "us-core-questionnaireresponse", date);
        P(",\"questionnaire\":\"http://loinc.org/q/55757-9\",\"status\":\"completed\","
          "\"subject\":{\"reference\":\"Patient/%s\"},\"authored\":\"%sT10:00:00Z\",\"item\":["
          "{\"linkId\":\"44250-9\",\"text\":\"Little interest or pleasure in doing things\",\"answer\":[{\"valueInteger\":%ld}]},"
          "{\"linkId\":\"44255-8\",\"text\":\"Feeling down, depressed, or hopeless\",\"answer\":[{\"valueInteger\":%ld}]},"
          "{\"linkId\":\"55758-7\",\"text\":\"PHQ-2 total score\",\"answer\":[{\"valueInteger\":%ld}]}]}",
          m->id, date, a, b, a + b);
        emit(s, O_QR);
    }
}

static void write_member(struct synth *s, long n)
{
    struct rng r = { s->seed ^ (0x51ed270b2d1f4b39ULL * (uint64_t)(n + 1)) };
    struct member m;
    int female = chance(&r, 52);
    int64_t birth = year_start_days(1940) + pick(&r, 80 * 365);
    int64_t first = year_start_days(FIRST_YEAR);
    int64_t cov_start = first + pick(&r, 365 * 9);
    int lapsed = chance(&r, 10);
    int heavy = chance(&r, 1);
    long visits = (1 + pick(&r, 12)) * (heavy ? 10 : 1);
    long k;

    memset(&m, 0, sizeof(m));
    m.n = n;
    snprintf(m.id, sizeof(m.id), "mem-%06ld", n);
    day_to_date(birth, m.birth);
    if(cov_start > s->today_days - 30)
        cov_start = s->today_days - 30;
    day_to_date(cov_start, m.cov_start);
    m.from_days = cov_start;
    m.to_days = lapsed ? cov_start + 200 + pick(&r, 900) : s->today_days;
    if(m.to_days > s->today_days)
        m.to_days = s->today_days;
    if(lapsed)
        day_to_date(m.to_days, m.cov_end);
    m.pcp = member_pcp(s, n);

    P("{\"resourceType\":\"Patient\",\"id\":\"%s\",", m.id);
    meta(s, US_CORE "us-core-patient", m.cov_start);
    P(",\"identifier\":[{\"type\":");
    cc(s, "http://terminology.hl7.org/CodeSystem/v2-0203", "MB", NULL);
    P(",\"system\":\"https://synthetic-plan.example/member-id\",\"value\":\"M%08ld\"}],\"active\":true,"
      "\"name\":[{\"family\":",
      n);
    str(s, PICK(&r, families));
    P(",\"given\":[");
    str(s, female ? PICK(&r, given_f) : PICK(&r, given_m));
    P("]}],\"gender\":\"%s\",\"birthDate\":\"%s\",\"address\":[{\"line\":[\"%ld Main St\"],\"city\":\"%s\","
      "\"state\":\"IL\",\"postalCode\":\"6%04ld\"}]}",
      female ? "female" : "male", m.birth, 1 + pick(&r, 999), PICK(&r, cities), pick(&r, 10000));
    emit(s, O_PAT);

    P("{\"resourceType\":\"Coverage\",\"id\":\"cov-%ld\",", n);
    meta(s, C4BB "C4BB-Coverage", m.cov_start);
    P(",\"identifier\":[{\"type\":");
    cc(s, "http://terminology.hl7.org/CodeSystem/v2-0203", "MB", NULL);
    P(",\"system\":\"https://synthetic-plan.example/member-id\",\"value\":\"M%08ld\"}],\"status\":\"%s\","
      "\"type\":",
      n, lapsed ? "cancelled" : "active");
    cc(s, "http://terminology.hl7.org/CodeSystem/v3-ActCode", "HIP", "health insurance plan policy");
    P(",\"subscriberId\":\"S%08ld\",\"beneficiary\":{\"reference\":\"Patient/%s\"},\"relationship\":", n, m.id);
    cc(s, "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "self", NULL);
    P(",\"period\":{\"start\":\"%s\"", m.cov_start);
    if(lapsed)
        P(",\"end\":\"%s\"", m.cov_end);
    P("},\"payor\":[{\"reference\":\"Organization/payer\",\"identifier\":{\"system\":"
      "\"urn:oid:2.16.840.1.113883.6.300\",\"value\":\"" PAYER_NAIC "\"}}],\"class\":[{\"type\":");
    cc(s, "http://terminology.hl7.org/CodeSystem/coverage-class", "group", NULL);
    P(",\"value\":\"GRP-%ld\",\"name\":\"Employer group %ld\"},{\"type\":", n % 40, n % 40);
    cc(s, "http://terminology.hl7.org/CodeSystem/coverage-class", "plan", NULL);
    P(",\"value\":\"%s\",\"name\":\"%s\"}]}", n % 3 ? "PPO-GOLD" : "HMO-SILVER", n % 3 ? "PPO Gold" : "HMO Silver");
    emit(s, O_COV);

    P("{\"resourceType\":\"Provenance\",\"id\":\"prov-%ld\",", n);
    meta(s, US_CORE "us-core-provenance", m.cov_start);
    P(",\"target\":[{\"reference\":\"Patient/%s\"}],\"recorded\":\"%sT08:00:00Z\",\"agent\":[{\"type\":", m.id,
      m.cov_start);
    cc(s, "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "author", NULL);
    P(",\"who\":{\"reference\":\"Organization/payer\"}}]}");
    emit(s, O_PROV);

    write_member_forms(s, &m);
    for(k = 0; k < visits; k++) {
        int64_t span = m.to_days - m.from_days;

        write_visit(s, &r, &m, k, m.from_days + (span > 0 ? pick(&r, span) : 0), s->trl_csv);
    }
    for(k = 0; k < 1 + pick(&r, 3); k++) {
        const struct code *v = &vaccines[pick(&r, 4)];
        char date[11];

        day_to_date(m.from_days + pick(&r, m.to_days - m.from_days + 1), date);
        P("{\"resourceType\":\"Immunization\",\"id\":\"imm-%ld-%ld\",", n, k);
        meta(s, US_CORE "us-core-immunization", date);
        P(",\"status\":\"completed\",\"vaccineCode\":");
        cc(s, CVX, v->code, v->display);
        P(",\"patient\":{\"reference\":\"Patient/%s\"},\"occurrenceDateTime\":\"%s\",\"primarySource\":true}", m.id,
          date);
        emit(s, O_IMM);
    }
    for(k = 0; k < pick(&r, 3); k++) {
        const struct code *a = &allergies[pick(&r, 4)];

        P("{\"resourceType\":\"AllergyIntolerance\",\"id\":\"alg-%ld-%ld\",", n, k);
        meta(s, US_CORE "us-core-allergyintolerance", m.cov_start);
        P(",\"clinicalStatus\":");
        cc(s, "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", NULL);
        P(",\"verificationStatus\":");
        cc(s, "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", NULL);
        P(",\"code\":");
        cc(s, SNOMED, a->code, a->display);
        P(",\"patient\":{\"reference\":\"Patient/%s\"},\"recordedDate\":\"%s\"}", m.id, m.cov_start);
        emit(s, O_ALG);
    }
    for(k = 0; k < (chance(&r, 30) ? 1 + pick(&r, 2) : 0); k++) {
        char id[48], date[11];
        const struct code *p = &procedures[2 + pick(&r, 4)];

        snprintf(id, sizeof(id), "pa-%ld-%ld", n, k);
        day_to_date(m.to_days - pick(&r, 365), date);
        write_eob(s, &r, &m, id, "preauth", date, date, m.pcp, CPT, p->code, p->display, "");
    }
    /* relationships the payer knows without claims: the member's PCP */
    if(chance(&r, 30))
        fprintf(s->trl_csv, "%s,%s,%s,,payer\n", m.id, s->prac_npi[m.pcp], m.cov_start);
    if(s->bundles && synth_bundles_end_member(s->bundles, m.id))
        s->failed = 1;
}

/* An opt-out Group: global (prac < 0) or from one practitioner, of every
 * step-th member from first on. */
static void write_optout(struct synth *s, const char *id, long prac, long first, long step)
{
    long n, written = 0;

    P("{\"resourceType\":\"Group\",\"id\":\"%s\",", id);
    meta(s, PDEX "pdex-member-opt-out", "2024-06-01");
    P(",\"active\":true,\"type\":\"person\",\"actual\":true,\"code\":");
    cc(s, "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMultiMemberMatchResultCS", "consentconstraint", NULL);
    P(",\"managingEntity\":{\"reference\":\"Organization/payer\"},\"characteristic\":[{\"code\":");
    cc(s, "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMultiMemberMatchResultCS", "consentconstraint", NULL);
    P(",\"valueCodeableConcept\":");
    cc(s, "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/opt-out-scope", prac < 0 ? "global" : "provider-specific",
       NULL);
    P(",\"exclude\":false,\"period\":{\"start\":\"2024-06-01\"},\"extension\":[{\"url\":\"" PDEX "opt-out-reason\","
      "\"valueCodeableConcept\":");
    cc(s, "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/opt-out-reason",
       prac < 0 ? "privacy-concern" : "provider-relationship", NULL);
    P("}]}");
    if(prac >= 0)
        /* the provider a provider-specific opt-out is about (docs/LOADING.md) */
        P(",{\"code\":{\"text\":\"provider\"},\"valueReference\":{\"reference\":\"Practitioner/prac-%ld\","
          "\"identifier\":{\"system\":\"" PA_NPI_SYSTEM "\",\"value\":\"%s\"}},\"exclude\":false}",
          prac, s->prac_npi[prac]);
    P("],\"member\":[");
    for(n = first; n < s->members; n += step)
        P("%s{\"entity\":{\"reference\":\"Patient/mem-%06ld\"},\"inactive\":false}", written++ ? "," : "", n);
    P("],\"quantity\":%ld}", written);
    emit(s, O_GROUP);
}

/* Rosters (one per organization, by the members' PCPs), a few treatment
 * relationship Groups, and the opt-outs. */
static void write_groups(struct synth *s)
{
    long o, n, written;

    for(o = 0; o < s->norgs; o++) {
        P("{\"resourceType\":\"Group\",\"id\":\"roster-org-%ld\",", o);
        meta(s, PDEX "pdex-provider-group", "2024-01-01");
        P(",\"identifier\":[{\"system\":\"https://synthetic-plan.example/rosters\",\"value\":\"R-%ld\"}],"
          "\"active\":true,\"type\":\"person\",\"actual\":true,\"name\":\"Attributed members of organization %ld\","
          "\"managingEntity\":{\"reference\":\"Organization/payer\"},\"characteristic\":[{\"code\":",
          o, o);
        cc(s, "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMemberAttributionCS", "pdexprovidergroup", NULL);
        P(",\"valueReference\":{\"reference\":\"Organization/org-%ld\",\"identifier\":{\"system\":\"" PA_NPI_SYSTEM
          "\",\"value\":\"%s\"}},\"exclude\":false,\"period\":{\"start\":\"2024-01-01\"}}],\"member\":[",
          o, s->org_npi[o]);
        written = 0;
        for(n = 0; n < s->members; n++) {
            if(member_pcp(s, n) % s->norgs != o)
                continue;
            P("%s{\"entity\":{\"reference\":\"Patient/mem-%06ld\"},\"period\":{\"start\":\"2024-01-01\"},"
              "\"inactive\":false}",
              written++ ? "," : "", n);
        }
        P("],\"quantity\":%ld}", written);
        emit(s, O_GROUP);
    }
    for(n = 0; n < s->members && n < 20; n += 4) {
        P("{\"resourceType\":\"Group\",\"id\":\"trl-mem-%06ld\",", n);
        meta(s, PDEX "pdex-treatment-relationship", "2024-01-01");
        P(",\"active\":true,\"type\":\"practitioner\",\"actual\":true,\"code\":");
        cc(s, "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMultiMemberMatchResultCS", "match", NULL);
        P(",\"characteristic\":[{\"code\":");
        cc(s, "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMemberAttributionCS", "pdex-member", NULL);
        P(",\"valueReference\":{\"reference\":\"Patient/mem-%06ld\"},\"exclude\":false,\"period\":{\"start\":"
          "\"2024-01-01\"}}],\"member\":[{\"entity\":{\"reference\":\"Practitioner/prac-%ld\"},\"inactive\":false},"
          "{\"entity\":{\"reference\":\"Practitioner/prac-%ld\",\"identifier\":{\"system\":\"" PA_NPI_SYSTEM
          "\",\"value\":\"%s\"}},\"inactive\":false}],\"quantity\":2}",
          n, n % s->npracs, (n + 1) % s->npracs, s->prac_npi[(n + 1) % s->npracs]);
        emit(s, O_GROUP);
    }
    /* about 3% opt out of Provider Access altogether; 1% from one provider */
    write_optout(s, "optout-global", -1, 7, 33);
    write_optout(s, "optout-prac-0", 0, 11, 97);
}

static int parse_today(const char *s, int64_t *days)
{
    char buf[32];
    int64_t ms;

    snprintf(buf, sizeof(buf), "%.10sT00:00:00Z", s);
    if(strlen(s) != 10 || pa_parse_instant(buf, &ms))
        return -1;
    *days = ms / 86400000;
    return 0;
}

int cmd_synth(int argc, char **argv)
{
    struct synth s;
    const char *dir = NULL;
    long members = -1;
    long seed = 1;
    char today[11];
    char path[4096];
    int i, bundles = 0;
    int ret = 1;

    memset(&s, 0, sizeof(s));
    day_to_date(pa_now_ms() / 86400000, today);
    for(i = 1; i < argc; i++) {
        if(!strcmp(argv[i], "--members") && i + 1 < argc && !pa_parse_long(argv[i + 1], &members) && members > 0)
            i++;
        else if(!strcmp(argv[i], "--seed") && i + 1 < argc && !pa_parse_long(argv[i + 1], &seed))
            i++;
        else if(!strcmp(argv[i], "--out") && i + 1 < argc)
            dir = argv[++i];
        else if(!strcmp(argv[i], "--bundles"))
            bundles = 1;
        else if(!strcmp(argv[i], "--today") && i + 1 < argc && !parse_today(argv[i + 1], &s.today_days))
            pa_strlcpy(today, argv[++i], sizeof(today));
        else {
            members = -1;
            break;
        }
    }
    if(members < 1 || !dir || members > 10000000) {
        fprintf(stderr, "usage: pa-admin synth --members N [--seed S] [--today YYYY-MM-DD] [--bundles] --out DIR\n"
                        "  the same seed and today give the same files, byte for byte; --bundles writes\n"
                        "  one transaction Bundle per member and two of providers, as Synthea does\n");
        return 2;
    }
    parse_today(today, &s.today_days);
    s.seed = (uint64_t)seed * 0x2545f4914f6cdd1dULL + 1;
    s.members = members;
    s.norgs = members / 500 < 5 ? 5 : members / 500;
    s.npracs = members / 50 < 20 ? 20 : members / 50;
    s.prac_npi = calloc((size_t)s.npracs, sizeof(*s.prac_npi));
    s.org_npi = calloc((size_t)s.norgs, sizeof(*s.org_npi));
    pa_buf_init(&s.line, LINE_MAX_BYTES);
    if(!s.prac_npi || !s.org_npi || (mkdir(dir, 0755) && errno != EEXIST)) {
        fprintf(stderr, "pa-admin: cannot create %s: %s\n", dir, strerror(errno));
        goto out;
    }
    if(bundles && synth_bundles_open(&s.bundles, dir)) {
        fprintf(stderr, "pa-admin: out of memory\n");
        goto out;
    }
    for(i = 0; i < O_COUNT; i++) {
        if(s.bundles && i != O_GROUP)
            continue;
        snprintf(path, sizeof(path), "%s/%s.ndjson", dir, out_names[i]);
        s.out[i] = fopen(path, "w");
        if(!s.out[i] || setvbuf(s.out[i], NULL, _IOFBF, 1 << 20)) {
            fprintf(stderr, "pa-admin: cannot write %s: %s\n", path, strerror(errno));
            goto out;
        }
    }
    snprintf(path, sizeof(path), "%s/treatment-relationships.csv", dir);
    s.trl_csv = fopen(path, "w");
    snprintf(path, sizeof(path), "%s/providers.csv", dir);
    s.net_csv = fopen(path, "w");
    if(!s.trl_csv || !s.net_csv) {
        fprintf(stderr, "pa-admin: cannot write the CSV feeds in %s: %s\n", dir, strerror(errno));
        goto out;
    }
    fprintf(s.trl_csv, "patient_id,npi,period_start,period_end,source\n");
    {
        struct rng r = { s.seed };

        write_providers(&s, &r);
    }
    for(i = 0; i < members; i++)
        write_member(&s, i);
    write_groups(&s);
    ret = s.failed;
    if(s.bundles && synth_bundles_close(s.bundles, 1))
        ret = 1;
    s.bundles = NULL;
    for(i = 0; i < O_COUNT; i++)
        if(s.out[i] && ferror(s.out[i]))
            ret = 1;
    if(!ret)
        printf("wrote a synthetic payer of %ld members (seed %ld, today %s) to %s\n", members, seed, today, dir);
    else
        fprintf(stderr, "pa-admin: writing to %s failed\n", dir);
out:
    for(i = 0; i < O_COUNT; i++)
        if(s.out[i] && fclose(s.out[i]))
            ret = 1;
    if(s.trl_csv)
        fclose(s.trl_csv);
    if(s.net_csv)
        fclose(s.net_csv);
    synth_bundles_close(s.bundles, 0);
    free(s.prac_npi);
    free(s.org_npi);
    pa_buf_free(&s.line);
    return ret;
}
