"""Series reads: bucketed aggregates of one metric over the coarsest rollup tier that fits.

`series_buckets` answers the series API. `raw_series_buckets` computes the same answer
with a plain time_bucket GROUP BY over the points; tests and bench/query.py compare the
two.
"""

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from psycopg import sql

from analytics.db.replicas import read_connection
from analytics.queries.tiers import TIER_WIDTHS, pending_minutes, tier_relation

Agg = Literal["avg", "sum", "count", "min", "max"]
Fill = Literal["none", "null", "zero", "previous"]
AGGS: tuple[str, ...] = ("avg", "sum", "count", "min", "max")
FILLS: tuple[str, ...] = ("none", "null", "zero", "previous")
# Natural widths of automatic buckets (the series API's `auto`, item trends), finest
# first; each is a multiple of a rollup tier.
NATURAL_BUCKETS: tuple[timedelta, ...] = (
    *(timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30)),
    *(timedelta(hours=h) for h in (1, 2, 3, 6, 12)),
    *(timedelta(days=d) for d in (1, 2, 7, 14, 30)),
)
# time_bucket aligns buckets to this origin (a Monday), so weeks start on Mondays.
ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
# The group of everything outside the top N; an object, so no tag value can collide.
OTHER: Any = type("Other", (), {"__repr__": lambda self: "other"})()


@dataclass(frozen=True)
class TagFilter:
    key: str
    values: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True)
class SeriesQuery:
    project_id: int
    metric: str
    agg: Agg
    start: datetime
    end: datetime
    bucket: timedelta
    filters: tuple[TagFilter, ...] = ()
    group_by: str | None = None
    limit: int = 10
    fill: Fill = "none"
    compare: bool = False


# (count, sum, min, max) of one bucket of one group.
Parts = tuple[int, float, float, float]


def merge(a: Parts | None, b: Parts) -> Parts:
    """Combine the aggregates of two sets of points (count and sum add, min and max hold)."""
    if a is None:
        return b
    return (a[0] + b[0], a[1] + b[1], min(a[2], b[2]), max(a[3], b[3]))


def agg_value(parts: Parts, agg: str) -> float:
    """Return `agg` of the points behind `parts`; avg is always sum / count."""
    count, total, low, high = parts
    if agg == "avg":
        return total / count
    if agg == "count":
        return float(count)
    return {"sum": total, "min": low, "max": high}[agg]


@dataclass(frozen=True)
class SeriesLine:
    """One group's values, one per bucket start of the answer's `times`."""

    name: str | None  # the metric, the group's tag value, or "other"; None: the tag is absent
    group: dict[str, str | None]  # {group_by: value}; empty without group_by and for "other"
    values: list[float | None]


@dataclass(frozen=True)
class Comparison:
    """The previous period of the same length, its buckets shifted onto the current ones."""

    shift_seconds: int
    series: list[SeriesLine]


@dataclass
class SeriesResult:
    metric: str
    agg: str
    bucket: timedelta
    source: str
    start: datetime
    end: datetime
    times: list[int]  # bucket starts, epoch milliseconds
    series: list[SeriesLine]
    partial_first: bool
    partial_last: bool
    compare: Comparison | None = None
    server_ms: float = 0.0
    matched_series: int = 0
    groups_total: int = 0


def natural_bucket(span: timedelta, *, points: int) -> timedelta:
    """Return the finest natural width giving at most about `points` buckets over `span`."""
    wanted = span / points
    return next((width for width in NATURAL_BUCKETS if width >= wanted), NATURAL_BUCKETS[-1])


def align_down(moment: datetime, width: timedelta) -> datetime:
    """Return the start of the time_bucket of `width` that holds `moment`."""
    steps = (moment - ORIGIN) // width
    return ORIGIN + steps * width


def align_up(moment: datetime, width: timedelta) -> datetime:
    start = align_down(moment, width)
    return start if start == moment else start + width


def tier_for(bucket: timedelta) -> str:
    """Return the coarsest tier whose width divides `bucket`."""
    for tier in ("1d", "1h", "1m"):
        if bucket % TIER_WIDTHS[tier] == timedelta(0):
            return tier
    raise ValueError(f"bucket {bucket} is not a multiple of 1 minute")


def matching_series(
    *, project_id: int, metric: str, filters: Sequence[TagFilter]
) -> list[tuple[int, dict[str, str]]]:
    """Return (id, tags) of the metric's series that pass every tag filter.

    As in Prometheus and InfluxDB, `key!=value` keeps series that lack the tag.
    Written in SQL because the ORM would read a tag key holding `__` as a JSON path.
    """
    conditions: list[sql.Composable] = [sql.SQL("project_id = %s AND metric = %s")]
    params: list[Any] = [project_id, metric]
    for tag_filter in filters:
        test = sql.SQL("(tags ->> %s) = ANY(%s)")
        conditions.append(
            sql.SQL("NOT coalesce({}, false)").format(test) if tag_filter.negate else test
        )
        params += [tag_filter.key, list(tag_filter.values)]
    query = sql.SQL("SELECT id, tags::text FROM analytics_series WHERE {} ORDER BY id").format(
        sql.SQL(" AND ").join(conditions)
    )
    with read_connection().cursor() as cursor:
        cursor.execute(query, params)
        return [(series_id, orjson.loads(tags)) for series_id, tags in cursor.fetchall()]


# Group by the bucket itself and convert only the grouped rows to epoch milliseconds
# (in double precision: extract() would give numeric, slow on every input row). Every
# bucketed read of the rollups (series, item trends) goes through this one statement.
_BUCKETED = """{ctes}
SELECT (date_part('epoch', time_bucket(%(width)s, t.bucket)) * 1000)::bigint AS bucket_ms,
       g.label, sum(t.count)::bigint, sum(t.sum), min(t.min), max(t.max)
FROM ({relation}) t
JOIN unnest(%(ids)s::bigint[], %(labels)s::text[]) AS g(series_id, label) USING (series_id)
GROUP BY time_bucket(%(width)s, t.bucket), g.label"""

_RAW = """SELECT (date_part('epoch', time_bucket(%(width)s, p.time)) * 1000)::bigint AS bucket_ms,
       g.label, count(*), sum(p.value), min(p.value), max(p.value)
FROM points p
JOIN unnest(%(ids)s::bigint[], %(labels)s::text[]) AS g(series_id, label) USING (series_id)
WHERE p.series_id = ANY(%(ids)s) AND p.time >= %(lo)s AND p.time < %(hi)s
GROUP BY time_bucket(%(width)s, p.time), g.label"""

# Buckets come back as epoch milliseconds: the API answers in them, and parsing a
# timestamp per row in Python would cost more than the query itself on long ranges.
Rows = list[tuple[int, str | None, int, float, float, float]]


def bucketed_rows(
    cursor: Any,
    *,
    ids: list[int],
    labels: Sequence[str | None],
    lo: datetime,
    hi: datetime,
    width: timedelta,
) -> Rows:
    """Return (bucket, label, count, sum, min, max) per bucket of `width` and label in [lo, hi).

    `labels[i]` is the group of series `ids[i]`; the rows come from the coarsest tier
    that divides `width`, pending minutes read live.
    """
    params: dict[str, Any] = {
        "ids": ids,
        "labels": list(labels),
        "lo": lo,
        "hi": hi,
        "width": width,
    }
    pending = pending_minutes(cursor, ids=ids, lo=lo, hi=hi)
    tier = tier_relation(tier_for(width), pending=pending, params=params)
    cursor.execute(sql.SQL(_BUCKETED).format(ctes=tier.ctes, relation=tier.relation), params)
    return list(cursor.fetchall())


@dataclass(frozen=True)
class _Scope:
    """The series (with their group labels) and the bucket width a query reads."""

    ids: list[int]
    labels: list[str | None]
    width: timedelta
    raw: bool

    def rows(self, cursor: Any, lo: datetime, hi: datetime) -> Rows:
        """Return (bucket, label, count, sum, min, max) rows for [lo, hi)."""
        if not self.ids:
            return []
        if not self.raw:
            return bucketed_rows(
                cursor, ids=self.ids, labels=self.labels, lo=lo, hi=hi, width=self.width
            )
        params = {"ids": self.ids, "labels": self.labels, "lo": lo, "hi": hi, "width": self.width}
        cursor.execute(_RAW, params)
        return list(cursor.fetchall())


def _group_label(tags: dict[str, str], group_by: str | None) -> str | None:
    return tags.get(group_by) if group_by else ""


Grid = dict[tuple[int, Any], Parts]


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _rank(rows: Rows, agg: str, limit: int) -> list[str | None]:
    """Return the labels of the top `limit` groups by `agg` over the whole range."""
    totals: dict[str | None, Parts] = {}
    for _, label, count, total, low, high in rows:
        totals[label] = merge(totals.get(label), (count, total, low, high))
    ranked = sorted(
        totals, key=lambda label: (-agg_value(totals[label], agg), label is None, label or "")
    )
    return ranked[:limit]


def _grid(rows: Rows, keep: Iterable[str | None], has_other: bool) -> Grid:
    """Index the rows by (bucket, group); groups outside `keep` merge into OTHER."""
    kept = set(keep)
    grid: Grid = {}
    for bucket, label, count, total, low, high in rows:
        if label in kept:
            # SQL returns one row per (bucket, label): nothing to merge.
            grid[(bucket, label)] = (count, total, low, high)
        elif has_other:
            key = (bucket, OTHER)
            grid[key] = merge(grid.get(key), (count, total, low, high))
    return grid


def _times(grid: Grid, lo: datetime, hi: datetime, width: timedelta, fill: str) -> list[int]:
    """Return the bucket starts (epoch ms): those with data, or all of them when filling."""
    if fill == "none":
        return sorted({bucket for bucket, _ in grid})
    step = epoch_ms(lo + width) - epoch_ms(lo)
    return list(range(epoch_ms(lo), epoch_ms(hi), step))


def _values(grid: Grid, times: list[int], name: Any, agg: str, fill: str) -> list[float | None]:
    values: list[float | None] = []
    previous: float | None = None
    for moment in times:
        parts = grid.get((moment, name))
        value = agg_value(parts, agg) if parts else None
        if value is None:
            value = 0.0 if fill == "zero" else previous if fill == "previous" else None
        values.append(value)
        if value is not None:
            previous = value
    return values


def series_buckets(
    query: SeriesQuery, *, raw: bool = False, now: datetime | None = None
) -> SeriesResult:
    """Answer `query` from the rollups (or, with `raw`, from the points directly)."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    width = query.bucket
    lo, hi = align_down(query.start, width), align_up(query.end, width)
    tier = tier_for(width)
    series = matching_series(
        project_id=query.project_id, metric=query.metric, filters=query.filters
    )
    scope = _Scope(
        ids=[series_id for series_id, _ in series],
        labels=[_group_label(tags, query.group_by) for _, tags in series],
        width=width,
        raw=raw,
    )
    with read_connection().cursor() as cursor:
        rows = scope.rows(cursor, lo, hi)
        top = _rank(rows, query.agg, query.limit) if query.group_by else [""]
        groups_total = len({row[1] for row in rows})
        has_other = bool(query.group_by) and groups_total > len(top)
        grid = _grid(rows, top, has_other)
        times = _times(grid, lo, hi, width, query.fill)
        names: list[Any] = [*top, *([OTHER] if has_other else [])]
        result_series = [
            SeriesLine(
                name=query.metric if not query.group_by else "other" if name is OTHER else name,
                group={} if not query.group_by or name is OTHER else {query.group_by: name},
                values=_values(grid, times, name, query.agg, query.fill),
            )
            for name in names
        ]
        compare = None
        if query.compare:
            shift = hi - lo
            shift_ms = epoch_ms(hi) - epoch_ms(lo)
            previous_rows = scope.rows(cursor, lo - shift, hi - shift)
            previous_grid = {
                (bucket + shift_ms, name): parts
                for (bucket, name), parts in _grid(previous_rows, top, has_other).items()
            }
            compare = Comparison(
                shift_seconds=int(shift.total_seconds()),
                series=[
                    replace(line, values=_values(previous_grid, times, name, query.agg, query.fill))
                    for line, name in zip(result_series, names, strict=True)
                ],
            )
    return SeriesResult(
        metric=query.metric,
        agg=query.agg,
        bucket=width,
        source="raw" if raw else f"rollup_{tier}",
        start=lo,
        end=hi,
        times=times,
        series=result_series,
        partial_first=query.start > lo,
        partial_last=query.end < hi or hi > now,
        compare=compare,
        server_ms=(time.perf_counter() - started) * 1000,
        matched_series=len(scope.ids),
        groups_total=groups_total,
    )
