/*
 * pa-admin disclosures: who received what about whom (table disclosure,
 * sql/008_disclosure.sql), by member or by client.
 */
#include "admin.h"

#include <stdio.h>
#include <string.h>

#include "pa_fhir.h"
#include "pa_util.h"

static void disclosures_usage(void)
{
    fprintf(stderr,
            "usage: pa-admin disclosures (--patient ID | --client ID) [--since TIME] [--limit N] [--no-header]\n"
            "  every match and export answer about a member: who asked (client, NPI), when, the request\n"
            "  and job, and what they got (matched, non-matched and why, consent-constrained, exported\n"
            "  with the types and _since/_until, withheld for an opt-out)\n");
}

int cmd_disclosures(int argc, char **argv)
{
    const char *values[4] = { NULL, NULL, NULL, "10000" };
    char ts[PA_TS_LEN];
    int no_header = 0;
    long v;
    int i;

    for(i = 1; i < argc; i++) {
        if(!strcmp(argv[i], "--patient") && i + 1 < argc) {
            /* Patient/ID or ID */
            values[0] = argv[++i];
            if(!strncmp(values[0], "Patient/", 8))
                values[0] += 8;
        }
        else if(!strcmp(argv[i], "--client") && i + 1 < argc)
            values[1] = argv[++i];
        else if(!strcmp(argv[i], "--since") && i + 1 < argc) {
            if(pa_fhir_date_ts(argv[++i], ts)) {
                fprintf(stderr, "pa-admin: --since takes a date or an instant (2026-11-01 or 2026-11-01T08:00:00Z)\n");
                return 2;
            }
            values[2] = ts;
        }
        else if(!strcmp(argv[i], "--limit") && i + 1 < argc && !pa_parse_long(argv[i + 1], &v) && v > 0)
            values[3] = argv[++i];
        else if(!strcmp(argv[i], "--no-header"))
            no_header = 1;
        else {
            disclosures_usage();
            return 2;
        }
    }
    if(!values[0] && !values[1]) {
        disclosures_usage();
        return 2;
    }
    return admin_list(
        "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at, client_id AS client,"
        " coalesce(npi, '') AS npi, operation, outcome, coalesce(reason, '') AS reason,"
        " coalesce(patient_id, '') AS patient, coalesce(entry || ':' || submitted, entry::text, '') AS submitted,"
        " coalesce(group_id, '') AS group_id, coalesce(job_id, '') AS job_id,"
        " coalesce(request_id, '') AS request_id, coalesce(types, '') AS types,"
        " coalesce(type_filter, '') AS type_filter,"
        " coalesce(to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '') AS since,"
        " coalesce(to_char(until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '') AS until"
        " FROM disclosure WHERE ($1::text IS NULL OR patient_id = $1) AND ($2::text IS NULL OR client_id = $2)"
        " AND ($3::timestamptz IS NULL OR at >= $3::timestamptz)"
        " ORDER BY at, id LIMIT $4::int",
        4, values, no_header);
}
