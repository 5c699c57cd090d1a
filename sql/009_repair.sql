-- 009: brings up to date a database made before three changes that were
-- made, wrongly, by editing 002 after it had been applied: the audit event's
-- refusal reason (audit_event.detail), the provider-download records
-- (download_record) and lz4 compression of the stored JSON.  On a database
-- that has them, nothing changes.  An applied migration is never edited
-- again: pa-admin migrate records each one with its checksum (the SHA-256 of
-- the file) and refuses a database whose recorded checksums differ from the
-- files, as pa-admin check does.
ALTER TABLE audit_event ADD COLUMN IF NOT EXISTS detail text;
CREATE TABLE IF NOT EXISTS download_record (
    job_id     text NOT NULL,
    patient_id text NOT NULL,
    client_id  text NOT NULL,
    group_id   text NOT NULL,
    at         timestamptz NOT NULL,
    types      text NOT NULL,
    filters    text NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, patient_id)
);
CREATE INDEX IF NOT EXISTS download_record_client ON download_record (client_id, at);
CREATE INDEX IF NOT EXISTS download_record_member ON download_record (group_id, patient_id, client_id, at);
ALTER TABLE resource ALTER COLUMN json SET COMPRESSION lz4,
                     ALTER COLUMN json_nonfin SET COMPRESSION lz4;
ALTER TABLE schema_version ADD COLUMN IF NOT EXISTS checksum text;
