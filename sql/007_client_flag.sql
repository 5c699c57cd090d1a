-- 007: a client flagged by the member-match enumeration guard (pa_guard):
-- when it first spent its budget of unmatched members, and why.  Shown by
-- pa-admin client list; cleared by pa-admin client unflag.
ALTER TABLE client ADD COLUMN flagged_at timestamptz, ADD COLUMN flag_reason text;
