/*
 * The members an export covers, as SQL (members.h).
 */
#include "members.h"

#include <stdio.h>
#include <string.h>

#include "pa_db.h"
#include "pa_err.h"
#include "pa_optout.h"
#include "pa_roster.h"

void sql_query_init(struct sql_query *q, const char *const *values, int n)
{
    int i;

    pa_buf_init(&q->sql, 64 * 1024);
    for(i = 0; i < n && i < MEMBERS_MAX_VALUES; i++)
        q->values[i] = values[i];
    q->n = i;
}

void sql_query_free(struct sql_query *q)
{
    if(!q)
        return;
    pa_buf_free(&q->sql);
}

/* Takes a new value; its k for "$k", 0 when there are too many. */
static int bind_value(struct sql_query *q, const char *value)
{
    if(q->n == MEMBERS_MAX_VALUES)
        return 0;
    q->values[q->n++] = value;
    return q->n;
}

int sql_query_value(struct sql_query *q, const char *value)
{
    int k = bind_value(q, value);

    return k ? pa_buf_printf(&q->sql, "$%d", k) : PA_ETOOBIG;
}

static int add(struct sql_query *q, const char *text)
{
    return pa_buf_addstr(&q->sql, text);
}

/* Appends text, an SQL predicate that names the client's NPI as @NPI@ and
 * its organization's as @ORG@ (as often as it likes), each bound now to a
 * placeholder of its own. */
static int add_for_client(const struct member_scope *s, struct sql_query *q, const char *text)
{
    char npi[16], org[16];
    const char *p = text;
    int k1 = bind_value(q, s->npi), k2 = bind_value(q, s->org_npi);
    int rc = k1 && k2 ? PA_OK : PA_ETOOBIG;

    snprintf(npi, sizeof(npi), "$%d", k1);
    snprintf(org, sizeof(org), "$%d", k2);
    while(!rc && *p) {
        const char *at = strchr(p, '@');
        size_t n = at ? (size_t)(at - p) : strlen(p);

        rc = pa_buf_add(&q->sql, p, n);
        p += n;
        if(!rc && at) {
            int is_npi = !strncmp(at, "@NPI@", 5);

            rc = pa_buf_addstr(&q->sql, is_npi ? npi : org);
            p += 5;
        }
    }
    return rc;
}

/* The scope's patients, before the subset and the opt-outs. */
static int universe(const struct member_scope *s, struct sql_query *q)
{
    int rc;

    switch(s->level) {
    case MEMBERS_GROUP:
        rc = add(
            q, "SELECT patient_id FROM roster_member rm WHERE " PA_SQL_ROSTER_MEMBER_ACTIVE("rm") " AND roster_id = ");
        rc = rc ? rc : sql_query_value(q, s->group);
        rc = rc ? rc : add(q, " UNION ALL SELECT patient_id FROM matched_group_member WHERE group_id = ");
        rc = rc ? rc : sql_query_value(q, s->group);
        rc = rc ? rc : add(q, " AND EXISTS (SELECT 1 FROM matched_group g WHERE g.id = ");
        rc = rc ? rc : sql_query_value(q, s->group);
        return rc ? rc : add(q, " AND g.expires_at > now())");
    case MEMBERS_CLIENT:
        /* the rosters attributed to the client's NPI or its organization's, as
         * a Group search shows them */
        rc = add(
            q,
            "SELECT rm.patient_id FROM roster r JOIN roster_member rm ON rm.roster_id = r.id WHERE " PA_SQL_ROSTER_MEMBER_ACTIVE(
                "rm") " AND ");
        rc = rc ? rc : add_for_client(s, q, PA_SQL_ROSTER_VISIBLE("r", "@NPI@", "@ORG@", "false"));
        rc = rc ? rc
                : add(q, " UNION ALL SELECT gm.patient_id FROM matched_group g"
                         " JOIN matched_group_member gm ON gm.group_id = g.id WHERE g.expires_at > now()"
                         " AND g.client_id = ");
        return rc ? rc : sql_query_value(q, s->client);
    case MEMBERS_ALL: return add(q, "SELECT id AS patient_id FROM resource WHERE type = 'Patient'");
    }
    return PA_EINVAL;
}

int members_query(const struct member_scope *s, enum member_optout optout, struct sql_query *q)
{
    int rc = add(q, "SELECT m.patient_id FROM (");

    rc = rc ? rc : universe(s, q);
    rc = rc ? rc : add(q, ") m WHERE true");
    if(!rc && s->subset) {
        rc = add(q, " AND m.patient_id = ANY(");
        rc = rc ? rc : sql_query_value(q, s->subset);
        rc = rc ? rc : add(q, "::text[])");
    }
    if(!rc && optout != MEMBERS_ANY) {
        rc = add(q, optout == MEMBERS_OPTED_OUT ? " AND " : " AND NOT ");
        rc = rc ? rc : add_for_client(s, q, PA_SQL_OPTED_OUT("m.patient_id", "@NPI@", "@ORG@"));
    }
    return rc;
}

int member_level_parse(const char *level, enum member_level *out)
{
    if(!level || !*level || !strcmp(level, "group"))
        *out = MEMBERS_GROUP;
    else if(!strcmp(level, "client"))
        *out = MEMBERS_CLIENT;
    else if(!strcmp(level, "all"))
        *out = MEMBERS_ALL;
    else
        return PA_EINVAL;
    return PA_OK;
}
