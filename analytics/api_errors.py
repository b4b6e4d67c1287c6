"""JSON errors for the API: `{"error": "...", "detail": [...]}` naming what was wrong."""

import logging
from typing import Any

import psycopg
from django.db import OperationalError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_S = 5


def error_body(error: str, detail: list[Any] | None = None) -> dict[str, Any]:
    """Return the platform's error body."""
    return {"error": error, "detail": detail or []}


def _flatten(data: Any, path: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested validation errors into `[{"field": ..., "error": ...}]`."""
    if isinstance(data, dict):
        out: list[dict[str, str]] = []
        for key, value in data.items():
            field = key if not path else f"{path}.{key}"
            out.extend(_flatten(value, "" if key == "non_field_errors" else field))
        return out
    if isinstance(data, list):
        if all(not isinstance(item, (dict, list)) for item in data):
            return [{"field": path, "error": str(item)} for item in data]
        out = []
        for index, item in enumerate(data):
            out.extend(_flatten(item, f"{path}[{index}]"))
        return out
    return [{"field": path, "error": str(data)}]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every API error in the platform's shape.

    An unreachable or restarting database is a 503 with Retry-After, never a 500:
    nothing was acknowledged, and the client should simply retry. The COPY path works on
    the raw psycopg connection, whose errors Django does not wrap, so those count too.
    """
    if isinstance(exc, (OperationalError, psycopg.OperationalError)):
        logger.warning("database unavailable: %s", str(exc).strip())
        return Response(
            error_body("the database is unavailable; nothing was written, retry later"),
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = _flatten(exc.detail)
        first = detail[0] if detail else {"field": "", "error": "invalid request"}
        summary = f"{first['field']}: {first['error']}" if first["field"] else first["error"]
        response.data = error_body(f"invalid request: {summary}", detail)
    elif isinstance(exc, exceptions.APIException):
        response.data = error_body(str(exc.detail))
    return response
