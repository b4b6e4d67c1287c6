"""Small trends of one metric for many items at once (the sparklines beside search results).

Events name the item they are about (`Series.item`), so an item's trend is the metric
summed over its series. All items are read in three queries whatever their number:
their series, the pending rollup minutes, and one bucketed aggregate over the tier
that fits, through the same tier logic as the series API (`analytics.queries.tiers`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from analytics.db.replicas import read_connection
from analytics.queries.series import (
    Parts,
    agg_value,
    align_down,
    align_up,
    bucketed_rows,
    epoch_ms,
    merge,
    natural_bucket,
)

# About this many buckets per trend: enough for a shape, small enough for a sparkline.
TREND_POINTS = 30
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
    return natural_bucket(span, points=TREND_POINTS)


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
        rows = bucketed_rows(
            cursor,
            ids=[series_id for series_id, _ in series],
            labels=[item for _, item in series],
            lo=lo,
            hi=hi,
            width=width,
        )
    grid: dict[tuple[int, str | None], Parts] = {}
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
