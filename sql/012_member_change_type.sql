-- 012: each roster member's ATR changeType (new, changed, nochange, dropped,
-- cancelled) relative to the roster's previous version, served on
-- Group.member.  A member who is no longer attributed stays listed, inactive
-- and dropped, until the next version leaves it out again.
ALTER TABLE roster_member ADD COLUMN IF NOT EXISTS change_type text NOT NULL DEFAULT 'nochange'
    CHECK (change_type IN ('new', 'changed', 'nochange', 'dropped', 'cancelled'));
UPDATE roster_member SET change_type = 'dropped' WHERE inactive AND change_type = 'nochange';

-- Replaces roster rid's members with the arrays given (patient, period start
-- and end, inactive, and the changeType the source stated, NULL: computed
-- from what the roster held): a member absent from them is dropped (kept
-- inactive), one dropped before and still absent goes.
CREATE OR REPLACE FUNCTION pa_roster_replace(rid text, p text[], s date[], e date[], i boolean[], c text[])
RETURNS void LANGUAGE sql AS $$
    DELETE FROM roster_member m WHERE m.roster_id = rid AND m.inactive AND m.change_type IN ('dropped', 'cancelled')
        AND NOT EXISTS (SELECT 1 FROM unnest(p) x WHERE x = m.patient_id);
    UPDATE roster_member m SET inactive = true, change_type = 'dropped',
        period_end = least(coalesce(m.period_end, current_date), current_date)
        WHERE m.roster_id = rid AND NOT EXISTS (SELECT 1 FROM unnest(p) x WHERE x = m.patient_id);
    UPDATE roster_member m SET period_start = n.s, period_end = n.e, inactive = n.i,
        change_type = coalesce(n.c, CASE WHEN n.i AND NOT m.inactive THEN 'dropped'
            WHEN (m.period_start, m.period_end, m.inactive) IS DISTINCT FROM (n.s, n.e, n.i) THEN 'changed'
            ELSE 'nochange' END)
        FROM (SELECT DISTINCT ON (t.p) t.* FROM unnest(p, s, e, i, c) AS t(p, s, e, i, c) ORDER BY t.p) n
        WHERE m.roster_id = rid AND m.patient_id = n.p;
    INSERT INTO roster_member (roster_id, patient_id, period_start, period_end, inactive, change_type)
        SELECT rid, n.p, n.s, n.e, n.i, coalesce(n.c, CASE WHEN n.i THEN 'dropped' ELSE 'new' END)
        FROM (SELECT DISTINCT ON (t.p) t.* FROM unnest(p, s, e, i, c) AS t(p, s, e, i, c) ORDER BY t.p) n
        WHERE NOT EXISTS (SELECT 1 FROM roster_member m WHERE m.roster_id = rid AND m.patient_id = n.p);
$$;
