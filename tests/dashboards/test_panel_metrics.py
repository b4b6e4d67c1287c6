"""Panel data requests feed the platform's own latency metric, filed under the panel's project."""

import pytest

from analytics.models import Series
from analytics.platform_metrics import QUEUE_KEY, REQUEST_MS
from analytics.redis_client import redis_client
from analytics.services.platform_metrics import flush_platform_metrics
from tests.dashboards.conftest import panel_url

pytestmark = pytest.mark.django_db


def test_a_panel_request_records_its_latency_in_its_project(dash_client, dashboard, other_project):
    """One panel answer → one platform.request_ms sample tagged endpoint=panel, in that project only."""
    redis_client().delete(QUEUE_KEY)
    assert dash_client.get(panel_url(dashboard)).status_code == 200
    assert flush_platform_metrics().stored == 1
    series = Series.objects.get(metric=REQUEST_MS)
    assert (series.project_id, series.tags) == (dashboard.project_id, {"endpoint": "panel"})
    assert not Series.objects.filter(project=other_project, metric=REQUEST_MS).exists()
