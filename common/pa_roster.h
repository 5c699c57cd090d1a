/*
 * pa_roster: what a roster (an attribution Group the payer keeps for a
 * provider) means in SQL, said once for the responders, the runner and the
 * loader: which rosters a client sees, which of their members are active,
 * and how a member added again has changed.
 */
#ifndef PA_ROSTER_H
#define PA_ROSTER_H

/* SQL: the roster_member row M is active today: not dropped, and today in
 * its period (an open end either side is no limit).  What a Group's quantity
 * counts and what an export of it covers. */
/* clang-format off */
#define PA_SQL_ROSTER_MEMBER_ACTIVE(M)                                                                     \
    "(NOT " M ".inactive AND (" M ".period_start IS NULL OR " M ".period_start <= current_date)"           \
    " AND (" M ".period_end IS NULL OR " M ".period_end >= current_date))"
/* clang-format on */

/* SQL: roster R is visible to a client: attributed to its provider NPI or
 * its organization's ORG (text expressions, '' for none), or ADMIN (a bool
 * expression: the payer's admin clients see every roster).  A roster a
 * client may not see does not exist for it (404, never 403). */
/* clang-format off */
#define PA_SQL_ROSTER_VISIBLE(R, NPI, ORG, ADMIN)                                                          \
    "(" ADMIN " OR " R ".npi IN (nullif(" NPI ", ''), nullif(" ORG ", ''))"                               \
    " OR " R ".org_npi IN (nullif(" NPI ", ''), nullif(" ORG ", '')))"
/* clang-format on */

/* SQL: the ATR changeType of a roster member that an INSERT ... ON CONFLICT DO
 * UPDATE adds again, T its row as it was: a member dropped before is new
 * again, one whose period moves changed. */
/* clang-format off */
#define PA_SQL_ROSTER_MEMBER_CHANGE(T)                                                                      \
    "CASE WHEN " T ".inactive THEN 'new' WHEN (" T ".period_start, " T ".period_end) IS DISTINCT FROM"  \
    " (EXCLUDED.period_start, EXCLUDED.period_end) THEN 'changed' ELSE 'nochange' END"
/* clang-format on */

#endif
