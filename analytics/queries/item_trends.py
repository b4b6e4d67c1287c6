"""Small trends of one metric for many items at once (the sparklines beside search results).

Events name the item they are about (`Series.item`), so an item's trend is the metric
summed over its series. All items are read in three queries whatever their number:
their series, the pending rollup minutes, and one bucketed aggregate over the tier
that fits, through the same tier logic as the series API (`analytics.queries.tiers`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql

from analytics.db.replicas import read_connection
from analytics.queries.series import (
    Parts,
    agg_value,
    align_down,
    align_up,
    epoch_ms,
    merge,
    tier_for,
)
from analytics.queries.tiers import pending_minutes, tier_relation

# About this many buckets per trend: enough for a shape, small enough for a sparkline.
TREND_POINTS = 30
# Natural widths, finest first; each is a multiple of a rollup tier.
TREND_BUCKETS = (
    [timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30)]
    + [timedelta(hours=h) for h in (1, 2, 3, 6, 12)]
    + [timedelta(days=d) for d in (1, 2, 7, 14, 30)]
)
# Counts and sums are 0 where nothing happened; averages and extremes are unknown there.
ZERO_FILLED_AGGS = frozenset({"sum", "count"})


@dataclass(frozen=True)
class ItemTrends:
    metric: str
    agg: str
    bucket: timedelta
    start: datetime
    end: datetime
    times: list[int]  # bucket starts, epoch milliseconds
    values: dict[str, list[float | None]]  # by item; items without the metric are absent


def trend_bucket(span: timedelta) -> timedelta:
    """Return the natural bucket width giving about TREND_POINTS buckets over `span`."""
    wanted = span / TREND_POINTS
    return next((width for width in TREND_BUCKETS if width >= wanted), TREND_BUCKETS[-1])


_BUCKETED = """{ctes}
SELECT (date_part('epoch', time_bucket(%(width)s, t.bucket)) * 1000)::bigint,
       g.item, sum(t.count)::bigint, sum(t.sum), min(t.min), max(t.max)
FROM ({relation}) t
JOIN unnest(%(ids)s::bigint[], %(items)s::text[]) AS g(series_id, item) USING (series_id)
GROUP BY 1, 2"""


def item_trends(
    *,
    project_id: int,
    metric: str,
    items: Sequence[str],
    agg: str,
    start: datetime,
    end: datetime,
) -> ItemTrends:
    """Return `agg` of `metric` per bucket for each of `items` over [start, end)."""
    width = trend_bucket(end - start)
    lo, hi = align_down(start, width), align_up(end, width)
    step = epoch_ms(lo + width) - epoch_ms(lo)
    times = list(range(epoch_ms(lo), epoch_ms(hi), step))
    empty = ItemTrends(metric, agg, width, lo, hi, times, {})
    if not items:
        return empty
    with read_connection().cursor() as cursor:
        cursor.execute(
            """SELECT id, item FROM analytics_series
               WHERE project_id = %s AND metric = %s AND item = ANY(%s)""",
            [project_id, metric, list(items)],
        )
        series = cursor.fetchall()
        if not series:
            return empty
        ids = [series_id for series_id, _ in series]
        params: dict[str, Any] = {
            "ids": ids,
            "items": [item for _, item in series],
            "lo": lo,
            "hi": hi,
            "width": width,
        }
        pending = pending_minutes(cursor, ids=ids, lo=lo, hi=hi)
        ctes, relation = tier_relation(tier_for(width), pending=pending, params=params)
        cursor.execute(sql.SQL(_BUCKETED).format(ctes=ctes, relation=relation), params)
        rows = cursor.fetchall()
    grid: dict[tuple[int, str], Parts] = {}
    for bucket, item, count, total, low, high in rows:
        grid[(bucket, item)] = merge(grid.get((bucket, item)), (count, total, low, high))
    default = 0.0 if agg in ZERO_FILLED_AGGS else None
    values = {
        item: [
            agg_value(grid[(moment, item)], agg) if (moment, item) in grid else default
            for moment in times
        ]
        for item in sorted({item for _, item in series})
    }
    return ItemTrends(metric, agg, width, lo, hi, times, values)
