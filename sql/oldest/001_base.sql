-- 001: the base schema: payer resources, rosters, and durable job records.
-- Applied by `pa-admin migrate`, which records the version in schema_version.

CREATE TABLE schema_version (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Every FHIR resource the API serves, as the exact compact JSON line export writes.
CREATE TABLE resource (
    type         text NOT NULL,
    id           text NOT NULL,
    patient_id   text,                  -- owning patient (compartment), NULL for shared resources
    last_updated timestamptz NOT NULL,
    json         text NOT NULL,
    PRIMARY KEY (type, id)
);
CREATE INDEX resource_patient_type ON resource (patient_id, type, last_updated)
    WHERE patient_id IS NOT NULL;

-- Attribution rosters (PDex provider Groups) and their members.
CREATE TABLE roster (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    npi        text,
    org_npi    text,
    status     text NOT NULL DEFAULT 'open' CHECK (status IN ('draft', 'open', 'final')),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE roster_member (
    roster_id    text NOT NULL REFERENCES roster (id) ON DELETE CASCADE,
    patient_id   text NOT NULL,
    period_start date,
    period_end   date,
    PRIMARY KEY (roster_id, patient_id)
);

-- The durable record of every asynchronous job; Redis holds the live state.
CREATE TABLE job (
    id               text PRIMARY KEY,
    kind             text NOT NULL,
    owner            text NOT NULL,
    state            text NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'expired')),
    request          text NOT NULL,
    params           jsonb NOT NULL,
    transaction_time timestamptz NOT NULL,
    manifest         jsonb,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX job_open ON job (created_at) WHERE state IN ('queued', 'running');
CREATE INDEX job_owner ON job (owner, created_at);
