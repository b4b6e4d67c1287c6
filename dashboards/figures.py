"""Pure functions that turn a series answer into a Plotly figure (a dict), one per chart kind.

No database and no Plotly import here: the input is the series API's compact answer
(`times` in epoch milliseconds, one `values` list per group) and the output is the JSON
the browser hands to Plotly.js. Gaps stay gaps: missing buckets become nulls and lines
never connect across them.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

ChartKind = Literal["line", "area", "stacked_bar", "single_stat", "table", "heatmap"]
CHART_KINDS: tuple[str, ...] = ("line", "area", "stacked_bar", "single_stat", "table", "heatmap")

Figure = dict[str, Any]


@dataclass(frozen=True)
class SeriesData:
    """What a panel drew from the series API: bucket starts and one value list per group."""

    metric: str
    agg: str
    bucket_ms: int
    times: list[int]
    series: list[dict[str, Any]]
    previous: list[dict[str, Any]] | None = None  # compare=previous_period, same shape
    unit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


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
    series: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One trace per group of `series` (default: the current period), gaps restored."""
    traces = []
    for entry in data.series if series is None else series:
        x, y = with_gaps(data.times, entry["values"], data.bucket_ms)
        traces.append(make(str(entry["name"]), x, y))
    return traces


def line_figure(data: SeriesData, *, title: str) -> Figure:
    traces = _xy_traces(
        data,
        lambda name, x, y: {
            "type": "scatter",
            "mode": "lines",
            "name": name,
            "x": x,
            "y": y,
            "connectgaps": False,
        },
    )
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


def _last(values: Sequence[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


def single_stat_figure(data: SeriesData, *, title: str) -> Figure:
    """The latest value of the first group, its change against the previous period, a sparkline."""
    values = data.series[0]["values"] if data.series else []
    current = _last(values)
    indicator: dict[str, Any] = {
        "type": "indicator",
        "mode": "number",
        "value": current,
        "number": {"suffix": f" {data.unit}" if data.unit else ""},
        "domain": {"x": [0, 1], "y": [0.4, 1]},
    }
    if current is not None and data.previous:
        reference = _last(data.previous[0]["values"])
        if reference is not None:
            indicator["mode"] = "number+delta"
            indicator["delta"] = {"reference": reference, "relative": True, "valueformat": ".1%"}
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
    return {"data": [indicator, sparkline], "layout": layout}


def _utc(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def table_figure(data: SeriesData, *, title: str) -> Figure:
    """One row per bucket (newest first), one column per group; gaps are shown as blanks."""
    names = [str(entry["name"]) for entry in data.series]
    rows = list(range(len(data.times) - 1, -1, -1))
    columns: list[list[Any]] = [[_utc(data.times[i]) for i in rows]]
    columns += [[entry["values"][i] for i in rows] for entry in data.series]
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
        grid, values = with_gaps(data.times, entry["values"], data.bucket_ms)
        rows.append(values)
    heatmap = {
        "type": "heatmap",
        "x": grid,
        "y": [str(entry["name"]) for entry in data.series],
        "z": rows,
        "hoverongaps": False,
        "colorscale": "Viridis",
    }
    return {"data": [heatmap], "layout": _layout(title, data, showlegend=False)}


_BUILDERS: dict[str, Callable[..., Figure]] = {
    "line": line_figure,
    "area": area_figure,
    "stacked_bar": stacked_bar_figure,
    "single_stat": single_stat_figure,
    "table": table_figure,
    "heatmap": heatmap_figure,
}


def panel_figure(kind: str, data: SeriesData, *, title: str) -> Figure:
    """Return the Plotly figure of chart `kind` for `data`."""
    if kind not in _BUILDERS:
        raise ValueError(f"chart kind must be one of {', '.join(CHART_KINDS)}, not {kind!r}")
    return _BUILDERS[kind](data, title=title)
