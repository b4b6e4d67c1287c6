-- Remove the continuous aggregates (their policies go with them), top tier first.
DROP MATERIALIZED VIEW IF EXISTS rollup_1d;
DROP MATERIALIZED VIEW IF EXISTS rollup_1h;
DROP MATERIALIZED VIEW IF EXISTS rollup_1m;
