-- pa-admin sync: per source (a FHIR server named in the configuration), the
-- transactionTime of its last complete sync, which the next asks _since, and
-- the sync under way: its status URL, its manifest once it came, and the
-- files of it already loaded, so that an interrupted sync resumes without
-- loading a file twice.  transaction_time moves only once every file of a
-- sync is loaded: nothing half-loaded is recorded as synced.
CREATE TABLE IF NOT EXISTS sync_source (
    name text PRIMARY KEY,
    transaction_time timestamptz,
    synced_at timestamptz,
    status_url text,
    since timestamptz,
    started_at timestamptz,
    manifest jsonb,
    files_loaded int[] NOT NULL DEFAULT '{}'
);
