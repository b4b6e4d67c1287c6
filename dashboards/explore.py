"""Reads of the Explore page: one metric over a range, and one breakdown per tag key.

Like Grafana's metrics drill-down: the metric's chart, then for every tag key of the
metric (from the catalog) a small chart of its top values, each a click away from
becoming a filter. Every chart comes from `series_buckets` and `dashboards.figures`.
"""

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.http import QueryDict

from analytics.queries.catalog import tag_keys
from analytics.queries.series import AGGS, SeriesQuery, SeriesResult, series_buckets
from analytics.refusals import Refusal, invalid
from analytics.series_params import format_width, parse_bucket, parse_filter, parse_time
from dashboards.figures import Figure, panel_figure, series_data

MAX_FILTERS = 20
MAX_BREAKDOWNS = 8
BREAKDOWN_VALUES = 5


@dataclass(frozen=True)
class ExploreState:
    """What the Explore URL says: metric, aggregate, range and filters."""

    metric: str
    agg: str
    range_from: str
    range_to: str
    start: datetime
    end: datetime
    where: tuple[str, ...] = ()


def parse_explore_state(params: QueryDict, *, now: datetime) -> ExploreState:
    """Read `metric`, `agg`, `from`, `to` and `where` (repeated) or raise a 400 naming it."""
    metric = params.get("metric", "").strip()
    if len(metric) > 200 or "\x00" in metric:
        raise invalid("metric", "must be at most 200 characters, without NUL")
    agg = params.get("agg") or "avg"
    if agg not in AGGS:
        raise invalid("agg", f"{agg[:16]!r} is not one of {', '.join(AGGS)}")
    range_from = params.get("from") or "now-24h"
    range_to = params.get("to") or "now"
    try:
        start = parse_time(range_from, "from", now)
    except Refusal as exc:
        raise invalid("from", exc.reason) from exc
    try:
        end = parse_time(range_to, "to", now)
    except Refusal as exc:
        raise invalid("to", exc.reason) from exc
    if end <= start:
        raise invalid("to", f"{range_to[:64]} must be after from ({range_from[:64]})")
    where = tuple(dict.fromkeys(value for value in params.getlist("where") if value))
    if len(where) > MAX_FILTERS:
        raise invalid("where", f"at most {MAX_FILTERS} filters")
    for value in where:
        try:
            parse_filter(value)
        except Refusal as exc:
            raise invalid("where", exc.reason) from exc
    return ExploreState(metric, agg, range_from, range_to, start, end, where)


@dataclass(frozen=True)
class Breakdown:
    """The metric grouped by one tag key: its top values and their chart."""

    key: str
    values: list[str]
    figure: Figure


@dataclass(frozen=True)
class ExploreAnswer:
    figure: Figure
    inspect: dict[str, Any]
    breakdowns: list[Breakdown] = field(default_factory=list)


def _figure(result: SeriesResult, unit: str = "") -> Figure:
    data = series_data(result, unit=unit)
    figure = panel_figure("line", data, title="")
    figure["layout"]["margin"] = {"l": 50, "r": 10, "t": 10, "b": 30}
    return figure


def explore(*, project_id: int, state: ExploreState) -> ExploreAnswer:
    """Answer the Explore view: the metric's chart and a breakdown per tag key (top values)."""
    started = time.perf_counter()
    filters = tuple(parse_filter(value) for value in state.where)
    bucket = parse_bucket("auto", state.start, state.end)

    def query(group_by: str | None) -> SeriesResult:
        return series_buckets(
            SeriesQuery(
                project_id=project_id,
                metric=state.metric,
                agg=state.agg,  # type: ignore[arg-type]
                start=state.start,
                end=state.end,
                bucket=bucket,
                filters=filters,
                group_by=group_by,
                limit=BREAKDOWN_VALUES,
            )
        )

    main = query(None)
    # A key pinned to one value by an equality filter has nothing left to break down.
    pinned = {test.key for test in filters if not test.negate and len(test.values) == 1}
    keys = [
        entry.name
        for entry in tag_keys(project_id=project_id, metric=state.metric)
        if entry.name not in pinned
    ][:MAX_BREAKDOWNS]
    breakdowns = []
    for key in keys:
        result = query(key)
        values = [str(entry.group[key]) for entry in result.series if entry.group]
        breakdowns.append(Breakdown(key=key, values=values, figure=_figure(result)))
    inspect = {
        "tier": main.source,
        "bucket": format_width(main.bucket),
        "buckets": len(main.times),
        "matched_series": main.matched_series,
        "server_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    return ExploreAnswer(figure=_figure(main), inspect=inspect, breakdowns=breakdowns)
