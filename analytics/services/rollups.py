"""Keep the 1m/1h/1d rollups fresh, apply retention, and rebuild them across editions.

Both editions share the invalidation log (migrations_sql/0004_rollup_invalidation.sql).
On the Timescale License edition the rollups are continuous aggregates: their policies
refresh recent windows, and `refresh_rollups` refreshes exactly the days that hold
pending pairs (late points included). On the Apache-2 edition the platform
materializes its own rollup tables from the log:

1. claim: under a lock that waits for in-flight writers, move every logged
   (series, minute) pair to rollup_refreshing (a short transaction);
2. process the claimed pairs in slices: recompute those minutes from the points, the
   hours above them from rollup_1m and the days from rollup_1h, then forget the pairs,
   each slice in one transaction.

Readers treat claimed pairs as pending until their slice commits, so every committed
state is correct. Each of those transactions holds a transaction-level advisory lock
(never a session one: through PgBouncer in transaction mode a session lock would stay
behind on whichever server connection took it), so claims and slices never overlap: a
claim that finds the lock taken returns at once, a slice waits for it, and one killed
midway leaves its claimed pairs for the next run. A second refresh that claims between
the first one's slices is harmless: each slice recomputes, under the lock, every pair
claimed in its range so far, whoever claimed it.
"""

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import sql

from analytics.locks import lock_id
from analytics.queries.tiers import DENSE_PAIRS_PER_WINDOW, TIER_WIDTHS
from analytics.sql_files import read_sql_file
from analytics.timescale import Edition, timescaledb_edition

logger = logging.getLogger(__name__)

TIERS: tuple[tuple[str, timedelta], ...] = tuple(TIER_WIDTHS.items())
SLICE_PAIRS = 200_000
_REFRESH_LOCK = lock_id("rollup-refresh")
_ROLLUP_FILES = {"apache": "0004_rollups_apache.sql", "timescale": "0004_rollups_timescale.sql"}


@dataclass(frozen=True)
class RefreshResult:
    edition: Edition
    ran: bool
    pairs: int
    seconds: float


_installed_cache: dict[str, tuple[float, Edition]] = {}
INSTALLED_CACHE_SECONDS = 60.0


def installed_rollup_edition(
    *, using: BaseDatabaseWrapper | None = None, cached: bool = True
) -> Edition:
    """Return which kind of rollups exist: continuous aggregates or the platform's own.

    Only `rebuild_rollups` changes it, so readers may use an answer up to a minute old.
    """
    database = using or connection
    key = str(database.settings_dict.get("NAME"))
    hit = _installed_cache.get(key)
    if cached and hit and time.monotonic() - hit[0] < INSTALLED_CACHE_SECONDS:
        return hit[1]
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM _timescaledb_catalog.continuous_agg"
            " WHERE user_view_name = 'rollup_1m')"
        )
        row = cursor.fetchone()
    edition: Edition = "timescale" if row and row[0] else "apache"
    _installed_cache[key] = (time.monotonic(), edition)
    return edition


def _claim(cursor: Any) -> bool:
    """Move the logged pairs to rollup_refreshing; False when another refresh is claiming."""
    with transaction.atomic():
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_REFRESH_LOCK])
        if not cursor.fetchone()[0]:
            return False
        # Waits for every transaction that logged pairs (they hold ROW EXCLUSIVE until
        # they end), so all points behind the claimed pairs are committed.
        cursor.execute("LOCK TABLE rollup_invalidation IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(
            "INSERT INTO rollup_refreshing (series_id, bucket)"
            " SELECT DISTINCT series_id, bucket FROM rollup_invalidation"
        )
        # TRUNCATE, not DELETE: the log churns all day, and the dead rows a DELETE leaves
        # behind would slow every reader's pending lookup until autovacuum came by. No
        # writer can add rows meanwhile (the lock above), and readers wait for the commit.
        cursor.execute("TRUNCATE rollup_invalidation")
    return True


def _forget_dead_claims(cursor: Any) -> None:
    """Drop the dead rows the slices left in rollup_refreshing, unless a claim added live ones."""
    with transaction.atomic():
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_REFRESH_LOCK])
        cursor.execute("SELECT EXISTS (SELECT 1 FROM rollup_refreshing)")
        if not cursor.fetchone()[0]:
            cursor.execute("TRUNCATE rollup_refreshing")


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


def _dense_ranges(
    windows: list[tuple[Any, Any, Any]], window: timedelta, width: timedelta
) -> list[tuple[Any, Any]]:
    """Merge consecutive (window, first bucket, last bucket) into [lo, hi) time ranges.

    Each range is one query, reading only from its first pending bucket to the end of
    its last one (not the whole windows around them).
    """
    ranges: list[tuple[Any, Any]] = []
    previous = None
    for start, first, last in sorted(windows):
        if ranges and previous is not None and previous + window == start:
            ranges[-1] = (ranges[-1][0], last + width)
        else:
            ranges.append((first, last + width))
        previous = start
    return ranges


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
        for lo, hi in _dense_ranges(dense, level.window, level.width):
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
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_REFRESH_LOCK])
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


def _refresh_continuous_aggregates(cursor: Any) -> int:
    """Refresh the continuous aggregates over the days of the claimed pairs, then forget them."""
    cursor.execute(
        "SELECT time_bucket(INTERVAL '1 day', bucket) AS day, count(*)"
        " FROM rollup_refreshing GROUP BY 1 ORDER BY 1"
    )
    days = cursor.fetchall()
    one_day = timedelta(days=1)
    for lo, hi in _dense_ranges([(day, day, day) for day, _ in days], one_day, one_day):
        # The claims committed so far: their points are all in, so the CALLs below
        # materialize them. A claim made meanwhile (by another refresh) stays pending.
        cursor.execute(
            "SELECT coalesce(array_agg(DISTINCT xmin::text), '{}') FROM rollup_refreshing"
            " WHERE bucket >= %s AND bucket < %s",
            [lo, hi],
        )
        claims = cursor.fetchone()[0]
        # Each CALL commits on its own (it cannot run inside a transaction block).
        for tier, _ in TIERS:
            cursor.execute(
                "CALL refresh_continuous_aggregate(%s, %s::timestamptz, %s::timestamptz)",
                [f"rollup_{tier}", lo, hi],
            )
        cursor.execute(
            "DELETE FROM rollup_refreshing WHERE bucket >= %s AND bucket < %s"
            " AND xmin::text = ANY(%s)",
            [lo, hi, claims],
        )
    _forget_dead_claims(cursor)
    return sum(int(count) for _, count in days)


def _refresh_pending(edition: Edition) -> tuple[bool, int]:
    """Claim the invalidation log and bring every tier up to date for it."""
    with connection.cursor() as cursor:
        if not _claim(cursor):
            return False, 0
        if edition == "timescale":
            return True, _refresh_continuous_aggregates(cursor)
        total = 0
        for lo, hi in _slices(cursor):
            total += _process_slice(cursor, lo, hi)
            logger.info("rollup refresh: %d pairs recomputed so far", total)
        # Every claimed pair is done: drop the dead rows the slices left behind.
        _forget_dead_claims(cursor)
        return True, total


def _refresh_timescale_everything() -> None:
    with connection.cursor() as cursor:
        for tier, _ in TIERS:
            cursor.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", [f"rollup_{tier}"])


def refresh_rollups(*, full: bool = False) -> RefreshResult:
    """Bring every tier up to date with the points; safe to run twice or concurrently."""
    started = time.perf_counter()
    edition = installed_rollup_edition(cached=False)
    if edition == "timescale" and full:
        _refresh_timescale_everything()
    ran, pairs = _refresh_pending(edition)
    result = RefreshResult(edition, ran, pairs, time.perf_counter() - started)
    logger.info(
        "rollup refresh (%s): ran=%s pairs=%d in %.2f s", edition, ran, pairs, result.seconds
    )
    return result


def install_rollups(*, edition: Edition) -> None:
    """Create the rollups of `edition` (the migration's forward step)."""
    with connection.cursor() as cursor:
        cursor.execute(read_sql_file(_ROLLUP_FILES[edition]))
    _installed_cache.clear()


def drop_rollups() -> Edition:
    """Drop whichever rollups exist; return which kind they were."""
    edition = installed_rollup_edition(cached=False)
    with connection.cursor() as cursor:
        cursor.execute(read_sql_file(_ROLLUP_FILES[edition].removesuffix(".sql") + ".reverse.sql"))
    _installed_cache.clear()
    return edition


def rebuild_rollups() -> tuple[Edition, Edition, RefreshResult]:
    """Replace the rollups with those of the server's current edition and fill them."""
    before = drop_rollups()
    after = timescaledb_edition()
    install_rollups(edition=after)
    return before, after, refresh_rollups(full=True)


RETENTION_SETTINGS = {
    "points": "RETENTION_RAW_DAYS",
    "rollup_1m": "RETENTION_1M_DAYS",
    "rollup_1h": "RETENTION_1H_DAYS",
    "rollup_1d": "RETENTION_1D_DAYS",
}


def apply_retention() -> dict[str, int]:
    """Drop chunks older than each relation's horizon (0 days keeps forever).

    On the Apache edition this drops chunks now (daily beat task); on the Timescale
    License edition it installs retention policies that TimescaleDB runs itself.
    Rollups keep their own, longer history after raw points are gone.
    """
    edition = installed_rollup_edition(cached=False)
    dropped: dict[str, int] = {}
    with connection.cursor() as cursor:
        for relation, setting in RETENTION_SETTINGS.items():
            days = int(getattr(settings, setting))
            if edition == "timescale":
                cursor.execute("SELECT remove_retention_policy(%s, if_exists => true)", [relation])
                if days > 0:
                    cursor.execute(
                        "SELECT add_retention_policy(%s, drop_after => %s::interval)",
                        [relation, f"{days} days"],
                    )
                dropped[relation] = 0
            elif days > 0:
                cursor.execute(
                    "SELECT count(*) FROM drop_chunks(%s, older_than => now() - %s::interval)",
                    [relation, f"{days} days"],
                )
                dropped[relation] = int(cursor.fetchone()[0])
    logger.info("retention applied (%s): %s", edition, dropped)
    return dropped
