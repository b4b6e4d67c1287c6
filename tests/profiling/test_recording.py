"""Silk records requests with all their SQL, names panel and search requests, samples and caps."""

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from silk.config import SilkyConfig  # type: ignore[import-untyped]
from silk.models import Request, SQLQuery  # type: ignore[import-untyped]

from analytics.models import Membership
from analytics.settings import profiling
from dashboards.services import import_dashboard
from tests.analytics.helpers_series import BASE, MINUTE, iso, write
from tests.dashboards.conftest import RANGE, dashboard_document, panel_url, write_traffic
from tests.helpers import bearer

pytestmark = pytest.mark.django_db


def series_params() -> dict[str, str]:
    return {"metric": "cpu", "start": iso(BASE), "end": iso(BASE + 10 * MINUTE), "bucket": "1m"}


def only_request(**filters: str) -> Request:
    (request,) = Request.objects.filter(**filters)
    return request


def test_series_request_is_recorded_with_raw_and_orm_sql(web, project, make_key):
    """A series read is recorded with its psycopg.sql statements (not only the ORM's), timed."""
    write(project, "cpu", {"host": "a"}, [(m * MINUTE, 1.0) for m in range(10)])
    key = make_key(project)
    response = web.get("/api/v1/series", series_params(), **bearer(key))
    assert response.status_code == 200, response.content
    request = only_request(path="/api/v1/series")
    assert request.view_name == "api-series"
    assert request.response.status_code == 200
    statements = list(SQLQuery.objects.filter(request=request))
    assert request.num_sql_queries == len(statements) > 1
    texts = [statement.query for statement in statements]
    # The key lookup goes through the ORM; the series read is composed psycopg.sql.
    assert any('FROM "analytics_apikey"' in text for text in texts), texts
    assert any("analytics_series" in text and "tags" in text for text in texts), texts
    assert all(statement.time_taken is not None for statement in statements)
    assert all(
        statement.analysis is None for statement in statements
    )  # no EXPLAIN on the request path
    series_read = next(s for s in statements if "analytics_series" in s.query)
    assert "analytics/queries/series.py" in series_read.traceback


def test_panel_request_is_named_after_its_dashboard_and_panel(web, project):
    """A panel data request is recorded as panel:<dashboard>/<panel id>, with the SQL of its series read."""
    write_traffic(project)
    dashboard = import_dashboard(project=project, document=dashboard_document())
    user = User.objects.create_user("dana")
    Membership.objects.create(project=project, user=user)
    web.force_login(user)
    panel = dashboard.panels.all()[0]
    response = web.get(panel_url(dashboard, 0), RANGE)
    assert response.status_code == 200, response.content[:300]
    request = only_request(path=panel_url(dashboard, 0))
    assert request.view_name == f"panel:{dashboard.slug}/{panel.pk}"
    texts = list(SQLQuery.objects.filter(request=request).values_list("query", flat=True))
    assert any("analytics_series" in text for text in texts), texts
    csv_response = web.get(panel_url(dashboard, 0, "data.csv"), RANGE)
    assert csv_response.status_code == 200
    assert only_request(path=panel_url(dashboard, 0, "data.csv")).view_name == (
        f"panel-csv:{dashboard.slug}/{panel.pk}"
    )


def test_search_requests_are_named_search(web, project, make_key):
    """Search and similar-items requests are recorded as search and search:similar, even when refused."""
    key = make_key(project)
    web.post("/api/v1/search", {"like": []}, content_type="application/json", **bearer(key))
    web.get("/api/v1/items/no-such-item/similar", **bearer(key))
    assert only_request(path="/api/v1/search").view_name == "search"
    assert only_request(path="/api/v1/items/no-such-item/similar").view_name == "search:similar"


def test_dashboard_header_ties_other_requests_to_a_panel(web, project, make_key):
    """A request sent for a panel (X-Dashboard-Panel) is named after it; a malformed header is ignored."""
    key = make_key(project)
    web.get("/api/v1/series", series_params(), HTTP_X_DASHBOARD_PANEL="traffic/12", **bearer(key))
    web.get("/api/v1/catalog/metrics", HTTP_X_DASHBOARD_PANEL="<script>/x", **bearer(key))
    assert only_request(path="/api/v1/series").view_name == "panel:traffic/12 api-series"
    assert only_request(path="/api/v1/catalog/metrics").view_name == "catalog-metrics"


def test_sampling_percentage_decides_what_is_recorded(web, project, make_key, silk_config):
    """At 0 % nothing is recorded; health probes are never recorded."""
    key = make_key(project)
    web.get("/healthz")
    silk_config("SILKY_INTERCEPT_PERCENT", 0)
    for _ in range(5):
        web.get("/api/v1/catalog/metrics", **bearer(key))
    assert Request.objects.count() == 0
    silk_config("SILKY_INTERCEPT_PERCENT", 100)
    web.get("/api/v1/catalog/metrics", **bearer(key))
    assert Request.objects.count() == 1


def test_sample_percent_comes_from_the_environment(monkeypatch):
    """SILK_SAMPLE_PERCENT sets the percentage; the settings module's default applies otherwise; 101 is refused."""
    base: dict[str, Any] = {"INSTALLED_APPS": [], "MIDDLEWARE": [], "CELERY_BEAT_SCHEDULE": {}}
    monkeypatch.setenv("SILK_ENABLED", "1")
    monkeypatch.delenv("SILK_SAMPLE_PERCENT", raising=False)
    defaults = dict(base)
    profiling.apply(defaults, default_sample_percent=10)
    assert defaults["SILKY_INTERCEPT_PERCENT"] == 10
    monkeypatch.setenv("SILK_SAMPLE_PERCENT", "35")
    chosen = dict(base)
    profiling.apply(chosen, default_sample_percent=10)
    assert chosen["SILKY_INTERCEPT_PERCENT"] == 35
    monkeypatch.setenv("SILK_SAMPLE_PERCENT", "101")
    with pytest.raises(
        RuntimeError, match="SILK_SAMPLE_PERCENT must be between 0 and 100, not 101"
    ):
        profiling.apply(dict(base), default_sample_percent=10)
    monkeypatch.setenv("SILK_ENABLED", "0")
    off = dict(base)
    profiling.apply(off, default_sample_percent=10)
    assert off == base


def test_large_bodies_are_not_stored(web, project, make_key, silk_config):
    """Request bodies over SILK_MAX_BODY_BYTES, and responses over the cap, are dropped; small ones kept."""
    config = SilkyConfig()
    assert config.SILKY_MAX_REQUEST_BODY_SIZE == config.SILKY_MAX_RESPONSE_BODY_SIZE == 64 * 1024
    key = make_key(project)
    big = {"like": ["x" * (70 * 1024)]}
    web.post("/api/v1/search", big, content_type="application/json", **bearer(key))
    small = {"like": ["item-1"], "k": 3}
    web.post("/api/v1/search", small, content_type="application/json", **bearer(key))
    stored = sorted(Request.objects.filter(path="/api/v1/search"), key=lambda r: len(r.raw_body))
    assert stored[0].body == ""
    assert stored[0].raw_body == ""
    assert json.loads(stored[1].body)["like"] == ["item-1"]
    silk_config("SILKY_MAX_RESPONSE_BODY_SIZE", 10)
    write(project, "cpu", {"host": "a"}, [(MINUTE, 1.0)])
    web.get("/api/v1/series", series_params(), **bearer(key))
    response = only_request(path="/api/v1/series").response
    assert response.status_code == 200
    assert response.body == ""
    assert response.raw_body == ""


def test_python_profiler_only_by_setting(web, project, make_key, silk_config):
    """cProfile runs only when SILK_PYTHON_PROFILER is on (off by default)."""
    assert SilkyConfig().SILKY_PYTHON_PROFILER is False
    key = make_key(project)
    web.get("/api/v1/catalog/metrics", **bearer(key))
    silk_config("SILKY_PYTHON_PROFILER", True)
    web.get("/api/v1/catalog/tag-keys", {"metric": "cpu"}, **bearer(key))
    assert only_request(path="/api/v1/catalog/metrics").pyprofile == ""
    assert "function calls" in only_request(path="/api/v1/catalog/tag-keys").pyprofile
