-- 004: the shared resources (Organization, Practitioner, ...) an export's
-- members reference, gathered chunk by chunk while the members are exported
-- (jobs/export.c), so that writing them at the end reads only these rows
-- instead of every member's resources a second time.  Rows live while their
-- job runs; the worker removes them when the job ends.
CREATE TABLE export_ref (
    job_id text NOT NULL,
    type   text NOT NULL,
    id     text NOT NULL,
    PRIMARY KEY (job_id, type, id)
);
