"""Thin views of the dashboard editor, the history page and Explore.

Every edit endpoint answers a non-member 404 and a viewer 403 before it reads the
request body; JSON endpoints answer errors as `{"error", "detail": [{"field", "error"}]}`
and a concurrent save as 409 naming who saved in between.
"""

from typing import Any

import orjson
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from analytics.middleware import refusal_http_response
from analytics.platform_metrics import note_request_project
from analytics.queries.series import AGGS, FILLS
from analytics.refusals import Refusal, invalid
from dashboards import editing, explore, versions
from dashboards.access import (
    DashboardAccess,
    ProjectAccess,
    dashboard_access,
    editable_dashboards,
    project_access,
)
from dashboards.editing import EditRefused, SaveConflict
from dashboards.figures import CHART_KINDS
from dashboards.models import GRID_COLUMNS, MAX_PANEL_ROWS, Refresh
from dashboards.queries import (
    RANGE_PRESETS,
    VARIABLE_PARAM_PREFIX,
    dashboard_panels,
    panel_data,
    parse_view_state,
)

MAX_BODY = 1_000_000


def _json(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def _body(request: HttpRequest) -> dict[str, Any]:
    if len(request.body) > MAX_BODY:
        raise EditRefused([("body", f"must be at most {MAX_BODY} bytes")])
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise EditRefused([("body", f"is not JSON: {exc}")]) from exc
    if not isinstance(body, dict):
        raise EditRefused([("body", "must be a JSON object")])
    return body


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EditRefused([(name, "must be a whole number, 0 or more")])
    return value


def _access(request: HttpRequest, project_slug: str, slug: str, *, edit: bool) -> DashboardAccess:
    """Return the user's access to the dashboard: 404 for strangers, 403 for viewers if `edit`."""
    access = dashboard_access(user=request.user, project_slug=project_slug, slug=slug)
    if access is None:
        raise Http404("no such dashboard in your projects")
    note_request_project(request, access.dashboard.project_id)
    if edit and not access.can_edit:
        raise PermissionDenied("viewers cannot change dashboards; ask a project admin")
    return access


def _project(request: HttpRequest, project_slug: str, *, edit: bool) -> ProjectAccess:
    access = project_access(user=request.user, project_slug=project_slug)
    if access is None:
        raise Http404("no such project among yours")
    note_request_project(request, access.project.pk)
    if edit and not access.can_edit:
        raise PermissionDenied("viewers cannot change dashboards; ask a project admin")
    return access


def _view_url(project_slug: str, slug: str) -> str:
    return reverse("dashboards:view", kwargs={"project_slug": project_slug, "slug": slug})


def _edit_url(project_slug: str, slug: str) -> str:
    return reverse("dashboards:edit", kwargs={"project_slug": project_slug, "slug": slug})


def _wants_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json"


@login_required
@require_POST
def dashboard_create(request: HttpRequest, project_slug: str) -> HttpResponse:
    """Create a dashboard (a form post, or JSON {title, document} for "save as copy")."""
    access = _project(request, project_slug, edit=True)
    try:
        if _wants_json(request):
            body = _body(request)
            title, document = body.get("title"), body.get("document")
        else:
            title, document = request.POST.get("title", ""), None
        saved = editing.create_dashboard(
            project=access.project, title=title, author=request.user, document=document
        )
    except EditRefused as refused:
        if _wants_json(request):
            return refusal_http_response(refused)
        return HttpResponse(f"refused: {refused}", status=400, content_type="text/plain")
    url = _edit_url(project_slug, saved.dashboard.slug)
    if _wants_json(request):
        return _json({"url": url, "slug": saved.dashboard.slug, "version": saved.version}, 201)
    return HttpResponseRedirect(url)


def _editor_config(request: HttpRequest, access: DashboardAccess) -> dict[str, Any]:
    dashboard = access.dashboard
    project_slug, slug = dashboard.project.slug, dashboard.slug
    kwargs = {"project_slug": project_slug, "slug": slug}
    state = versions.editor_state(dashboard=dashboard, panels=dashboard_panels(dashboard=dashboard))
    return {
        "project": project_slug,
        "dashboard": slug,
        "document": state.document,
        "version": state.version,
        "savedBy": state.saved_by,
        "csrf": get_token(request),
        "urls": {
            "save": reverse("dashboards:save", kwargs=kwargs),
            "preview": reverse("dashboards:preview", kwargs=kwargs),
            "create": reverse("dashboards:create", kwargs={"project_slug": project_slug}),
            "view": _view_url(project_slug, slug),
            "history": reverse("dashboards:history", kwargs=kwargs),
            "metrics": reverse("catalog-metrics"),
            "tagKeys": reverse("catalog-tag-keys"),
            "tagValues": reverse("catalog-tag-values"),
        },
        "choices": {
            "kinds": list(CHART_KINDS),
            "aggs": list(AGGS),
            "fills": list(FILLS),
            "refresh": list(Refresh.values),
            "columns": GRID_COLUMNS,
            "maxRows": MAX_PANEL_ROWS,
            "variablePrefix": VARIABLE_PARAM_PREFIX,
            "presets": [list(preset) for preset in RANGE_PRESETS],
        },
    }


@login_required
@require_GET
def dashboard_edit(request: HttpRequest, project_slug: str, slug: str) -> HttpResponse:
    """Render the editor: the grid to drag and resize, the panel editor and the settings."""
    access = _access(request, project_slug, slug, edit=True)
    context = {
        "nav": "dashboards",
        "project": access.dashboard.project,
        "dashboard": access.dashboard,
        "config": _editor_config(request, access),
    }
    return render(request, "dashboards/edit.html", context)


@login_required
@require_POST
def dashboard_save(request: HttpRequest, project_slug: str, slug: str) -> HttpResponse:
    """Save the editor's document as a new version: 200, 400 naming the field, or 409.

    With `"dry_run": true` the document is only checked (200 `{"valid": true}` or 400).
    """
    access = _access(request, project_slug, slug, edit=True)
    try:
        body = _body(request)
        message = body.get("message") or ""
        if not isinstance(message, str):
            raise EditRefused([("message", "must be a string")])
        if body.get("dry_run") is True:
            # The settings dialog checks its fields in place before anything is saved.
            editing.validate_document(dashboard=access.dashboard, document=body.get("document"))
            return _json({"valid": True})
        saved = editing.save_dashboard(
            dashboard=access.dashboard,
            document=body.get("document"),
            base_version=_int(body.get("base_version"), "base_version"),
            author=request.user,
            message=message,
        )
    except EditRefused as refused:
        return refusal_http_response(refused)
    except SaveConflict as conflict:
        return refusal_http_response(conflict)
    return _json({"version": saved.version, "document": saved.document})


@login_required
@require_POST
def panel_preview(request: HttpRequest, project_slug: str, slug: str) -> HttpResponse:
    """Answer an unsaved panel like the panel data endpoint: {panel, figure, inspect}.

    The body holds the panel, the editor's variables and the view's URL parameters;
    the panel is checked with the model's validation first (400 naming the field).
    """
    access = _access(request, project_slug, slug, edit=True)
    dashboard = access.dashboard
    try:
        body = _body(request)
        if "variables" in body:
            dashboard.variables = body["variables"]
            try:
                editing.validate_document(
                    dashboard=dashboard, document={"variables": body["variables"]}
                )
            except EditRefused as refused:
                return refusal_http_response(refused)
        panel = editing.build_panel(dashboard=dashboard, data=body.get("panel"))
        params = body.get("params", "")
        if not isinstance(params, str):
            raise EditRefused([("params", "must be a URL query string")])
    except EditRefused as refused:
        return refusal_http_response(refused)
    try:
        state = parse_view_state(QueryDict(params), dashboard=dashboard, now=timezone.now())
    except Refusal as error:
        return refusal_http_response(error)
    data = panel_data(panel, state)
    return _json(
        {
            "panel": {"id": None, "title": panel.title, "kind": panel.kind},
            "figure": data.figure,
            "inspect": data.inspect,
        }
    )


@login_required
@require_POST
def dashboard_duplicate(request: HttpRequest, project_slug: str, slug: str) -> HttpResponse:
    """Copy the dashboard and open the copy in the editor."""
    access = _access(request, project_slug, slug, edit=True)
    saved = editing.duplicate_dashboard(dashboard=access.dashboard, author=request.user)
    return HttpResponseRedirect(_edit_url(project_slug, saved.dashboard.slug))


@login_required
@require_POST
def dashboard_delete(request: HttpRequest, project_slug: str, slug: str) -> HttpResponse:
    """Delete the dashboard and go back to the list."""
    access = _access(request, project_slug, slug, edit=True)
    editing.delete_dashboard(dashboard=access.dashboard)
    return HttpResponseRedirect(reverse("dashboards:list"))


def _version_number(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 else None


@login_required
@require_GET
def dashboard_history(request: HttpRequest, project_slug: str, slug: str) -> HttpResponse:
    """List the versions, and with ?a=&b= show what changed between two of them."""
    access = _access(request, project_slug, slug, edit=False)
    history = versions.version_history(dashboard=access.dashboard)
    older = _version_number(request.GET.get("a"))
    newer = _version_number(request.GET.get("b"))
    diff = None
    if older is not None and newer is not None:
        diff = versions.version_diff(
            dashboard=access.dashboard, older=min(older, newer), newer=max(older, newer)
        )
    context = {
        "nav": "dashboards",
        "project": access.dashboard.project,
        "dashboard": access.dashboard,
        "history": history,
        "latest": history[0].number if history else 0,
        "diff": diff,
        "can_edit": access.can_edit,
        "a": older,
        "b": newer,
    }
    return render(request, "dashboards/history.html", context)


@login_required
@require_POST
def version_restore(
    request: HttpRequest, project_slug: str, slug: str, number: int
) -> HttpResponse:
    """Save version `number` as the newest version and show the dashboard."""
    access = _access(request, project_slug, slug, edit=True)
    base = _version_number(request.POST.get("base_version"))
    try:
        editing.restore_version(
            dashboard=access.dashboard,
            number=number,
            base_version=base if base is not None else -1,
            author=request.user,
        )
    except EditRefused as refused:
        return HttpResponse(f"refused: {refused}", status=400, content_type="text/plain")
    except SaveConflict as conflict:
        return HttpResponse(
            f"not restored: {conflict}; reload the history and try again",
            status=409,
            content_type="text/plain",
        )
    return HttpResponseRedirect(_view_url(project_slug, slug))


@login_required
@require_GET
def explore_page(request: HttpRequest, project_slug: str) -> HttpResponse:
    """Render Explore; the browser fetches the charts from `explore_data`."""
    access = _project(request, project_slug, edit=False)
    dashboards = (
        editable_dashboards(user=request.user, project=access.project) if access.can_edit else []
    )
    config = {
        "project": project_slug,
        "csrf": get_token(request),
        "canEdit": access.can_edit,
        "urls": {
            "data": reverse("dashboards:explore-data", kwargs={"project_slug": project_slug}),
            "add": reverse("dashboards:explore-add", kwargs={"project_slug": project_slug}),
            "metrics": reverse("catalog-metrics"),
        },
        "aggs": list(AGGS),
        "presets": [list(preset) for preset in RANGE_PRESETS],
        "dashboards": [{"slug": d.slug, "title": d.title} for d in dashboards],
    }
    context = {"nav": "explore", "project": access.project, "config": config}
    return render(request, "dashboards/explore.html", context)


@login_required
@require_GET
def explore_data(request: HttpRequest, project_slug: str) -> HttpResponse:
    """Return {figure, inspect, breakdowns: [{key, values, figure}]} for the URL's state."""
    access = _project(request, project_slug, edit=False)
    try:
        state = explore.parse_explore_state(request.GET, now=timezone.now())
    except Refusal as error:
        return refusal_http_response(error)
    if not state.metric:
        return refusal_http_response(invalid("metric", "required"))
    answer = explore.explore(project_id=access.project.pk, state=state)
    return _json(
        {
            "figure": answer.figure,
            "inspect": answer.inspect,
            "breakdowns": [
                {"key": b.key, "values": b.values, "figure": b.figure} for b in answer.breakdowns
            ],
        }
    )


@login_required
@require_POST
def explore_add(request: HttpRequest, project_slug: str) -> HttpResponse:
    """Add the Explore view as a panel to one of the project's dashboards: {url} or 400."""
    _project(request, project_slug, edit=True)
    try:
        body = _body(request)
        target = body.get("dashboard")
        if not isinstance(target, str) or not target:
            raise EditRefused([("dashboard", "choose a dashboard")])
        access = dashboard_access(user=request.user, project_slug=project_slug, slug=target)
        if access is None:
            raise EditRefused(
                [("dashboard", f"{target[:64]!r} is not a dashboard of this project")]
            )
        saved = editing.add_panel(
            dashboard=access.dashboard,
            panel=body.get("panel"),
            author=request.user,
            message="panel added from Explore",
        )
    except EditRefused as refused:
        return refusal_http_response(refused)
    except SaveConflict as conflict:
        return refusal_http_response(conflict)
    return _json({"url": _view_url(project_slug, target), "version": saved.version}, 201)
