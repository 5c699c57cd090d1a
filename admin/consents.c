/*
 * pa-admin optout ... and pa-admin trl ...: members' opt-outs from Provider
 * Access and treatment relationships, by hand (feeds and PDex Groups load
 * them in bulk).  A change applies to the next match and the next export.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_optout.h"
#include "pa_util.h"

static int is_date(const char *s)
{
    char ts[PA_TS_LEN];

    return s && strlen(s) == 10 && !pa_fhir_date_ts(s, ts);
}

/* PATIENT as an id (Patient/id or id) into out; -1 if it is none. */
static int patient_arg(const char *a, char out[PA_FHIR_ID_MAX + 1])
{
    if(pa_fhir_ref_id(a, "Patient", out, PA_FHIR_ID_MAX + 1) == PA_OK)
        return 0;
    return pa_strlcpy(out, a, PA_FHIR_ID_MAX + 1) == PA_OK && pa_fhir_id_valid(out) ? 0 : -1;
}

/* Reads --global/--npi/--from/--to/--reason/--source options from argv[from..]. */
struct opts {
    int global;
    const char *npi, *start, *end, *reason, *source;
    int no_header;
};

static int read_opts(int argc, char **argv, int from, struct opts *o)
{
    int i;

    memset(o, 0, sizeof(*o));
    for(i = from; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if(!strcmp(argv[i], "--global"))
            o->global = 1;
        else if(!strcmp(argv[i], "--no-header"))
            o->no_header = 1;
        else if(!strcmp(argv[i], "--npi") && v && pa_npi_valid(v))
            o->npi = argv[++i];
        else if((!strcmp(argv[i], "--from") || !strcmp(argv[i], "--to")) && is_date(v)) {
            if(!strcmp(argv[i], "--from"))
                o->start = v;
            else
                o->end = v;
            i++;
        }
        else if(!strcmp(argv[i], "--reason") && v)
            o->reason = argv[++i];
        else if(!strcmp(argv[i], "--source") && v &&
                (!strcmp(v, "payer") || !strcmp(v, "claims") || !strcmp(v, "attestation") || !strcmp(v, "feed")))
            o->source = argv[++i];
        else {
            fprintf(stderr,
                    "pa-admin: unexpected or invalid '%s' (an NPI must pass its check digit; dates are "
                    "YYYY-MM-DD)\n",
                    argv[i]);
            return -1;
        }
    }
    return 0;
}

int cmd_optout(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    char patient[PA_FHIR_ID_MAX + 1], npis[32];
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    struct opts o;
    long member = 0, changed = 0;
    int add = !strcmp(sub, "add"), rc;
    pa_err err;

    if(!strcmp(sub, "list")) {
        if(read_opts(argc, argv, 2, &o))
            return 2;
        /* opt-outs, then the permits that revoke them (a record of their own) */
        return admin_list(
            "SELECT patient_id, scope, npi, period, state, reason FROM ("
            "SELECT o.patient_id, o.scope, o.npi, o.period_start::text || '..' || coalesce(o.period_end::text, '')"
            " AS period, CASE WHEN o.revoked OR NOT (" PA_SQL_OPTOUT_IN_FORCE(
                "o", "o.npi",
                "o.npi") ")"
                         " AND o.period_start <= current_date AND (o.period_end IS NULL OR o.period_end >= current_date)"
                         " THEN 'revoked' WHEN o.period_start > current_date THEN 'future'"
                         " WHEN o.period_end < current_date THEN 'ended' ELSE 'active' END AS state,"
                         " coalesce(o.reason, '') AS reason, o.period_start, o.recorded_at FROM opt_out o"
                         " UNION ALL SELECT i.patient_id, CASE WHEN i.npi = '' THEN 'global' ELSE 'provider-specific' END,"
                         " i.npi, i.period_start::text || '..', 'permit', '', i.period_start, i.recorded_at FROM opt_in i) r "
                         "ORDER BY patient_id, period_start, recorded_at",
            0, NULL, o.no_header);
    }
    if((strcmp(sub, "add") && strcmp(sub, "revoke")) || argc < 3 || patient_arg(argv[2], patient) ||
       read_opts(argc, argv, 3, &o) || o.global == !!o.npi) {
        fprintf(stderr,
                "usage: pa-admin optout add PATIENT (--global | --npi NPI) [--from DATE] [--to DATE] [--reason R]\n"
                "       pa-admin optout revoke PATIENT (--global | --npi NPI)\n"
                "       pa-admin optout list [--no-header]\n");
        return 2;
    }
    snprintf(npis, sizeof(npis), "{%s}", o.global ? "" : o.npi);
    if(admin_connect(&cfg, &db))
        return 1;
    pa_err_clear(&err);
    rc = pa_optout_set(db, patient, npis, add, o.start, o.end, o.reason, &member, &changed, &err);
    PQfinish(db);
    pa_config_free(cfg);
    if(rc) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        return 1;
    }
    if(!member) {
        fprintf(stderr, "pa-admin: %s is not a member of this plan\n", patient);
        return 1;
    }
    if(add) {
        printf("opted out\n");
        return 0;
    }
    if(changed == 0) {
        fprintf(stderr, "pa-admin: %s has no such opt-out in force\n", patient);
        return 1;
    }
    printf("revoked %ld\n", changed);
    return 0;
}

int cmd_trl(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    char patient[PA_FHIR_ID_MAX + 1];
    const char *values[5];
    struct opts o;
    long rows = 0;
    int rc;

    if(!strcmp(sub, "list")) {
        if(read_opts(argc, argv, 2, &o))
            return 2;
        values[0] = o.npi;
        return admin_list(
            "SELECT patient_id, npi, coalesce(period_start::text, '') || '..' || coalesce(period_end::text, '')"
            " AS period, source, CASE WHEN inactive THEN 'inactive' ELSE 'active' END AS state "
            "FROM treatment_relationship WHERE $1::text IS NULL OR npi = $1 ORDER BY patient_id, npi, source",
            1, values, o.no_header);
    }
    if(!strcmp(sub, "import"))
        /* the treatment-relationship CSV feed, or PDex Groups: what pa-admin load reads */
        return cmd_load(argc - 1, argv + 1);
    if((strcmp(sub, "add") && strcmp(sub, "remove")) || argc < 4 || patient_arg(argv[2], patient) ||
       !pa_npi_valid(argv[3]) || read_opts(argc, argv, 4, &o)) {
        fprintf(
            stderr,
            "usage: pa-admin trl add PATIENT NPI [--from DATE] [--to DATE] [--source payer|claims|attestation|feed]\n"
            "       pa-admin trl remove PATIENT NPI [--source S]\n"
            "       pa-admin trl list [--npi NPI] [--no-header]\n"
            "       pa-admin trl import FILE.csv|FILE.ndjson...\n");
        return 2;
    }
    values[0] = patient;
    values[1] = argv[3];
    values[2] = o.source ? o.source : "payer";
    values[3] = o.start;
    values[4] = o.end;
    if(!strcmp(sub, "add")) {
        rc = admin_exec("INSERT INTO treatment_relationship (patient_id, npi, source, period_start, period_end)"
                        " VALUES ($1, $2, $3, coalesce($4::date, current_date), $5::date)"
                        " ON CONFLICT (patient_id, npi, source) DO UPDATE SET period_start = EXCLUDED.period_start,"
                        " period_end = EXCLUDED.period_end, inactive = false",
                        5, values, &rows);
        if(!rc)
            printf("added\n");
        return rc;
    }
    /* without --source, every source's relationship goes */
    values[2] = o.source;
    rc = admin_exec("UPDATE treatment_relationship SET inactive = true WHERE patient_id = $1 AND npi = $2"
                    " AND ($3::text IS NULL OR source = $3) AND NOT inactive",
                    3, values, &rows);
    if(!rc && rows == 0) {
        fprintf(stderr, "pa-admin: no active treatment relationship of %s with %s\n", patient, argv[3]);
        return 1;
    }
    if(!rc)
        printf("removed %ld\n", rows);
    return rc;
}
