"""SQL that reads one rollup tier as a relation, whatever the edition underneath.

A tier is its continuous aggregate (Timescale License edition) or its rollup table
(Apache-2 edition), with every bucket that is pending in the invalidation log
(migrations_sql/0004_rollup_invalidation.sql) replaced by a live aggregate of the
tier below, down to the raw points. So the answer always equals a GROUP BY over the
points that are committed right now, late points included, on both editions.
"""

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql

TIER_WIDTHS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
# Pending pairs are grouped by this window; a dense window is aggregated with one range
# scan, sparse pairs are looked up one by one (as the refresh does).
_WINDOW = timedelta(hours=1)
# A window with at least this many pending pairs is aggregated with one range scan;
# fewer are looked up one by one through the index. The refresh uses the same rule.
DENSE_PAIRS_PER_WINDOW = 20


@dataclass(frozen=True)
class PendingMinutes:
    """Pending (series, minute) pairs of the queried series and range."""

    series_ids: list[int]
    buckets: list[datetime]


def pending_minutes(cursor: Any, *, ids: list[int], lo: datetime, hi: datetime) -> PendingMinutes:
    """Return the pending pairs among `ids` in [lo, hi)."""
    cursor.execute(
        """SELECT DISTINCT series_id, bucket FROM (
               SELECT series_id, bucket FROM rollup_invalidation
               WHERE series_id = ANY(%(ids)s) AND bucket >= %(lo)s AND bucket < %(hi)s
               UNION ALL
               SELECT series_id, bucket FROM rollup_refreshing
               WHERE series_id = ANY(%(ids)s) AND bucket >= %(lo)s AND bucket < %(hi)s
           ) pending""",
        {"ids": ids, "lo": lo, "hi": hi},
    )
    rows = cursor.fetchall()
    return PendingMinutes([row[0] for row in rows], [row[1] for row in rows])


def _live_minutes(pending: PendingMinutes, params: dict[str, Any]) -> sql.Composable:
    """SQL for the live 1-minute aggregates of the pending pairs, as (bucket, series_id, …)."""
    counts: dict[datetime, int] = {}
    for bucket in pending.buckets:
        window = bucket - timedelta(seconds=bucket.timestamp() % _WINDOW.total_seconds())
        counts[window] = counts.get(window, 0) + 1
    parts: list[sql.Composable] = []
    dense = sorted(w for w, n in counts.items() if n >= DENSE_PAIRS_PER_WINDOW)
    for index, window in enumerate(dense):
        params[f"dense_lo_{index}"] = window
        params[f"dense_hi_{index}"] = window + _WINDOW
        parts.append(
            sql.SQL(
                """SELECT a.bucket, a.series_id, a.count, a.sum, a.min, a.max
                FROM (SELECT time_bucket(INTERVAL '1 minute', p.time) AS bucket, p.series_id,
                             count(*) AS count, sum(p.value) AS sum, min(p.value) AS min,
                             max(p.value) AS max
                      FROM points p
                      WHERE p.series_id = ANY(%(ids)s)
                        AND p.time >= {lo} AND p.time < {hi}
                      GROUP BY 1, 2) a
                JOIN pending_1m pm ON pm.series_id = a.series_id AND pm.bucket = a.bucket"""
            ).format(
                lo=sql.Placeholder(f"dense_lo_{index}"), hi=sql.Placeholder(f"dense_hi_{index}")
            )
        )
    params["sparse_windows"] = sorted(w for w, n in counts.items() if n < DENSE_PAIRS_PER_WINDOW)
    parts.append(
        sql.SQL(
            """SELECT pm.bucket, pm.series_id, a.count, a.sum, a.min, a.max
            FROM pending_1m pm
            CROSS JOIN LATERAL (
                SELECT count(*) AS count, sum(p.value) AS sum, min(p.value) AS min,
                       max(p.value) AS max
                FROM points p
                WHERE p.series_id = pm.series_id
                  AND p.time >= pm.bucket AND p.time < pm.bucket + INTERVAL '1 minute'
            ) a
            WHERE time_bucket(INTERVAL '1 hour', pm.bucket) = ANY(%(sparse_windows)s)
              AND a.count > 0"""
        )
    )
    return sql.SQL(" UNION ALL ").join(parts)


_MATERIALIZED = """SELECT r.bucket, r.series_id, r.count, r.sum, r.min, r.max FROM {table} r
    WHERE r.series_id = ANY(%(ids)s) AND r.bucket >= %(lo)s AND r.bucket < %(hi)s
      AND NOT EXISTS (SELECT 1 FROM {pending} pm
                      WHERE pm.series_id = r.series_id AND pm.bucket = r.bucket)"""
# Live buckets of an upper tier: the lower tier's buckets inside each pending upper
# bucket (materialized ones that are not pending, plus the lower tier's live ones).
_LIVE_UPPER = """
    {pending_upper} AS (
        SELECT DISTINCT series_id, time_bucket({width}, bucket) AS bucket FROM {pending_lower}
    ),
    {live_upper} AS (
        SELECT time_bucket({width}, x.bucket) AS bucket, x.series_id, sum(x.count)::bigint AS count,
               sum(x.sum) AS sum, min(x.min) AS min, max(x.max) AS max
        FROM (
            SELECT r.bucket, r.series_id, r.count, r.sum, r.min, r.max
            FROM {pending_upper} pu
            JOIN {lower_table} r ON r.series_id = pu.series_id
                AND r.bucket >= pu.bucket AND r.bucket < pu.bucket + {width}
            WHERE NOT EXISTS (SELECT 1 FROM {pending_lower} pl
                              WHERE pl.series_id = r.series_id AND pl.bucket = r.bucket)
            UNION ALL
            SELECT * FROM {live_lower}
        ) x
        GROUP BY 1, 2
    )"""


@dataclass(frozen=True)
class TierRelation:
    """SQL reading one tier: a WITH clause (empty when nothing is pending) and the relation."""

    ctes: sql.Composable
    # A SELECT yielding (bucket, series_id, count, sum, min, max) rows of the tier.
    relation: sql.Composable


def tier_relation(
    tier: str, *, pending: PendingMinutes | None, params: dict[str, Any]
) -> TierRelation:
    """Return the SQL reading `tier` for %(ids)s in [%(lo)s, %(hi)s), adding its parameters."""
    table = sql.Identifier(f"rollup_{tier}")
    if pending is None or not pending.series_ids:
        relation = sql.SQL(
            "SELECT bucket, series_id, count, sum, min, max FROM {table}"
            " WHERE series_id = ANY(%(ids)s) AND bucket >= %(lo)s AND bucket < %(hi)s"
        ).format(table=table)
        return TierRelation(sql.SQL(""), relation)
    params["pending_ids"] = pending.series_ids
    params["pending_buckets"] = pending.buckets
    ctes: list[sql.Composable] = [
        sql.SQL(
            "pending_1m AS (SELECT * FROM unnest(%(pending_ids)s::bigint[],"
            " %(pending_buckets)s::timestamptz[]) AS u(series_id, bucket))"
        ),
        sql.SQL("live_1m AS ({})").format(_live_minutes(pending, params)),
    ]
    tiers = list(TIER_WIDTHS)
    for lower, upper in itertools.pairwise(tiers[: tiers.index(tier) + 1]):
        ctes.append(
            sql.SQL(_LIVE_UPPER).format(
                pending_upper=sql.Identifier(f"pending_{upper}"),
                pending_lower=sql.Identifier(f"pending_{lower}"),
                live_upper=sql.Identifier(f"live_{upper}"),
                live_lower=sql.Identifier(f"live_{lower}"),
                lower_table=sql.Identifier(f"rollup_{lower}"),
                width=sql.Literal(TIER_WIDTHS[upper]),
            )
        )
    relation = sql.SQL("{materialized} UNION ALL SELECT * FROM {live}").format(
        materialized=sql.SQL(_MATERIALIZED).format(
            table=table, pending=sql.Identifier(f"pending_{tier}")
        ),
        live=sql.Identifier(f"live_{tier}"),
    )
    return TierRelation(sql.SQL("WITH ") + sql.SQL(", ").join(ctes), relation)
