"""Middleware of the core: the platform's own request metrics, and refusals of plain Django views.

Which views are timed or count as ingestion is declared by the views themselves
(`analytics.endpoints`), never listed here.
"""

import logging
import time
from collections.abc import Callable

import orjson
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from analytics.endpoints import endpoint_names
from analytics.platform_metrics import (
    INGEST_ERRORS,
    REQUEST_MS,
    record_platform_metric,
    request_project_id,
)
from analytics.refusals import DATABASE_LOST, Refusal, database_unavailable

logger = logging.getLogger(__name__)


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
        names = endpoint_names(request.resolver_match)
        project_id = request_project_id(request)
        if project_id is None:
            return response
        if names.ingest and response.status_code >= 400:
            record_platform_metric(
                project_id=project_id,
                metric=INGEST_ERRORS,
                value=1,
                tags={"status": str(response.status_code)},
            )
        elif names.metric is not None:
            record_platform_metric(
                project_id=project_id,
                metric=REQUEST_MS,
                value=(time.perf_counter() - started) * 1000,
                tags={"endpoint": names.metric},
            )
        return response


class RefusalMiddleware:
    """Answer a Refusal raised in a plain Django view as the API's JSON error body.

    DRF views render refusals in their exception handler; this is the same answer for the
    views of the pages (panel data, CSV) that are not DRF views. A lost database is
    answered as the API answers it, 503 with Retry-After, never a 500: as JSON, or as a
    page to a browser that navigated to one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, Refusal):
            return refusal_http_response(exception)
        if isinstance(exception, DATABASE_LOST):
            logger.warning("database unavailable: %s", str(exception).strip())
            refusal = database_unavailable()
            if _wants_page(request):
                return _unavailable_page(refusal)
            return refusal_http_response(refusal)
        return None


def _wants_page(request: HttpRequest) -> bool:
    """Whether the client asked for HTML by name: a browser's navigation, not a fetch()."""
    return "text/html" in request.headers.get("Accept", "") and not request.path.startswith("/api/")


def _unavailable_page(refusal: Refusal) -> HttpResponse:
    # Rendered without the request: the context processors (the user, the session)
    # would ask the very database that is gone.
    response = HttpResponse(
        render_to_string(
            "analytics/unavailable.html", {"retry_after": refusal.headers["Retry-After"]}
        ),
        status=refusal.status,
        content_type="text/html; charset=utf-8",
    )
    for name, value in refusal.headers.items():
        response[name] = value
    return response


def refusal_http_response(refusal: Refusal) -> HttpResponse:
    """Return the plain Django response that answers `refusal` (the API's JSON body)."""
    response = HttpResponse(
        orjson.dumps(refusal.body()), status=refusal.status, content_type="application/json"
    )
    for name, value in refusal.headers.items():
        response[name] = value
    return response
