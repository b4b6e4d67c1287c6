"""Thin API views of the core domain: health, projects, series and the series catalog."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.api_errors import ERROR_BODY
from analytics.endpoints import EndpointNames
from analytics.health import platform_health
from analytics.permissions import ReadScope, request_project
from analytics.queries.catalog import CatalogEntry, has_metric, metric_names, tag_keys, tag_values
from analytics.queries.series import AGGS, FILLS, SeriesLine, series_buckets
from analytics.refusals import invalid, not_found
from analytics.renderers import FastJSONRenderer
from analytics.series_params import DIGITS_RE, format_width, parse_series_query
from analytics.validation import refuse_repeated, without_nul

READ_ERRORS = {400: ERROR_BODY, 401: ERROR_BODY, 403: ERROR_BODY}


class ProjectSerializer(serializers.Serializer[object]):
    slug = serializers.SlugField()
    name = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField(), allow_null=True)


class HealthView(APIView):
    """State of PostgreSQL, its extensions, Redis and the Celery workers."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: inline_serializer("Health", {"status": serializers.CharField()}),
            503: inline_serializer("Unhealthy", {"failing": serializers.ListField()}),
        }
    )
    def get(self, request: Request) -> Response:
        report = platform_health()
        return Response(report.as_json(), status=200 if report.ok else 503)


class ProjectView(APIView):
    """The project the credentials act for (`/api/v1/project`) or a named one."""

    permission_classes = [ReadScope]

    # 404: a `{slug}` that is not a slug (letters, digits, - and _) names no URL.
    @extend_schema(responses={200: ProjectSerializer, **READ_ERRORS, 404: ERROR_BODY})
    def get(self, request: Request, slug: str | None = None) -> Response:
        project = request_project(request, slug)
        api_key = getattr(request.user, "api_key", None)
        return Response(
            ProjectSerializer(
                {
                    "slug": project.slug,
                    "name": project.name,
                    "scopes": api_key.scopes if api_key else None,
                }
            ).data
        )


class SeriesView(APIView):
    """Bucketed aggregates of one metric, read from the coarsest rollup tier that fits."""

    permission_classes = [ReadScope]
    renderer_classes = [FastJSONRenderer]
    endpoint_names = EndpointNames(metric="series")

    @extend_schema(
        parameters=[
            OpenApiParameter("metric", str, required=True),
            OpenApiParameter("agg", str, enum=list(AGGS), default="avg"),
            OpenApiParameter(
                "start", str, description="ISO 8601 or now-<n><s|m|h|d|w>", default="now-24h"
            ),
            OpenApiParameter("end", str, default="now"),
            OpenApiParameter(
                "bucket", str, description="auto, or a multiple of 1m: 5m, 6h, 7d", default="auto"
            ),
            OpenApiParameter(
                "where", str, many=True, description="key:value, key!=value, key:in(a,b)"
            ),
            OpenApiParameter(
                "group_by", str, description="a tag key; top `limit` groups plus 'other'"
            ),
            OpenApiParameter("limit", int, default=10),
            OpenApiParameter("fill", str, enum=list(FILLS), default="none"),
            OpenApiParameter("compare", str, enum=["previous_period"]),
            OpenApiParameter("project", str, description="project slug (session users)"),
        ],
        responses={200: OpenApiTypes.OBJECT, **READ_ERRORS, 404: ERROR_BODY},
    )
    def get(self, request: Request) -> Response:
        project = request_project(request)
        query = parse_series_query(request.query_params, project_id=project.pk, now=timezone.now())
        result = series_buckets(query)
        # Checked only when nothing matched, to spare the usual request a query.
        if not result.matched_series and not has_metric(project_id=project.pk, metric=query.metric):
            raise not_found(f"metric {query.metric!r} not found in this project")
        body = {
            "metric": result.metric,
            "agg": result.agg,
            "bucket": format_width(result.bucket),
            "source": result.source,
            "start": result.start.isoformat(),
            "end": result.end.isoformat(),
            "times": result.times,
            "series": [_line_json(line) for line in result.series],
            "partial": {"first": result.partial_first, "last": result.partial_last},
            "matched_series": result.matched_series,
            "server_ms": round(result.server_ms, 2),
        }
        if result.compare is not None:
            body["compare"] = {
                "shift_seconds": result.compare.shift_seconds,
                "series": [_line_json(line) for line in result.compare.series],
            }
        return Response(body)


def _line_json(line: SeriesLine) -> dict[str, object]:
    return {"name": line.name, "group": line.group, "values": line.values}


def _entries(entries: list[CatalogEntry]) -> list[dict[str, object]]:
    return [{"name": entry.name, "series": entry.series} for entry in entries]


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "100")
    if not DIGITS_RE.fullmatch(raw) or not 1 <= int(raw) <= 1000:
        raise invalid("limit", "must be an integer from 1 to 1000")
    return int(raw)


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    if not value:
        raise invalid(name, "required")
    return without_nul(name, value)


def _search(request: Request) -> str:
    return without_nul("search", request.query_params.get("search", ""))


class MetricCatalogView(APIView):
    """The project's metrics, optionally containing `search`."""

    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[OpenApiParameter("search", str), OpenApiParameter("limit", int, default=100)],
        responses={200: OpenApiTypes.OBJECT, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        project = request_project(request)
        refuse_repeated(request.query_params)
        entries = metric_names(
            project_id=project.pk,
            search=_search(request),
            limit=_limit(request),
        )
        return Response({"metrics": _entries(entries)})


class TagKeyCatalogView(APIView):
    """The tag keys of a metric."""

    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[OpenApiParameter("metric", str, required=True)],
        responses={200: OpenApiTypes.OBJECT, **READ_ERRORS, 404: ERROR_BODY},
    )
    def get(self, request: Request) -> Response:
        project = request_project(request)
        refuse_repeated(request.query_params)
        metric = _required(request, "metric")
        if not has_metric(project_id=project.pk, metric=metric):
            raise not_found(f"metric {metric!r} not found in this project")
        return Response(
            {"metric": metric, "keys": _entries(tag_keys(project_id=project.pk, metric=metric))}
        )


class TagValueCatalogView(APIView):
    """The values of one tag of a metric (dashboard variables)."""

    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[
            OpenApiParameter("metric", str, required=True),
            OpenApiParameter("key", str, required=True),
            OpenApiParameter("search", str),
            OpenApiParameter("limit", int, default=100),
        ],
        responses={200: OpenApiTypes.OBJECT, **READ_ERRORS, 404: ERROR_BODY},
    )
    def get(self, request: Request) -> Response:
        project = request_project(request)
        refuse_repeated(request.query_params)
        metric, key = _required(request, "metric"), _required(request, "key")
        if not has_metric(project_id=project.pk, metric=metric):
            raise not_found(f"metric {metric!r} not found in this project")
        entries = tag_values(
            project_id=project.pk,
            metric=metric,
            key=key,
            search=_search(request),
            limit=_limit(request),
        )
        return Response({"metric": metric, "key": key, "values": _entries(entries)})
