-- 003: audit events reach the table in batches from the Redis audit stream
-- (common/pa_audit.c).  An event is its arrival time and request id: a batch
-- stored twice, after a drainer died between storing and acknowledging it,
-- is stored once.
DROP INDEX audit_event_at;
CREATE UNIQUE INDEX audit_event_at_request ON audit_event (at, request_id);
