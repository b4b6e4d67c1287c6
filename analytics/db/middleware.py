"""Middleware: let read views read from replicas, and record the WAL position of each project's writes.

Both do nothing without `DATABASE_REPLICA_URLS`: one server behaves exactly as before.
"""

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from analytics.db.replicas import (
    current_scope,
    read_scope,
    record_project_write,
    replica_aliases,
)
from analytics.platform_metrics import request_project_id

# The views whose reads may go to a replica, and with which methods: series, catalog,
# items, search (a POST that only reads), similar, and the dashboards' panel data.
READ_VIEWS: dict[str, frozenset[str]] = {
    **{
        name: frozenset({"GET", "HEAD"})
        for name in (
            "api-series",
            "api-project",
            "api-project-detail",
            "catalog-metrics",
            "catalog-tag-keys",
            "catalog-tag-values",
            "items",
            "item-detail",
            "items-similar",
            "dashboards:list",
            "dashboards:view",
            "dashboards:panel-data",
            "dashboards:panel-csv",
            "dashboards:similar",
        )
    },
    "items-search": frozenset({"POST"}),
}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def is_read_view(request: HttpRequest) -> bool:
    """Return whether the request's view, with the request's method, only reads."""
    match = request.resolver_match
    if match is None:
        return False
    return (request.method or "") in READ_VIEWS.get(match.view_name, frozenset())


class ReplicaRoutingMiddleware:
    """Route read views' reads to replicas; after a project's write, note its WAL position."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.active = bool(replica_aliases())

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self.active:
            return self.get_response(request)
        # The view is known only after URL resolution: `process_view` enables the scope.
        with read_scope(request) as scope:
            response = self.get_response(request)
        project_id = request_project_id(request)
        if (
            not scope.enabled
            and project_id is not None
            and request.method not in _SAFE_METHODS
            and response.status_code < 400
        ):
            # Before the response leaves: once acknowledged, the write must be readable.
            record_project_write(project_id=project_id)
        return response

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if self.active and is_read_view(request):
            scope = current_scope()
            if scope is not None:
                scope.enabled = True
        return None
