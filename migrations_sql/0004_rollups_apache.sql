-- Rollups for the Apache-2 edition of TimescaleDB, which has no continuous aggregates.
-- The ORM cannot express hypertables, statement triggers with transition tables, or
-- the PL/pgSQL that fills the invalidation log.
--
-- Design (see analytics/services/rollups.py and analytics/queries/series.py):
--   * rollup_1m / rollup_1h / rollup_1d hold (bucket, series_id, count, sum, min, max);
--     1h is computed from 1m and 1d from 1h.
--   * Every statement that inserts, updates or deletes points logs the distinct
--     (series_id, minute) pairs it touched in rollup_invalidation, whoever wrote them
--     (ingestion, psql, a backfill script). A pair stays "pending" until a refresh
--     recomputes that minute and the hour and day above it.
--   * Readers take materialized buckets that are not pending and compute pending ones
--     live from the tier below (down to the raw points), so a committed point is
--     visible at once and the answer always equals a GROUP BY over the points.
--   * The refresh first claims the log (moving it to rollup_refreshing) under a lock
--     that waits for in-flight writers, so no pair can be skipped by the trigger's
--     de-duplication while its points are still uncommitted.

CREATE TABLE rollup_1m (
    bucket    timestamptz      NOT NULL,
    series_id bigint           NOT NULL,
    count     bigint           NOT NULL,
    sum       double precision NOT NULL,
    min       double precision NOT NULL,
    max       double precision NOT NULL
);
SELECT create_hypertable('rollup_1m', by_range('bucket', INTERVAL '7 days'));
CREATE UNIQUE INDEX rollup_1m_series_bucket ON rollup_1m (series_id, bucket DESC);

CREATE TABLE rollup_1h (LIKE rollup_1m INCLUDING ALL);
SELECT create_hypertable('rollup_1h', by_range('bucket', INTERVAL '90 days'));

CREATE TABLE rollup_1d (LIKE rollup_1m INCLUDING ALL);
SELECT create_hypertable('rollup_1d', by_range('bucket', INTERVAL '1 year'));

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

-- How far each tier is materialized, for /healthz and operators.
CREATE TABLE rollup_watermark (
    tier         text        PRIMARY KEY,
    watermark    timestamptz NOT NULL DEFAULT '-infinity',
    refreshed_at timestamptz
);
INSERT INTO rollup_watermark (tier) VALUES ('1m'), ('1h'), ('1d');

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

-- Existing points (a database that moved from the other edition) are all pending.
INSERT INTO rollup_invalidation (series_id, bucket)
SELECT DISTINCT series_id, time_bucket('1 minute', time) FROM points;
