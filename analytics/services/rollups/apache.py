"""The Apache-2 edition's incremental refresh: recompute claimed (series, minute) pairs in every tier.

The claimed pairs (in rollup_refreshing) are processed in slices: recompute those
minutes from the points, the hours above them from rollup_1m and the days from
rollup_1h, then forget the pairs, each slice in one transaction. Readers treat claimed
pairs as pending until their slice commits, so every committed state is correct.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from psycopg import sql

from analytics.queries.tiers import DENSE_PAIRS_PER_WINDOW, TIER_WIDTHS
from analytics.services.rollups.claims import forget_dead_claims, hold_refresh_lock
from analytics.services.rollups.ranges import TIERS, dense_ranges

logger = logging.getLogger(__name__)

SLICE_PAIRS = 200_000


@dataclass(frozen=True)
class _Level:
    """How one tier is recomputed: from which relation, with which aggregates."""

    target: str
    source: str
    time_column: str
    aggregates: str
    width: timedelta
    # Pairs are grouped by this coarser window to tell dense stretches from sparse ones.
    window: timedelta


_LEVELS = (
    _Level(
        "rollup_1m",
        "points",
        "time",
        "count(*), sum(v.value), min(v.value), max(v.value)",
        TIER_WIDTHS["1m"],
        timedelta(hours=1),
    ),
    _Level(
        "rollup_1h",
        "rollup_1m",
        "bucket",
        "sum(v.count)::bigint, sum(v.sum), min(v.min), max(v.max)",
        TIER_WIDTHS["1h"],
        timedelta(days=1),
    ),
    _Level(
        "rollup_1d",
        "rollup_1h",
        "bucket",
        "sum(v.count)::bigint, sum(v.sum), min(v.min), max(v.max)",
        TIER_WIDTHS["1d"],
        timedelta(days=30),
    ),
)

# Dense stretch: aggregate the whole time range of the source first, then keep the
# pending buckets with a hash join (cheaper than joining every raw row). The planner
# left to itself picks merge or nested-loop joins here that read whole chunks, so
# those are switched off for this statement's transaction.
_DENSE = """
    INSERT INTO fresh (bucket, series_id, count, sum, min, max)
    SELECT a.*
    FROM (
        SELECT time_bucket({width}, v.{time}) AS bucket, v.series_id, {aggregates}
        FROM {source} v
        WHERE v.{time} >= %(lo)s AND v.{time} < %(hi)s
        GROUP BY 1, 2
    ) AS a(bucket, series_id, count, sum, min, max)
    JOIN {pairs} s ON s.series_id = a.series_id AND s.bucket = a.bucket
    WHERE s.bucket >= %(lo)s AND s.bucket < %(hi)s
"""
# Sparse pairs (late points scattered over weeks): one index lookup per pair.
_SPARSE = """
    INSERT INTO fresh (bucket, series_id, count, sum, min, max)
    SELECT s.bucket, s.series_id, a.*
    FROM {pairs} s
    CROSS JOIN LATERAL (
        SELECT {aggregates} FROM {source} v
        WHERE v.series_id = s.series_id AND v.{time} >= s.bucket AND v.{time} < s.bucket + {width}
    ) AS a(count, sum, min, max)
    WHERE time_bucket({window}, s.bucket) = ANY(%(windows)s) AND a.count > 0
"""
# Pairs whose points were all deleted lose their bucket. Usually there are none, and
# the DELETE is skipped: joined against a whole tier it would scan it for nothing.
_GONE = """CREATE TEMP TABLE gone ON COMMIT DROP AS
    SELECT series_id, bucket FROM {pairs} EXCEPT SELECT series_id, bucket FROM fresh"""
_DELETE_GONE = """DELETE FROM {target} r USING gone
    WHERE r.series_id = gone.series_id AND r.bucket = gone.bucket
      AND r.bucket >= %(lo)s AND r.bucket <= %(hi)s"""
_UPSERT = """INSERT INTO {target} (bucket, series_id, count, sum, min, max)
    SELECT bucket, series_id, count, sum, min, max FROM fresh
    ON CONFLICT (series_id, bucket) DO UPDATE SET count = excluded.count, sum = excluded.sum,
        min = excluded.min, max = excluded.max"""


def _recompute_level(cursor: Any, level: _Level, pairs: str) -> None:
    """Recompute `level.target` for every (series, bucket) in the temp table `pairs`."""
    names = {
        "pairs": sql.Identifier(pairs),
        "source": sql.Identifier(level.source),
        "target": sql.Identifier(level.target),
        "time": sql.Identifier(level.time_column),
        "aggregates": sql.SQL(level.aggregates),
        "width": sql.Literal(level.width),
        "window": sql.Literal(level.window),
    }
    cursor.execute("CREATE TEMP TABLE fresh (LIKE rollup_1m) ON COMMIT DROP")
    cursor.execute(
        sql.SQL(
            "SELECT time_bucket({window}, bucket), count(*), min(bucket), max(bucket)"
            " FROM {pairs} GROUP BY 1"
        ).format(**names)
    )
    counts = cursor.fetchall()
    dense = [(w, lo, hi) for w, n, lo, hi in counts if n >= DENSE_PAIRS_PER_WINDOW]
    sparse = [w for w, n, _, _ in counts if n < DENSE_PAIRS_PER_WINDOW]
    if dense:
        cursor.execute("SET LOCAL enable_mergejoin = off")
        cursor.execute("SET LOCAL enable_nestloop = off")
        for lo, hi in dense_ranges(dense, level.window, level.width):
            cursor.execute(sql.SQL(_DENSE).format(**names), {"lo": lo, "hi": hi})
        cursor.execute("RESET enable_mergejoin")
        cursor.execute("RESET enable_nestloop")
    if sparse:
        cursor.execute(sql.SQL(_SPARSE).format(**names), {"windows": sparse})
    cursor.execute(sql.SQL(_GONE).format(**names))
    if cursor.rowcount:
        # Bounds let TimescaleDB skip the tier's chunks outside the vanished buckets.
        cursor.execute("ANALYZE gone")
        cursor.execute("SELECT min(bucket), max(bucket) FROM gone")
        lo, hi = cursor.fetchone()
        cursor.execute(sql.SQL(_DELETE_GONE).format(**names), {"lo": lo, "hi": hi})
    cursor.execute(sql.SQL(_UPSERT).format(**names))
    cursor.execute("DROP TABLE fresh, gone")


def _slices(cursor: Any) -> list[tuple[Any, Any]]:
    """Cut the claimed pairs into [lo, hi) time ranges of about SLICE_PAIRS pairs each.

    Ranges, not LIMIT: each slice then reads and deletes its pairs by an index range,
    never wading through the dead rows of the slices before it.
    """
    cursor.execute(
        "SELECT time_bucket(INTERVAL '1 hour', bucket), count(*)"
        " FROM rollup_refreshing GROUP BY 1 ORDER BY 1"
    )
    slices: list[tuple[Any, Any]] = []
    size = 0
    for hour, count in cursor.fetchall():
        if slices and size + count <= SLICE_PAIRS:
            slices[-1] = (slices[-1][0], hour + timedelta(hours=1))
            size += count
        else:
            slices.append((hour, hour + timedelta(hours=1)))
            size = count
    return slices


def _process_slice(cursor: Any, lo: Any, hi: Any) -> int:
    """Recompute the claimed pairs in [lo, hi) in all tiers; return how many there were."""
    with transaction.atomic():
        hold_refresh_lock(cursor)
        cursor.execute(
            "CREATE TEMP TABLE pairs_1m ON COMMIT DROP AS SELECT DISTINCT series_id, bucket"
            " FROM rollup_refreshing WHERE bucket >= %s AND bucket < %s",
            [lo, hi],
        )
        count = int(cursor.rowcount)
        cursor.execute("ANALYZE pairs_1m")
        previous = "pairs_1m"
        for level in _LEVELS:
            if level.target != "rollup_1m":
                pairs = f"pairs_{level.target.removeprefix('rollup_')}"
                cursor.execute(
                    sql.SQL(
                        "CREATE TEMP TABLE {pairs} ON COMMIT DROP AS"
                        " SELECT DISTINCT series_id, time_bucket({width}, bucket) AS bucket"
                        " FROM {previous}"
                    ).format(
                        pairs=sql.Identifier(pairs),
                        previous=sql.Identifier(previous),
                        width=sql.Literal(level.width),
                    )
                )
                cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(pairs)))
                previous = pairs
            _recompute_level(cursor, level, previous)
        # Only a claim adds rows here, and claims wait for the lock this slice holds:
        # every row in the range was recomputed above.
        cursor.execute("DELETE FROM rollup_refreshing WHERE bucket >= %s AND bucket < %s", [lo, hi])
        # ON COMMIT DROP does not fire when this runs inside an outer transaction.
        cursor.execute("DROP TABLE pairs_1m, pairs_1h, pairs_1d")
        for tier, width in TIERS:
            cursor.execute(
                sql.SQL(
                    "UPDATE rollup_watermark SET refreshed_at = now(),"
                    " watermark = greatest(watermark,"
                    " (SELECT max(bucket) + {width} FROM {table}))"
                    " WHERE tier = %s"
                ).format(width=sql.Literal(width), table=sql.Identifier(f"rollup_{tier}")),
                [tier],
            )
        return count


def refresh_claimed_tables(cursor: Any) -> int:
    """Recompute every claimed pair in the rollup tables, slice by slice; return how many."""
    total = 0
    for lo, hi in _slices(cursor):
        total += _process_slice(cursor, lo, hi)
        logger.info("rollup refresh: %d pairs recomputed so far", total)
    # Every claimed pair is done: drop the dead rows the slices left behind.
    forget_dead_claims(cursor)
    return total
