"""The similar-items page: a shell that the browser fills by calling the items and search APIs."""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from analytics.models import Project
from analytics.queries.catalog import metric_names

# Trend ranges the search API accepts for sparklines; the first is the default.
TREND_RANGES: tuple[str, ...] = ("7d", "24h", "30d")


def member_project(*, user: Any, slug: str) -> Project | None:
    """Return the project `slug` if `user` is one of its members, else None."""
    return Project.objects.filter(slug=slug, memberships__user=user).first()


@login_required
@require_GET
def similar_page(request: HttpRequest, project_slug: str) -> HttpResponse:
    """Render the search-by-example page of one of the user's projects (404 for any other)."""
    project = member_project(user=request.user, slug=project_slug)
    if project is None:
        # 404, not 403: a slug the user cannot see must look exactly like one that does not exist.
        raise Http404("no such project")
    metrics = [entry.name for entry in metric_names(project_id=project.id, limit=200)]
    return render(
        request,
        "dashboards/similar.html",
        {
            "project": project,
            "nav": "similar",
            "metrics": metrics,
            "trend_ranges": TREND_RANGES,
        },
    )
