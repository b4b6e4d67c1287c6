"""Polish of issue 15: heatmap labels fit, the single stat says why a change is missing,
and progress bars stay out of logs."""

import io

from analytics.progress import progress_bar
from analytics.queries.series import SeriesLine
from dashboards.figures import SeriesData, panel_figure

MIN = 60_000
T0 = 1_795_600_800_000


def series(values: list[float | None], previous: list[float | None] | None) -> SeriesData:
    return SeriesData(
        metric="m",
        agg="sum",
        bucket_ms=MIN,
        times=[T0 + i * MIN for i in range(len(values))],
        series=[SeriesLine(name="m", group={}, values=values)],
        previous=None if previous is None else [SeriesLine(name="m", group={}, values=previous)],
    )


def test_heatmap_rows_get_the_margin_their_labels_need():
    """The heatmap's y axis grows its margin to fit long row labels and keeps them as text."""
    figure = panel_figure("heatmap", series([1.0, 2.0], None), title="")
    assert figure["layout"]["yaxis"]["automargin"] is True
    assert figure["layout"]["yaxis"]["type"] == "category"


def test_single_stat_explains_a_missing_change():
    """With a previous period that has no data (a long range), the panel says why no change."""
    figure = panel_figure("single_stat", series([1.0, 2.0], [None, None]), title="")
    assert figure["data"][0]["mode"] == "number"
    texts = [a["text"] for a in figure["layout"].get("annotations", [])]
    assert texts == ["no change shown: no data one period earlier"]


def test_single_stat_with_a_previous_value_shows_the_change_and_no_note():
    """With data one period earlier the change is drawn and no note is added."""
    figure = panel_figure("single_stat", series([1.0, 2.0], [1.0, 1.0]), title="")
    assert figure["data"][0]["mode"] == "number+delta"
    assert "annotations" not in figure["layout"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_writes_one_line_when_not_a_terminal():
    """Into a file (not a terminal) a bar writes its final state once, without carriage returns."""
    log = io.StringIO()
    with progress_bar(total=1000, unit="rows", desc="x", verbosity=1, stream=log) as bar:
        for _ in range(1000):
            bar.update(1)
    assert "\r" not in log.getvalue()
    assert log.getvalue().count("\n") == 1
    assert "100%" in log.getvalue()
    terminal = _Terminal()
    with progress_bar(total=10, unit="rows", desc="x", verbosity=1, stream=terminal) as bar:
        bar.update(10)
    assert "\r" in terminal.getvalue()


def test_a_long_bar_not_on_a_terminal_writes_a_line_per_interval():
    """A run longer than the interval logs where it is as it goes, one plain line per state
    (here every redraw: the interval is 0), and its final state once."""
    log = io.StringIO()
    with progress_bar(
        total=3, unit="item", desc="x", verbosity=1, stream=log, line_every=0.0
    ) as bar:
        for _ in range(3):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [line.split("|")[0].split()[-1] for line in lines] == ["0%", "33%", "67%", "100%"]
