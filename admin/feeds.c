/*
 * CSV feeds for payers whose systems produce CSV rather than FHIR.  The
 * header line says which feed a file is (docs/LOADING.md):
 *
 *   roster_id,roster_name,npi,org_npi,patient_id,period_start,period_end
 *   patient_id,npi,period_start,period_end,source
 *   patient_id,scope,npi,period_start,period_end,reason
 *   npi,kind,name,in_network,network_start,network_end
 *
 * Every row is checked (ids, NPI check digits, dates, enumerations); a bad
 * row is reported by file and line and the others load.  A roster feed
 * replaces the members of each roster it names.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "admin.h"
#include "load.h"
#include "pa_db.h"
#include "pa_fhir.h"
#include "pa_pgarray.h"
#include "pa_util.h"

#define MAX_FIELDS 16
#define COL_MAX (256 * 1024 * 1024)
#define LINE_MAX_BYTES 65536

enum feed { F_ROSTER, F_TRL, F_OPTOUT, F_PROVIDER, F_COUNT };

static const char *const headers[F_COUNT] = {
    "roster_id,roster_name,npi,org_npi,patient_id,period_start,period_end",
    "patient_id,npi,period_start,period_end,source",
    "patient_id,scope,npi,period_start,period_end,reason",
    "npi,kind,name,in_network,network_start,network_end",
};

static const int nfields[F_COUNT] = { 7, 5, 6, 6 };

static const char *const feed_sql[F_COUNT] = {
    /* $1..$7: roster ids, names, npis, org npis, patients, starts, ends */
    "WITH rows AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
    "  $6::date[], $7::date[]) AS t(r, name, npi, org_npi, p, s, e)), "
    "ro AS (INSERT INTO roster (id, name, npi, org_npi) "
    " SELECT DISTINCT ON (r) r, name, nullif(npi, ''), nullif(org_npi, '') FROM rows ORDER BY r "
    " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, npi = EXCLUDED.npi, org_npi = EXCLUDED.org_npi,"
    "  updated_at = now() RETURNING id) "
    "SELECT count(pa_roster_replace(r, array_agg(p), array_agg(s), array_agg(e), array_agg(false),"
    " array_agg(NULL::text))) FROM rows GROUP BY r",
    "INSERT INTO treatment_relationship (patient_id, npi, period_start, period_end, source) "
    "SELECT DISTINCT ON (p, n, src) p, n, s, e, src FROM unnest($1::text[], $2::text[], $3::date[],"
    " $4::date[], $5::text[]) AS t(p, n, s, e, src) ORDER BY p, n, src "
    "ON CONFLICT (patient_id, npi, source) DO UPDATE SET period_start = EXCLUDED.period_start,"
    " period_end = EXCLUDED.period_end, inactive = false",
    "INSERT INTO opt_out (patient_id, scope, npi, period_start, period_end, reason) "
    "SELECT DISTINCT ON (p, sc, n, s) p, sc, n, s, e, nullif(reason, '') FROM unnest($1::text[], $2::text[],"
    " $3::text[], $4::date[], $5::date[], $6::text[]) AS t(p, sc, n, s, e, reason) ORDER BY p, sc, n, s "
    "ON CONFLICT (patient_id, scope, npi, period_start) DO UPDATE SET period_end = EXCLUDED.period_end,"
    " reason = EXCLUDED.reason, revoked = false",
    "INSERT INTO provider (npi, kind, name, in_network, network_start, network_end) "
    "SELECT DISTINCT ON (n) n, k, nullif(name, ''), i, s, e FROM unnest($1::text[], $2::text[], $3::text[],"
    " $4::bool[], $5::date[], $6::date[]) AS t(n, k, name, i, s, e) ORDER BY n "
    "ON CONFLICT (npi) DO UPDATE SET kind = EXCLUDED.kind, name = coalesce(EXCLUDED.name, provider.name),"
    " in_network = EXCLUDED.in_network, network_start = EXCLUDED.network_start,"
    " network_end = EXCLUDED.network_end, updated_at = now()",
};

/* Splits a CSV line in place ("quoted, fields" with "" inside); returns the
 * number of fields or -1 when malformed. */
static int split_csv(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;

    for(;;) {
        char *w;

        if(n == max)
            return -1;
        if(*p == '"') {
            f[n++] = w = ++p;
            for(;;) {
                if(!*p)
                    return -1;
                if(*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                }
                else if(*p == '"') {
                    p++;
                    break;
                }
                else {
                    *w++ = *p++;
                }
            }
            *w = '\0';
            if(*p && *p != ',')
                return -1;
        }
        else {
            f[n++] = p;
            p += strcspn(p, ",");
        }
        if(!*p)
            return n;
        *p++ = '\0';
    }
}

static int valid_date(const char *s)
{
    char ts[PA_TS_LEN];

    return strlen(s) == 10 && pa_fhir_date_ts(s, ts) == PA_OK;
}

/* Checks one row; NULL if fine, else the reason. */
static const char *check_row(enum feed kind, char **f)
{
    switch(kind) {
    case F_ROSTER:
        if(!pa_fhir_id_valid(f[0]))
            return "roster_id is not a FHIR id";
        if(!*f[2] && !*f[3])
            return "a roster needs npi or org_npi";
        if((*f[2] && !pa_npi_valid(f[2])) || (*f[3] && !pa_npi_valid(f[3])))
            return "an NPI fails its check digit";
        if(!pa_fhir_id_valid(f[4]))
            return "patient_id is not a FHIR id";
        if((*f[5] && !valid_date(f[5])) || (*f[6] && !valid_date(f[6])))
            return "a period date is not YYYY-MM-DD";
        return NULL;
    case F_TRL:
        if(!pa_fhir_id_valid(f[0]))
            return "patient_id is not a FHIR id";
        if(!pa_npi_valid(f[1]))
            return "npi fails its check digit";
        if((*f[2] && !valid_date(f[2])) || (*f[3] && !valid_date(f[3])))
            return "a period date is not YYYY-MM-DD";
        if(*f[4] && strcmp(f[4], "payer") && strcmp(f[4], "claims") && strcmp(f[4], "attestation") &&
           strcmp(f[4], "feed"))
            return "source must be payer, claims, attestation or feed";
        return NULL;
    case F_OPTOUT:
        if(!pa_fhir_id_valid(f[0]))
            return "patient_id is not a FHIR id";
        if(strcmp(f[1], "global") && strcmp(f[1], "provider-specific"))
            return "scope must be global or provider-specific";
        if(!strcmp(f[1], "global") != !*f[2])
            return "a global opt-out names no npi; a provider-specific one names one";
        if(*f[2] && !pa_npi_valid(f[2]))
            return "npi fails its check digit";
        if(!valid_date(f[3]))
            return "period_start is required, as YYYY-MM-DD";
        if(*f[4] && !valid_date(f[4]))
            return "period_end is not YYYY-MM-DD";
        return NULL;
    case F_PROVIDER:
        if(!pa_npi_valid(f[0]))
            return "npi fails its check digit";
        if(strcmp(f[1], "practitioner") && strcmp(f[1], "organization"))
            return "kind must be practitioner or organization";
        if(strcmp(f[3], "true") && strcmp(f[3], "false"))
            return "in_network must be true or false";
        if((*f[4] && !valid_date(f[4])) || (*f[5] && !valid_date(f[5])))
            return "a network date is not YYYY-MM-DD";
        return NULL;
    default: return "unknown feed";
    }
}

int load_csv(load_ctx *l, const char *file, pa_err *err)
{
    gzFile gz = gzopen(file, "rb");
    char line[LINE_MAX_BYTES];
    pa_buf cols[MAX_FIELDS];
    const char *values[MAX_FIELDS];
    enum feed kind = F_COUNT;
    long lineno = 0, rows = 0;
    int i, n;
    int rc = PA_OK;

    for(i = 0; i < MAX_FIELDS; i++) {
        pa_buf_init(&cols[i], COL_MAX);
        pa_buf_addstr(&cols[i], "{");
    }
    if(!gz) {
        rc = pa_err_set(err, PA_EIO, "cannot read %s: %s", file, strerror(errno));
        goto out;
    }
    while(gzgets(gz, line, sizeof(line))) {
        char *f[MAX_FIELDS];
        const char *why;
        size_t len = strlen(line);

        lineno++;
        if(len == sizeof(line) - 1 && line[len - 1] != '\n') {
            load_report(l, file, lineno, "longer than %d bytes", LINE_MAX_BYTES);
            while(gzgets(gz, line, sizeof(line)) && line[strlen(line) - 1] != '\n')
                ;
            continue;
        }
        while(len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if(lineno == 1) {
            for(i = 0; i < F_COUNT; i++)
                if(!strcmp(line, headers[i]))
                    kind = (enum feed)i;
            if(kind == F_COUNT) {
                load_report(l, file, lineno,
                            "not a known feed: the header must be one of the four in "
                            "docs/LOADING.md");
                goto out;
            }
            continue;
        }
        if(!len)
            continue;
        n = split_csv(line, f, MAX_FIELDS);
        if(n != nfields[kind]) {
            load_report(l, file, lineno, "expected %d fields, found %d", nfields[kind], n < 0 ? 0 : n);
            continue;
        }
        why = check_row(kind, f);
        if(why) {
            load_report(l, file, lineno, "%s", why);
            continue;
        }
        for(i = 0; !rc && i < n; i++) {
            /* empty dates are NULL; an empty TRL source is a feed's */
            int is_date = (kind == F_ROSTER && i >= 5) || (kind == F_TRL && (i == 2 || i == 3)) ||
                          (kind == F_OPTOUT && (i == 3 || i == 4)) || (kind == F_PROVIDER && i >= 4);
            const char *v = kind == F_TRL && i == 4 && !*f[i] ? "feed" : f[i];

            rc = pa_pgarray_add(&cols[i], is_date && !*v ? NULL : v);
        }
        if(rc) {
            rc = pa_err_set(err, PA_ETOOBIG, "%s is too large for one feed", file);
            goto out;
        }
        rows++;
    }
    if(kind == F_COUNT || rows == 0)
        goto out;
    for(i = 0; i < nfields[kind]; i++) {
        pa_buf_addstr(&cols[i], "}");
        values[i] = pa_buf_str(&cols[i]);
    }
    rc = pa_db_exec(l->db, err, "BEGIN");
    if(!rc)
        rc = pa_db_exec_params(l->db, err, feed_sql[kind], nfields[kind], values);
    if(!rc)
        rc = pa_db_exec(l->db, err, "COMMIT");
    if(rc) {
        pa_db_exec(l->db, NULL, "ROLLBACK");
        load_report(l, file, 1, "the feed was not stored: %s", err->msg);
        rc = PA_OK;
    }
    else {
        l->feed_rows += rows;
    }
out:
    if(gz)
        gzclose(gz);
    for(i = 0; i < MAX_FIELDS; i++)
        pa_buf_free(&cols[i]);
    return rc;
}
