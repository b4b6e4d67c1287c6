"""Panel data endpoints of the dashboard pages: the figure and inspector as JSON, or CSV.

Plain Django views behind the session login (they belong to the pages, not the public
API): a bad URL parameter is a Refusal, which the core's RefusalMiddleware answers
with 400 `{"error", "detail": [{"field", "error"}]}` naming it; another project's
panel answers 404.
"""

import csv
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from analytics.endpoints import named_endpoint
from analytics.platform_metrics import note_request_project
from analytics.queries.series import SeriesLine
from dashboards.models import Panel
from dashboards.queries import (
    panel_data,
    panel_for_user,
    panel_series,
    parse_view_state,
)

PANEL_HEADER = "X-Dashboard-Panel"


def _json(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def _panel(request: HttpRequest, project_slug: str, slug: str, panel_id: int) -> Panel:
    panel = panel_for_user(
        user=request.user, project_slug=project_slug, slug=slug, panel_id=panel_id
    )
    if panel is None:
        raise Http404("no such panel in your projects")
    note_request_project(request, panel.dashboard.project_id)
    return panel


@named_endpoint(metric="panel", panel_profile="panel")
@login_required
@require_GET
def panel_data_view(
    request: HttpRequest, project_slug: str, slug: str, panel_id: int
) -> HttpResponse:
    """Return {panel, figure, inspect} for one panel in the range and variables of the URL."""
    started = time.perf_counter()
    panel = _panel(request, project_slug, slug, panel_id)
    state = parse_view_state(request.GET, dashboard=panel.dashboard, now=timezone.now())
    data = panel_data(panel, state)
    body = {
        "panel": {"id": panel.pk, "title": panel.title, "kind": panel.kind},
        "figure": data.figure,
        "inspect": data.inspect,
    }
    response = _json(body)
    total_ms = (time.perf_counter() - started) * 1000
    response["Server-Timing"] = (
        f"series;dur={data.inspect['series_ms']:.2f}, total;dur={total_ms:.2f}"
    )
    response[PANEL_HEADER] = f"{slug}/{panel.pk}"
    return response


def _cell(text: str) -> str:
    """Keep a spreadsheet from reading a tag value such as `=cmd()` as a formula."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_rows(times: list[int], series: list[SeriesLine]) -> Iterator[list[Any]]:
    yield ["time", *[_cell(str(line.name)) for line in series]]
    for index, moment in enumerate(times):
        row: list[Any] = [datetime.fromtimestamp(moment / 1000, UTC).isoformat()]
        row += ["" if line.values[index] is None else line.values[index] for line in series]
        yield row


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


@named_endpoint(panel_profile="panel-csv")
@login_required
@require_GET
def panel_csv_view(
    request: HttpRequest, project_slug: str, slug: str, panel_id: int
) -> HttpResponse | StreamingHttpResponse:
    """Stream the panel's series answer as CSV: a time column and one column per group."""
    panel = _panel(request, project_slug, slug, panel_id)
    state = parse_view_state(request.GET, dashboard=panel.dashboard, now=timezone.now())
    result = panel_series(panel, state)
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in _csv_rows(result.times, result.series)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{slug}-panel-{panel.pk}.csv"'
    return response
