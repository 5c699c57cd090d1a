-- 002: the payer's data as the API serves it, the provider directory, and
-- the tables the authorization, matching and audit features use.

-- What queries need, extracted at load time (export never parses JSON).
ALTER TABLE resource
    ADD COLUMN json_nonfin  text,        -- ExplanationOfBenefit only: the CARIN BB non-financial form
    ADD COLUMN content_hash bytea,       -- SHA-256 of the resource as loaded: an unchanged reload changes nothing
    ADD COLUMN clin_start   timestamptz, -- service / clinical date (start)
    ADD COLUMN clin_end     timestamptz,
    ADD COLUMN created      timestamptz, -- ExplanationOfBenefit.created, MedicationRequest.authoredOn, ...
    ADD COLUMN tokens       text[] NOT NULL DEFAULT '{}'; -- "param=system|code" and "param=code"
CREATE INDEX resource_tokens ON resource USING gin (tokens);
CREATE INDEX resource_shared ON resource (type, last_updated) WHERE patient_id IS NULL;

-- A deleted resource leaves a tombstone so that _since exports can report it.
CREATE TABLE resource_deleted (
    type       text NOT NULL,
    id         text NOT NULL,
    patient_id text,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (type, id)
);
CREATE INDEX resource_deleted_patient ON resource_deleted (patient_id, type, deleted_at);

-- Members: the Patient demographics matching and listing need.
CREATE TABLE member (
    patient_id text PRIMARY KEY,
    family     text,
    given      text,          -- all given names, space-separated
    birth_date date,
    gender     text,
    member_id  text           -- the MB identifier, when the Patient carries one
);

-- Coverage: who is covered by which subscriber id, when.
CREATE TABLE coverage (
    coverage_id   text PRIMARY KEY,
    patient_id    text NOT NULL,
    subscriber_id text,
    member_id     text,        -- Coverage.identifier of type MB
    status        text,
    period_start  date,
    period_end    date,
    payor         text         -- Coverage.payor[0] reference or identifier value
);
CREATE INDEX coverage_patient ON coverage (patient_id);
CREATE INDEX coverage_subscriber ON coverage (subscriber_id);
CREATE INDEX coverage_member ON coverage (member_id);

-- The provider directory: every NPI the payer knows, and whether it is in network.
CREATE TABLE provider (
    npi           text PRIMARY KEY CHECK (npi ~ '^[0-9]{10}$'),
    kind          text NOT NULL CHECK (kind IN ('practitioner', 'organization')),
    name          text,
    resource_type text,
    resource_id   text,
    in_network    boolean NOT NULL DEFAULT false,
    network_start date,
    network_end   date,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_resource ON provider (resource_type, resource_id);

-- Registered clients of the API.
CREATE TABLE client (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    npi         text,
    org_npi     text,
    jwks        jsonb,
    jwks_url    text,
    secret_hash text,
    financial   boolean NOT NULL DEFAULT false,
    admin       boolean NOT NULL DEFAULT false,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Rosters keep the Group they were loaded from.
ALTER TABLE roster
    ADD COLUMN identifier_system text,
    ADD COLUMN identifier_value  text,
    ADD COLUMN json              text;
ALTER TABLE roster_member ADD COLUMN inactive boolean NOT NULL DEFAULT false;
CREATE INDEX roster_npi ON roster (npi);
CREATE INDEX roster_org_npi ON roster (org_npi);
CREATE INDEX roster_member_patient ON roster_member (patient_id);

-- Treatment relationships: member <-> provider NPI.
CREATE TABLE treatment_relationship (
    patient_id   text NOT NULL,
    npi          text NOT NULL CHECK (npi ~ '^[0-9]{10}$'),
    period_start date,
    period_end   date,
    source       text NOT NULL CHECK (source IN ('payer', 'claims', 'attestation', 'feed')),
    inactive     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (patient_id, npi, source)
);
CREATE INDEX treatment_relationship_npi ON treatment_relationship (npi);

-- Member opt-outs from Provider Access: global, or naming one provider.
CREATE TABLE opt_out (
    patient_id   text NOT NULL,
    scope        text NOT NULL CHECK (scope IN ('global', 'provider-specific')),
    npi          text NOT NULL DEFAULT '' CHECK (npi = '' OR npi ~ '^[0-9]{10}$'),
    period_start date NOT NULL,
    period_end   date,
    reason       text,
    revoked      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (patient_id, scope, npi, period_start),
    CHECK ((scope = 'global') = (npi = ''))
);

-- Groups made by $provider-member-match, owned by the client that asked.
CREATE TABLE matched_group (
    id         text PRIMARY KEY,
    client_id  text NOT NULL,
    npi        text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    json       text NOT NULL
);
CREATE TABLE matched_group_member (
    group_id   text NOT NULL REFERENCES matched_group (id) ON DELETE CASCADE,
    patient_id text NOT NULL,
    PRIMARY KEY (group_id, patient_id)
);

-- Every API request.
CREATE TABLE audit_event (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    request_id  text,
    client_id   text,
    npi         text,
    method      text,
    endpoint    text,
    operation   text,
    group_id    text,
    members     integer,
    job_id      text,
    outcome     text,
    status      integer,
    duration_ms integer
);
CREATE INDEX audit_event_client ON audit_event (client_id, at);
CREATE INDEX audit_event_at ON audit_event (at);
