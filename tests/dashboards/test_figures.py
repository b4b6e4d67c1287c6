"""dashboards.figures: every chart kind, with empty series and gaps, as Plotly figure dicts."""

import json

import pytest

from analytics.queries.series import SeriesLine
from dashboards.figures import CHART_KINDS, SeriesData, panel_figure, with_gaps

MIN = 60_000
T0 = 1_795_600_800_000  # a bucket start, epoch ms


def data(values_by_name: dict[str, list[float | None]], times: list[int], **extra) -> SeriesData:
    return SeriesData(
        metric="http.latency_ms",
        agg="avg",
        bucket_ms=MIN,
        times=times,
        series=[SeriesLine(name=n, group={}, values=v) for n, v in values_by_name.items()],
        **extra,
    )


GAPPY = data({"eu": [1.0, 2.0, 4.0], "us": [5.0, None, 7.0]}, [T0, T0 + MIN, T0 + 3 * MIN])
EMPTY = data({}, [])
EMPTY_GROUP = data({"eu": []}, [])


def test_with_gaps_restores_missing_buckets_as_nulls():
    """Buckets left out by fill=none come back as nulls on the full grid."""
    x, y = with_gaps([T0, T0 + MIN, T0 + 3 * MIN], [1.0, 2.0, 4.0], MIN)
    assert x == [T0, T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN]
    assert y == [1.0, 2.0, None, 4.0]
    assert with_gaps([], [], MIN) == ([], [])


@pytest.mark.parametrize("kind", ["line", "area"])
def test_lines_keep_gaps_visible(kind):
    """Line and area charts never connect across a missing bucket."""
    figure = panel_figure(kind, GAPPY, title="Latency")
    eu, us = figure["data"]
    assert eu["y"] == [1.0, 2.0, None, 4.0]
    assert us["y"] == [5.0, None, None, 7.0]
    assert eu["connectgaps"] is False
    assert eu["x"][2] == T0 + 2 * MIN
    assert figure["layout"]["xaxis"]["type"] == "date"
    assert figure["layout"]["showlegend"] is True
    if kind == "area":
        assert eu["fill"] == "tozeroy"
        assert "stackgroup" not in eu


def test_line_draws_the_previous_period_dotted():
    """compare=previous_period adds a dotted trace per group."""
    figure = panel_figure(
        "line",
        data(
            {"eu": [1.0, 2.0]},
            [T0, T0 + MIN],
            previous=[SeriesLine(name="eu", group={}, values=[0.5, None])],
        ),
        title="t",
    )
    current, previous = figure["data"]
    assert current["y"] == [1.0, 2.0]
    assert previous["name"] == "eu (previous)"
    assert previous["y"] == [0.5, None]
    assert previous["line"]["dash"] == "dot"


def test_stacked_bar_stacks():
    """Stacked bars use barmode stack and keep gaps as missing bars."""
    figure = panel_figure("stacked_bar", GAPPY, title="Requests")
    assert figure["layout"]["barmode"] == "stack"
    assert [trace["type"] for trace in figure["data"]] == ["bar", "bar"]
    assert figure["data"][1]["y"] == [5.0, None, None, 7.0]


def test_single_stat_shows_last_value_change_and_sparkline():
    """Single stat: the last non-null value, its relative change, and a sparkline."""
    figure = panel_figure(
        "single_stat",
        data(
            {"all": [3.0, 4.0, None]},
            [T0, T0 + MIN, T0 + 2 * MIN],
            previous=[SeriesLine(name="all", group={}, values=[2.0, 2.0, None])],
        ),
        title="Latency",
    )
    indicator, sparkline = figure["data"]
    assert indicator["value"] == 4.0
    assert indicator["mode"] == "number+delta"
    assert indicator["delta"]["reference"] == 2.0
    assert sparkline["y"] == [3.0, 4.0, None]


def test_single_stat_skips_a_bucket_that_is_still_filling():
    """With partial_last, the stat and its reference are the newest complete bucket's."""
    figure = panel_figure(
        "single_stat",
        data(
            {"all": [3.0, 4.0, 0.5]},
            [T0, T0 + MIN, T0 + 2 * MIN],
            previous=[SeriesLine(name="all", group={}, values=[2.0, 5.0, 6.0])],
            partial_last=True,
        ),
        title="Requests",
    )
    indicator, sparkline = figure["data"]
    assert (indicator["value"], indicator["delta"]["reference"]) == (4.0, 5.0)
    assert sparkline["y"] == [3.0, 4.0, 0.5]


def test_a_line_value_between_two_gaps_is_drawn_as_a_dot():
    """A lone value has no segment to draw, so it gets a marker; joined values get none."""
    figure = panel_figure(
        "line",
        data({"eu": [1.0, None, 2.0, None, 3.0, 4.0]}, [T0 + i * MIN for i in range(6)]),
        title="t",
    )
    trace = figure["data"][0]
    assert trace["mode"] == "lines+markers"
    assert trace["marker"]["size"] == [5, 0, 5, 0, 0, 0]
    assert trace["connectgaps"] is False


def test_single_stat_without_previous_has_no_delta():
    """Without a previous period there is no change to show."""
    indicator = panel_figure("single_stat", GAPPY, title="t")["data"][0]
    assert indicator["mode"] == "number"
    assert indicator["value"] == 4.0


def test_table_lists_newest_first_with_blanks_for_gaps():
    """Table rows are buckets, newest first; a gap is a blank cell."""
    figure = panel_figure("table", GAPPY, title="t")
    table = figure["data"][0]
    assert table["header"]["values"] == ["time", "eu", "us"]
    times, eu, us = table["cells"]["values"]
    assert times[0] == "2026-11-25 10:03"
    assert eu == [4.0, 2.0, 1.0]
    assert us == [7.0, None, 5.0]


def test_heatmap_has_a_cell_per_group_and_bucket():
    """Heatmap rows are groups, columns buckets; missing buckets are empty cells."""
    heatmap = panel_figure("heatmap", GAPPY, title="t")["data"][0]
    assert heatmap["y"] == ["eu", "us"]
    assert heatmap["z"] == [[1.0, 2.0, None, 4.0], [5.0, None, None, 7.0]]
    assert heatmap["hoverongaps"] is False


@pytest.mark.parametrize("kind", CHART_KINDS)
@pytest.mark.parametrize("empty", [EMPTY, EMPTY_GROUP])
def test_every_kind_handles_no_data(kind, empty):
    """No series or an empty series gives a valid, JSON-serialisable figure, never an error."""
    figure = panel_figure(kind, empty, title="Nothing yet")
    assert json.loads(json.dumps(figure))["layout"]["title"]["text"] == "Nothing yet"
    if kind == "single_stat":
        assert figure["data"][0]["value"] is None
        assert figure["layout"]["annotations"][0]["text"] == "no data"


def test_unknown_kind_is_refused():
    """An unknown chart kind names the allowed ones."""
    with pytest.raises(ValueError, match="chart kind must be one of line, area"):
        panel_figure("pie", GAPPY, title="t")
