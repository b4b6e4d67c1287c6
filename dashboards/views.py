"""Server-rendered pages: the list of the user's dashboards and one dashboard's grid.

The page renders the grid and the controls; the browser then fetches every panel's
data (dashboards.api) in parallel and only draws the figures it gets.
"""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from analytics.refusals import Refusal
from dashboards.access import dashboard_access, editable_projects
from dashboards.models import Refresh
from dashboards.queries import (
    RANGE_PRESETS,
    VARIABLE_PARAM_PREFIX,
    dashboard_panels,
    dashboards_for_user,
    parse_view_state,
)


@login_required
@require_GET
def dashboard_list(request: HttpRequest) -> HttpResponse:
    """List the dashboards of every project the user belongs to."""
    dashboards = list(dashboards_for_user(user=request.user))
    context = {
        "dashboards": dashboards,
        "nav": "dashboards",
        # Viewers get no "New dashboard" form: only these projects accept one.
        "editable_projects": editable_projects(user=request.user),
    }
    return render(request, "dashboards/list.html", context)


@login_required
@require_GET
def dashboard_view(request: HttpRequest, project_slug: str, slug: str) -> HttpResponse:
    """Render one dashboard: range picker, auto-refresh, variables and the panel grid."""
    access = dashboard_access(user=request.user, project_slug=project_slug, slug=slug)
    if access is None:
        raise Http404("no such dashboard in your projects")
    dashboard = access.dashboard
    context: dict[str, Any] = {
        "project": dashboard.project,
        "dashboard": dashboard,
        "can_edit": access.can_edit,
    }
    try:
        state = parse_view_state(request.GET, dashboard=dashboard, now=timezone.now())
    except Refusal as error:
        context.update(param=error.field, message=error.reason)
        return render(request, "dashboards/bad_request.html", context, status=400)
    panels = dashboard_panels(dashboard=dashboard)
    base = {"project_slug": project_slug, "slug": slug}
    config = {
        "project": project_slug,
        "dashboard": slug,
        "catalogUrl": reverse("catalog-tag-values"),
        "panels": [
            {
                "id": panel.pk,
                "kind": panel.kind,
                "title": panel.title,
                "dataUrl": reverse("dashboards:panel-data", kwargs={**base, "panel_id": panel.pk}),
                "csvUrl": reverse("dashboards:panel-csv", kwargs={**base, "panel_id": panel.pk}),
            }
            for panel in panels
        ],
        "variables": [
            {
                "name": variable["name"],
                "tag": variable["tag"],
                "metric": variable["metric"],
                "multi": variable.get("multi", True),
                "param": VARIABLE_PARAM_PREFIX + variable["name"],
            }
            for variable in dashboard.variables
        ],
        "defaults": {
            "from": dashboard.default_from,
            "to": dashboard.default_to,
            "refresh": dashboard.refresh,
        },
    }
    variables = [
        {
            "name": variable["name"],
            "label": variable.get("label") or variable["name"],
            "multi": variable.get("multi", True),
            "param": VARIABLE_PARAM_PREFIX + variable["name"],
            "selected": state.values_of(dashboard, variable["name"]),
        }
        for variable in dashboard.variables
    ]
    context.update(
        nav="dashboards",
        panels=panels,
        state=state,
        presets=RANGE_PRESETS,
        preset_selected=state.range_from if state.range_to == "now" else "",
        refresh_choices=Refresh.choices,
        variables=variables,
        config=config,
        query_string=state.query_string(dashboard),
    )
    return render(request, "dashboards/dashboard.html", context)
