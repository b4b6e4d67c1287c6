-- Rollups for the Timescale License edition: native hierarchical continuous aggregates.
-- The ORM cannot express continuous aggregates or their policies.
--
-- rollup_1h is an aggregate of rollup_1m and rollup_1d of rollup_1h (hierarchical
-- continuous aggregates). materialized_only = false turns on real-time aggregation, so
-- buckets newer than each aggregate's watermark are computed from the tier below at
-- read time. They are created WITH NO DATA so migrating a large database is instant;
-- the policies fill them. Refresh windows stay inside the raw retention horizon
-- (RETENTION_RAW_DAYS, 90 days by default) so a refresh never erases the history of
-- points that retention already dropped.
--
-- Real-time aggregation only covers buckets past a watermark, so a late point would
-- stay invisible until a policy's window reached it. The platform's invalidation log
-- (0004_rollup_invalidation) closes that gap: readers compute pending buckets live,
-- and the platform's refresh task refreshes exactly the logged ranges.

CREATE MATERIALIZED VIEW rollup_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS bucket,
       series_id,
       count(*)   AS count,
       sum(value) AS sum,
       min(value) AS min,
       max(value) AS max
FROM points
GROUP BY 1, 2
WITH NO DATA;

CREATE MATERIALIZED VIEW rollup_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
       series_id,
       sum(count)::bigint AS count,
       sum(sum)           AS sum,
       min(min)           AS min,
       max(max)           AS max
FROM rollup_1m
GROUP BY 1, 2
WITH NO DATA;

CREATE MATERIALIZED VIEW rollup_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket,
       series_id,
       sum(count)::bigint AS count,
       sum(sum)           AS sum,
       min(min)           AS min,
       max(max)           AS max
FROM rollup_1h
GROUP BY 1, 2
WITH NO DATA;

-- Each tier refreshes a window that ends a bucket ago (the open bucket is served
-- in real time) and reaches back far enough to absorb ordinary late data.
SELECT add_continuous_aggregate_policy('rollup_1m',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('rollup_1h',
    start_offset => INTERVAL '8 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '5 minutes');
SELECT add_continuous_aggregate_policy('rollup_1d',
    start_offset => INTERVAL '10 days', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 hour');
