-- Remove the invalidation log of the points hypertable and its triggers.
DROP TRIGGER IF EXISTS points_invalidate_insert ON points;
DROP TRIGGER IF EXISTS points_invalidate_delete ON points;
DROP TRIGGER IF EXISTS points_invalidate_update_old ON points;
DROP TRIGGER IF EXISTS points_invalidate_update_new ON points;
DROP FUNCTION IF EXISTS log_points_invalidation();
DROP TABLE IF EXISTS rollup_refreshing, rollup_invalidation;
