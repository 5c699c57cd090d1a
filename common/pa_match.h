/*
 * pa_match: PDex $provider-member-match.  Each MemberBundle (MemberPatient,
 * CoverageToMatch, Consent) is evaluated on its own, in the IG's order:
 *
 *   1. validate (HRex demographics and coverage; the Provider Treatment
 *      Attestation: active, permit, covering today, naming the caller's NPI);
 *   2. match: exactly one member by normalized family and first given name,
 *      birth date, gender and a coverage identifier (subscriberId or MB
 *      identifier), with coverage active in the attestation period;
 *   3. opt-out (global, or naming the caller): ConsentConstrained, or
 *      NonMatched when suppress_consent_constrained;
 *   4. treatment relationship with the caller's NPI or organization, or a
 *      claim naming it within trl_claims_months;
 *   5. otherwise Matched.
 *
 * All members are looked up with one SQL query, never one per member.  A
 * problem with one bundle never affects another.  docs/MATCH.md says more.
 */
#ifndef PA_MATCH_H
#define PA_MATCH_H

#include <json-c/json.h>
#include <libpq-fe.h>

#include "pa_config.h"
#include "pa_err.h"

typedef struct pa_match_in {
    PGconn *db;
    const pa_config *cfg;
    const char *npi; /* the caller's NPI and organization NPI */
    const char *org_npi;
    const char *group_id; /* the Matched Group's id, or NULL for a new random one */
} pa_match_in;

typedef struct pa_match_out {
    char group_id[33];        /* the Matched Group's id */
    json_object *matched;     /* Group, always */
    json_object *nonmatched;  /* Group, or NULL when empty */
    json_object *constrained; /* Group, or NULL when empty or suppressed */
    json_object *matched_ids; /* the matched members' payer Patient ids */
    json_object *reasons;     /* how many members landed where for which reason: {"reason": n}, for the audit */
    json_object *misses;      /* [[demographics key, coverage id], ...] of the members no member matched (pa_guard) */
    json_object *outcomes;    /* per MemberBundle, its disclosure record: [{"entry", "submitted", "patient_id",
                               "outcome", "reason"}] (what the caller was told; the reason code) */
    long n_matched, n_nonmatched, n_constrained;
} pa_match_out;

/*
 * Checks the request as a whole (a Parameters resource with 1 to max
 * MemberBundles); *params is the parsed request (caller puts it).
 * PA_EINVAL / PA_ETOOBIG with the reason.
 */
int pa_match_parse(const char *body, long max, json_object **params, long *members, pa_err *err);

/* The same checks on the text alone, without building it (pa_json): for the
 * asynchronous kick-off, which hands the text to the runner. */
int pa_match_check(const char *body, size_t len, long max, long *members, pa_err *err);

/* Evaluates every MemberBundle of params into out (freed with pa_match_out_free). */
int pa_match_run(const pa_match_in *in, json_object *params, pa_match_out *out, pa_err *err);
void pa_match_out_free(pa_match_out *out);

/* The audit event's words for a match: "N matched, N not matched, N
 * consent-constrained: {reason: count, ...}" (counts only, no PHI). */
void pa_match_summary(const pa_match_out *out, char *buf, size_t size);

/* The response Parameters (provider-parameters-multi-member-match-bundle-out); caller frees. */
char *pa_match_parameters(const pa_match_out *out);

/* Who asked for a match: the disclosure records name them. */
typedef struct pa_match_who {
    const char *client_id;
    const char *npi;
    const char *request_id; /* the request, or the job's kick-off */
    const char *job_id;     /* the asynchronous match's job, NULL for a synchronous one */
} pa_match_who;

/*
 * Stores the Matched Group, owned by who->client_id, expiring after `days`,
 * and each member's disclosure record (table disclosure), in one statement:
 * both or neither.  Once: a job storing the same group again changes nothing.
 */
int pa_match_store(PGconn *db, const pa_match_out *out, const pa_match_who *who, long days, pa_err *err);

/* The audit words of a reason code (docs/MATCH.md), or NULL if there is no such code. */
const char *pa_match_reason_text(const char *code);

#endif
