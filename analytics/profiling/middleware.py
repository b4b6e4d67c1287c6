"""Middleware around silk's: the request whose credentials are masked, every SQL statement, and names.

Order (analytics.settings.profiling): ProfilingContextMiddleware, silk's SilkyMiddleware,
SilkSQLMiddleware. Silk itself records SQL only through the ORM compiler, so the raw
psycopg.sql reads of series, panels and search would be missing; SilkSQLMiddleware records
every statement through Django's execute wrappers instead (silk's own hook is told to
ignore everything, so nothing is recorded twice), masked, and without running EXPLAIN on
the request path.
"""

import logging
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.urls import ResolverMatch
from django.utils import timezone
from psycopg import ClientCursor
from psycopg import sql as pgsql
from silk.collector import DataCollector  # type: ignore[import-untyped]

from analytics.endpoints import endpoint_names
from analytics.models import ApiKey
from analytics.profiling.masking import (
    MASK,
    current_secrets,
    mask_text,
    reset_current_request,
    set_current_request,
)

logger = logging.getLogger(__name__)

# Sent by the dashboard page with each panel's requests: <dashboard slug>/<panel id>.
PANEL_HEADER = re.compile(r"[-\w]{1,100}/\d{1,18}")
# Only frames of the platform's own code are kept in a statement's traceback.
OWN_PACKAGES = frozenset({"analytics", "dashboards", "embeddings", "ingestion"})
_MAX_LABEL = 190


class ProfilingContextMiddleware:
    """Make the request's credentials known to the masking for as long as silk handles it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = set_current_request(request)
        try:
            return self.get_response(request)
        finally:
            reset_current_request(token)


class SilkSQLMiddleware:
    """Record every SQL statement of a recorded request into silk, and name panel and search requests."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if DataCollector().request is None:  # not sampled, or silk's own pages
            return self.get_response(request)
        with ExitStack() as stack:
            for connection in connections.all():
                stack.enter_context(connection.execute_wrapper(record_statement))
            return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: Sequence[Any],
        view_kwargs: Mapping[str, Any],
    ) -> None:
        silk_request = DataCollector().request
        if silk_request is not None and request.resolver_match is not None:
            label = request_label(request.resolver_match, request.headers.get("X-Dashboard-Panel"))
            if label:
                silk_request.view_name = label[:_MAX_LABEL]


def request_label(match: ResolverMatch, panel_header: str | None) -> str | None:
    """Return the name that ties a request to its dashboard panel or search, or None to keep silk's.

    Views declare their labels (`analytics.endpoints`). Panel URLs are named from their own path (`panel:<dashboard>/<panel id>`); search
    endpoints are `search` / `search:similar`; any other request the dashboard page makes
    for a panel (its X-Dashboard-Panel header) is `panel:<dashboard>/<panel id> <view name>`.
    """
    names = endpoint_names(match)
    if names.panel_profile is not None:
        return (
            f"{names.panel_profile}:{match.kwargs.get('slug', '?')}/"
            f"{match.kwargs.get('panel_id', '?')}"
        )
    base = names.profile or match.view_name
    if panel_header and PANEL_HEADER.fullmatch(panel_header):
        return f"panel:{panel_header} {base}"
    return names.profile


def record_statement(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """Execute the statement, then hand silk its masked text and timing (an execute wrapper)."""
    started = timezone.now()
    try:
        return execute(sql, params, many, context)
    finally:
        ended = timezone.now()
        silk_request = DataCollector().request
        if silk_request is not None:
            try:
                text = statement_text(sql, params, many, context["connection"])
                frames = _own_frames()
            except Exception:
                # Profiling must never fail the request it profiles; the statement is left out.
                logger.warning("could not record a statement for silk", exc_info=True)
            else:
                DataCollector().register_query(
                    {
                        "query": text,
                        "start_time": started,
                        "end_time": ended,
                        "request": silk_request,
                        "traceback": frames,
                        "analysis": None,
                    }
                )


def statement_text(sql: Any, params: Any, many: bool, connection: Any) -> str:
    """Return the statement as it ran, literals bound, with credentials masked.

    Statements on the session, user and API key tables keep their structure but lose every
    string value (session keys, password hashes, key prefixes).
    """
    raw_connection = connection.connection
    template = sql.as_string(raw_connection) if isinstance(sql, pgsql.Composable) else str(sql)
    secrets = current_secrets()
    if many:
        count = len(params) if isinstance(params, Sequence) else "?"
        return mask_text(f"{template}\n-- executemany: {count} parameter sets", secrets)
    if params is not None:
        hide_all = any(table in template for table in _sensitive_tables())
        params = _mask_params(params, secrets, hide_all)
        try:
            with ClientCursor(raw_connection) as cursor:
                template = cursor.mogrify(sql, params)
        except Exception:
            logger.warning("could not bind parameters of a recorded statement", exc_info=True)
            template = f"{template}\n-- parameters not shown"
    return mask_text(template, secrets)


def _mask_params(params: Any, secrets: frozenset[str], hide_all: bool) -> Any:
    if isinstance(params, Mapping):
        return {key: _mask_params(value, secrets, hide_all) for key, value in params.items()}
    if isinstance(params, list | tuple):
        return type(params)(_mask_params(value, secrets, hide_all) for value in params)
    if isinstance(params, str):
        return MASK if hide_all else mask_text(params, secrets)
    if isinstance(params, bytes | memoryview) and hide_all:
        return MASK
    return params


def _sensitive_tables() -> tuple[str, ...]:
    return tuple(model._meta.db_table for model in (Session, get_user_model(), ApiKey))


def _own_frames() -> str:
    """Return the platform's own frames of the current stack, innermost first (as silk shows them)."""
    root = Path(settings.BASE_DIR)
    frames = []
    for frame in traceback.extract_stack()[:-2]:
        parts = Path(frame.filename).parts
        try:
            package = Path(frame.filename).relative_to(root).parts[0]
        except ValueError:
            continue
        if package in OWN_PACKAGES and "profiling" not in parts:
            frames.append(frame)
    return "".join(reversed(traceback.format_list(frames)))
