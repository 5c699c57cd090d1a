/*
 * pa-admin roster ...: the payer's attribution rosters by hand (feeds and
 * PDex Groups load them in bulk: docs/LOADING.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "pa_buf.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_pgarray.h"
#include "pa_roster.h"
#include "pa_util.h"

static void roster_usage(void)
{
    fprintf(stderr,
            "usage: pa-admin roster list [--npi NPI] [--no-header]\n"
            "       pa-admin roster create ID --name NAME (--npi NPI | --org-npi NPI)\n"
            "       pa-admin roster add ID PATIENT... [--from YYYY-MM-DD] [--to YYYY-MM-DD]  (patients the payer has)\n"
            "       pa-admin roster remove ID PATIENT...      (the member becomes inactive from today)\n"
            "       pa-admin roster status ID [draft|open|final]\n"
            "PATIENT is a patient id or Patient/id.\n");
}

static int valid_date(const char *s)
{
    char ts[PA_TS_LEN];

    return strlen(s) == 10 && !pa_fhir_date_ts(s, ts);
}

/* The patients of argv[from..] (ids or Patient/id) as an array literal. */
/* Refuses patients the payer has no member for, naming them; 0 when all
 * are members. */
static int refuse_unknown(const char *ids)
{
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    PGresult *res;
    pa_err err;
    int i, ret = 1;

    if(admin_connect(&cfg, &db))
        return 1;
    pa_err_clear(&err);
    res = pa_db_query(db, &err,
                      "SELECT p FROM unnest($1::text[]) WITH ORDINALITY u(p, o)"
                      " WHERE NOT " PA_SQL_PAYER_HAS_PATIENT("u.p") " ORDER BY o",
                      1, &ids);
    if(!res) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
    }
    else if(PQntuples(res) > 0) {
        fprintf(stderr, "pa-admin: not members the payer has (nothing was added):");
        for(i = 0; i < PQntuples(res); i++)
            fprintf(stderr, " %s", PQgetvalue(res, i, 0));
        fprintf(stderr, "\n");
    }
    else {
        ret = 0;
    }
    PQclear(res);
    PQfinish(db);
    pa_config_free(cfg);
    return ret;
}

static int patient_list(int argc, char **argv, int from, pa_buf *ids, const char **start, const char **end)
{
    int i;

    pa_buf_addstr(ids, "{");
    for(i = from; i < argc; i++) {
        char id[PA_FHIR_ID_MAX + 1];

        if(start && (!strcmp(argv[i], "--from") || !strcmp(argv[i], "--to")) && i + 1 < argc &&
           valid_date(argv[i + 1])) {
            *(!strcmp(argv[i], "--from") ? start : end) = argv[i + 1];
            i++;
            continue;
        }
        /* Patient/id, or the id alone */
        if(pa_fhir_ref_id(argv[i], "Patient", id, sizeof(id)) != PA_OK &&
           (pa_strlcpy(id, argv[i], sizeof(id)) != PA_OK || !pa_fhir_id_valid(id))) {
            fprintf(stderr, "pa-admin: '%s' is not a patient id\n", argv[i]);
            return -1;
        }
        pa_pgarray_add(ids, id);
    }
    pa_buf_addstr(ids, "}");
    return ids->len > 2 ? 0 : -1;
}

int cmd_roster(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    const char *values[5] = { NULL };
    long rows = 0;
    pa_buf ids;
    int i, rc;

    if(!strcmp(sub, "list")) {
        int no_header = 0;

        for(i = 2; i < argc; i++) {
            if(!strcmp(argv[i], "--no-header"))
                no_header = 1;
            else if(!strcmp(argv[i], "--npi") && i + 1 < argc)
                values[0] = argv[++i];
            else {
                roster_usage();
                return 2;
            }
        }
        return admin_list(
            "SELECT r.id, coalesce(r.npi, '') AS npi, coalesce(r.org_npi, '') AS org_npi,"
            " (SELECT count(*) FROM roster_member m WHERE m.roster_id = r.id AND NOT m.inactive) AS members,"
            " r.status, r.name FROM roster r WHERE $1::text IS NULL OR $1 IN (r.npi, r.org_npi) ORDER BY r.id",
            1, values, no_header);
    }
    if(argc < 3 || !pa_fhir_id_valid(argv[2])) {
        roster_usage();
        return 2;
    }
    values[0] = argv[2];
    if(!strcmp(sub, "create")) {
        for(i = 3; i < argc; i++) {
            if(!strcmp(argv[i], "--name") && i + 1 < argc)
                values[1] = argv[++i];
            else if(!strcmp(argv[i], "--npi") && i + 1 < argc)
                values[2] = argv[++i];
            else if(!strcmp(argv[i], "--org-npi") && i + 1 < argc)
                values[3] = argv[++i];
            else {
                roster_usage();
                return 2;
            }
        }
        if(!values[1] || (!values[2] == !values[3])) {
            roster_usage();
            return 2;
        }
        if(!pa_npi_valid(values[2] ? values[2] : values[3])) {
            fprintf(stderr, "pa-admin: %s is not a valid NPI (check digit)\n", values[2] ? values[2] : values[3]);
            return 1;
        }
        rc = admin_exec(
            "INSERT INTO roster (id, name, npi, org_npi) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING", 4,
            values, &rows);
        if(!rc && rows == 0) {
            fprintf(stderr, "pa-admin: roster %s exists already\n", argv[2]);
            return 1;
        }
        return rc;
    }
    if(!strcmp(sub, "status")) {
        if(argc == 3)
            return admin_list("SELECT id, status FROM roster WHERE id = $1", 1, values, 1);
        if(argc != 4 || (strcmp(argv[3], "draft") && strcmp(argv[3], "open") && strcmp(argv[3], "final"))) {
            roster_usage();
            return 2;
        }
        values[1] = argv[3];
        rc = admin_exec("UPDATE roster SET status = $2, updated_at = now() WHERE id = $1", 2, values, &rows);
    }
    else if(!strcmp(sub, "add") || !strcmp(sub, "remove")) {
        int add = !strcmp(sub, "add");

        if(admin_exec("SELECT 1 FROM roster WHERE id = $1", 1, values, &rows) || rows != 1) {
            fprintf(stderr, "pa-admin: no roster %s\n", argv[2]);
            return 1;
        }
        pa_buf_init(&ids, 1 << 24);
        if(patient_list(argc, argv, 3, &ids, add ? &values[2] : NULL, add ? &values[3] : NULL)) {
            pa_buf_free(&ids);
            roster_usage();
            return 2;
        }
        values[1] = pa_buf_str(&ids);
        if(add && refuse_unknown(values[1])) {
            pa_buf_free(&ids);
            return 1;
        }
        if(add)
            rc = admin_exec("WITH r AS (UPDATE roster SET updated_at = now() WHERE id = $1 RETURNING id) "
                            "INSERT INTO roster_member (roster_id, patient_id, period_start, period_end, change_type) "
                            "SELECT r.id, p, coalesce($3::date, current_date), $4::date, 'new'"
                            " FROM r, unnest($2::text[]) p "
                            "ON CONFLICT (roster_id, patient_id) DO UPDATE SET inactive = false,"
                            " period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,"
                            " change_type = " PA_SQL_ROSTER_MEMBER_CHANGE("roster_member"),
                            4, values, &rows);
        else
            rc = admin_exec("WITH r AS (UPDATE roster SET updated_at = now() WHERE id = $1 RETURNING id) "
                            "UPDATE roster_member m SET inactive = true, period_end = current_date,"
                            " change_type = 'dropped' FROM r "
                            "WHERE m.roster_id = r.id AND m.patient_id = ANY($2::text[]) AND NOT m.inactive",
                            2, values, &rows);
        pa_buf_free(&ids);
        if(!rc)
            printf("%s %ld members\n", add ? "added" : "removed", rows);
        return rc;
    }
    else {
        roster_usage();
        return 2;
    }
    if(!rc && rows != 1) {
        fprintf(stderr, "pa-admin: no roster %s\n", argv[2]);
        return 1;
    }
    return rc;
}
