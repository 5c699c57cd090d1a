#include "pa_match.h"

#include <ctype.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pa_buf.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_json.h"
#include "pa_optout.h"
#include "pa_pgarray.h"
#include "pa_util.h"

#define PDEX_SD "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/"
#define PDEX_CS "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/"
#define RESULT_CS PDEX_CS "PdexMultiMemberMatchResultCS"
#define LIST_MAX (64 * 1024 * 1024)

/* Names compared without case, accents, punctuation or spaces (O'Brien-Smith = obriensmith). */
/* clang-format off */
#define NORM(x)                                                                                         \
    "lower(regexp_replace(translate(" x ", 'ÀÁÂÃÄÅàáâãäåÈÉÊËèéêëÌÍÎÏìíîïÒÓÔÕÖØòóôõöøÙÚÛÜùúûüÑñÇçÝýÿ',"       \
    " 'AAAAAAaaaaaaEEEEeeeeIIIIiiiiOOOOOOooooooUUUUuuuuNnCcYyy'), '[^a-zA-Z0-9]', '', 'g'))"
/* clang-format on */

/* Why a member landed where it did: a stable code (the disclosure record,
 * pa-admin report, docs/MATCH.md) and the words of the audit event. */
/* clang-format off */
#define PA_MATCH_REASONS(X)                                                                                       \
    X(BUNDLE, "bundle-incomplete", "a MemberBundle needs MemberPatient, CoverageToMatch and Consent")             \
    X(PATIENT, "patient-invalid", "MemberPatient is not a Patient with an id")                                   \
    X(NAME, "patient-name", "MemberPatient needs a family and a given name")                                     \
    X(BIRTH, "patient-birthdate", "MemberPatient needs a full birthDate")                                        \
    X(GENDER, "patient-gender", "MemberPatient needs gender or birth sex")                                       \
    X(COVERAGE, "coverage-invalid", "CoverageToMatch is not a Coverage")                                         \
    X(PAYOR, "coverage-no-payor", "CoverageToMatch needs a payor")                                               \
    X(OTHER_PLAN, "payor-not-this-plan", "CoverageToMatch.payor does not name this plan")                        \
    X(RELATIONSHIP, "coverage-no-relationship", "CoverageToMatch needs a relationship (HRex)")                   \
    X(BENEFICIARY, "coverage-beneficiary", "CoverageToMatch.beneficiary must reference the MemberPatient")       \
    X(MEMBER_ID, "coverage-no-member-id", "CoverageToMatch needs a subscriberId or an MB identifier")            \
    X(CONSENT, "attestation-invalid", "Consent is not a Consent")                                                \
    X(ACTIVE, "attestation-not-active", "the attestation is not active")                                         \
    X(SCOPE, "attestation-scope", "the attestation's scope is not consentscope#patient-privacy")                 \
    X(CATEGORY, "attestation-no-category", "the attestation has no category")                                    \
    X(DATETIME, "attestation-no-datetime", "the attestation has no dateTime")                                    \
    X(PERFORMER, "attestation-no-performer", "the attestation has no performer")                                 \
    X(CONSENT_PATIENT, "attestation-patient", "Consent.patient must reference the MemberPatient")                \
    X(PERMIT, "attestation-not-permit", "the attestation's provision is not a permit")                           \
    X(NOT_STARTED, "attestation-not-started", "the attestation's period does not cover today")                   \
    X(EXPIRED, "attestation-expired", "the attestation has expired")                                             \
    X(NPI, "attestation-npi", "the attestation does not name the requesting provider's NPI")                     \
    X(NO_MEMBER, "no-member", "no member matches these demographics and coverage")                               \
    X(SEVERAL, "multiple-members", "more than one member matches")                                               \
    X(NOT_COVERED, "not-covered", "the member has no active coverage today (a former member, or not yet covered)") \
    X(OPTED_OUT, "opted-out", "the member opted out")                                                            \
    X(NO_TRL, "no-treatment-relationship", "no treatment relationship with the requesting provider")             \
    X(TRL, "treatment-relationship", "matched")                                                                  \
    X(TRL_ATTESTED, "attestation", "matched on its attestation (a treatment relationship recorded)")
/* clang-format on */

struct reason {
    const char *code;
    const char *text;
};

#define REASON_ENUM(name, code, text) R_##name,
#define REASON_ITEM(name, code, text) { code, text },
enum { PA_MATCH_REASONS(REASON_ENUM) R_COUNT };
static const struct reason reasons[] = { PA_MATCH_REASONS(REASON_ITEM) };

const char *pa_match_reason_text(const char *code)
{
    size_t i;

    for(i = 0; code && i < R_COUNT; i++)
        if(!strcmp(reasons[i].code, code))
            return reasons[i].text;
    return NULL;
}

enum bucket { B_MATCH, B_NOMATCH, B_CONSTRAINED };

/* One MemberBundle as submitted and as far as it got. */
struct member {
    json_object *patient;        /* the submitted Patient (borrowed from the request) */
    const struct reason *reason; /* why it landed where it did (NULL until decided) */
    char family[256], given[256], birth[11], gender[16];
    char id1[128], id2[128]; /* coverage identifiers: subscriberId, MB identifier */
    char att_start[11], att_end[11];
    char patient_id[PA_FHIR_ID_MAX + 1];     /* the payer's member, once matched */
    char optout_scope[24], optout_start[11]; /* the opt-out that constrains it */
    int trl_attested;                        /* matched on its attestation alone (treatment_relationship_policy) */
    enum bucket bucket;
};

static json_object *jidx(json_object *a, size_t i)
{
    return a && json_object_is_type(a, json_type_array) && i < json_object_array_length(a)
               ? json_object_array_get_idx(a, i)
               : NULL;
}

int pa_match_parse(const char *body, long max, json_object **params, long *members, pa_err *err)
{
    json_object *p = NULL, *list;
    pa_err why;
    size_t i;

    *params = NULL;
    *members = 0;
    if(pa_json_parse(body, strlen(body), &p, &why))
        return pa_err_set(err, PA_EINVAL, "the request body is %s", why.msg);
    list = pa_json_get(p, "parameter");
    if(!pa_json_str(p, "resourceType") || strcmp(pa_json_str(p, "resourceType"), "Parameters") || !list ||
       !json_object_is_type(list, json_type_array)) {
        json_object_put(p);
        return pa_err_set(err, PA_EINVAL, "the request must be a Parameters resource with MemberBundle parameters");
    }
    for(i = 0; i < json_object_array_length(list); i++) {
        const char *name = pa_json_str(json_object_array_get_idx(list, i), "name");
        int rc;

        if(name && !strcmp(name, "MemberBundle")) {
            (*members)++;
            continue;
        }
        /* the message quotes name, which p owns: written before p goes */
        rc = pa_err_set(err, PA_EINVAL, "parameter %zu ('%.40s') is not a MemberBundle", i, name ? name : "");
        json_object_put(p);
        return rc;
    }
    if(*members == 0) {
        json_object_put(p);
        return pa_err_set(err, PA_EINVAL, "the request has no MemberBundle");
    }
    if(*members > max) {
        json_object_put(p);
        return pa_err_set(err, PA_ETOOBIG, "the request has %ld members; the limit is %ld (member_match_max)", *members,
                          max);
    }
    *params = p;
    return PA_OK;
}

/* pa_match_check's walk: the request's resourceType and parameter list,
 * then each parameter's name. */
struct check {
    char resource_type[32];
    const char *list;
    size_t list_len;
    long members; /* MemberBundles so far: also the next parameter's index */
    int bad;      /* the parameter at index members is no MemberBundle */
    char name[48];
    const char *parts; /* the current parameter's parts */
    size_t parts_len;
    const char *resource; /* the current part's resource */
    size_t resource_len;
    char date_error[320]; /* the first date that is not one, said for the client */
};

/* The dates and dateTimes of a MemberBundle's resources, by part: each is
 * checked against FHIR's grammar and calendar before anything reads it. */
static const struct {
    const char *part, *path, *kind;
} member_dates[] = {
    { "MemberPatient", "birthDate", "date" },
    { "CoverageToMatch", "period.start", "dateTime" },
    { "CoverageToMatch", "period.end", "dateTime" },
    { "Consent", "dateTime", "dateTime" },
    { "Consent", "provision.period.start", "dateTime" },
    { "Consent", "provision.period.end", "dateTime" },
};

#define NDATES (sizeof(member_dates) / sizeof(member_dates[0]))

/* One walk of a resource looks for all of its part's dates at once. */
struct date_walk {
    const char *rest[NDATES]; /* what is left of each path looked for here, or NULL */
    size_t bad;               /* 1 + the entry found not to be a date; 0 */
    char value[64];           /* what it held */
};

static int visit_dates(const char *key, const char *value, size_t len, void *ctx)
{
    struct date_walk *w = ctx, inner;
    char day[11];
    size_t i;
    int deeper = 0;

    if(!key)
        return 0;
    memset(&inner, 0, sizeof(inner));
    for(i = 0; i < NDATES; i++) {
        const char *p = w->rest[i];
        size_t seg = p ? strcspn(p, ".") : 0;

        if(!p || strlen(key) != seg || strncmp(key, p, seg))
            continue;
        if(p[seg] == '.') {
            inner.rest[i] = p + seg + 1;
            deeper = 1;
        }
        else if(pa_json_string(value, len, w->value, sizeof(w->value)) || pa_fhir_day(w->value, 0, day)) {
            if(*value != '"')
                pa_strlcpy(w->value, "(not a string)", sizeof(w->value));
            w->bad = i + 1;
            return 1;
        }
    }
    if(deeper && *value == '{' && pa_json_walk(value, len, visit_dates, &inner, NULL) && inner.bad) {
        w->bad = inner.bad;
        memcpy(w->value, inner.value, sizeof(w->value));
        return 1;
    }
    return 0;
}

/* Fills c->date_error if a date of the part's resource is not one. */
static void check_part_dates(struct check *c)
{
    struct date_walk w;
    size_t i;
    int any = 0;

    if(c->date_error[0] || !c->resource)
        return;
    memset(&w, 0, sizeof(w));
    for(i = 0; i < NDATES; i++)
        if(!strcmp(member_dates[i].part, c->name)) {
            w.rest[i] = member_dates[i].path;
            any = 1;
        }
    if(!any || !pa_json_walk(c->resource, c->resource_len, visit_dates, &w, NULL) || !w.bad)
        return;
    i = w.bad - 1;
    snprintf(c->date_error, sizeof(c->date_error),
             "parameter %ld (MemberBundle): %s.%s '%.40s' is not a FHIR %s (YYYY-MM-DD%s, a real day)", c->members,
             c->name, member_dates[i].path, w.value, member_dates[i].kind,
             strcmp(member_dates[i].kind, "date") ? ", or with a time and zone" : "");
}

static int check_top(const char *key, const char *value, size_t len, void *ctx)
{
    struct check *c = ctx;

    /* (the elements of a text that is an array: refused after the walk) */
    if(!key)
        return 0;
    if(!strcmp(key, "resourceType") && pa_json_string(value, len, c->resource_type, sizeof(c->resource_type)))
        c->resource_type[0] = '\0';
    else if(!strcmp(key, "parameter")) {
        c->list = value;
        c->list_len = len;
    }
    return 0;
}

static int check_name(const char *key, const char *value, size_t len, void *ctx)
{
    struct check *c = ctx;

    if(!key)
        return 0;
    if(!strcmp(key, "name") && pa_json_string(value, len, c->name, sizeof(c->name)))
        pa_strlcpy(c->name, "?", sizeof(c->name));
    else if(!strcmp(key, "resource") && *value == '{') {
        c->resource = value;
        c->resource_len = len;
    }
    else if(!strcmp(key, "part") && *value == '[') {
        c->parts = value;
        c->parts_len = len;
    }
    return 0;
}

/* One part of a MemberBundle: its name, then the dates of its resource. */
static int check_part(const char *key, const char *value, size_t len, void *ctx)
{
    struct check *c = ctx;

    (void)key;
    c->name[0] = '\0';
    c->resource = NULL;
    if(*value == '{')
        pa_json_walk(value, len, check_name, c, NULL);
    check_part_dates(c);
    return 0;
}

static int check_param(const char *key, const char *value, size_t len, void *ctx)
{
    struct check *c = ctx;

    (void)key;
    c->name[0] = '\0';
    c->parts = NULL;
    if(*value != '{' || pa_json_walk(value, len, check_name, c, NULL) || strcmp(c->name, "MemberBundle")) {
        c->bad = 1;
        return 1;
    }
    if(!c->date_error[0] && c->parts)
        pa_json_walk(c->parts, c->parts_len, check_part, c, NULL);
    c->members++;
    return 0;
}

int pa_match_check(const char *body, size_t len, long max, long *members, pa_err *err)
{
    struct check c;
    pa_err why;

    memset(&c, 0, sizeof(c));
    *members = 0;
    if(pa_json_walk(body, len, check_top, &c, &why))
        return pa_err_set(err, PA_EINVAL, "the request body is %s", why.msg);
    if(*body != '{' || strcmp(c.resource_type, "Parameters") || !c.list || *c.list != '[')
        return pa_err_set(err, PA_EINVAL, "the request must be a Parameters resource with MemberBundle parameters");
    if(pa_json_walk(c.list, c.list_len, check_param, &c, NULL) && c.bad)
        return pa_err_set(err, PA_EINVAL, "parameter %ld ('%.40s') is not a MemberBundle", c.members, c.name);
    *members = c.members;
    if(!c.members)
        return pa_err_set(err, PA_EINVAL, "the request has no MemberBundle");
    if(c.date_error[0])
        return pa_err_set(err, PA_EINVAL, "%s", c.date_error);
    if(c.members > max)
        return pa_err_set(err, PA_ETOOBIG, "the request has %ld members; the limit is %ld (member_match_max)",
                          c.members, max);
    return PA_OK;
}

/* The resource of a MemberBundle part, by name. */
static json_object *part(json_object *bundle, const char *name)
{
    json_object *parts = pa_json_get(bundle, "part");
    size_t i;

    for(i = 0; parts && json_object_is_type(parts, json_type_array) && i < json_object_array_length(parts); i++) {
        json_object *p = json_object_array_get_idx(parts, i);
        const char *n = pa_json_str(p, "name");

        if(n && !strcmp(n, name))
            return pa_json_get(p, "resource");
    }
    return NULL;
}

/* True if the reference names the submitted Patient ("Patient/<id>"). */
static int refers_to(json_object *ref, const char *patient_id)
{
    const char *r = pa_json_str(ref, "reference");
    char id[PA_FHIR_ID_MAX + 1];

    return r && !pa_fhir_ref_id(r, "Patient", id, sizeof(id)) && !strcmp(id, patient_id);
}

/* An identifier value of a Reference (its identifier) or of a resource. */
static const char *ref_identifier(json_object *ref)
{
    return pa_json_str(pa_json_get(ref, "identifier"), "value");
}

/* True if the CodeableConcept cc has a coding with code (and system, when
 * given); any coding with a code when code is NULL. */
static int has_code(json_object *cc, const char *system, const char *code)
{
    json_object *c;
    size_t i;

    for(i = 0; (c = jidx(pa_json_get(cc, "coding"), i)); i++) {
        const char *cs = pa_json_str(c, "system"), *cd = pa_json_str(c, "code");

        if(cd && (!code || !strcmp(cd, code)) && (!system || (cs && !strcmp(cs, system))))
            return 1;
    }
    return 0;
}

/* True if one of the references in list (array, or one) names npi or org. */
static int names_npi(json_object *list, const char *npi, const char *org, int actors)
{
    size_t i, n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 1;

    for(i = 0; list && i < n; i++) {
        json_object *r = json_object_is_type(list, json_type_array) ? json_object_array_get_idx(list, i) : list;
        const char *v, *sys;

        if(actors)
            r = pa_json_get(r, "reference");
        v = ref_identifier(r);
        /* an identifier of another system is not an NPI, whatever its digits */
        sys = pa_json_str(pa_json_get(r, "identifier"), "system");
        if(v && sys && !strcmp(sys, PA_NPI_SYSTEM) &&
           ((npi && *npi && !strcmp(v, npi)) || (org && *org && !strcmp(v, org))))
            return 1;
    }
    return 0;
}

static const char *date10(const char *s, char out[11])
{
    return pa_fhir_day(s, 0, out) ? NULL : out;
}

/* Step 1: the bundle's three resources against HRex and the attestation
 * profile.  Returns NULL if valid, else why not. */
static const struct reason *validate(struct member *m, json_object *bundle, const pa_match_in *in, const char *today)
{
    json_object *pat = part(bundle, "MemberPatient");
    json_object *cov = part(bundle, "CoverageToMatch");
    json_object *con = part(bundle, "Consent");
    json_object *name, *prov, *period, *v;
    const char *pid, *s;
    size_t i;

    /* echoed in NonMatched whatever else is wrong, so the provider can correlate */
    m->patient = pa_json_str(pat, "resourceType") && !strcmp(pa_json_str(pat, "resourceType"), "Patient") ? pat : NULL;
    if(!pat || !cov || !con)
        return &reasons[R_BUNDLE];
    pid = pa_json_str(pat, "id");
    if(!pa_json_str(pat, "resourceType") || strcmp(pa_json_str(pat, "resourceType"), "Patient") || !pid ||
       !pa_fhir_id_valid(pid))
        return &reasons[R_PATIENT];
    name = jidx(pa_json_get(pat, "name"), 0);
    if(!pa_json_str(name, "family") || !json_object_is_type(jidx(pa_json_get(name, "given"), 0), json_type_string))
        return &reasons[R_NAME];
    pa_strlcpy(m->family, pa_json_str(name, "family"), sizeof(m->family));
    pa_strlcpy(m->given, json_object_get_string(jidx(pa_json_get(name, "given"), 0)), sizeof(m->given));
    if(!date10(pa_json_str(pat, "birthDate"), m->birth) || strlen(pa_json_str(pat, "birthDate")) != 10)
        return &reasons[R_BIRTH];
    s = pa_json_str(pat, "gender");
    for(i = 0; !s && (v = jidx(pa_json_get(pat, "extension"), i)); i++)
        if(pa_json_str(v, "url") && strstr(pa_json_str(v, "url"), "us-core-birthsex") && pa_json_str(v, "valueCode"))
            s = !strcmp(pa_json_str(v, "valueCode"), "F")   ? "female"
                : !strcmp(pa_json_str(v, "valueCode"), "M") ? "male"
                                                            : "unknown";
    if(!s)
        return &reasons[R_GENDER];
    pa_strlcpy(m->gender, s, sizeof(m->gender));

    if(!pa_json_str(cov, "resourceType") || strcmp(pa_json_str(cov, "resourceType"), "Coverage"))
        return &reasons[R_COVERAGE];
    if(!pa_json_get(cov, "payor"))
        return &reasons[R_PAYOR];
    /* with the plan's identifier configured (as a payer must), the payor has
     * to carry it: a coverage of another plan, or of none named, is no
     * coverage of this one */
    s = ref_identifier(jidx(pa_json_get(cov, "payor"), 0));
    if(*in->cfg->payer_identifier && (!s || strcmp(s, in->cfg->payer_identifier)))
        return &reasons[R_OTHER_PLAN];
    if(!has_code(pa_json_get(cov, "relationship"), NULL, NULL))
        return &reasons[R_RELATIONSHIP];
    if(!refers_to(pa_json_get(cov, "beneficiary"), pid))
        return &reasons[R_BENEFICIARY];
    if(pa_json_str(cov, "subscriberId"))
        pa_strlcpy(m->id1, pa_json_str(cov, "subscriberId"), sizeof(m->id1));
    for(i = 0; (v = jidx(pa_json_get(cov, "identifier"), i)); i++) {
        json_object *codings = pa_json_get(pa_json_get(v, "type"), "coding");
        size_t k;

        for(k = 0; (name = jidx(codings, k)); k++)
            if(pa_json_str(name, "code") && !strcmp(pa_json_str(name, "code"), "MB") && pa_json_str(v, "value"))
                pa_strlcpy(m->id2, pa_json_str(v, "value"), sizeof(m->id2));
    }
    if(!m->id1[0] && !m->id2[0])
        return &reasons[R_MEMBER_ID];

    if(!pa_json_str(con, "resourceType") || strcmp(pa_json_str(con, "resourceType"), "Consent"))
        return &reasons[R_CONSENT];
    /* the Provider Treatment Attestation profile, element by element */
    if(!pa_json_str(con, "status") || strcmp(pa_json_str(con, "status"), "active"))
        return &reasons[R_ACTIVE];
    if(!has_code(pa_json_get(con, "scope"), "http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"))
        return &reasons[R_SCOPE];
    if(!jidx(pa_json_get(con, "category"), 0))
        return &reasons[R_CATEGORY];
    if(!pa_json_str(con, "dateTime"))
        return &reasons[R_DATETIME];
    if(!jidx(pa_json_get(con, "performer"), 0))
        return &reasons[R_PERFORMER];
    if(!refers_to(pa_json_get(con, "patient"), pid))
        return &reasons[R_CONSENT_PATIENT];
    prov = pa_json_get(con, "provision");
    if(!pa_json_str(prov, "type") || strcmp(pa_json_str(prov, "type"), "permit"))
        return &reasons[R_PERMIT];
    period = pa_json_get(prov, "period");
    if(!date10(pa_json_str(period, "start"), m->att_start) || strcmp(m->att_start, today) > 0)
        return &reasons[R_NOT_STARTED];
    if(pa_json_str(period, "end") &&
       (pa_fhir_day(pa_json_str(period, "end"), 1, m->att_end) || strcmp(m->att_end, today) < 0))
        return &reasons[R_EXPIRED];
    /* the requesting provider, by NPI, among performer, organization and actors */
    if(!names_npi(pa_json_get(con, "performer"), in->npi, in->org_npi, 0) &&
       !names_npi(pa_json_get(con, "organization"), in->npi, in->org_npi, 0) &&
       !names_npi(pa_json_get(prov, "actor"), in->npi, in->org_npi, 1))
        return &reasons[R_NPI];
    return NULL;
}

static json_object *code_cc(const char *system, const char *code)
{
    json_object *cc = json_object_new_object(), *codings = json_object_new_array(), *c = json_object_new_object();

    json_object_object_add(c, "system", json_object_new_string(system));
    json_object_object_add(c, "code", json_object_new_string(code));
    json_object_array_add(codings, c);
    json_object_object_add(cc, "coding", codings);
    return cc;
}

static json_object *new_group(const char *id, const char *profile, const char *code, const pa_match_in *in,
                              const char *today)
{
    json_object *g = json_object_new_object(), *meta = json_object_new_object(), *profiles = json_object_new_array();
    json_object *me = json_object_new_object();

    json_object_object_add(g, "resourceType", json_object_new_string("Group"));
    json_object_object_add(g, "id", json_object_new_string(id));
    json_object_array_add(profiles, json_object_new_string(profile));
    json_object_object_add(meta, "profile", profiles);
    json_object_object_add(g, "meta", meta);
    json_object_object_add(g, "active", json_object_new_boolean(1));
    json_object_object_add(g, "type", json_object_new_string("person"));
    json_object_object_add(g, "actual", json_object_new_boolean(1));
    json_object_object_add(g, "code", code_cc(RESULT_CS, code));
    if(*in->cfg->payer_identifier) {
        json_object *ident = json_object_new_object();

        json_object_object_add(ident, "system", json_object_new_string("urn:oid:2.16.840.1.113883.6.300"));
        json_object_object_add(ident, "value", json_object_new_string(in->cfg->payer_identifier));
        json_object_object_add(me, "identifier", ident);
    }
    json_object_object_add(me, "display", json_object_new_string("the health plan answering this request"));
    json_object_object_add(g, "managingEntity", me);
    {
        /* the match date and the requesting provider */
        json_object *chars = json_object_new_array(), *c = json_object_new_object(), *vr = json_object_new_object();
        json_object *ident = json_object_new_object(), *period = json_object_new_object();

        json_object_object_add(c, "code", code_cc(RESULT_CS, code));
        json_object_object_add(ident, "system", json_object_new_string(PA_NPI_SYSTEM));
        json_object_object_add(ident, "value", json_object_new_string(*in->org_npi ? in->org_npi : in->npi));
        json_object_object_add(vr, "identifier", ident);
        json_object_object_add(c, "valueReference", vr);
        json_object_object_add(c, "exclude", json_object_new_boolean(0));
        json_object_object_add(period, "start", json_object_new_string(today));
        json_object_object_add(c, "period", period);
        json_object_array_add(chars, c);
        /* an opt-out Group's characteristics are its members' opt-outs
         * (optout_characteristics), once they are known */
        if(strcmp(code, "consentconstraint"))
            json_object_object_add(g, "characteristic", chars);
        else
            json_object_put(chars);
    }
    json_object_object_add(g, "member", json_object_new_array());
    return g;
}

/* The submitted Patient as echoed: its id kept (made unique in the Group:
 * seen holds the ids used so far), without version, lastUpdated, security
 * labels or nested contained. */
static json_object *echo_patient(json_object *pat, long index, json_object *group, json_object *seen, char *cid,
                                 size_t size)
{
    json_object *copy = NULL, *meta, *contained;
    size_t base;
    long k;

    json_object_deep_copy(pat, &copy, NULL);
    if(!copy)
        return NULL;
    /* a Patient whose shape was never checked: json-c aborts on a member
     * removed from anything but an object */
    if(!json_object_is_type(copy, json_type_object)) {
        json_object_put(copy);
        return NULL;
    }
    json_object_object_del(copy, "contained");
    meta = pa_json_get(copy, "meta");
    if(meta && !json_object_is_type(meta, json_type_object))
        json_object_object_del(copy, "meta");
    else if(meta) {
        json_object_object_del(meta, "versionId");
        json_object_object_del(meta, "lastUpdated");
        json_object_object_del(meta, "security");
    }
    /* a Patient submitted without a usable id is named by its place in the
     * request (submitted-1 is the first MemberBundle), so the provider can
     * still tell which one this is */
    if(pa_json_str(copy, "id") && pa_fhir_id_valid(pa_json_str(copy, "id")))
        pa_strlcpy(cid, pa_json_str(copy, "id"), size);
    else
        snprintf(cid, size, "submitted-%ld", index + 1);
    base = strlen(cid);
    /* two bundles submitted the same id: keep them apart */
    for(k = 2; json_object_object_get_ex(seen, cid, NULL); k++)
        snprintf(cid + base, size - base, "-%ld", k);
    if(k > 2 || strcmp(cid, pa_json_str(copy, "id") ? pa_json_str(copy, "id") : ""))
        json_object_object_add(copy, "id", json_object_new_string(cid));
    json_object_object_add(seen, cid, NULL);
    if(!json_object_object_get_ex(group, "contained", &contained)) {
        contained = json_object_new_array();
        json_object_object_add(group, "contained", contained);
    }
    json_object_array_add(contained, copy);
    return copy;
}

static void add_member(json_object *group, const char *entity_ref, const char *match_ref)
{
    json_object *m = json_object_new_object(), *e = json_object_new_object();

    json_object_object_add(e, "reference", json_object_new_string(entity_ref));
    if(match_ref) {
        json_object *exts = json_object_new_array(), *x = json_object_new_object(), *vr = json_object_new_object();

        json_object_object_add(x, "url", json_object_new_string(PDEX_SD "base-ext-match-parameters"));
        json_object_object_add(vr, "reference", json_object_new_string(match_ref));
        json_object_object_add(x, "valueReference", vr);
        json_object_array_add(exts, x);
        json_object_object_add(e, "extension", exts);
    }
    json_object_object_add(m, "entity", e);
    json_object_array_add(json_object_object_get(group, "member"), m);
}

/* Step 2-4 for every valid member, in one query.  Columns: bundle index,
 * candidates, the member (if one), covered today, the opt-out in force
 * against this provider (scope and start, NULL if none), treatment
 * relationship, the caller in network. */
static const char lookup_sql[] =
    "WITH req AS (SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::date[], $5::text[], $6::text[],"
    "  $7::text[], $8::date[], $9::date[]) AS t(i, fam, giv, birth, gender, id1, id2, a_start, a_end)),"
    /* the members of the same birth date and gender first, joined on those
     * alone and kept apart (MATERIALIZED), so that the names are normalized
     * for these few pairs only, never for every member of the payer (which
     * a join on the normalized names would hash: 0.26 s of a 10,000-member
     * match against 100,000 members, growing with the payer) */
    " pair AS MATERIALIZED (SELECT req.i, req.fam, req.giv, req.id1, req.id2, m.patient_id, m.member_id,"
    "  m.family, m.given FROM req JOIN member m ON m.birth_date = req.birth AND m.gender = req.gender),"
    " cand AS (SELECT DISTINCT i, patient_id FROM pair"
    "  WHERE " NORM("family") " = " NORM("fam") " AND " NORM("split_part(given, ' ', 1)") " = " NORM(
        "giv") "  AND (member_id IN (id1, id2) OR EXISTS (SELECT 1 FROM coverage c WHERE c.patient_id = pair.patient_id"
               "   AND (c.subscriber_id IN (id1, id2) OR c.member_id IN (id1, id2))))),"
               " one AS (SELECT i, count(*) AS n, min(patient_id) AS patient_id FROM cand GROUP BY i) "
               "SELECT req.i, coalesce(one.n, 0), one.patient_id,"
               /* covered: an active coverage whose period covers today (a former member,
     * whose coverage ended though still marked active, never matches); the
     * attestation's period covers today too, so the two overlap */
               " EXISTS (SELECT 1 FROM coverage c WHERE c.patient_id = one.patient_id AND c.status = 'active'"
               "  AND (c.period_start IS NULL OR c.period_start <= current_date)"
               "  AND (c.period_end IS NULL OR c.period_end >= current_date)),"
               /* the opt-out in force against the caller, if any: its scope and start
     * (a global one first, the latest of a kind) */
               " (SELECT o.scope || ' ' || o.period_start::text FROM opt_out o WHERE o.patient_id = one.patient_id"
               "  AND (o.scope = 'global' OR o.npi IN (nullif($10, ''), nullif($11, '')))"
               "  AND " PA_SQL_OPTOUT_IN_FORCE(
                   "o", "$10",
                   "$11") "  ORDER BY o.scope = 'global' DESC, o.period_start DESC LIMIT 1),"
                          " EXISTS (SELECT 1 FROM treatment_relationship t WHERE t.patient_id = one.patient_id AND NOT t.inactive"
                          "  AND t.npi IN (nullif($10, ''), nullif($11, ''))"
                          "  AND (t.period_start IS NULL OR t.period_start <= current_date) AND (t.period_end IS NULL OR t.period_end >= current_date))"
                          /* the claims only for a member without a relationship, each member's
     * through its own index range: OFFSET 0 keeps PostgreSQL from turning
     * the EXISTS into one hashed scan of every recent claim of the payer
     * (0.78 s against 100,000 members) */
                          " OR ($12::int > 0 AND EXISTS (SELECT 1 FROM provider p, resource r WHERE p.npi IN (nullif($10, ''), nullif($11, ''))"
                          "  AND r.patient_id = one.patient_id AND r.type = 'ExplanationOfBenefit'"
                          "  AND coalesce(r.clin_start, r.created) >= current_date - make_interval(months => $12::int)"
                          "  AND r.tokens @> ARRAY['ref=' || p.resource_type || '/' || p.resource_id] OFFSET 0)),"
                          /* the caller in network today (its attestation may stand for a relationship) */
                          " EXISTS (SELECT 1 FROM provider p WHERE p.npi IN (nullif($10, ''), nullif($11, '')) AND p.in_network"
                          "  AND (p.network_start IS NULL OR p.network_start <= current_date)"
                          "  AND (p.network_end IS NULL OR p.network_end >= current_date)) "
                          "FROM req LEFT JOIN one USING (i) ORDER BY req.i";

static int lookup(const pa_match_in *in, struct member *mem, long n, pa_err *err)
{
    pa_buf cols[9];
    const char *values[12];
    char months[24];
    PGresult *res;
    long i, valid = 0;
    int k, rc = PA_OK;

    for(k = 0; k < 9; k++) {
        pa_buf_init(&cols[k], LIST_MAX);
        pa_buf_addstr(&cols[k], "{");
    }
    for(i = 0; i < n && !rc; i++) {
        struct member *m = &mem[i];
        char idx[24];

        if(m->reason)
            continue;
        valid++;
        snprintf(idx, sizeof(idx), "%ld", i);
        rc = pa_pgarray_add(&cols[0], idx) || pa_pgarray_add(&cols[1], m->family) ||
             pa_pgarray_add(&cols[2], m->given) || pa_pgarray_add(&cols[3], m->birth) ||
             pa_pgarray_add(&cols[4], m->gender) || pa_pgarray_add(&cols[5], m->id1[0] ? m->id1 : NULL) ||
             pa_pgarray_add(&cols[6], m->id2[0] ? m->id2 : NULL) || pa_pgarray_add(&cols[7], m->att_start) ||
             pa_pgarray_add(&cols[8], m->att_end[0] ? m->att_end : NULL);
    }
    if(rc) {
        rc = pa_err_set(err, PA_ETOOBIG, "the request is too large");
        goto out;
    }
    if(!valid)
        goto out;
    for(k = 0; k < 9; k++) {
        pa_buf_addstr(&cols[k], "}");
        values[k] = pa_buf_str(&cols[k]);
    }
    snprintf(months, sizeof(months), "%ld", in->cfg->trl_claims_months);
    values[9] = in->npi;
    values[10] = in->org_npi;
    values[11] = months;
    res = pa_db_query(in->db, err, lookup_sql, 12, values);
    if(!res) {
        rc = PA_EDB;
        goto out;
    }
    for(k = 0; k < PQntuples(res); k++) {
        long idx = strtol(PQgetvalue(res, k, 0), NULL, 10), cands = strtol(PQgetvalue(res, k, 1), NULL, 10);
        struct member *m;

        if(idx < 0 || idx >= n)
            continue;
        m = &mem[idx];
        /* the member identified, even when not covered: its disclosure record names it */
        if(cands == 1)
            pa_strlcpy(m->patient_id, PQgetvalue(res, k, 2), sizeof(m->patient_id));
        if(cands == 0)
            m->reason = &reasons[R_NO_MEMBER];
        else if(cands > 1)
            m->reason = &reasons[R_SEVERAL];
        else if(strcmp(PQgetvalue(res, k, 3), "t"))
            m->reason = &reasons[R_NOT_COVERED];
        else {
            if(!PQgetisnull(res, k, 4)) {
                const char *v = PQgetvalue(res, k, 4);
                size_t sp = strcspn(v, " ");

                m->bucket = B_CONSTRAINED;
                m->reason = &reasons[R_OPTED_OUT];
                snprintf(m->optout_scope, sizeof(m->optout_scope), "%.*s", (int)sp, v);
                pa_strlcpy(m->optout_start, v[sp] ? v + sp + 1 : "", sizeof(m->optout_start));
            }
            else if(!strcmp(PQgetvalue(res, k, 5), "t")) {
                m->bucket = B_MATCH;
                m->reason = &reasons[R_TRL];
            }
            else if(!strcmp(in->cfg->treatment_relationship_policy, "attestation") &&
                    !strcmp(PQgetvalue(res, k, 6), "t")) {
                /* the verified attestation of an in-network provider stands for
                 * the relationship, and is recorded as one (trl_from_attestations) */
                m->bucket = B_MATCH;
                m->trl_attested = 1;
                m->reason = &reasons[R_TRL_ATTESTED];
            }
            else
                m->reason = &reasons[R_NO_TRL];
        }
    }
    PQclear(res);
out:
    for(k = 0; k < 9; k++)
        pa_buf_free(&cols[k]);
    return rc;
}

void pa_match_out_free(pa_match_out *out)
{
    if(!out)
        return;
    json_object_put(out->matched);
    json_object_put(out->nonmatched);
    json_object_put(out->constrained);
    json_object_put(out->matched_ids);
    json_object_put(out->reasons);
    json_object_put(out->misses);
    json_object_put(out->outcomes);
    memset(out, 0, sizeof(*out));
}

/*
 * Records a treatment relationship (source attestation) for each member
 * matched on its attestation alone, for the attestation's period: it is then
 * on file like any other (pa-admin trl list), and audited with the match.
 */
static int trl_from_attestations(const pa_match_in *in, const struct member *mem, long n, pa_err *err)
{
    pa_buf ids, starts, ends;
    const char *values[4];
    PGresult *res;
    long i, count = 0;
    int rc = PA_OK;

    pa_buf_init(&ids, LIST_MAX);
    pa_buf_init(&starts, LIST_MAX);
    pa_buf_init(&ends, LIST_MAX);
    rc = pa_buf_addstr(&ids, "{") || pa_buf_addstr(&starts, "{") || pa_buf_addstr(&ends, "{");
    for(i = 0; !rc && i < n; i++)
        if(mem[i].bucket == B_MATCH && mem[i].trl_attested) {
            rc = pa_pgarray_add(&ids, mem[i].patient_id) || pa_pgarray_add(&starts, mem[i].att_start) ||
                 pa_pgarray_add(&ends, mem[i].att_end[0] ? mem[i].att_end : NULL);
            count++;
        }
    rc = rc || pa_buf_addstr(&ids, "}") || pa_buf_addstr(&starts, "}") || pa_buf_addstr(&ends, "}");
    if(rc)
        rc = pa_err_set(err, PA_ETOOBIG, "the request is too large");
    else if(count) {
        values[0] = pa_buf_str(&ids);
        values[1] = *in->org_npi ? in->org_npi : in->npi;
        values[2] = pa_buf_str(&starts);
        values[3] = pa_buf_str(&ends);
        res = pa_db_query(in->db, err,
                          "INSERT INTO treatment_relationship (patient_id, npi, period_start, period_end, source)"
                          " SELECT DISTINCT ON (p) p, $2, s, e, 'attestation'"
                          " FROM unnest($1::text[], $3::date[], $4::date[]) AS t(p, s, e) ORDER BY p, s"
                          " ON CONFLICT (patient_id, npi, source) DO UPDATE SET period_start ="
                          " least(treatment_relationship.period_start, EXCLUDED.period_start),"
                          " period_end = EXCLUDED.period_end, inactive = false",
                          4, values);
        rc = res ? PA_OK : err->code;
        PQclear(res);
    }
    pa_buf_free(&ids);
    pa_buf_free(&starts);
    pa_buf_free(&ends);
    return rc;
}

/*
 * The opt-out Group's characteristics: one for each scope among its members'
 * opt-outs (global, provider-specific), in force since the earliest of them
 * (each member carries its own start in member.period).
 */
static void optout_characteristics(json_object *group, const struct member *mem, long n)
{
    static const char *const scopes[] = { "global", "provider-specific" };
    json_object *chars = json_object_new_array();
    size_t k;
    long i;

    for(k = 0; k < sizeof(scopes) / sizeof(scopes[0]); k++) {
        const char *since = NULL;

        for(i = 0; i < n; i++)
            if(mem[i].bucket == B_CONSTRAINED && !strcmp(mem[i].optout_scope, scopes[k]) &&
               (!since || strcmp(mem[i].optout_start, since) < 0))
                since = mem[i].optout_start;
        if(since) {
            json_object *c = json_object_new_object(), *period = json_object_new_object();

            json_object_object_add(c, "code", code_cc(RESULT_CS, "consentconstraint"));
            json_object_object_add(c, "valueCodeableConcept", code_cc(PDEX_CS "opt-out-scope", scopes[k]));
            json_object_object_add(c, "exclude", json_object_new_boolean(0));
            json_object_object_add(period, "start", json_object_new_string(since));
            json_object_object_add(c, "period", period);
            json_object_array_add(chars, c);
        }
    }
    json_object_object_add(group, "characteristic", chars);
}

int pa_match_run(const pa_match_in *in, json_object *params, pa_match_out *out, pa_err *err)
{
    json_object *list = pa_json_get(params, "parameter");
    long n = (long)json_object_array_length(list), i;
    struct member *mem = calloc((size_t)(n ? n : 1), sizeof(*mem));
    char today[32], ids[3][40];
    json_object *seen_matched, *seen_nonmatched;
    int rc;

    memset(out, 0, sizeof(*out));
    if(!mem)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    pa_instant_format(pa_now_ms(), today);
    today[10] = '\0';
    for(i = 0; i < n; i++) {
        mem[i].bucket = B_NOMATCH;
        mem[i].reason = validate(&mem[i], json_object_array_get_idx(list, i), in, today);
    }
    rc = lookup(in, mem, n, err);
    if(!rc)
        rc = trl_from_attestations(in, mem, n, err);
    if(rc) {
        free(mem);
        return rc;
    }
    if(in->group_id)
        pa_strlcpy(out->group_id, in->group_id, sizeof(out->group_id));
    else if(pa_random_hex(out->group_id, 16)) {
        free(mem);
        return pa_err_set(err, PA_EIO, "no random bytes");
    }
    snprintf(ids[0], sizeof(ids[0]), "%s", out->group_id);
    snprintf(ids[1], sizeof(ids[1]), "nomatch-%.16s", out->group_id);
    snprintf(ids[2], sizeof(ids[2]), "optout-%.16s", out->group_id);
    out->matched = new_group(ids[0], PDEX_SD "pdex-provider-member-match", "match", in, today);
    out->nonmatched = new_group(ids[1], PDEX_SD "pdex-provider-member-no-match", "nomatch", in, today);
    out->constrained = new_group(ids[2], PDEX_SD "pdex-member-opt-out", "consentconstraint", in, today);
    out->matched_ids = json_object_new_array();
    out->reasons = json_object_new_object();
    out->misses = json_object_new_array();
    out->outcomes = json_object_new_array();
    seen_matched = json_object_new_object();
    seen_nonmatched = json_object_new_object();
    for(i = 0; i < n; i++) {
        struct member *m = &mem[i];
        enum bucket b = m->bucket;
        char cid[PA_FHIR_ID_MAX + 16], ref[PA_FHIR_ID_MAX + 32];

        if(!m->reason) /* never left undecided: a member nothing decided is not matched */
            m->reason = &reasons[R_NO_MEMBER];
        /* privacy by default: an opt-out is indistinguishable from no match */
        if(b == B_CONSTRAINED && in->cfg->suppress_consent_constrained)
            b = B_NOMATCH;
        if(b == B_MATCH) {
            /* the member is the payer's Patient; the extension points at what was submitted */
            if(echo_patient(m->patient, i, out->matched, seen_matched, cid, sizeof(cid))) {
                char echo[PA_FHIR_ID_MAX + 32];

                snprintf(echo, sizeof(echo), "#%s", cid);
                snprintf(ref, sizeof(ref), "Patient/%s", m->patient_id);
                add_member(out->matched, ref, echo);
            }
            json_object_array_add(out->matched_ids, json_object_new_string(m->patient_id));
            out->n_matched++;
        }
        else if(b == B_CONSTRAINED) {
            json_object *members = json_object_object_get(out->constrained, "member"),
                        *period = json_object_new_object();

            snprintf(ref, sizeof(ref), "Patient/%s", m->patient_id);
            add_member(out->constrained, ref, NULL);
            /* since when the member's opt-out is in force */
            json_object_object_add(period, "start", json_object_new_string(m->optout_start));
            json_object_object_add(json_object_array_get_idx(members, json_object_array_length(members) - 1), "period",
                                   period);
            out->n_constrained++;
        }
        else {
            if(m->patient && echo_patient(m->patient, i, out->nonmatched, seen_nonmatched, cid, sizeof(cid))) {
                snprintf(ref, sizeof(ref), "#%s", cid);
                add_member(out->nonmatched, ref, NULL);
            }
            out->n_nonmatched++;
        }
        if(m->reason == &reasons[R_NO_MEMBER]) {
            /* what the enumeration guard weighs: the same person tried with other ids */
            json_object *miss = json_object_new_array();
            char demo[600];
            size_t c;

            snprintf(demo, sizeof(demo), "%s|%s|%s", m->family, m->given, m->birth);
            for(c = 0; demo[c]; c++)
                demo[c] = (char)tolower((unsigned char)demo[c]);
            json_object_array_add(miss, json_object_new_string(demo));
            json_object_array_add(miss, json_object_new_string(m->id1[0] ? m->id1 : m->id2));
            json_object_array_add(out->misses, miss);
        }
        {
            /* the member's disclosure record: what the caller was told, and why */
            json_object *o = json_object_new_object();
            const char *sub = m->patient ? pa_json_str(m->patient, "id") : NULL;

            if(sub && !pa_fhir_id_valid(sub)) /* kept only as an id: no free text from the request */
                sub = NULL;

            json_object_object_add(o, "entry", json_object_new_int64(i + 1));
            json_object_object_add(o, "submitted", sub ? json_object_new_string(sub) : NULL);
            json_object_object_add(o, "patient_id", m->patient_id[0] ? json_object_new_string(m->patient_id) : NULL);
            json_object_object_add(o, "outcome",
                                   json_object_new_string(b == B_MATCH         ? "matched"
                                                          : b == B_CONSTRAINED ? "consent-constrained"
                                                                               : "non-matched"));
            json_object_object_add(o, "reason", json_object_new_string(m->reason->code));
            json_object_array_add(out->outcomes, o);
        }
        {
            /* counted by reason: bounded however many members, and no PHI */
            const char *why = m->reason->text;
            json_object *c;

            if(json_object_object_get_ex(out->reasons, why, &c))
                json_object_set_int64(c, json_object_get_int64(c) + 1);
            else
                json_object_object_add(out->reasons, why, json_object_new_int64(1));
        }
    }
    json_object_put(seen_matched);
    json_object_put(seen_nonmatched);
    json_object_object_add(out->matched, "quantity", json_object_new_int64(out->n_matched));
    json_object_object_add(out->nonmatched, "quantity", json_object_new_int64(out->n_nonmatched));
    json_object_object_add(out->constrained, "quantity", json_object_new_int64(out->n_constrained));
    optout_characteristics(out->constrained, mem, n);
    if(!out->n_nonmatched) {
        json_object_put(out->nonmatched);
        out->nonmatched = NULL;
    }
    if(!out->n_constrained) {
        json_object_put(out->constrained);
        out->constrained = NULL;
    }
    free(mem);
    return PA_OK;
}

void pa_match_summary(const pa_match_out *out, char *buf, size_t size)
{
    snprintf(buf, size, "%ld matched, %ld not matched, %ld consent-constrained: %.900s", out->n_matched,
             out->n_nonmatched, out->n_constrained,
             json_object_to_json_string_ext(out->reasons, JSON_C_TO_STRING_PLAIN));
}

char *pa_match_parameters(const pa_match_out *out)
{
    json_object *p = json_object_new_object(), *list = json_object_new_array();
    json_object *groups[3] = { out->matched, out->nonmatched, out->constrained };
    static const char *const names[3] = { "MatchedMembers", "NonMatchedMembers", "ConsentConstrainedMembers" };
    char *s;
    int i;

    json_object_object_add(p, "resourceType", json_object_new_string("Parameters"));
    {
        json_object *meta = json_object_new_object(), *profiles = json_object_new_array();

        json_object_array_add(profiles,
                              json_object_new_string(PDEX_SD "provider-parameters-multi-member-match-bundle-out"));
        json_object_object_add(meta, "profile", profiles);
        json_object_object_add(p, "meta", meta);
    }
    for(i = 0; i < 3; i++) {
        json_object *e;

        if(!groups[i])
            continue;
        e = json_object_new_object();
        json_object_object_add(e, "name", json_object_new_string(names[i]));
        json_object_object_add(e, "resource", json_object_get(groups[i]));
        json_object_array_add(list, e);
    }
    json_object_object_add(p, "parameter", list);
    s = strdup(json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(p);
    return s;
}

int pa_match_store(PGconn *db, const pa_match_out *out, const pa_match_who *who, long days, pa_err *err)
{
    char d[24];
    const char *values[9];
    PGresult *res;

    snprintf(d, sizeof(d), "%ld", days);
    values[0] = out->group_id;
    values[1] = who->client_id;
    values[2] = who->npi;
    values[3] = d;
    values[4] = json_object_to_json_string_ext(out->matched, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    values[5] = json_object_to_json_string_ext(out->matched_ids, JSON_C_TO_STRING_PLAIN);
    values[6] = json_object_to_json_string_ext(out->outcomes, JSON_C_TO_STRING_PLAIN);
    values[7] = who->request_id;
    values[8] = who->job_id;
    /* one statement: the group and its records are stored together or not at all */
    res =
        pa_db_query(db, err,
                    "WITH g AS (INSERT INTO matched_group (id, client_id, npi, expires_at, json)"
                    " VALUES ($1, $2, nullif($3, ''), now() + make_interval(days => $4::int), $5)"
                    " ON CONFLICT (id) DO NOTHING RETURNING id),"
                    " m AS (INSERT INTO matched_group_member (group_id, patient_id)"
                    " SELECT DISTINCT g.id, p FROM g, jsonb_array_elements_text($6::jsonb) p) "
                    "INSERT INTO disclosure (client_id, npi, operation, request_id, job_id, group_id, entry, submitted,"
                    " patient_id, outcome, reason)"
                    " SELECT $2, nullif($3, ''), 'member-match', $8, $9, $1, o.entry, o.submitted, o.patient_id,"
                    " o.outcome, o.reason FROM jsonb_to_recordset($7::jsonb)"
                    " AS o(entry int, submitted text, patient_id text, outcome text, reason text)"
                    " ON CONFLICT DO NOTHING",
                    9, values);
    if(!res)
        return PA_EDB;
    PQclear(res);
    return PA_OK;
}
