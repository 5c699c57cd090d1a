-- 011: the shared resources (Organization, Practitioner, PractitionerRole,
-- Location) each client has received in full, recorded when an export's
-- files are ready.  A _since export sends a shared resource that one of its
-- resources references only when it changed after _since or the client has
-- never received it: a delta never re-sends the whole directory, and never
-- leaves a reference the client cannot resolve.  Rows are small and few (a
-- client's providers).
CREATE TABLE IF NOT EXISTS shared_received (
    client_id text NOT NULL,
    type      text NOT NULL,
    id        text NOT NULL,
    PRIMARY KEY (client_id, type, id)
);
