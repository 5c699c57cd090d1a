#include "pa_optout.h"

#include <stdlib.h>

#include "pa_db.h"

int pa_optout_set(PGconn *db, const char *patient, const char *npis, int deny, const char *start, const char *end,
                  const char *reason, long *member, long *changed, pa_err *err)
{
    const char *values[6] = { patient, npis, start, end, reason, deny ? "true" : "false" };
    PGresult *res;

    /* A deny is an opt-out row; a permit is a record of its own that
     * overrides the earlier opt-outs it concerns (PA_SQL_OPTED_OUT).  The
     * count of a permit is the opt-outs in force it ends. */
    res = pa_db_query(
        db, err,
        "WITH m AS (SELECT patient_id FROM member WHERE patient_id = $1),"
        " n AS (SELECT unnest($2::text[]) AS npi UNION ALL SELECT '' WHERE cardinality($2::text[]) = 0),"
        " ins AS (INSERT INTO opt_out (patient_id, scope, npi, period_start, period_end, reason)"
        "  SELECT m.patient_id, CASE WHEN n.npi = '' THEN 'global' ELSE 'provider-specific' END, n.npi,"
        "   coalesce($3::date, current_date), $4::date, $5 FROM m, n WHERE $6::bool"
        "  ON CONFLICT (patient_id, scope, npi, period_start) DO UPDATE SET period_end = EXCLUDED.period_end,"
        "   reason = EXCLUDED.reason, revoked = false, recorded_at = now() RETURNING 1),"
        " rev AS (SELECT 1 FROM opt_out o, m WHERE NOT $6::bool AND o.patient_id = m.patient_id"
        "  AND (cardinality($2::text[]) = 0 OR o.npi = ANY($2::text[]) OR o.scope = 'global')"
        "  AND " PA_SQL_OPTOUT_IN_FORCE(
            "o", "''",
            "''") "),"
                  " prm AS (INSERT INTO opt_in (patient_id, npi, period_start)"
                  "  SELECT m.patient_id, n.npi, coalesce($3::date, current_date) FROM m, n WHERE NOT $6::bool"
                  "  ON CONFLICT (patient_id, npi, period_start) DO UPDATE SET recorded_at = now() RETURNING 1) "
                  "SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM ins) + (SELECT count(*) FROM rev)"
                  " + 0 * (SELECT count(*) FROM prm)",
        6, values);
    if(!res)
        return err->code;
    *member = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    *changed = strtol(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    return PA_OK;
}
