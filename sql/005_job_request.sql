-- 005: the request that started a job.  A failed job tells its client only
-- what failed, in words meant for it, and which request to quote; the
-- operator finds the details (PostgreSQL's message, paths) in the log under
-- that request id and under the job id.
ALTER TABLE job ADD COLUMN request_id text;
