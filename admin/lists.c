/*
 * pa-admin member list, provider list / network, delete.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "load.h"
#include "pa_buf.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_util.h"

int cmd_member(int argc, char **argv)
{
    const char *limit = "100";
    int no_header = 0;
    long v;
    int i;

    if(argc < 2 || strcmp(argv[1], "list")) {
        fprintf(stderr, "usage: pa-admin member list [--limit N] [--no-header]\n");
        return 2;
    }
    for(i = 2; i < argc; i++) {
        if(!strcmp(argv[i], "--no-header"))
            no_header = 1;
        else if(!strcmp(argv[i], "--limit") && i + 1 < argc && !pa_parse_long(argv[i + 1], &v) && v > 0)
            limit = argv[++i];
        else {
            fprintf(stderr, "usage: pa-admin member list [--limit N] [--no-header]\n");
            return 2;
        }
    }
    /* the member's most recent coverage */
    return admin_list("SELECT m.patient_id, coalesce(m.family, '') AS family, coalesce(m.given, '') AS given,"
                      " coalesce(m.birth_date::text, '') AS birth_date, coalesce(m.gender, '') AS gender,"
                      " coalesce(c.subscriber_id, '') AS subscriber_id, coalesce(c.status, '') AS coverage_status "
                      "FROM member m LEFT JOIN LATERAL (SELECT subscriber_id, status FROM coverage c"
                      " WHERE c.patient_id = m.patient_id ORDER BY c.period_start DESC NULLS LAST LIMIT 1) c ON true "
                      "ORDER BY m.patient_id LIMIT $1::int",
                      1, &limit, no_header);
}

static int provider_network(int argc, char **argv)
{
    const char *values[4] = { NULL, NULL, NULL, NULL };
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    PGresult *res;
    pa_err err;
    int i;
    int ret = 1;

    for(i = 2; i < argc; i++) {
        char ts[PA_TS_LEN];

        if(!strcmp(argv[i], "--in") || !strcmp(argv[i], "--out"))
            values[1] = !strcmp(argv[i], "--in") ? "true" : "false";
        else if((!strcmp(argv[i], "--from") || !strcmp(argv[i], "--to")) && i + 1 < argc && strlen(argv[i + 1]) == 10 &&
                !pa_fhir_date_ts(argv[i + 1], ts)) {
            int slot = !strcmp(argv[i], "--from") ? 2 : 3;

            values[slot] = argv[i + 1];
            i++;
        }
        else if(!values[0] && argv[i][0] != '-')
            values[0] = argv[i];
        else {
            values[1] = NULL;
            break;
        }
    }
    if(!values[0] || !values[1]) {
        fprintf(stderr, "usage: pa-admin provider network NPI --in|--out [--from YYYY-MM-DD] [--to YYYY-MM-DD]\n");
        return 2;
    }
    if(!pa_npi_valid(values[0])) {
        fprintf(stderr, "pa-admin: %s is not a valid NPI (check digit)\n", values[0]);
        return 1;
    }
    if(admin_connect(&cfg, &db))
        return 1;
    pa_err_clear(&err);
    res = pa_db_query(db, &err,
                      "UPDATE provider SET in_network = $2::bool, network_start = $3::date, network_end = $4::date,"
                      " updated_at = now() WHERE npi = $1",
                      4, values);
    if(!res)
        fprintf(stderr, "pa-admin: %s\n", err.msg);
    else if(strcmp(PQcmdTuples(res), "1"))
        fprintf(stderr,
                "pa-admin: NPI %s is not in the provider directory: load its Practitioner or "
                "Organization, or a provider feed, first\n",
                values[0]);
    else
        ret = 0;
    PQclear(res);
    PQfinish(db);
    pa_config_free(cfg);
    /* a provider taken out of the network loses its clients' tokens now (a
     * token asked for again is refused while it is out) */
    if(!ret && !strcmp(values[1], "false"))
        ret = admin_revoke_tokens("SELECT id FROM client WHERE npi = $1 OR org_npi = $1", 1, values);
    return ret;
}

int cmd_provider(int argc, char **argv)
{
    int in_network = 0;
    int no_header = 0;
    int i;

    if(argc >= 2 && !strcmp(argv[1], "network"))
        return provider_network(argc, argv);
    if(argc < 2 || strcmp(argv[1], "list")) {
        fprintf(stderr, "usage: pa-admin provider list [--in-network] [--no-header]\n"
                        "       pa-admin provider network NPI --in|--out [--from DATE] [--to DATE]\n");
        return 2;
    }
    for(i = 2; i < argc; i++) {
        if(!strcmp(argv[i], "--in-network"))
            in_network = 1;
        else if(!strcmp(argv[i], "--no-header"))
            no_header = 1;
        else {
            fprintf(stderr, "usage: pa-admin provider list [--in-network] [--no-header]\n");
            return 2;
        }
    }
    /* in network today: the flag, within its period */
    return admin_list(
        "SELECT npi, coalesce(name, '') AS name, kind, "
        " CASE WHEN in_network AND (network_start IS NULL OR network_start <= current_date)"
        "  AND (network_end IS NULL OR network_end >= current_date) THEN 'yes' ELSE 'no' END AS in_network "
        "FROM provider WHERE NOT $1::bool OR (in_network"
        " AND (network_start IS NULL OR network_start <= current_date)"
        " AND (network_end IS NULL OR network_end >= current_date)) ORDER BY npi",
        1, (const char *const[]){ in_network ? "true" : "false" }, no_header);
}

int cmd_delete(int argc, char **argv)
{
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    pa_buf types, ids;
    pa_err err;
    long n = 0;
    int i;
    int ret = 1;

    if(argc < 2) {
        fprintf(stderr, "usage: pa-admin delete Type/id...\n");
        return 2;
    }
    pa_buf_init(&types, 1 << 20);
    pa_buf_init(&ids, 1 << 20);
    pa_buf_addstr(&types, "{");
    pa_buf_addstr(&ids, "{");
    for(i = 1; i < argc; i++) {
        const char *slash = strchr(argv[i], '/');
        char type[64];

        if(!slash || (size_t)(slash - argv[i]) >= sizeof(type) || !pa_fhir_id_valid(slash + 1)) {
            fprintf(stderr, "pa-admin: '%s' is not Type/id\n", argv[i]);
            goto out;
        }
        snprintf(type, sizeof(type), "%.*s", (int)(slash - argv[i]), argv[i]);
        if(!pa_fhir_type_find(type)) {
            fprintf(stderr, "pa-admin: '%s' is not a type this server stores\n", type);
            goto out;
        }
        pa_buf_printf(&types, "%s%s", i > 1 ? "," : "", type);
        pa_buf_printf(&ids, "%s%s", i > 1 ? "," : "", slash + 1);
    }
    pa_buf_addstr(&types, "}");
    pa_buf_addstr(&ids, "}");
    if(admin_connect(&cfg, &db))
        goto out;
    pa_err_clear(&err);
    if(load_delete(db, pa_buf_str(&types), pa_buf_str(&ids), &n, &err) == PA_OK) {
        printf("deleted %ld of %d\n", n, argc - 1);
        ret = 0;
    }
    else {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
    }
out:
    pa_buf_free(&types);
    pa_buf_free(&ids);
    if(db)
        PQfinish(db);
    pa_config_free(cfg);
    return ret;
}
