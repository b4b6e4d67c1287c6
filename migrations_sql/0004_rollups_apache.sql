-- Rollups for the Apache-2 edition of TimescaleDB, which has no continuous aggregates.
-- The ORM cannot express hypertables or the backfill of the invalidation log.
--
-- rollup_1m / rollup_1h / rollup_1d hold (bucket, series_id, count, sum, min, max);
-- the refresh (analytics/services/rollups.py) recomputes 1m from the points, 1h from
-- 1m and 1d from 1h for every pending pair of the invalidation log (0004_rollup_invalidation).

CREATE TABLE rollup_1m (
    bucket    timestamptz      NOT NULL,
    series_id bigint           NOT NULL,
    count     bigint           NOT NULL,
    sum       double precision NOT NULL,
    min       double precision NOT NULL,
    max       double precision NOT NULL
);
SELECT create_hypertable('rollup_1m', by_range('bucket', INTERVAL '7 days'));
-- Covering: a series read is an index-only scan once autovacuum has marked the pages
-- all-visible. Rows are written in time order for all series at once, so without it
-- every row of a series would cost a heap page.
CREATE UNIQUE INDEX rollup_1m_series_bucket ON rollup_1m (series_id, bucket DESC)
    INCLUDE (count, sum, min, max);

CREATE TABLE rollup_1h (LIKE rollup_1m INCLUDING ALL);
SELECT create_hypertable('rollup_1h', by_range('bucket', INTERVAL '90 days'));

CREATE TABLE rollup_1d (LIKE rollup_1m INCLUDING ALL);
SELECT create_hypertable('rollup_1d', by_range('bucket', INTERVAL '1 year'));

-- How far each tier is materialized, for /healthz and operators.
CREATE TABLE rollup_watermark (
    tier         text        PRIMARY KEY,
    watermark    timestamptz NOT NULL DEFAULT '-infinity',
    refreshed_at timestamptz
);
INSERT INTO rollup_watermark (tier) VALUES ('1m'), ('1h'), ('1d');

-- Every stored point is pending: the refresh fills the new tables from them.
INSERT INTO rollup_invalidation (series_id, bucket)
SELECT DISTINCT series_id, time_bucket('1 minute', time) FROM points;
