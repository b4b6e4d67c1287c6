-- Remove the Apache-2 edition rollup tables and their watermarks.
DROP TABLE IF EXISTS rollup_watermark;
-- TimescaleDB drops one hypertable per statement.
DROP TABLE IF EXISTS rollup_1d;
DROP TABLE IF EXISTS rollup_1h;
DROP TABLE IF EXISTS rollup_1m;
