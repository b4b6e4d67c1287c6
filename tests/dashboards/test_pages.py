"""Dashboard pages: login, project scoping, URL state, bad parameters, query counts, Plotly.js."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.shortcuts import resolve_url
from django.templatetags.static import static
from django.test import override_settings
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from analytics.models import Membership, Project
from dashboards.models import Dashboard
from dashboards.services import import_dashboard
from tests.dashboards.conftest import dashboard_document

pytestmark = pytest.mark.django_db

LIST = "/dashboards/"


def view_url(dashboard: Dashboard) -> str:
    return f"/p/{dashboard.project.slug}/dashboards/{dashboard.slug}/"


def test_fixed_paths_and_names(dashboard):
    """The URL names of paths.md reverse to the fixed paths."""
    panel = dashboard.panels.first()
    assert reverse("dashboards:list") == LIST
    kwargs = {"project_slug": "acme", "slug": "traffic"}
    assert reverse("dashboards:view", kwargs=kwargs) == "/p/acme/dashboards/traffic/"
    assert (
        reverse("dashboards:panel-data", kwargs={**kwargs, "panel_id": panel.pk})
        == f"/p/acme/dashboards/traffic/panels/{panel.pk}/data"
    )
    assert (
        reverse("dashboards:panel-csv", kwargs={**kwargs, "panel_id": panel.pk})
        == f"/p/acme/dashboards/traffic/panels/{panel.pk}/data.csv"
    )


def test_anonymous_visitor_is_sent_to_login(client, dashboard):
    """Both pages redirect an anonymous visitor to the login page with next=."""
    login = resolve_url(settings.LOGIN_URL)
    for url in (LIST, view_url(dashboard)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"{login}?next={url}"


def test_list_shows_only_the_users_projects(dash_client, dash_user, dashboard, other_project):
    """The list holds the dashboards of the user's projects, not another project's."""
    import_dashboard(
        project=other_project, document=dashboard_document(title="Secret", slug="secret")
    )
    response = dash_client.get(LIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/p/acme/dashboards/traffic/"' in html
    assert "Secret" not in html
    assert [d.slug for d in response.context["dashboards"]] == ["traffic"]
    assert response.context["dashboards"][0].panel_count == 6


def test_list_query_count_does_not_grow_with_dashboards(
    dash_client, dash_user, project, other_project, django_assert_num_queries
):
    """The list page runs session, user, one dashboards query and one for the projects the
    user may create dashboards in, however many there are."""
    import_dashboard(project=project, document=dashboard_document(slug="one"))
    with django_assert_num_queries(4):
        assert dash_client.get(LIST).status_code == 200
    Membership.objects.create(project=other_project, user=dash_user)
    for index in range(4):
        import_dashboard(project=other_project, document=dashboard_document(slug=f"d{index}"))
    with django_assert_num_queries(4):
        response = dash_client.get(LIST)
    assert len(response.context["dashboards"]) == 5


def test_view_renders_grid_controls_and_config(dash_client, dashboard):
    """The dashboard page has a panel per panel, the controls, Plotly.js and its module."""
    response = dash_client.get(view_url(dashboard), {"from": "now-7d", "to": "now"})
    assert response.status_code == 200
    html = response.content.decode()
    panels = list(dashboard.panels.all())
    for panel in panels:
        assert f'id="panel-{panel.pk}"' in html
        assert f'id="panel-{panel.pk}-chart"' in html
        assert f'id="panel-{panel.pk}-inspect"' in html
    assert html.count('class="panel-inspect-button"') == 6
    assert 'id="range-preset"' in html
    assert '<option value="now-7d" selected>' in html
    assert 'id="range-from" class="range-input" value="now-7d"' in html
    assert 'id="var-region" class="variable-select"' in html
    assert f'src="{static("plotly/plotly.min.js")}"' in html
    assert f'src="{static("dashboards/dashboard.js")}"' in html
    assert response.context["nav"] == "dashboards"
    found = re.search(
        r'<script id="dashboard-config" type="application/json">(.*?)</script>', html, re.S
    )
    assert found is not None
    config = json.loads(found[1])
    assert [p["id"] for p in config["panels"]] == [p.pk for p in panels]
    assert (
        config["panels"][0]["dataUrl"] == f"/p/acme/dashboards/traffic/panels/{panels[0].pk}/data"
    )
    assert config["catalogUrl"] == "/api/v1/catalog/tag-values"
    assert config["variables"][0] == {
        "name": "region",
        "tag": "region",
        "metric": "http.requests",
        "multi": True,
        "param": "var-region",
    }


def test_view_keeps_selected_variables_and_range_in_links(dash_client, dashboard):
    """Selected variable values render selected, and the CSV links carry the whole state."""
    response = dash_client.get(
        view_url(dashboard),
        {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "var-region": ["eu", "us"]},
    )
    html = response.content.decode()
    assert '<option value="eu" selected>eu</option>' in html
    assert '<option value="us" selected>us</option>' in html
    assert '<option value="" selected>Custom</option>' in html
    query = response.context["query_string"]
    assert "var-region=eu&var-region=us" in query
    assert "from=2026-01-01T00%3A00%3A00Z" in query
    assert f"data.csv?{query}".replace("&", "&amp;") in html


def test_other_projects_dashboard_answers_404(dash_client, dashboard, other_project):
    """A dashboard of another project, or a missing one, answers 404."""
    theirs = import_dashboard(project=other_project, document=dashboard_document())
    assert dash_client.get(view_url(theirs)).status_code == 404
    assert dash_client.get("/p/acme/dashboards/missing/").status_code == 404
    assert dash_client.get("/p/globex/dashboards/traffic/").status_code == 404


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"from": "last tuesday"}, "from"),
        ({"to": "now-9999999999999w"}, "to"),
        ({"from": "now", "to": "now-1h"}, "to"),
        ({"refresh": "2s"}, "refresh"),
        ({"var-status": ["200", "500"]}, "var-status"),
    ],
)
def test_bad_params_answer_400_naming_the_param(dash_client, dashboard, params, param):
    """A bad URL parameter renders a 400 page naming it, never a 500."""
    response = dash_client.get(view_url(dashboard), params)
    assert response.status_code == 400
    assert f'data-param="{param}"' in response.content.decode()


def test_view_query_count_does_not_grow_with_panels(
    dash_client, project, django_assert_num_queries: DjangoAssertNumQueries
):
    """Session, user, dashboard, panels: four queries whether it has 1 or 6 panels."""
    document = dashboard_document(slug="small")
    document["panels"] = document["panels"][:1]
    small = import_dashboard(project=project, document=document)
    big = import_dashboard(project=project, document=dashboard_document(slug="big"))
    for dashboard in (small, big):
        url = view_url(dashboard)
        with django_assert_num_queries(4):
            assert dash_client.get(url).status_code == 200


def test_plotly_script_is_served_from_the_package(dash_client):
    """The page's Plotly.js URL answers 200 with JavaScript, from the plotly package."""
    response = dash_client.get(static("plotly/plotly.min.js"))
    assert response.status_code == 200
    assert "javascript" in response["Content-Type"]
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"window.Plotly = Plotly" in body
    assert str(finders.find("plotly/plotly.min.js")).endswith("plotly/package_data/plotly.min.js")
    module = dash_client.get(static("dashboards/dashboard.js"))
    assert module.status_code == 200
    assert "javascript" in module["Content-Type"]


def test_collectstatic_collects_plotly(tmp_path: Path):
    """collectstatic copies Plotly.js from the package (and nothing else of its data)."""
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STATIC_ROOT=str(tmp_path), STORAGES=storages):
        call_command("collectstatic", "--noinput", verbosity=0)
    assert (tmp_path / "plotly" / "plotly.min.js").stat().st_size > 1_000_000
    assert sorted(p.name for p in (tmp_path / "plotly").iterdir()) == ["plotly.min.js"]
    assert (tmp_path / "dashboards" / "dashboard.js").exists()


def test_member_of_two_projects_reaches_both(dash_client, dash_user, dashboard, other_project):
    """Pages follow membership: joining another project opens its dashboards."""
    theirs = import_dashboard(project=other_project, document=dashboard_document())
    assert dash_client.get(view_url(theirs)).status_code == 404
    Membership.objects.create(project=other_project, user=dash_user)
    response = dash_client.get(view_url(theirs))
    assert response.status_code == 200
    assert response.context["project"] == other_project
    assert isinstance(response.context["project"], Project)
