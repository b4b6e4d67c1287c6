"""Fixtures of the dashboard tests: a member of `project`, their client, a dashboard with data."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from analytics.models import Membership, Project
from dashboards.models import Dashboard
from dashboards.services import import_dashboard
from tests.analytics.helpers_series import BASE, MINUTE, iso, write

# One hour of data from BASE: eu and us regions, one minute (BASE + 30m) missing in eu.
RANGE = {"from": iso(BASE), "to": iso(BASE + 60 * MINUTE)}


def dashboard_document(**overrides: Any) -> dict[str, Any]:
    """Return a dashboard document with one panel of every chart kind over `http.requests`."""
    kinds = ["line", "area", "stacked_bar", "single_stat", "table", "heatmap"]
    document: dict[str, Any] = {
        "title": "Traffic",
        "slug": "traffic",
        "description": "requests by region",
        "default_from": "now-6h",
        "default_to": "now",
        "refresh": "off",
        "variables": [
            {"name": "region", "tag": "region", "metric": "http.requests", "multi": True},
            {
                "name": "status",
                "tag": "status",
                "metric": "http.requests",
                "multi": False,
                "default": [],
            },
        ],
        "panels": [
            {
                "title": f"Requests ({kind})",
                "kind": kind,
                "metric": "http.requests",
                "agg": "sum",
                "filters": ["region:$region", "status:$status"],
                "group_by": "region",
                "bucket": "1m",
                "x": 6 * (index % 2),
                "y": 4 * (index // 2),
                "width": 6,
                "height": 4,
            }
            for index, kind in enumerate(kinds)
        ],
    }
    document.update(overrides)
    return document


def write_traffic(project: Project) -> None:
    """Write an hour of requests per minute: eu (status 200, gap at 30m), us (200 and 500)."""
    write(
        project,
        "http.requests",
        {"region": "eu", "status": "200"},
        [(m * MINUTE, 10.0) for m in range(60) if m != 30],
    )
    write(
        project,
        "http.requests",
        {"region": "us", "status": "200"},
        [(m * MINUTE, 2.0) for m in range(60)],
    )
    write(
        project,
        "http.requests",
        {"region": "us", "status": "500"},
        [(m * MINUTE, 1.0) for m in range(60)],
    )


@pytest.fixture
def dash_user(project: Project) -> User:
    user = User.objects.create_user("dana", password="pw-dana-123")
    Membership.objects.create(project=project, user=user)
    return user


@pytest.fixture
def dash_client(client: Client, dash_user: User) -> Client:
    client.force_login(dash_user)
    return client


@pytest.fixture
def dashboard(project: Project) -> Dashboard:
    write_traffic(project)
    return import_dashboard(project=project, document=dashboard_document())


def panel_url(dashboard: Dashboard, index: int = 0, suffix: str = "data") -> str:
    panel = list(dashboard.panels.all())[index]
    return f"/p/{dashboard.project.slug}/dashboards/{dashboard.slug}/panels/{panel.pk}/{suffix}"
