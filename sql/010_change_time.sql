-- 010: resource.last_updated (and every stored resource's meta.lastUpdated)
-- becomes this server's own change time: when the loader stored content that
-- differs from what it had, never the source's meta.lastUpdated.  _since,
-- _until and an export's transactionTime compare it, so a delta export
-- misses nothing: not a resource loaded late with an old lastUpdated, nor a
-- record restated with the same one.  Resources stored before this
-- migration keep the times they had until their content changes.
--
-- Every transaction that changes resource or resource_deleted holds the
-- shared advisory lock (872341, 1) and takes its change time from the clock
-- after acquiring it.  An export's transactionTime is taken by
-- pa_transaction_time(): the clock, but never later than just before the
-- start of a changing transaction still open; every change stamped at or
-- before it is committed, and every later one is stamped after it.
CREATE OR REPLACE FUNCTION pa_transaction_time() RETURNS timestamptz
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    t timestamptz := clock_timestamp();
    open_since timestamptz;
BEGIN
    SELECT min(a.xact_start) INTO open_since
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.classid = 872341 AND l.objid = 1 AND l.objsubid = 2 AND l.granted;
    RETURN date_trunc('milliseconds', least(t, open_since - interval '1 millisecond'));
END $$;
