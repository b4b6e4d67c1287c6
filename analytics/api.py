"""Thin API views of the core domain: health and the project an API key acts for."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.health import platform_health
from analytics.permissions import ReadScope, request_project


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

    @extend_schema(responses=ProjectSerializer)
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
