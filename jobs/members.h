/*
 * The members an export covers, as SQL: the members of one Group (a Group
 * export), every patient a client may see (a provider's Patient- or
 * system-level export: the active members of the rosters attributed to it and
 * of the Matched Groups it made that have not expired), or every patient the
 * payer has (an admin client's Patient- or system-level export).
 *
 * The queries are built with their parameters, numbered as they are added:
 * a level needs other values than another, and PostgreSQL refuses a value no
 * placeholder uses.
 */
#ifndef PA_JOBS_MEMBERS_H
#define PA_JOBS_MEMBERS_H
#include "pa_buf.h"

#define MEMBERS_MAX_VALUES 32

enum member_level { MEMBERS_GROUP, MEMBERS_CLIENT, MEMBERS_ALL };

struct member_scope {
    enum member_level level;
    const char *group;   /* MEMBERS_GROUP */
    const char *client;  /* MEMBERS_CLIENT: its Matched Groups */
    const char *npi;     /* the client's NPI and its organization's ("" when none): */
    const char *org_npi; /* its rosters, and the opt-outs naming it */
    const char *subset;  /* a Postgres array literal of patient ids, NULL: all */
};

/* A statement and the values of its placeholders (borrowed strings). */
struct sql_query {
    pa_buf sql;
    const char *values[MEMBERS_MAX_VALUES];
    int n;
};

/* Starts q with the n values the caller's own text numbers $1..$n. */
void sql_query_init(struct sql_query *q, const char *const *values, int n);
void sql_query_free(struct sql_query *q);
/* Appends "$k" for a new value.  PA_ETOOBIG past MEMBERS_MAX_VALUES. */
int sql_query_value(struct sql_query *q, const char *value);

/* Which members, as an opt-out in force against the client decides. */
enum member_optout { MEMBERS_ANY, MEMBERS_NOT_OPTED_OUT, MEMBERS_OPTED_OUT };

/* Appends a SELECT of the scope's members' patient_id (column patient_id of
 * alias m, possibly repeated: a patient in two rosters), within the subset.
 * The caller may go on with " AND ...". */
int members_query(const struct member_scope *s, enum member_optout optout, struct sql_query *q);

/* Reads a job's level parameter ("group" when absent). */
int member_level_parse(const char *level, enum member_level *out);
#endif
