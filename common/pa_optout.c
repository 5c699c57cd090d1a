#include "pa_optout.h"

#include <stdlib.h>

#include "pa_db.h"

int pa_optout_set(PGconn *db, const char *patient, const char *npis, int deny, const char *start, const char *end,
                  const char *reason, long *member, long *changed, pa_err *err)
{
    const char *values[6] = { patient, npis, start, end, reason, deny ? "true" : "false" };
    PGresult *res;

    res = pa_db_query(db, err,
                      "WITH m AS (SELECT patient_id FROM member WHERE patient_id = $1),"
                      " n AS (SELECT unnest($2::text[]) AS npi UNION ALL SELECT '' WHERE cardinality($2::text[]) = 0),"
                      " ins AS (INSERT INTO opt_out (patient_id, scope, npi, period_start, period_end, reason)"
                      "  SELECT m.patient_id, CASE WHEN n.npi = '' THEN 'global' ELSE 'provider-specific' END, n.npi,"
                      "   coalesce($3::date, current_date), $4::date, $5 FROM m, n WHERE $6::bool"
                      "  ON CONFLICT (patient_id, scope, npi, period_start) DO UPDATE SET period_end = EXCLUDED.period_end,"
                      "   reason = EXCLUDED.reason, revoked = false RETURNING 1),"
                      " rev AS (UPDATE opt_out o SET revoked = true FROM m, n WHERE NOT $6::bool AND o.patient_id = m.patient_id"
                      "  AND o.npi = n.npi AND NOT o.revoked RETURNING 1) "
                      "SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM ins) + (SELECT count(*) FROM rev)",
                      6, values);
    if(!res)
        return err->code;
    *member = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    *changed = strtol(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    return PA_OK;
}
