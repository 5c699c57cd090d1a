-- 008: who received what about whom.  Every member-match answers, for each
-- member submitted, matched / non-matched (with its reason code) /
-- consent-constrained; every export, for each member of its Group, exported
-- (with the types and _since/_until asked) or withheld (an opt-out honoured).
-- One row per member and request, written when the answer or the files are
-- ready, never changed or removed by the service (HIPAA keeps an accounting of
-- disclosures for six years): docs/OPERATIONS.md says how an operator purges
-- rows past their retention.  pa-admin disclosures and pa-admin report read
-- it; pa-admin audit --export turns it into AuditEvents.
CREATE TABLE disclosure (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    client_id   text NOT NULL,
    npi         text,                 -- the client's NPI when it asked
    operation   text NOT NULL CHECK (operation IN ('member-match', 'export')),
    request_id  text,                 -- the request (a job's kick-off)
    job_id      text,                 -- the export or asynchronous match; NULL for a synchronous match
    group_id    text,                 -- the Group exported, or the Matched Group the match made
    entry       integer,              -- member-match: the MemberBundle's place in the request, from 1
    submitted   text,                 -- member-match: the provider's own Patient id, as sent
    patient_id  text,                 -- the payer's member; NULL when no member was identified
    outcome     text NOT NULL CHECK (outcome IN ('matched', 'non-matched', 'consent-constrained',
                                                 'exported', 'withheld')),
    reason      text,                 -- the reason code (docs/MATCH.md); 'opted-out' for withheld
    types       text,                 -- export: _type as asked ('' = every type)
    type_filter text,                 -- export: _typeFilter as asked
    since       timestamptz,          -- export: _since
    until       timestamptz           -- export: _until
);
-- a job done again (a retried attempt, a resumed runner) records nothing twice
CREATE UNIQUE INDEX disclosure_job_member ON disclosure (job_id, patient_id) WHERE operation = 'export';
CREATE UNIQUE INDEX disclosure_job_entry ON disclosure (job_id, entry) WHERE operation = 'member-match' AND job_id IS NOT NULL;
CREATE INDEX disclosure_patient ON disclosure (patient_id, at);
CREATE INDEX disclosure_client ON disclosure (client_id, at);
-- rows arrive in time order: a BRIN index finds a period for almost nothing to keep up
CREATE INDEX disclosure_at ON disclosure USING brin (at);

-- Append-only, for everyone but an operator who disables the trigger on purpose.
CREATE FUNCTION disclosure_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'disclosure records are append-only (%)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER disclosure_append_only BEFORE UPDATE OR DELETE ON disclosure
    FOR EACH ROW EXECUTE FUNCTION disclosure_append_only();
CREATE TRIGGER disclosure_no_truncate BEFORE TRUNCATE ON disclosure
    FOR EACH STATEMENT EXECUTE FUNCTION disclosure_append_only();

-- The members an export has written so far, chunk by chunk (jobs/export.c):
-- they become its disclosure records when its files are ready.  Rows live
-- while their job runs, like export_ref.
CREATE TABLE export_member (
    job_id     text NOT NULL,
    patient_id text NOT NULL,
    PRIMARY KEY (job_id, patient_id)
);
