-- Remove the Apache-2 edition rollups: triggers, log, watermarks and tier tables.
DROP TRIGGER IF EXISTS points_invalidate_insert ON points;
DROP TRIGGER IF EXISTS points_invalidate_delete ON points;
DROP TRIGGER IF EXISTS points_invalidate_update_old ON points;
DROP TRIGGER IF EXISTS points_invalidate_update_new ON points;
DROP FUNCTION IF EXISTS log_points_invalidation();
DROP TABLE IF EXISTS rollup_watermark, rollup_refreshing, rollup_invalidation;
DROP TABLE IF EXISTS rollup_1d, rollup_1h, rollup_1m;
