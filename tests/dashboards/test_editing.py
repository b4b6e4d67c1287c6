"""Dashboard editor endpoints: roles, validation in place, versions, 409 conflicts, Explore."""

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from analytics.models import Membership, Project
from dashboards.models import Dashboard, DashboardVersion
from dashboards.versions import dashboard_document
from tests.analytics.helpers_series import BASE, MINUTE, iso, write
from tests.dashboards.conftest import RANGE

pytestmark = pytest.mark.django_db

PREVIEW_RANGE = urlencode(RANGE)
EXPLORE_RANGE = {"from": iso(BASE), "to": iso(BASE + 24 * 60 * MINUTE)}


def member(project: Project, name: str, role: str) -> Client:
    user = User.objects.create_user(name, password=f"pw-{name}-123")
    Membership.objects.create(project=project, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def editor(project: Project) -> Client:
    return member(project, "eddie", Membership.Role.EDITOR)


@pytest.fixture
def viewer(project: Project) -> Client:
    return member(project, "vera", Membership.Role.VIEWER)


@pytest.fixture
def stranger(other_project: Project) -> Client:
    return member(other_project, "sam", Membership.Role.ADMIN)


def base(dashboard: Dashboard) -> str:
    return f"/p/{dashboard.project.slug}/dashboards/{dashboard.slug}/"


def post_json(client: Client, url: str, body: Any) -> Any:
    return client.post(url, data=json.dumps(body), content_type="application/json")


def document(dashboard: Dashboard) -> dict[str, Any]:
    return dashboard_document(dashboard=dashboard, panels=list(dashboard.panels.all()))


def save(client: Client, dashboard: Dashboard, doc: dict[str, Any], version: int) -> Any:
    return post_json(client, base(dashboard) + "save", {"document": doc, "base_version": version})


def panel_spec(**overrides: Any) -> dict[str, Any]:
    spec = {"title": "Requests", "kind": "line", "metric": "http.requests", "agg": "sum"}
    spec.update(overrides)
    return spec


def edit_requests(dashboard: Dashboard) -> list[tuple[str, str, Any]]:
    """Every edit endpoint with a body that would succeed for an editor."""
    slug = dashboard.project.slug
    return [
        ("get", base(dashboard) + "edit/", None),
        ("post", base(dashboard) + "save", {"document": document(dashboard), "base_version": 0}),
        ("post", base(dashboard) + "preview", {"panel": panel_spec(), "params": ""}),
        ("post", base(dashboard) + "duplicate", None),
        ("post", base(dashboard) + "history/1/restore", None),
        ("post", f"/p/{slug}/dashboards/new", {"title": "Another"}),
        ("post", f"/p/{slug}/explore/add", {"dashboard": dashboard.slug, "panel": panel_spec()}),
        ("post", base(dashboard) + "delete", None),
    ]


def call(client: Client, method: str, url: str, body: Any) -> Any:
    if method == "get":
        return client.get(url)
    if body is None:
        return client.post(url)
    return post_json(client, url, body)


def test_viewer_sees_no_edit_controls_and_gets_403_everywhere(viewer, dashboard):
    """A viewer's dashboard page has no edit control and every edit endpoint answers 403."""
    html = viewer.get(base(dashboard)).content.decode()
    assert 'id="edit-dashboard"' not in html
    assert "edit-control" not in html
    assert 'id="new-dashboard"' not in viewer.get("/dashboards/").content.decode()
    for method, url, body in edit_requests(dashboard):
        assert call(viewer, method, url, body).status_code == 403, url
    assert Dashboard.objects.filter(pk=dashboard.pk).exists()
    assert not DashboardVersion.objects.exists()


def test_other_projects_member_gets_404_everywhere(stranger, dashboard):
    """An admin of another project gets 404 from every edit endpoint of this one."""
    for method, url, body in edit_requests(dashboard):
        assert call(stranger, method, url, body).status_code == 404, url
    assert stranger.get(base(dashboard) + "history/").status_code == 404
    assert stranger.get(f"/p/{dashboard.project.slug}/explore/").status_code == 404


@pytest.mark.parametrize("role", [Membership.Role.EDITOR, Membership.Role.ADMIN])
def test_editor_and_admin_see_controls_and_may_edit(project, dashboard, role):
    """Editors and admins see the edit controls and may open the editor and save."""
    client = member(project, f"user-{role}", role)
    assert 'id="edit-dashboard"' in client.get(base(dashboard)).content.decode()
    assert client.get(base(dashboard) + "edit/").status_code == 200
    response = save(client, dashboard, document(dashboard), 0)
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2  # 1 keeps the state before the first save


def test_create_then_save_keeps_panel_ids_and_records_versions(editor, project):
    """A new dashboard is version 1; saves add versions with author, message and document."""
    response = editor.post(f"/p/{project.slug}/dashboards/new", {"title": "Team board"})
    assert response.status_code == 302
    dashboard = Dashboard.objects.get(project=project, slug="team-board")
    assert response["Location"] == base(dashboard) + "edit/"
    doc = document(dashboard)
    doc["panels"] = [panel_spec(), panel_spec(title="Grouped", group_by="region", x=6)]
    body = post_json(
        editor,
        base(dashboard) + "save",
        {"document": doc, "base_version": 1, "message": "two panels"},
    ).json()
    assert body["version"] == 2
    ids = [panel["id"] for panel in body["document"]["panels"]]
    body["document"]["panels"][0]["width"] = 12
    body["document"]["panels"][1]["y"] = 4
    again = save(editor, dashboard, body["document"], 2).json()
    assert [panel["id"] for panel in again["document"]["panels"]] == ids
    versions = list(DashboardVersion.objects.filter(dashboard=dashboard).order_by("number"))
    assert [v.number for v in versions] == [1, 2, 3]
    assert versions[1].message == "two panels"
    assert versions[1].author is not None
    assert versions[1].author.username == "eddie"


def test_invalid_document_is_refused_naming_the_field_and_nothing_written(editor, dashboard):
    """A bad panel field answers 400 naming `panels[i].field`, and nothing is saved."""
    doc = document(dashboard)
    doc["panels"][2]["filters"] = ["region:$nope"]
    doc["panels"][3]["width"] = 20
    doc["title"] = ""
    response = save(editor, dashboard, doc, 0)
    assert response.status_code == 400
    fields = {item["field"] for item in response.json()["detail"]}
    assert {"panels[2].filters", "panels[3].width", "title"} <= fields
    assert not DashboardVersion.objects.exists()
    dashboard.refresh_from_db()
    assert dashboard.title == "Traffic"


def test_second_concurrent_save_gets_409_naming_who_saved(project, dashboard, editor):
    """Two editors start from one version: the second save is 409 naming the first editor,
    and the first one's changes are kept."""
    other = member(project, "olga", Membership.Role.EDITOR)
    mine, theirs = document(dashboard), document(dashboard)
    theirs["title"] = "Olga's title"
    assert save(other, dashboard, theirs, 0).status_code == 200
    mine["description"] = "mine"
    response = save(editor, dashboard, mine, 0)
    assert response.status_code == 409
    body = response.json()
    assert "olga saved version 2" in body["error"]
    assert body["conflict"]["author"] == "olga"
    assert body["conflict"]["version"] == 2
    dashboard.refresh_from_db()
    assert dashboard.title == "Olga's title"
    assert dashboard.description == "requests by region"
    # "Save as copy" keeps the refused document as a new dashboard.
    copy = post_json(
        editor, f"/p/{project.slug}/dashboards/new", {"title": "Mine (copy)", "document": mine}
    )
    assert copy.status_code == 201
    saved = Dashboard.objects.get(project=project, slug=copy.json()["slug"])
    assert saved.description == "mine"
    assert saved.panels.count() == 6


def test_history_diff_and_restore_as_new_version(editor, dashboard):
    """The history lists versions, diffs two by panel and field, and restores one as new."""
    doc = document(dashboard)
    doc["panels"][0]["title"] = "Renamed"
    doc["panels"] = [*doc["panels"][:5], panel_spec(title="Added")]
    assert save(editor, dashboard, doc, 0).status_code == 200
    page = editor.get(base(dashboard) + "history/?a=1&b=2")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Renamed" in html
    assert "Added" in html
    assert "Requests (heatmap)" in html
    diff = page.context["diff"]
    assert diff.added == ["Added"]
    assert diff.removed == ["Requests (heatmap)"]
    assert diff.changed[0].changes[0].field == "title"
    response = editor.post(base(dashboard) + "history/1/restore", {"base_version": "2"})
    assert response.status_code == 302
    dashboard.refresh_from_db()
    titles = sorted(p.title for p in dashboard.panels.all())
    assert "Requests (heatmap)" in titles
    assert "Renamed" not in titles
    latest = DashboardVersion.objects.filter(dashboard=dashboard).order_by("-number").first()
    assert latest is not None
    assert latest.number == 3
    assert latest.message == "restored version 1"
    stale = editor.post(base(dashboard) + "history/2/restore", {"base_version": "2"})
    assert stale.status_code == 409


def test_preview_answers_like_panel_data_and_refuses_bad_fields(editor, dashboard):
    """The preview draws an unsaved panel; a bad field is a 400 naming it."""
    url = base(dashboard) + "preview"
    params = "from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z"
    ok = post_json(editor, url, {"panel": panel_spec(group_by="region"), "params": params})
    assert ok.status_code == 200
    assert {"panel", "figure", "inspect"} <= set(ok.json())
    assert ok.json()["inspect"]["tier"]
    for field, value in [("bucket", "7s"), ("kind", "pie"), ("limit", 99), ("fill", "x")]:
        bad = post_json(editor, url, {"panel": panel_spec(**{field: value}), "params": params})
        assert bad.status_code == 400
        assert bad.json()["detail"][0]["field"] == f"panel.{field}"


def test_dry_run_checks_settings_without_saving(editor, dashboard):
    """A dry run names a bad variable and a bad default range, and writes nothing."""
    doc = document(dashboard)
    doc["variables"] = [{"name": "1bad", "tag": "region", "metric": "http.requests"}]
    doc["default_from"] = "yesterday"
    response = post_json(
        editor, base(dashboard) + "save", {"document": doc, "base_version": 0, "dry_run": True}
    )
    assert response.status_code == 400
    fields = {item["field"] for item in response.json()["detail"]}
    assert {"variables", "default_from"} <= fields
    assert not DashboardVersion.objects.exists()


def test_explore_breaks_down_by_tag_and_adds_a_panel(editor, dashboard):
    """Explore answers one chart per tag key with its top values; Add creates a panel."""
    slug = dashboard.project.slug
    page = editor.get(f"/p/{slug}/explore/?metric=http.requests")
    assert page.status_code == 200
    data = editor.get(
        f"/p/{slug}/explore/data",
        {
            "metric": "http.requests",
            "from": "2026-01-01T00:00:00Z",
            "to": "2026-01-02T00:00:00Z",
            "where": "region:us",
        },
    )
    assert data.status_code == 200, data.content
    keys = {b["key"]: b for b in data.json()["breakdowns"]}
    assert "region" not in keys  # pinned by the filter
    assert set(keys["status"]["values"]) <= {"200", "500"}
    bad = editor.get(f"/p/{slug}/explore/data", {"metric": "x", "where": "nocolon"})
    assert bad.status_code == 400
    assert bad.json()["detail"][0]["field"] == "where"
    before = dashboard.panels.count()
    added = post_json(
        editor,
        f"/p/{slug}/explore/add",
        {"dashboard": dashboard.slug, "panel": panel_spec(filters=["region:us"])},
    )
    assert added.status_code == 201
    assert dashboard.panels.count() == before + 1


def test_editor_endpoint_query_counts_do_not_grow_with_panels(
    editor, project, dashboard, django_assert_num_queries
):
    """Save (adding 1 or 6 panels), the editor page and history run a fixed number of queries."""
    doc = document(dashboard)
    # First save also records the baseline version; count the steady state after it.
    version = save(editor, dashboard, doc, 0).json()["version"]
    counts = []
    for extra in (1, 6):
        doc = document(dashboard)
        doc["panels"] += [panel_spec(title=f"extra {i}", y=20 + i) for i in range(extra)]
        with django_assert_num_queries(13) as context:
            response = save(editor, dashboard, doc, version)
        assert response.status_code == 200, response.content
        version = response.json()["version"]
        counts.append(len(context.captured_queries))
    assert counts[0] == counts[1]
    with django_assert_num_queries(5):
        assert editor.get(base(dashboard) + "edit/").status_code == 200
    with django_assert_num_queries(4):
        assert editor.get(base(dashboard) + "history/").status_code == 200
    with django_assert_num_queries(5):
        assert editor.get(base(dashboard) + "history/?a=1&b=2").status_code == 200


def _read_counts(editor: Client, dashboard: Dashboard) -> tuple[int, int]:
    """Return the queries of one preview and of one Explore answer."""
    slug = dashboard.project.slug
    panel = panel_spec(group_by="region", filters=["region:$region"])
    with CaptureQueriesContext(connection) as preview:
        response = post_json(
            editor,
            base(dashboard) + "preview",
            {"panel": panel, "variables": dashboard.variables, "params": PREVIEW_RANGE},
        )
        assert response.status_code == 200, response.content
    with CaptureQueriesContext(connection) as explored:
        response = editor.get(
            f"/p/{slug}/explore/data", {**EXPLORE_RANGE, "metric": "http.requests"}
        )
        assert response.status_code == 200, response.content
        assert [b["key"] for b in response.json()["breakdowns"]] == ["region", "status"]
    return len(preview.captured_queries), len(explored.captured_queries)


def test_preview_and_explore_query_counts_do_not_grow_with_series(editor, project, dashboard):
    """The preview runs the panel data endpoint's 6 queries; Explore runs 7 plus 3 per tag key
    it breaks down (at most 8); neither grows with the number of series."""
    few = _read_counts(editor, dashboard)
    for region in range(20):
        write(project, "http.requests", {"region": f"r{region}", "status": "200"}, [(MINUTE, 1.0)])
    many = _read_counts(editor, dashboard)
    assert few == many
    # preview: session, user, dashboard; series ids, pending minutes, rows (as panel data)
    # explore: session, user, membership; 3 for the metric; tag keys; 3 per key (2 keys here)
    assert few == (6, 7 + 3 * 2)


def test_editor_write_endpoints_query_counts_are_pinned(
    editor, project, dashboard, django_assert_num_queries
):
    """Explore page, create, duplicate, Add to dashboard, restore and delete run a fixed
    number of queries (panels are written in bulk, whatever their number)."""
    slug = project.slug
    with django_assert_num_queries(4):
        assert editor.get(f"/p/{slug}/explore/").status_code == 200
    with django_assert_num_queries(10):
        assert editor.post(f"/p/{slug}/dashboards/new", {"title": "Empty"}).status_code == 302
    # Six panels copied in one INSERT.
    with django_assert_num_queries(12):
        assert editor.post(base(dashboard) + "duplicate").status_code == 302
    # The first save of a dashboard made outside the editor also records its state as v1.
    with django_assert_num_queries(18):
        response = post_json(
            editor, f"/p/{slug}/explore/add", {"dashboard": dashboard.slug, "panel": panel_spec()}
        )
        assert response.status_code == 201, response.content
    with django_assert_num_queries(16):
        response = post_json(
            editor, f"/p/{slug}/explore/add", {"dashboard": dashboard.slug, "panel": panel_spec()}
        )
        assert response.status_code == 201, response.content
    with django_assert_num_queries(13):
        response = editor.post(base(dashboard) + "history/1/restore", {"base_version": "3"})
        assert response.status_code == 302
    assert dashboard.panels.count() == 6
    with django_assert_num_queries(6):
        assert editor.post(base(dashboard) + "delete").status_code == 302
    assert not Dashboard.objects.filter(pk=dashboard.pk).exists()
