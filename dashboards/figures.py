"""Pure functions that turn a series answer into a Plotly figure (a dict), one per chart kind.

No database and no Plotly import here: the input is the series API's compact answer
(`times` in epoch milliseconds, one `values` list per group) and the output is the JSON
the browser hands to Plotly.js. Gaps stay gaps: missing buckets become nulls and lines
never connect across them.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Only the type: this module stays free of Django at run time.
    from analytics.queries.series import SeriesLine, SeriesResult

Figure = dict[str, Any]


@dataclass(frozen=True)
class SeriesData:
    """What a panel drew from the series API: bucket starts and one value list per group."""

    metric: str
    agg: str
    bucket_ms: int
    times: list[int]
    series: "list[SeriesLine]"
    previous: "list[SeriesLine] | None" = None  # compare=previous_period, same groups
    partial_last: bool = False  # the last bucket is still filling (the range ends at now)
    unit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def series_data(
    result: "SeriesResult", *, unit: str = "", with_previous: bool = False
) -> SeriesData:
    """Return what a chart draws from one series answer (the previous period only if asked)."""
    previous = result.compare.series if with_previous and result.compare else None
    return SeriesData(
        metric=result.metric,
        agg=result.agg,
        bucket_ms=int(result.bucket.total_seconds() * 1000),
        times=result.times,
        series=result.series,
        previous=previous,
        partial_last=result.partial_last,
        unit=unit,
    )


def with_gaps(
    times: Sequence[int], values: Sequence[float | None], step: int
) -> tuple[list[int], list[float | None]]:
    """Return times on the full bucket grid and values with None where a bucket is missing.

    With `fill=none` the API leaves empty buckets out; a line drawn through the remaining
    points would hide the gap, so the grid is restored with nulls.
    """
    if not times or step <= 0:
        return list(times), list(values)
    by_time = dict(zip(times, values, strict=True))
    grid = list(range(times[0], times[-1] + step, step))
    return grid, [by_time.get(moment) for moment in grid]


def _layout(title: str, data: SeriesData, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title},
        "xaxis": {"type": "date"},
        "yaxis": {"title": {"text": data.unit or data.agg}},
        "showlegend": len(data.series) > 1,
        "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
    }
    layout.update(extra)
    return layout


def _xy_traces(
    data: SeriesData,
    make: Callable[[str, list[int], list[float | None]], dict[str, Any]],
    series: "list[SeriesLine] | None" = None,
) -> list[dict[str, Any]]:
    """One trace per group of `series` (default: the current period), gaps restored."""
    traces = []
    for entry in data.series if series is None else series:
        x, y = with_gaps(data.times, entry.values, data.bucket_ms)
        traces.append(make(str(entry.name), x, y))
    return traces


def _isolated(values: Sequence[float | None]) -> list[bool]:
    """Return, per value, whether it has no neighbour to draw a line segment to."""
    last = len(values) - 1
    return [
        value is not None
        and (i == 0 or values[i - 1] is None)
        and (i == last or values[i + 1] is None)
        for i, value in enumerate(values)
    ]


def _line_trace(name: str, x: list[int], y: list[float | None]) -> dict[str, Any]:
    """A line that keeps its gaps; a value between two gaps gets a dot, or it would vanish."""
    trace: dict[str, Any] = {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "x": x,
        "y": y,
        "connectgaps": False,
    }
    isolated = _isolated(y)
    if any(isolated):
        trace["mode"] = "lines+markers"
        trace["marker"] = {"size": [5 if alone else 0 for alone in isolated]}
    return trace


def line_figure(data: SeriesData, *, title: str) -> Figure:
    traces = _xy_traces(data, _line_trace)
    if data.previous:
        traces += _xy_traces(
            data,
            lambda name, x, y: {
                "type": "scatter",
                "mode": "lines",
                "name": f"{name} (previous)",
                "x": x,
                "y": y,
                "connectgaps": False,
                "line": {"dash": "dot", "width": 1},
            },
            data.previous,
        )
    return {"data": traces, "layout": _layout(title, data)}


def area_figure(data: SeriesData, *, title: str) -> Figure:
    # Not stacked: Plotly's stackgroup treats a null as zero, which would paint over gaps.
    traces = _xy_traces(
        data,
        lambda name, x, y: {
            "type": "scatter",
            "mode": "lines",
            "fill": "tozeroy",
            "name": name,
            "x": x,
            "y": y,
            "connectgaps": False,
        },
    )
    return {"data": traces, "layout": _layout(title, data)}


def stacked_bar_figure(data: SeriesData, *, title: str) -> Figure:
    traces = _xy_traces(data, lambda name, x, y: {"type": "bar", "name": name, "x": x, "y": y})
    return {"data": traces, "layout": _layout(title, data, barmode="stack", bargap=0.1)}


def _latest_complete(values: Sequence[float | None], partial_last: bool) -> int | None:
    """Return the index of the newest value of a complete bucket (a filling one would mislead)."""
    end = len(values) - 1 if partial_last and len(values) > 1 else len(values)
    return next((i for i in range(end - 1, -1, -1) if values[i] is not None), None)


def single_stat_figure(data: SeriesData, *, title: str) -> Figure:
    """The newest complete bucket of the first group, its change against the same bucket one
    period earlier, and a sparkline of the whole range."""
    values = data.series[0].values if data.series else []
    index = _latest_complete(values, data.partial_last)
    current = values[index] if index is not None else None
    indicator: dict[str, Any] = {
        "type": "indicator",
        "mode": "number",
        "value": current,
        "number": {"suffix": f" {data.unit}" if data.unit else ""},
        "domain": {"x": [0, 1], "y": [0.4, 1]},
    }
    # Why a change is missing, said on the panel (on a long range the period before it is
    # often older than the data kept, and a silent missing arrow reads as "no change").
    no_delta = ""
    if index is not None and data.previous is not None:
        earlier = data.previous[0].values if data.previous else []
        reference = earlier[index] if index < len(earlier) else None
        if reference is not None:
            indicator["mode"] = "number+delta"
            indicator["delta"] = {"reference": reference, "relative": True, "valueformat": ".1%"}
        else:
            no_delta = "no change shown: no data one period earlier"
    x, y = with_gaps(data.times, values, data.bucket_ms)
    sparkline = {
        "type": "scatter",
        "mode": "lines",
        "x": x,
        "y": y,
        "connectgaps": False,
        "hoverinfo": "skip",
        "fill": "tozeroy",
        "xaxis": "x",
        "yaxis": "y",
    }
    layout = {
        "title": {"text": title},
        "showlegend": False,
        "xaxis": {"type": "date", "visible": False, "domain": [0, 1]},
        "yaxis": {"visible": False, "domain": [0, 0.35]},
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
    }
    if current is None:
        layout["annotations"] = [
            {
                "text": "no data",
                "showarrow": False,
                "x": 0.5,
                "y": 0.7,
                "xref": "paper",
                "yref": "paper",
            }
        ]
    if no_delta:
        layout["annotations"] = [
            {
                "text": no_delta,
                "showarrow": False,
                "x": 0.5,
                "y": 0.38,
                "xref": "paper",
                "yref": "paper",
                "font": {"size": 11, "color": "#616e7c"},
                "name": "no-delta",
            }
        ]
    return {"data": [indicator, sparkline], "layout": layout}


def _utc(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def table_figure(data: SeriesData, *, title: str) -> Figure:
    """One row per bucket (newest first), one column per group; gaps are shown as blanks."""
    names = [str(entry.name) for entry in data.series]
    rows = list(range(len(data.times) - 1, -1, -1))
    columns: list[list[Any]] = [[_utc(data.times[i]) for i in rows]]
    columns += [[entry.values[i] for i in rows] for entry in data.series]
    table = {
        "type": "table",
        "header": {"values": ["time", *names]},
        "cells": {"values": columns, "format": ["", *[".4~g"] * len(names)]},
    }
    return {
        "data": [table],
        "layout": {"title": {"text": title}, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}},
    }


def heatmap_figure(data: SeriesData, *, title: str) -> Figure:
    """Groups down, buckets across; an empty bucket stays an empty cell."""
    grid: list[int] = []
    rows: list[list[float | None]] = []
    for entry in data.series:
        grid, values = with_gaps(data.times, entry.values, data.bucket_ms)
        rows.append(values)
    heatmap = {
        "type": "heatmap",
        "x": grid,
        "y": [str(entry.name) for entry in data.series],
        "z": rows,
        "hoverongaps": False,
        "colorscale": "Viridis",
    }
    # Row labels are tag values of any length: the left margin grows to fit them instead
    # of cutting them (`cache-8` drawn as `ache-8`).
    layout = _layout(title, data, showlegend=False)
    layout["yaxis"] = {**layout["yaxis"], "automargin": True, "type": "category"}
    return {"data": [heatmap], "layout": layout}


_BUILDERS: dict[str, Callable[..., Figure]] = {
    "line": line_figure,
    "area": area_figure,
    "stacked_bar": stacked_bar_figure,
    "single_stat": single_stat_figure,
    "table": table_figure,
    "heatmap": heatmap_figure,
}


# The chart kinds, in the order the panel form lists them: this table is their one list.
CHART_KINDS: tuple[str, ...] = tuple(_BUILDERS)
# Kinds that draw the previous period beside the current one.
PREVIOUS_PERIOD_KINDS = frozenset({"line", "single_stat"})
# A single stat is its change against the previous period, so it always compares.
ALWAYS_COMPARING_KIND = "single_stat"


def chart_kind_label(kind: str) -> str:
    """Return the kind as the panel form shows it: `stacked_bar` is "Stacked bar"."""
    return kind.replace("_", " ").capitalize()


def panel_figure(kind: str, data: SeriesData, *, title: str) -> Figure:
    """Return the Plotly figure of chart `kind` for `data`."""
    if kind not in _BUILDERS:
        raise ValueError(f"chart kind must be one of {', '.join(CHART_KINDS)}, not {kind!r}")
    return _BUILDERS[kind](data, title=title)
