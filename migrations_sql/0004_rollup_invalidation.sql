-- The invalidation log of the points hypertable, used on both TimescaleDB editions.
-- The ORM cannot express statement triggers with transition tables or their PL/pgSQL.
--
-- Every statement that inserts, updates or deletes points logs the distinct
-- (series_id, minute) pairs it touched, whoever wrote them (ingestion, psql, a
-- backfill script). A pair stays "pending" until a refresh has brought all three
-- rollup tiers up to date for it; readers compute pending buckets live from the tier
-- below (down to the raw points), so a committed point is visible at once and every
-- answer equals a GROUP BY over the points. On the Apache-2 edition the refresh
-- recomputes the platform's rollup tables; on the Timescale License edition it
-- refreshes the continuous aggregates over the pending ranges.
--
-- The refresh first claims the log (moving it to rollup_refreshing) under a lock that
-- waits for in-flight writers, so no pair can be skipped by the trigger's
-- de-duplication while its points are still uncommitted.

-- Pending (series, minute) pairs written since the last refresh claimed the log.
CREATE TABLE rollup_invalidation (
    series_id bigint      NOT NULL,
    bucket    timestamptz NOT NULL,
    logged_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rollup_invalidation_series_bucket ON rollup_invalidation (series_id, bucket);

-- Pairs claimed by a refresh in progress: still pending for readers until it commits.
CREATE TABLE rollup_refreshing (
    series_id bigint      NOT NULL,
    bucket    timestamptz NOT NULL
);
CREATE INDEX rollup_refreshing_series_bucket ON rollup_refreshing (series_id, bucket);
-- The refresh takes claimed pairs in time order, a slice at a time.
CREATE INDEX rollup_refreshing_bucket ON rollup_refreshing (bucket);

CREATE FUNCTION log_points_invalidation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- ROW EXCLUSIVE (also taken by the INSERT below, made explicit here) is held until
    -- this transaction ends, so a refresh claiming the log waits for these points to
    -- be committed or rolled back before it reads them.
    LOCK TABLE rollup_invalidation IN ROW EXCLUSIVE MODE;
    INSERT INTO rollup_invalidation (series_id, bucket)
    SELECT DISTINCT c.series_id, time_bucket('1 minute', c.time)
    FROM changed_rows c
    WHERE NOT EXISTS (
        SELECT 1 FROM rollup_invalidation i
        WHERE i.series_id = c.series_id AND i.bucket = time_bucket('1 minute', c.time)
    )
    ORDER BY 1, 2;
    RETURN NULL;
END
$$;

CREATE TRIGGER points_invalidate_insert AFTER INSERT ON points
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION log_points_invalidation();
CREATE TRIGGER points_invalidate_delete AFTER DELETE ON points
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION log_points_invalidation();
-- An UPDATE may move a point between minutes: log both where it was and where it is.
CREATE TRIGGER points_invalidate_update_old AFTER UPDATE ON points
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION log_points_invalidation();
CREATE TRIGGER points_invalidate_update_new AFTER UPDATE ON points
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION log_points_invalidation();
