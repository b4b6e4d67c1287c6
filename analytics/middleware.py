"""Middleware that records the platform's own request metrics (see analytics.platform_metrics)."""

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from analytics.platform_metrics import (
    INGEST_ERRORS,
    REQUEST_MS,
    record_platform_metric,
    request_project_id,
)

# URL names whose latency the "Platform health" dashboard shows, and the endpoint tag.
TIMED_ENDPOINTS = {
    "api-series": "series",
    "items-search": "search",
    "items-similar": "similar",
    "dashboards:panel-data": "panel",
}
INGEST_ENDPOINTS = frozenset({"ingest-events", "influx-write"})


class PlatformMetricsMiddleware:
    """Time read endpoints and count refused ingest requests, per project.

    Only requests whose project was resolved are recorded: a request refused before
    authentication belongs to no tenant, and filing it anywhere would leak.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        project_id = request_project_id(request)
        if match is None or project_id is None:
            return response
        if match.view_name in INGEST_ENDPOINTS and response.status_code >= 400:
            record_platform_metric(
                project_id=project_id,
                metric=INGEST_ERRORS,
                value=1,
                tags={"status": str(response.status_code)},
            )
        elif match.view_name in TIMED_ENDPOINTS:
            record_platform_metric(
                project_id=project_id,
                metric=REQUEST_MS,
                value=(time.perf_counter() - started) * 1000,
                tags={"endpoint": TIMED_ENDPOINTS[match.view_name]},
            )
        return response
