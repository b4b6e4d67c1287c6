"""The similar-items page: login, project membership, what the shell carries, query count."""

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from analytics.models import Membership, Project, Series


@pytest.fixture
def member(project: Project) -> User:
    user = User.objects.create_user("mia", password="pw-mia-123")
    Membership.objects.create(project=project, user=user)
    return user


@pytest.fixture
def member_client(client: Client, member: User) -> Client:
    client.force_login(member)
    return client


def similar_url(project: Project) -> str:
    return reverse("dashboards:similar", kwargs={"project_slug": project.slug})


def test_similar_page_path_is_fixed(project: Project) -> None:
    """The page lives at /p/<project_slug>/similar/."""
    assert similar_url(project) == "/p/acme/similar/"


def test_anonymous_user_is_redirected_to_login(client: Client, project: Project) -> None:
    """An anonymous visitor is sent to the login page with a next= back to the page."""
    response = client.get(similar_url(project))
    assert response.status_code == 302
    login = resolve_url(settings.LOGIN_URL)
    assert response["Location"] == f"{login}?next=/p/acme/similar/"


def test_other_project_is_404(member_client: Client, other_project: Project) -> None:
    """A project the user is not a member of answers 404, exactly like a missing one."""
    assert member_client.get(similar_url(other_project)).status_code == 404
    assert member_client.get("/p/no-such-project/similar/").status_code == 404


def test_member_sees_the_page(member_client: Client, project: Project) -> None:
    """A member gets the page with the project's slug, the API paths and the script."""
    response = member_client.get(similar_url(project))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-project="acme"' in html
    assert 'data-search-url="/api/v1/search"' in html
    assert 'data-items-url="/api/v1/items"' in html
    assert 'src="/static/dashboards/similar.js"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert response.context["nav"] == "similar"


def test_page_only_answers_get(member_client: Client, project: Project) -> None:
    """The page is read-only: a POST is refused with 405."""
    assert member_client.post(similar_url(project)).status_code == 405


def test_trend_metrics_are_the_projects_own(
    member_client: Client, project: Project, other_project: Project
) -> None:
    """The trend metric picker lists this project's metrics and none of another project's."""
    Series.objects.create(project=project, metric="views", tags={})
    Series.objects.create(project=project, metric="sales", tags={"region": "eu"})
    Series.objects.create(project=other_project, metric="secret.revenue", tags={})
    response = member_client.get(similar_url(project))
    assert response.context["metrics"] == ["sales", "views"]
    assert "secret.revenue" not in response.content.decode()


def test_query_count_does_not_grow_with_metrics(
    member_client: Client,
    project: Project,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    """The page costs session + user + project + metric catalog, however many metrics exist."""
    for index in range(30):
        Series.objects.create(project=project, metric=f"metric.{index}", tags={})
    with django_assert_num_queries(4):
        response = member_client.get(similar_url(project))
    assert response.status_code == 200
    assert len(response.context["metrics"]) == 30
