"""Ingestion endpoints: JSON/NDJSON events and the InfluxDB v2 write API.

These are hot paths, so they read the raw body themselves instead of DRF's parsers,
but keep DRF's authentication, permissions and schema.
"""

from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.api_errors import with_errors
from analytics.authentication import ApiKeyAuthentication, TokenApiKeyAuthentication
from analytics.endpoints import EndpointNames
from analytics.permissions import WriteScope, request_project
from analytics.refusals import Refusal
from analytics.request_body import media_type, read_body
from analytics.validation import CONTROL_RE
from ingestion.intake import IngestRequest, ingest_request
from ingestion.line_protocol import PRECISIONS
from ingestion.parsers import (
    JSON_TYPES,
    NDJSON_TYPES,
    parse_json,
    parse_line_protocol,
    parse_ndjson,
)
from ingestion.ratelimit import enforce_rate_limit
from ingestion.services import ParsedBatch
from ingestion.validation import TimeWindow

IDEMPOTENCY_KEY_MAX = 200
PARTIAL_VALUES = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}

# A JSON array of events or {"events": [...]}. Each entry is checked one by one (a bad
# one refuses the batch, or with ?partial=1 is listed in the receipt), so the schema
# leaves the entries open; the example shows an event's fields.
EVENTS_BODY = {
    "oneOf": [
        {"type": "array", "items": {}},
        {
            "type": "object",
            "properties": {"events": {"type": "array", "items": {}}},
            "required": ["events"],
            "additionalProperties": False,
        },
    ]
}

Receipt = inline_serializer(
    "IngestReceipt",
    {
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "rejected": serializers.ListField(child=serializers.DictField()),
        "rejected_count": serializers.IntegerField(),
    },
)


def _window() -> TimeWindow:
    return TimeWindow.around(
        timezone.now(),
        retention_days=settings.RETENTION_RAW_DAYS,
        max_future_seconds=settings.INGEST_MAX_FUTURE_SECONDS,
    )


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or CONTROL_RE.search(key):
        raise Refusal(
            400,
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable characters",
            [{"field": "Idempotency-Key", "error": "invalid"}],
        )
    return key


class _IngestView(APIView):
    """Shared flow: rate limit, bounded body, then the ingest use case (`ingestion.intake`)."""

    permission_classes = [WriteScope]
    endpoint_names = EndpointNames(ingest=True)

    def parse(self, request: Request, body: bytes) -> ParsedBatch:
        raise NotImplementedError

    def partial(self, request: Request) -> bool:
        return False

    def success(self, body: dict[str, Any], replayed: bool) -> Response:
        raise NotImplementedError

    def post(self, request: Request) -> Response:
        project = request_project(request)
        rate_key = getattr(request.auth, "prefix", "session")
        # The cheapest refusal first: an over-limit client costs no body read.
        enforce_rate_limit(key_prefix=rate_key)
        body = read_body(
            request._request,
            max_bytes=settings.INGEST_MAX_BODY_BYTES,
            max_decompressed=settings.INGEST_MAX_DECOMPRESSED_BYTES,
        )
        intake = IngestRequest(
            project=project,
            rate_key=rate_key,
            path=request.path,
            media_type=media_type(request._request),
            body=body,
            partial=self.partial(request),
            idempotency_key=_idempotency_key(request),
        )
        receipt = ingest_request(request=intake, parse=lambda raw: self.parse(request, raw))
        return self.success(receipt.body, receipt.replayed)


class EventsView(_IngestView):
    """Ingest metric events: a JSON array (or `{"events": [...]}`) or NDJSON."""

    @extend_schema(
        request={"application/json": EVENTS_BODY, "application/x-ndjson": OpenApiTypes.STR},
        parameters=[
            OpenApiParameter(
                "partial", OpenApiTypes.BOOL, description="store valid events, report the rest"
            ),
            OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER),
        ],
        responses=with_errors({200: Receipt}, 400, 401, 403, 413, 415, 422, 429, 503),
        examples=[
            OpenApiExample(
                "events",
                value=[
                    {
                        "metric": "checkout.latency_ms",
                        "value": 12.5,
                        "time": "2026-11-20T10:00:00Z",
                        "tags": {"region": "eu"},
                        "item": "sku-123",
                        "id": "evt-1",
                    }
                ],
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        return super().post(request)

    def partial(self, request: Request) -> bool:
        raw = request.query_params.get("partial", "0").lower()
        if raw not in PARTIAL_VALUES:
            # A typo must not silently choose the batch policy.
            raise Refusal(
                400,
                f"partial: {raw[:32]!r} is not one of 1, true, yes, 0, false, no",
                [{"field": "partial", "error": "must be 1, true, yes, 0, false or no"}],
            )
        return PARTIAL_VALUES[raw]

    def parse(self, request: Request, body: bytes) -> ParsedBatch:
        kind = media_type(request._request)
        if kind in JSON_TYPES:
            return parse_json(body, window=_window(), max_events=settings.INGEST_MAX_EVENTS)
        if kind in NDJSON_TYPES:
            return parse_ndjson(body, window=_window(), max_events=settings.INGEST_MAX_EVENTS)
        allowed = ", ".join(sorted(JSON_TYPES | NDJSON_TYPES))
        raise Refusal(415, f"Content-Type {kind or '(none)'!r} is not supported; use {allowed}")

    def success(self, body: dict[str, Any], replayed: bool) -> Response:
        response = Response(body, status=200)
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response


# InfluxDB answers errors as {"code": ..., "message": ...}; its clients read those.
_INFLUX_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    413: "request too large",
    415: "invalid",
    422: "unprocessable entity",
    429: "too many requests",
    503: "unavailable",
}


class InfluxWriteView(_IngestView):
    """InfluxDB v2 write API (line protocol), for Telegraf and the InfluxDB client libraries."""

    authentication_classes = [TokenApiKeyAuthentication, ApiKeyAuthentication]

    @extend_schema(
        request={"text/plain": OpenApiTypes.STR},
        parameters=[
            OpenApiParameter("precision", OpenApiTypes.STR, enum=list(PRECISIONS)),
            OpenApiParameter("org", OpenApiTypes.STR, description="accepted and ignored"),
            OpenApiParameter("bucket", OpenApiTypes.STR, description="accepted and ignored"),
        ],
        responses=with_errors({204: None}, 400, 401, 403, 413, 422, 429, 503),
    )
    def post(self, request: Request) -> Response:
        return super().post(request)

    def parse(self, request: Request, body: bytes) -> ParsedBatch:
        precision = request.query_params.get("precision", "ns")
        if precision not in PRECISIONS:
            raise Refusal(
                400,
                f"precision: {precision!r} is not one of ns, us, ms, s",
                [{"field": "precision", "error": "must be one of ns, us, ms, s"}],
            )
        batch = parse_line_protocol(
            body, precision=precision, window=_window(), max_events=settings.INGEST_MAX_EVENTS
        )
        if batch.errors:
            first = min(batch.errors, key=lambda error: error["line"])
            raise Refusal(
                400,
                f"line {first['line']}: {first['error']}; nothing was written",
                batch.errors[:100],
                extra={"line": first["line"]},
            )
        return batch

    def success(self, body: dict[str, Any], replayed: bool) -> Response:
        return Response(status=204)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        data = getattr(response, "data", None)
        if response.status_code >= 400 and isinstance(data, dict) and "error" in data:
            data.setdefault("code", _INFLUX_CODES.get(response.status_code, "internal error"))
            data.setdefault("message", data["error"])
        return response
