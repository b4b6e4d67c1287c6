"""Panel data endpoints: figure and inspector JSON, CSV, variables, ranges, errors, scoping."""

import csv
import io
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.shortcuts import resolve_url
from django.test import Client
from django.test.utils import CaptureQueriesContext
from pytest_django import DjangoAssertNumQueries

from dashboards.models import Dashboard
from dashboards.services import import_dashboard
from tests.analytics.helpers_series import BASE, MINUTE, iso, ms, write
from tests.dashboards.conftest import RANGE, dashboard_document, panel_url, write_traffic

pytestmark = pytest.mark.django_db


def get_json(client: Client, url: str, **params: Any) -> Any:
    response = client.get(url, {**RANGE, **params})
    assert response["Content-Type"] == "application/json", response.content[:300]
    return response.status_code, response.json()


def test_line_panel_answers_figure_and_inspector(dash_client, dashboard):
    """A line panel: one trace per region, the gap kept as a null, and what answered it."""
    status, body = get_json(dash_client, panel_url(dashboard, 0))
    assert status == 200
    traces = {trace["name"]: trace for trace in body["figure"]["data"]}
    assert set(traces) == {"eu", "us"}
    assert traces["eu"]["y"][30] is None  # BASE + 30m is missing in eu
    assert traces["eu"]["y"][29] == 10.0
    assert traces["eu"]["connectgaps"] is False
    assert traces["us"]["y"] == [3.0] * 60  # 200 and 500 summed
    assert traces["us"]["x"][0] == ms(BASE)
    # The axis spans the whole range (half a bucket of margin), not only the data.
    assert body["figure"]["layout"]["xaxis"]["range"] == [
        ms(BASE) - 30_000,
        ms(BASE + 60 * MINUTE) - 30_000,
    ]
    inspect = body["inspect"]
    assert inspect["query"]["metric"] == "http.requests"
    assert inspect["query"]["bucket"] == "1m"
    assert inspect["query"]["from"] == RANGE["from"]
    assert inspect["query"]["where"] == []
    assert inspect["tier"].startswith("rollup_") or inspect["tier"] == "raw"
    assert inspect["server_ms"] > 0
    assert any("analytics_series" in statement for statement in inspect["sql"])
    assert body["panel"]["kind"] == "line"


@pytest.mark.parametrize(
    ("index", "trace_type"),
    [(1, "scatter"), (2, "bar"), (3, "indicator"), (4, "table"), (5, "heatmap")],
)
def test_every_chart_kind_is_wired(dash_client, dashboard, index, trace_type):
    """Each chart kind answers its own Plotly trace type from the same series."""
    status, body = get_json(dash_client, panel_url(dashboard, index))
    assert status == 200
    assert body["figure"]["data"][0]["type"] == trace_type


def test_single_stat_compares_with_the_previous_period(dash_client, project, dashboard):
    """Single stat reads the previous period too and shows the relative change."""
    write(project, "http.requests", {"region": "eu", "status": "200"}, [(-MINUTE, 5.0)])
    status, body = get_json(dash_client, panel_url(dashboard, 3))
    assert status == 200
    indicator = body["figure"]["data"][0]
    assert indicator["value"] == 10.0  # the last eu minute; eu ranks first
    assert indicator["delta"]["reference"] == 5.0
    assert body["inspect"]["query"]["compare"] == "previous_period"


def test_variables_filter_every_panel_that_uses_them(dash_client, dashboard):
    """var-region narrows the panel; several values select several; none means no filter."""
    _, one = get_json(dash_client, panel_url(dashboard, 0), **{"var-region": "us"})
    assert [trace["name"] for trace in one["figure"]["data"]] == ["us"]
    assert one["inspect"]["query"]["where"] == ["region:us"]
    _, both = get_json(dash_client, panel_url(dashboard, 0), **{"var-region": ["us", "eu"]})
    assert {trace["name"] for trace in both["figure"]["data"]} == {"eu", "us"}
    assert both["inspect"]["query"]["where"] == ["region:in(us,eu)"]
    _, status = get_json(dash_client, panel_url(dashboard, 2), **{"var-status": "500"})
    assert [(t["name"], t["y"][0]) for t in status["figure"]["data"]] == [("us", 1.0)]
    _, cleared = get_json(dash_client, panel_url(dashboard, 0), **{"var-region": ""})
    assert cleared["inspect"]["query"]["where"] == []


def test_variable_default_applies_without_a_url_value(dash_client, project):
    """A variable's default selection filters until the URL names the variable."""
    document = dashboard_document()
    document["variables"][0]["default"] = ["eu"]
    dashboard = import_dashboard(project=project, document=document)
    write_traffic(project)
    _, body = get_json(dash_client, panel_url(dashboard, 0))
    assert [trace["name"] for trace in body["figure"]["data"]] == ["eu"]
    _, everything = get_json(dash_client, panel_url(dashboard, 0), **{"var-region": ""})
    assert len(everything["figure"]["data"]) == 2


def test_relative_range_and_auto_widened_bucket(dash_client, dashboard):
    """now-7d with a 1m panel bucket widens to auto rather than exceeding the point limit."""
    response = dash_client.get(panel_url(dashboard, 0), {"from": "now-365d", "to": "now"})
    assert response.status_code == 200
    body = response.json()
    assert body["inspect"]["query"]["bucket"] == "2d"
    assert body["inspect"]["buckets"] <= settings.SERIES_MAX_POINTS
    assert response["X-Dashboard-Panel"] == f"traffic/{body['panel']['id']}"
    assert "total;dur=" in response["Server-Timing"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "now-1h", "to": "now-2h"}, "to"),
        ({"from": "now-99999999999w"}, "from"),
        ({"refresh": "1s"}, "refresh"),
        ({"var-status": ["200", "500"]}, "var-status"),
        ({"var-region": "x" * 300}, "var-region"),
        ({"var-region": "eu\x00"}, "var-region"),
    ],
)
def test_bad_params_answer_400_naming_the_param(dash_client, dashboard, params, field):
    """Every bad URL parameter is a 400 JSON error naming it, never a 500."""
    for suffix in ("data", "data.csv"):
        response = dash_client.get(panel_url(dashboard, 0, suffix), params)
        assert response.status_code == 400
        body = response.json()
        assert body["detail"][0]["field"] == field
        assert body["error"].startswith(f"invalid request: {field}: ")


def test_other_projects_panels_answer_404(dash_client, dashboard, other_project):
    """A panel of a project the user is not in answers 404, as does a mismatched path."""
    theirs = import_dashboard(project=other_project, document=dashboard_document())
    for suffix in ("data", "data.csv"):
        assert dash_client.get(panel_url(theirs, 0, suffix)).status_code == 404
        mine = dashboard.panels.all()[0].pk
        their = theirs.panels.all()[0].pk
        wrong = panel_url(dashboard, 0, suffix).replace(f"/{mine}/", f"/{their}/")
        assert dash_client.get(wrong).status_code == 404
        assert dash_client.get(f"/p/acme/dashboards/nope/panels/{mine}/{suffix}").status_code == 404
        huge = panel_url(dashboard, 0, suffix).replace(f"/{mine}/", f"/{10**30}/")
        assert dash_client.get(huge).status_code == 404


def test_anonymous_data_requests_go_to_login(client, dashboard):
    """Panel data needs a logged-in user: anonymous requests are sent to the login page."""
    for suffix in ("data", "data.csv"):
        response = client.get(panel_url(dashboard, 0, suffix))
        assert response.status_code == 302
        assert response["Location"].startswith(resolve_url(settings.LOGIN_URL) + "?next=")


def test_csv_streams_time_and_one_column_per_group(dash_client, dashboard):
    """CSV: a header of time and the groups, then one row per bucket, blanks for gaps."""
    response = dash_client.get(panel_url(dashboard, 0, "data.csv"), RANGE)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["time", "eu", "us"]
    assert rows[1] == [iso(BASE), "10.0", "3.0"]
    assert rows[31] == [iso(BASE + 30 * MINUTE), "", "3.0"]
    assert len(rows) == 61


def test_csv_defuses_formula_like_group_names(dash_client, project):
    """A tag value that looks like a spreadsheet formula is written as text."""
    write(project, "http.requests", {"region": "=1+1", "status": "200"}, [(MINUTE, 1.0)])
    dashboard = import_dashboard(project=project, document=dashboard_document())
    response = dash_client.get(panel_url(dashboard, 0, "data.csv"), RANGE)
    header = next(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert header == ["time", "'=1+1"]


def _series_count_queries(client: Any, dashboard: Dashboard, suffix: str) -> int:
    url = panel_url(dashboard, 0, suffix)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, RANGE)
        if suffix.endswith("csv"):
            b"".join(response.streaming_content)
    assert response.status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize("suffix", ["data", "data.csv"])
def test_query_count_does_not_grow_with_series_or_groups(dash_client, project, dashboard, suffix):
    """Panel data runs a fixed number of queries: adding series and groups adds none."""
    few = _series_count_queries(dash_client, dashboard, suffix)
    for region in range(20):
        write(project, "http.requests", {"region": f"r{region}", "status": "200"}, [(MINUTE, 1.0)])
    many = _series_count_queries(dash_client, dashboard, suffix)
    assert few == many
    # session, user, the panel with its dashboard and project, then the series reads
    assert few == 6


def test_panel_data_query_count_is_pinned(
    dash_client, dashboard, django_assert_num_queries: DjangoAssertNumQueries
):
    """The data endpoint: session, user, panel, series ids, pending minutes, rows."""
    url = panel_url(dashboard, 0)
    with django_assert_num_queries(6):
        assert dash_client.get(url, RANGE).status_code == 200


def test_zoom_range_with_fractional_iso_times(dash_client, dashboard):
    """The absolute times a zoom writes into the URL (ISO with Z) are accepted."""
    params = {
        "from": iso(BASE + 10 * MINUTE).replace("+00:00", "Z"),
        "to": iso(BASE + 20 * MINUTE).replace("+00:00", "Z"),
    }
    response = dash_client.get(panel_url(dashboard, 0), params)
    assert response.status_code == 200
    traces = response.json()["figure"]["data"]
    assert len(traces[0]["x"]) == 10


def test_other_project_data_never_leaks_through_a_dashboard(dash_client, dashboard, other_project):
    """A panel reads its own project's series only, even when the other has the metric."""
    write(other_project, "http.requests", {"region": "mars", "status": "200"}, [(MINUTE, 99.0)])
    _, body = get_json(dash_client, panel_url(dashboard, 0))
    assert {trace["name"] for trace in body["figure"]["data"]} == {"eu", "us"}
