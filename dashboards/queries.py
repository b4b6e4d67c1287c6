"""Reads of dashboards: the user's dashboards, the URL state of a view, and panel data.

Panel data comes from `analytics.queries.series.series_buckets` (dashboards run no SQL
of their own) and becomes a Plotly figure through the pure `dashboards.figures`.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, QuerySet
from django.http import QueryDict

from analytics.db.replicas import read_connection
from analytics.queries.series import (
    SeriesQuery,
    SeriesResult,
    TagFilter,
    align_down,
    align_up,
    epoch_ms,
    series_buckets,
)
from analytics.refusals import invalid
from analytics.series_params import format_width, parse_bucket, parse_filter, parse_time
from dashboards.figures import (
    ALWAYS_COMPARING_KIND,
    PREVIOUS_PERIOD_KINDS,
    Figure,
    panel_figure,
    series_data,
)
from dashboards.models import Dashboard, Panel, Refresh, filter_variable

VARIABLE_PARAM_PREFIX = "var-"
MAX_VARIABLE_VALUES = 100
MAX_VALUE_CHARS = 200
# Presets of the range picker: label, `from` (the `to` of a preset is always `now`).
RANGE_PRESETS: tuple[tuple[str, str], ...] = (
    ("Last 15 minutes", "now-15m"),
    ("Last 1 hour", "now-1h"),
    ("Last 6 hours", "now-6h"),
    ("Last 24 hours", "now-24h"),
    ("Last 7 days", "now-7d"),
    ("Last 30 days", "now-30d"),
    ("Last 90 days", "now-90d"),
    ("Last 1 year", "now-365d"),
)


def dashboards_for_user(*, user: Any) -> QuerySet[Dashboard]:
    """Return the dashboards of every project `user` is a member of, with panel counts."""
    return (
        Dashboard.objects.filter(project__memberships__user=user)
        .select_related("project")
        .annotate(panel_count=Count("panels", distinct=True))
        .order_by("project__name", "title")
    )


def dashboard_for_user(*, user: Any, project_slug: str, slug: str) -> Dashboard | None:
    """Return the dashboard if `user` is a member of its project, else None (a 404)."""
    return (
        Dashboard.objects.filter(
            project__slug=project_slug, slug=slug, project__memberships__user=user
        )
        .select_related("project")
        .first()
    )


def panel_for_user(*, user: Any, project_slug: str, slug: str, panel_id: int) -> Panel | None:
    """Return the panel with its dashboard and project, if `user` may see it, else None."""
    return (
        Panel.objects.filter(
            pk=panel_id,
            dashboard__slug=slug,
            dashboard__project__slug=project_slug,
            dashboard__project__memberships__user=user,
        )
        .select_related("dashboard__project")
        .first()
    )


def dashboard_panels(*, dashboard: Dashboard) -> list[Panel]:
    """Return the dashboard's panels in grid order (top to bottom, left to right)."""
    return list(dashboard.panels.all())


@dataclass(frozen=True)
class ViewState:
    """What the URL of a dashboard view says: range, auto-refresh and variable selections."""

    range_from: str
    range_to: str
    start: datetime
    end: datetime
    refresh: str
    # Only variables named in the URL; the others take their defaults.
    selected: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def values_of(self, dashboard: Dashboard, name: str) -> tuple[str, ...]:
        if name in self.selected:
            return self.selected[name]
        for variable in dashboard.variables:
            if variable["name"] == name:
                return tuple(variable.get("default", []))
        return ()

    def query_string(self, dashboard: Dashboard) -> str:
        """Return the URL parameters that reproduce this state (for links and data URLs)."""
        params = QueryDict(mutable=True)
        params["from"], params["to"] = self.range_from, self.range_to
        params["refresh"] = self.refresh
        for variable in dashboard.variables:
            name = variable["name"]
            if name in self.selected:
                params.setlist(VARIABLE_PARAM_PREFIX + name, list(self.selected[name]) or [""])
        return params.urlencode()


def parse_view_state(params: QueryDict, *, dashboard: Dashboard, now: datetime) -> ViewState:
    """Read `from`, `to`, `refresh` and `var-<name>` (repeated) or raise a 400 naming it."""
    range_from = params.get("from") or dashboard.default_from
    range_to = params.get("to") or dashboard.default_to
    start = parse_time(range_from, "from", now)
    end = parse_time(range_to, "to", now)
    if end <= start:
        raise invalid("to", f"{range_to[:64]} must be after from ({range_from[:64]})")
    refresh = params.get("refresh") or dashboard.refresh
    if refresh not in Refresh.values:
        raise invalid("refresh", f"{refresh[:16]!r} is not one of {', '.join(Refresh.values)}")
    selected: dict[str, tuple[str, ...]] = {}
    for variable in dashboard.variables:
        param = VARIABLE_PARAM_PREFIX + variable["name"]
        if param not in params:
            continue
        values = tuple(dict.fromkeys(value for value in params.getlist(param) if value))
        if len(values) > MAX_VARIABLE_VALUES:
            raise invalid(param, f"at most {MAX_VARIABLE_VALUES} values")
        if any(len(value) > MAX_VALUE_CHARS for value in values):
            raise invalid(param, f"values must be at most {MAX_VALUE_CHARS} characters")
        if any("\x00" in value for value in values):
            raise invalid(param, "values must not contain NUL characters")
        if len(values) > 1 and not variable.get("multi", True):
            raise invalid(param, "takes one value")
        selected[variable["name"]] = values
    return ViewState(range_from, range_to, start, end, refresh, selected)


def panel_filters(panel: Panel, state: ViewState) -> tuple[TagFilter, ...]:
    """Return the panel's tag filters with variables replaced by their selected values."""
    filters: list[TagFilter] = []
    for where in panel.filters:
        test = parse_filter(where)
        name = filter_variable(test)
        if name is not None:
            chosen = state.values_of(panel.dashboard, name)
            if not chosen:
                continue  # nothing selected: the variable filters nothing
            test = TagFilter(key=test.key, values=chosen, negate=test.negate)
        filters.append(test)
    return tuple(filters)


def panel_bucket(panel: Panel, start: datetime, end: datetime) -> timedelta:
    """Return the panel's bucket, widened to `auto` when it would give too many points."""
    auto = parse_bucket("auto", start, end)
    if panel.bucket == "auto":
        return auto
    width = parse_bucket(panel.bucket, start, end)
    points = (align_up(end, width) - align_down(start, width)) / width
    return width if points <= settings.SERIES_MAX_POINTS else max(width, auto)


def panel_query(panel: Panel, state: ViewState) -> SeriesQuery:
    """Return the series query a panel asks in a view state."""
    return SeriesQuery(
        project_id=panel.dashboard.project_id,
        metric=panel.metric,
        agg=panel.agg,  # type: ignore[arg-type]
        start=state.start,
        end=state.end,
        bucket=panel_bucket(panel, state.start, state.end),
        filters=panel_filters(panel, state),
        group_by=panel.group_by or None,
        limit=panel.limit,
        fill=panel.fill,  # type: ignore[arg-type]
        compare=panel.compare or panel.kind == ALWAYS_COMPARING_KIND,
    )


@contextmanager
def _recording_sql(statements: list[str]) -> Iterator[None]:
    """Record the text of every statement run inside, for the panel's inspector."""

    def record(execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any) -> Any:
        statements.append(
            sql.as_string(context["connection"].connection)
            if hasattr(sql, "as_string")
            else str(sql)
        )
        return execute(sql, params, many, context)

    with read_connection().execute_wrapper(record):
        yield


@dataclass(frozen=True)
class PanelData:
    """A panel's answer: the figure to draw, what the inspector shows, and the series."""

    figure: Figure
    inspect: dict[str, Any]
    result: SeriesResult
    query: SeriesQuery


def _where_text(test: TagFilter) -> str:
    op = "!=" if test.negate else ":"
    value = test.values[0] if len(test.values) == 1 else f"in({','.join(test.values)})"
    return f"{test.key}{op}{value}"


def panel_series(panel: Panel, state: ViewState) -> SeriesResult:
    """Return the series answer of a panel in a view state (what its CSV holds)."""
    return series_buckets(panel_query(panel, state))


def panel_data(panel: Panel, state: ViewState) -> PanelData:
    """Answer one panel in a view state: its series, its figure and its inspector."""
    started = time.perf_counter()
    query = panel_query(panel, state)
    statements: list[str] = []
    with _recording_sql(statements):
        result = series_buckets(query)
    data = series_data(result, unit=panel.unit, with_previous=panel.kind in PREVIOUS_PERIOD_KINDS)
    # The panel's header carries the title; the chart keeps its room for the data.
    figure = panel_figure(panel.kind, data, title="")
    figure["layout"]["margin"] = {**figure["layout"].get("margin", {}), "t": 10}
    # Auto-refresh keeps legend clicks; a new range (a zoom, a preset) resets the view.
    figure["layout"]["uirevision"] = f"{panel.pk}|{state.range_from}|{state.range_to}"
    xaxis = figure["layout"].get("xaxis")
    if isinstance(xaxis, dict) and xaxis.get("type") == "date":
        # The whole range, not just the buckets with data: every panel lines up, and
        # empty stretches at either end stay visible as gaps.
        half = data.bucket_ms // 2
        xaxis["range"] = [epoch_ms(result.start) - half, epoch_ms(result.end) - half]
    inspect = {
        "query": {
            "metric": query.metric,
            "agg": query.agg,
            "from": state.range_from,
            "to": state.range_to,
            "start": result.start.isoformat(),
            "end": result.end.isoformat(),
            "bucket": format_width(query.bucket),
            "where": [_where_text(test) for test in query.filters],
            "group_by": query.group_by,
            "limit": query.limit,
            "compare": "previous_period" if query.compare else None,
        },
        "tier": result.source,
        "series_ms": round(result.server_ms, 2),
        "server_ms": round((time.perf_counter() - started) * 1000, 2),
        "matched_series": result.matched_series,
        "groups_total": result.groups_total,
        "buckets": len(result.times),
        "sql": statements,
    }
    return PanelData(figure=figure, inspect=inspect, result=result, query=query)
