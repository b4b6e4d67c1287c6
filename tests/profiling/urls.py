"""Test URLs: the project's own plus a deliberately slow endpoint for the slow_queries tests."""

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path

from analytics.urls import urlpatterns as project_urlpatterns

# Long enough to stand out from every real query of the tests, short enough to keep them fast.
SLOW_SECONDS = 0.3


def slow_probe(request: HttpRequest) -> JsonResponse:
    """Run one slow SELECT that also advances a sequence, so a re-run of it would show."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s), nextval('silk_probe_seq')", [SLOW_SECONDS])
    return JsonResponse({"ok": True})


urlpatterns = [path("slow-probe", slow_probe, name="slow-probe"), *project_urlpatterns]
