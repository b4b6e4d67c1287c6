"""JSON errors for the API: `{"error": "...", "detail": [...]}` naming what was wrong.

One exception handler renders every refusal (`analytics.refusals.Refusal`), DRF's own
exceptions (authentication, permissions, unparseable requests) and an unreachable
database in that one shape; `ERROR_BODY` documents it once for the OpenAPI schema.
"""

import logging
from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from analytics.refusals import DATABASE_LOST, Refusal, database_unavailable, error_body

logger = logging.getLogger(__name__)

# Every refusal: `{"error": "...", "detail": [{"field": ..., "error": ...}]}`.
ERROR_BODY = inline_serializer(
    "ApiError",
    {
        "error": serializers.CharField(),
        "detail": serializers.ListField(child=serializers.DictField()),
    },
)


def with_errors(success: dict[int, Any], *codes: int) -> dict[int, Any]:
    """Return the responses `success` plus the platform's error body for each of `codes`."""
    return {**success, **dict.fromkeys(codes, ERROR_BODY)}


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


def refusal_response(refusal: Refusal) -> Response:
    """Return the DRF response that answers `refusal`."""
    return Response(refusal.body(), status=refusal.status, headers=refusal.headers)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every API error in the platform's shape.

    An unreachable or restarting database is a 503 with Retry-After, never a 500:
    nothing was acknowledged, and the client should simply retry. The COPY path works on
    the raw psycopg connection, whose errors Django does not wrap, so those count too.
    """
    if isinstance(exc, Refusal):
        return refusal_response(exc)
    if isinstance(exc, DATABASE_LOST):
        logger.warning("database unavailable: %s", str(exc).strip())
        return refusal_response(database_unavailable())
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
