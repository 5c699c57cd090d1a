/*
 * The export's queries, built once per job (export.h): one per compartment
 * type, the tombstones, and the references a chunk's resources make, with the
 * service-date floor's rule for each type.
 */
#include "export.h"

#include <json-c/json.h>
#include <string.h>

#include "pa_filter.h"
#include "pa_pgarray.h"

/*
 * The service-date floor, one rule per type (docs/EXPORT.md has the table):
 * FLOOR_SERVICE leaves a resource out when the end of its service (else its
 * start, else its created date) is before the floor, and exports one with no
 * date; FLOOR_ENDED leaves it out only when it ended before the floor: an
 * ongoing one is exported whenever it began.  A type not listed is undated.
 */
enum floor_rule { FLOOR_NONE, FLOOR_SERVICE, FLOOR_ENDED };

static const struct {
    const char *type;
    enum floor_rule rule;
} floor_rules[] = {
    { "ExplanationOfBenefit", FLOOR_SERVICE },
    { "Encounter", FLOOR_SERVICE },
    { "Procedure", FLOOR_SERVICE },
    { "Immunization", FLOOR_SERVICE },
    { "Observation", FLOOR_SERVICE },
    { "DiagnosticReport", FLOOR_SERVICE },
    { "MedicationRequest", FLOOR_SERVICE },
    { "DocumentReference", FLOOR_SERVICE },
    { "MedicationDispense", FLOOR_SERVICE },
    { "ServiceRequest", FLOOR_SERVICE },
    { "Specimen", FLOOR_SERVICE },
    { "QuestionnaireResponse", FLOOR_SERVICE },
    { "Condition", FLOOR_ENDED },
    { "CarePlan", FLOOR_ENDED },
    { "CareTeam", FLOOR_ENDED },
    { "Coverage", FLOOR_ENDED },
};

/* The date each rule compares, of alias X's row. */
#define SERVICE_DATE(X) "coalesce(" X "clin_end, " X "clin_start, " X "created)"
#define ENDED_DATE(X) X "clin_end"
/* A row's line: non-financial unless the client may see claims' amounts ($7). */
#define LINE "CASE WHEN $7::bool THEN json ELSE coalesce(json_nonfin, json) END"

static enum floor_rule floor_rule(const char *type)
{
    size_t i;

    for(i = 0; i < sizeof(floor_rules) / sizeof(floor_rules[0]); i++)
        if(!strcmp(floor_rules[i].type, type))
            return floor_rules[i].rule;
    return FLOOR_NONE;
}

/*
 * The query of one compartment type for a chunk of members: $1 the members,
 * $2 the type, $3 transactionTime, $4 _since, $5 _until, $6 the service-date
 * floor, $7 financial, then the _typeFilter values.
 */
int export_type_sql(struct export *x, struct type_out *t, json_object *filters, pa_err *err)
{
    const char *floor = x->w->cfg->service_date_floor;
    json_object *queries = NULL;
    const char *date;
    char keeps[160];
    int nf = 0;
    int rc;

    t->values[0] = NULL; /* the members, set per chunk */
    t->values[1] = t->type;
    t->values[2] = x->ttime;
    t->values[3] = x->since[0] ? x->since : NULL;
    t->values[4] = x->until[0] ? x->until : NULL;
    t->values[5] = *floor && floor_rule(t->type) != FLOOR_NONE ? floor : NULL;
    t->values[6] = x->financial ? "true" : "false";
    /* Member by member, in the chunk's order, each one's rows by id: the
     * output order is fixed (a resumed job writes what an uninterrupted one
     * would) without sorting the chunk, and no selectivity is estimated per
     * member id when the statement is planned.  When the chunk's references
     * are gathered, each row brings its own (take_row in export.c): its tokens,
     * its refs with a floor, and a row the floor leaves out comes as its id
     * alone, so that no second pass reads the chunk's rows again. */
    date = floor_rule(t->type) == FLOOR_ENDED ? ENDED_DATE("") : SERVICE_DATE("");
    snprintf(keeps, sizeof(keeps), "($6::date IS NULL OR %s IS NULL OR %s >= $6::date)", date, date);
    if(x->gather_refs)
        rc = pa_buf_printf(&t->sql,
                           "SELECT r.line, r.tokens, r.refs, r.id FROM unnest($1::text[]) m(pid), LATERAL (SELECT"
                           " CASE WHEN %s THEN " LINE " END line, CASE WHEN %s THEN tokens END tokens,"
                           " %s%s%s refs, id FROM resource WHERE type = $2",
                           keeps, keeps, *floor ? "CASE WHEN " : "", *floor ? keeps : "NULL::text[]",
                           *floor ? " THEN refs END" : "");
    else
        rc = pa_buf_printf(&t->sql,
                           "SELECT r.line FROM unnest($1::text[]) m(pid), LATERAL (SELECT " LINE " line"
                           " FROM resource WHERE type = $2 AND %s",
                           keeps);
    rc = rc ? rc
            : pa_buf_addstr(&t->sql, " AND last_updated <= $3::timestamptz"
                                     " AND ($4::timestamptz IS NULL OR last_updated > $4::timestamptz)"
                                     " AND ($5::timestamptz IS NULL OR last_updated < $5::timestamptz)");
    if(!rc)
        /* the Patient resource is the member itself; every other type is in its compartment */
        rc = pa_buf_addstr(&t->sql, strcmp(t->type, "Patient") ? " AND patient_id = m.pid" : " AND id = m.pid");
    json_object_object_get_ex(filters, t->type, &queries);
    if(!rc)
        rc = pa_filter_sql(queries, &t->sql, 8, t->values + 7, &nf, MAX_SQL_VALUES - 7);
    if(!rc)
        rc = pa_buf_addstr(&t->sql, " ORDER BY id) r");
    t->nvalues = 7 + nf;
    return rc ? pa_err_set(err, PA_ETOOBIG, "the %s filters are too large", t->type) : PA_OK;
}

/* The members' tombstones since _since, one transaction Bundle a line. */
int export_deleted_sql(struct export *x, struct type_out *t, json_object *types)
{
    t->values[0] = NULL;
    t->values[1] = json_object_to_json_string_ext(types, JSON_C_TO_STRING_PLAIN);
    t->values[2] = x->since;
    t->values[3] = x->ttime;
    t->nvalues = 4;
    return pa_buf_addstr(
        &t->sql, "SELECT json_build_object('resourceType', 'Bundle', 'type', 'transaction', 'entry',"
                 " json_build_array(json_build_object('request', json_build_object('method', 'DELETE',"
                 " 'url', type || '/' || id))))::text FROM resource_deleted "
                 "WHERE patient_id = ANY($1::text[]) AND type IN (SELECT jsonb_array_elements_text($2::jsonb))"
                 " AND deleted_at > $3::timestamptz AND deleted_at <= $4::timestamptz ORDER BY patient_id, type, id");
}

/*
 * The references a chunk's members' exported resources make, stored with
 * the job (export_ref): to the shared resources (their "ref=Type/id"
 * tokens), which the shared pass at the end reads and nothing else; and (as
 * type "!", id the reference "Type/id", from their refs) to a resource of the
 * same members, of an exported type, that the service-date floor leaves out,
 * which the error file names.  The chunk's rows bring them (take_row in export.c)
 * into a set of strings, sent here as $1: "ref=Type/id" tokens, "Type/id"
 * refs and "!Type/id" for a row the floor left out.  A Type/id that is both
 * plain and with "!" is a resource the floor left out that an exported one
 * references.  A set grown too large before its chunk ends is sent early
 * ($5 false): its plain and "!" strings wait in export_ref as types "+" and
 * "-" followed by the unit's key ($4), which the chunk's last sending ($5
 * true) takes back and matches with its own.  Idempotent: a chunk done again
 * adds nothing.  The rows go in key order: the parts of one job, on several
 * workers, store the same shared references at once, and rows inserted in
 * each one's own order made their statements deadlock (a part then failed,
 * and its export waited a minute for another worker to take it over).
 */
static int build_refs_sql(struct export *x, struct type_out *t)
{
    t->values[0] = NULL; /* the strings, set per sending */
    t->values[1] = x->job->id;
    t->values[2] = pa_buf_str(&x->shared);
    t->values[3] = x->unit_key;
    t->values[4] = NULL; /* final or not, set per sending */
    t->nvalues = 5;
    return pa_buf_addstr(&t->sql,
                         "WITH r AS (SELECT unnest($1::text[]) t),"
                         " waited AS (DELETE FROM export_ref WHERE $5::bool AND job_id = $2"
                         "  AND type IN ('+' || $4, '-' || $4) RETURNING type, id)"
                         " INSERT INTO export_ref (job_id, type, id) SELECT $2, type, id FROM ("
                         " SELECT split_part(t, '/', 1) AS type, substr(t, strpos(t, '/') + 1) AS id"
                         "  FROM (SELECT substr(t, 5) AS t FROM r WHERE t LIKE 'ref=%') s"
                         "  WHERE split_part(t, '/', 1) = ANY($3::text[])"
                         " UNION ALL SELECT CASE WHEN t LIKE '!%' THEN '-' ELSE '+' END || $4, ltrim(t, '!')"
                         "  FROM r WHERE NOT $5::bool AND t NOT LIKE 'ref=%'"
                         " UNION ALL SELECT '!', ref FROM (SELECT ltrim(t, '!') AS ref, t LIKE '!%' AS left_out"
                         "  FROM r WHERE $5::bool AND t NOT LIKE 'ref=%'"
                         "  UNION ALL SELECT id, type LIKE '-%' FROM waited) c"
                         "  GROUP BY ref HAVING bool_or(left_out) AND bool_or(NOT left_out)"
                         ") u ORDER BY type, id ON CONFLICT DO NOTHING");
}

/* The array literal of the shared types exported, whether the rows bring
 * their references, and the statement that stores them. */
int export_refs_setup(struct export *x, pa_err *err)
{
    int compartment = 0;
    size_t k;
    int rc;

    pa_buf_init(&x->shared, 1024);
    rc = pa_buf_addstr(&x->shared, "{");
    for(k = 0; k < x->nout && !rc; k++) {
        if(x->out[k].kind == OUT_RESOURCE)
            compartment = 1;
        else if(x->out[k].kind == OUT_SHARED) {
            rc = pa_pgarray_add(&x->shared, x->out[k].type);
            x->want_refs = 1;
        }
    }
    rc = rc || pa_buf_addstr(&x->shared, "}");
    /* the whole directory needs no references */
    if(x->shared_all)
        x->want_refs = 0;
    /* with a floor, references to what it leaves out are named */
    x->gather_refs = x->want_refs || (*x->w->cfg->service_date_floor && compartment);
    if(!rc && x->gather_refs)
        rc = build_refs_sql(x, &x->refs);
    return rc ? pa_err_set(err, PA_ETOOBIG, "too many types") : PA_OK;
}
