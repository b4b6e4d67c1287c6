"""Dashboard and panel validation, admin CRUD, JSON export/import (service, commands, admin)."""

import io
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from analytics.models import Project
from dashboards.demo import DEMO_DASHBOARDS, ensure_demo_dashboards
from dashboards.models import Dashboard, Panel
from dashboards.services import (
    DashboardImportError,
    export_dashboard,
    import_dashboard,
    import_dashboards,
)
from tests.dashboards.conftest import dashboard_document

pytestmark = pytest.mark.django_db

ADMIN = "/admin/dashboards/dashboard/"


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("root", "", "pw-root-123"))
    return client


def import_errors(project: Project, document: Any) -> dict[str, list[str]]:
    with pytest.raises(DashboardImportError) as caught:
        import_dashboards(project=project, document=document)
    return caught.value.errors


def test_export_then_import_round_trips(project, other_project):
    """An exported dashboard imports into another project as an equal document."""
    original = import_dashboard(project=project, document=dashboard_document())
    exported = export_dashboard(dashboard=original)
    assert exported["version"] == 1
    assert len(exported["panels"]) == 6
    copy = import_dashboard(project=other_project, document=json.loads(json.dumps(exported)))
    assert copy.pk != original.pk
    assert export_dashboard(dashboard=copy) == exported


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["panels"][1].update(kind="pie"), "panels[1].kind"),
        (lambda d: d["panels"][2].update(filters=["region:$nowhere"]), "panels[2].filters"),
        (lambda d: d["panels"][2].update(filters=["no colon"]), "panels[2].filters"),
        (lambda d: d["panels"][0].update(filters="region:eu"), "panels[0].filters"),
        (lambda d: d["panels"][0].update(bucket="90s"), "panels[0].bucket"),
        (lambda d: d["panels"][0].update(agg="median"), "panels[0].agg"),
        (lambda d: d["panels"][0].update(x=8, width=6), "panels[0].x"),
        (lambda d: d["panels"][0].update(limit=0), "panels[0].limit"),
        (lambda d: d["panels"][3].update(colour="red"), "panels[3]"),
        (lambda d: d.update(variables=[{"name": "1x", "tag": "a", "metric": "m"}]), "variables"),
        (lambda d: d.update(variables=[{"name": "a", "metric": "m"}]), "variables"),
        (lambda d: d.update(variables={"name": "a"}), "variables"),
        (lambda d: d.update(default_from="yesterday"), "default_from"),
        (lambda d: d.update(default_from="now", default_to="now-1h"), "default_to"),
        (lambda d: d.update(refresh="2s"), "refresh"),
        (lambda d: d.update(slug=""), "slug"),
        (lambda d: d.update(panels={}), "panels"),
    ],
)
def test_import_refuses_bad_documents_naming_the_field(project, change, field):
    """A bad field fails the whole import with its path named, and nothing is written."""
    document = dashboard_document()
    change(document)
    errors = import_errors(project, document)
    assert field in errors, errors
    assert not Dashboard.objects.exists()
    assert not Panel.objects.exists()


def test_variable_errors_name_the_index(project):
    """A bad variable is named by its index and key."""
    document = dashboard_document()
    document["variables"].append({"name": "region", "tag": "region", "metric": "m"})
    assert (
        "variables[2].name 'region' is used twice"
        in import_errors(project, document)["variables"][0]
    )


def test_existing_slug_needs_replace(project):
    """Importing a slug that exists is refused, unless replace overwrites it whole."""
    first = import_dashboard(project=project, document=dashboard_document())
    assert "slug" in import_errors(project, dashboard_document())
    smaller = dashboard_document(title="Traffic v2")
    smaller["panels"] = smaller["panels"][:2]
    replaced = import_dashboard(project=project, document=smaller, replace=True)
    assert replaced.pk == first.pk
    assert replaced.title == "Traffic v2"
    assert replaced.panels.count() == 2


def test_list_import_is_all_or_nothing(project):
    """A list with one bad dashboard imports none and names the entry."""
    bad = dashboard_document(slug="bad")
    bad["panels"][0]["kind"] = "pie"
    errors = import_errors(project, [dashboard_document(slug="good"), bad])
    assert "[1].panels[0].kind" in errors
    assert not Dashboard.objects.exists()


def test_export_and_import_commands(project, other_project, tmp_path):
    """manage.py export_dashboard writes JSON that import_dashboard loads back."""
    import_dashboard(project=project, document=dashboard_document())
    target = tmp_path / "traffic.json"
    call_command(
        "export_dashboard", "acme", "traffic", "--output", str(target), stderr=io.StringIO()
    )
    out = io.StringIO()
    call_command("import_dashboard", "globex", str(target), stdout=out)
    assert "imported globex/traffic" in out.getvalue()
    copy = Dashboard.objects.get(project=other_project)
    assert json.loads(target.read_text()) == export_dashboard(dashboard=copy)
    with pytest.raises(CommandError, match="slug"):
        call_command("import_dashboard", "globex", str(target))
    with pytest.raises(CommandError, match="no dashboard"):
        call_command("export_dashboard", "acme", "missing")


def test_demo_dashboards_are_valid_and_idempotent(project):
    """Both demo dashboards import cleanly; a second call creates nothing and keeps edits."""
    first = ensure_demo_dashboards(project=project)
    assert [d.slug for d in first] == [d["slug"] for d in DEMO_DASHBOARDS]
    assert {d.title for d in first} >= {"Platform health"}
    health = Dashboard.objects.get(project=project, slug="platform-health")
    metrics = set(health.panels.values_list("metric", flat=True))
    assert metrics == {
        "platform.events_ingested",
        "platform.ingest_errors",
        "platform.embedding_backlog",
        "platform.embeddings_computed",
        "platform.request_ms",
    }
    health.title = "Edited"
    health.save()
    panels = Panel.objects.count()
    ensure_demo_dashboards(project=project)
    assert Panel.objects.count() == panels
    assert Dashboard.objects.get(pk=health.pk).title == "Edited"


def test_setup_demo_creates_the_demo_dashboards(tmp_path):
    """manage.py setup_demo gives the demo project its two dashboards, once."""
    password = tmp_path / "pw"
    for _ in range(2):
        call_command("setup_demo", "--password-file", str(password), stdout=io.StringIO())
    slugs = sorted(Dashboard.objects.filter(project__slug="demo").values_list("slug", flat=True))
    assert slugs == ["platform-health", "shop-overview"]


def test_model_validation_names_the_field(project):
    """full_clean refuses bad JSON fields and positions, naming the field."""
    dashboard = import_dashboard(project=project, document=dashboard_document())
    panel = dashboard.panels.all()[0]
    panel.filters = ["status:$nope"]
    with pytest.raises(ValidationError) as caught:
        panel.full_clean()
    assert "filters" in caught.value.message_dict
    panel.filters, panel.width, panel.height = [], 13, 0
    with pytest.raises(ValidationError) as caught:
        panel.full_clean()
    assert {"width", "height"} <= set(caught.value.message_dict)


def _admin_form(project: Project, **overrides: Any) -> dict[str, Any]:
    """POST data of the dashboard admin form with one inline panel."""
    data = {
        "project": project.pk,
        "title": "Admin made",
        "slug": "admin-made",
        "description": "",
        "default_from": "now-1h",
        "default_to": "now",
        "refresh": "off",
        "variables": '[{"name": "region", "tag": "region", "metric": "http.requests"}]',
        "panels-TOTAL_FORMS": "1",
        "panels-INITIAL_FORMS": "0",
        "panels-MIN_NUM_FORMS": "0",
        "panels-MAX_NUM_FORMS": "1000",
        "panels-0-title": "Requests",
        "panels-0-kind": "line",
        "panels-0-metric": "http.requests",
        "panels-0-agg": "sum",
        "panels-0-filters": '["region:$region"]',
        "panels-0-group_by": "region",
        "panels-0-limit": "10",
        "panels-0-bucket": "auto",
        "panels-0-unit": "",
        "panels-0-x": "0",
        "panels-0-y": "0",
        "panels-0-width": "6",
        "panels-0-height": "4",
    }
    data.update(overrides)
    return data


def test_admin_crud(admin_client, project):
    """The admin adds a dashboard with a panel, changes it, lists it and deletes it."""
    response = admin_client.post(f"{ADMIN}add/", _admin_form(project))
    assert response.status_code == 302, response.content.decode()[:2000]
    dashboard = Dashboard.objects.get(slug="admin-made")
    panel = dashboard.panels.get()
    assert panel.filters == ["region:$region"]
    assert admin_client.get(ADMIN).status_code == 200
    change = _admin_form(
        project,
        title="Renamed",
        **{
            "panels-INITIAL_FORMS": "1",
            "panels-0-id": str(panel.pk),
            "panels-0-dashboard": str(dashboard.pk),
        },
    )
    assert admin_client.post(f"{ADMIN}{dashboard.pk}/change/", change).status_code == 302
    assert Dashboard.objects.get(pk=dashboard.pk).title == "Renamed"
    assert admin_client.post(f"{ADMIN}{dashboard.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Dashboard.objects.exists()
    assert not Panel.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"variables": '[{"name": "region"}]'}, "variables[0].tag must be a string"),
        ({"panels-0-filters": '["region:$zone"]'}, "uses $zone, which is not a variable"),
        ({"panels-0-kind": "pie"}, "Select a valid choice"),
        ({"panels-0-bucket": "30s"}, "not a multiple of a rollup tier"),
    ],
)
def test_admin_refuses_bad_panels_with_a_message(admin_client, project, overrides, message):
    """Bad JSON or a panel naming an unknown variable is refused with the field's message."""
    response = admin_client.post(f"{ADMIN}add/", _admin_form(project, **overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Dashboard.objects.exists()


def test_admin_export_action_and_import_page(admin_client, project, other_project):
    """The export action downloads JSON that the admin's import page loads into a project."""
    dashboard = import_dashboard(project=project, document=dashboard_document())
    response = admin_client.post(
        ADMIN, {"action": "export_json", "_selected_action": [str(dashboard.pk)]}
    )
    assert response.status_code == 200
    assert 'filename="traffic.json"' in response["Content-Disposition"]
    document = json.loads(response.content)
    assert document == export_dashboard(dashboard=dashboard)
    assert (
        admin_client.get(ADMIN).content.decode().count("/admin/dashboards/dashboard/import/") == 1
    )
    upload = SimpleUploadedFile("traffic.json", response.content, "application/json")
    imported = admin_client.post(f"{ADMIN}import/", {"project": other_project.pk, "file": upload})
    assert imported.status_code == 302
    assert Dashboard.objects.filter(project=other_project, slug="traffic").exists()
    bad = SimpleUploadedFile("bad.json", b"{not json", "application/json")
    refused = admin_client.post(f"{ADMIN}import/", {"project": other_project.pk, "file": bad})
    assert refused.status_code == 200
    assert "file: not JSON" in refused.content.decode()
