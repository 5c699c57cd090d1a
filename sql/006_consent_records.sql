-- 006: a member's Provider Access consent records as PDex reads them.  An
-- opt-out (a deny) stays a row of opt_out; a revocation (a permit, from
-- POST /Consent or pa-admin optout revoke) is now a record of its own in
-- opt_in instead of a flag on the opt-outs it revoked.  The latest record by
-- provision.period.start (then by when it was recorded) decides: an opt-out is
-- in force unless a permit for every provider, or for its provider, starts
-- after it, by today (PA_SQL_OPTED_OUT in common/pa_db.h; docs/MATCH.md).
ALTER TABLE opt_out ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT now();
CREATE TABLE opt_in (
    patient_id   text NOT NULL,
    npi          text NOT NULL DEFAULT '' CHECK (npi = '' OR npi ~ '^[0-9]{10}$'),  -- '': every provider
    period_start date NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, npi, period_start)
);
