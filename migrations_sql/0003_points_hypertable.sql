-- The points hypertable: one row per metric event, (time, series_id, value, event_id).
-- The ORM cannot express hypertables (create_hypertable), tables without a primary key,
-- or a unique index that serves both as dedup key and as the series/time read index.
--
-- Chunk interval: 1 day. Dashboards and rollup refreshes read recent days, retention
-- drops whole days, and at the ingest rates measured on the 2-core machine (~150k
-- points/s sustained would be ~13 billion/day; realistic loads are far lower) a day's
-- chunk index stays well inside shared_buffers for typical projects. Larger
-- installations can change it with set_chunk_time_interval without a migration.
CREATE TABLE points (
    time      timestamptz      NOT NULL,
    series_id bigint           NOT NULL,
    value     double precision NOT NULL,
    -- The client's event id ('' for InfluxDB line protocol, where series + time is
    -- the point's identity; NULL when the client sent none and dedup is not wanted).
    event_id  text
);

SELECT create_hypertable('points', by_range('time', INTERVAL '1 day'));

-- One index does two jobs: it is the (series_id, time DESC) read index of every series
-- query, and, being unique with event_id, the dedup key. TimescaleDB requires every
-- unique index to contain the time column, which this one does, so ON CONFLICT works on
-- the hypertable. Rows with a NULL event_id never conflict (NULLs are distinct).
CREATE UNIQUE INDEX points_series_time_event ON points (series_id, time DESC, event_id);
