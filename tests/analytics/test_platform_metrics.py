"""The platform's own metrics: recorded per project as it works, stored by the flush."""

import json
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from analytics.models import Project
from analytics.platform_metrics import (
    EVENTS_INGESTED,
    INGEST_ERRORS,
    QUEUE_KEY,
    REQUEST_MS,
    record_platform_metric,
)
from analytics.redis_client import redis_client
from analytics.services.platform_metrics import flush_platform_metrics
from tests.helpers import bearer, free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_queue() -> None:
    redis_client().delete(QUEUE_KEY)


def stored(project: Project, metric: str) -> list[tuple[dict[str, str], float]]:
    """Return (tags, value) of every stored point of `metric` in `project`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.tags, p.value FROM points p JOIN analytics_series s ON s.id = p.series_id"
            " WHERE s.project_id = %s AND s.metric = %s",
            [project.id, metric],
        )
        # Django reads jsonb as text on raw cursors.
        return [(json.loads(tags), value) for tags, value in cursor.fetchall()]


def ingest(client: Any, issued: Any, body: Any) -> Any:
    return client.post("/api/v1/events", body, format="json", **bearer(issued))


def test_accepted_events_are_counted_in_their_own_project(
    api_client, project, other_project, make_key
):
    """Two accepted batches become two samples of events_ingested, in that project only."""
    issued = make_key(project)
    events = [{"metric": "cpu", "value": v} for v in (1, 2, 3)]
    assert ingest(api_client, issued, events).status_code == 200
    assert ingest(api_client, issued, events[:1]).status_code == 200
    result = flush_platform_metrics()
    assert result.stored == 2
    assert sorted(value for _, value in stored(project, EVENTS_INGESTED)) == [1.0, 3.0]
    assert stored(other_project, EVENTS_INGESTED) == []


def test_refused_ingest_requests_are_counted_with_their_status(api_client, project, make_key):
    """A 400 (bad field) and a 403 (read key) are two ingest errors tagged by status."""
    bad_value = [{"metric": "cpu", "value": "high"}]
    assert ingest(api_client, make_key(project), bad_value).status_code == 400
    reader = make_key(project, scopes=("read",))
    assert ingest(api_client, reader, [{"metric": "cpu", "value": 1}]).status_code == 403
    flush_platform_metrics()
    assert sorted(tags["status"] for tags, _ in stored(project, INGEST_ERRORS)) == ["400", "403"]


def test_requests_without_a_project_are_not_recorded(api_client, project):
    """A request refused before authentication belongs to no tenant and leaves no sample."""
    assert api_client.post("/api/v1/events", [], format="json").status_code == 401
    assert redis_client().llen(QUEUE_KEY) == 0


def test_series_api_latency_is_recorded(api_client, project, make_key):
    """A series API answer records its latency under endpoint=series."""
    record_platform_metric(project_id=project.id, metric="cpu", value=1)
    flush_platform_metrics()
    response = api_client.get(
        "/api/v1/series", {"metric": "cpu", "range": "now-1h"}, **bearer(make_key(project))
    )
    assert response.status_code == 200, response.content
    flush_platform_metrics()
    samples = stored(project, REQUEST_MS)
    assert [tags for tags, _ in samples] == [{"endpoint": "series"}]
    assert samples[0][1] > 0


def test_flush_drops_samples_of_deleted_projects_and_unreadable_ones(project):
    """Samples of a project that no longer exists, or that cannot be decoded, are skipped."""
    record_platform_metric(project_id=project.id, metric=EVENTS_INGESTED, value=5)
    record_platform_metric(project_id=project.id + 1000, metric=EVENTS_INGESTED, value=7)
    redis_client().rpush(QUEUE_KEY, b"not json")
    result = flush_platform_metrics()
    assert (result.samples, result.stored, result.skipped) == (3, 1, 2)
    assert redis_client().llen(QUEUE_KEY) == 0


def test_recording_survives_a_redis_outage(project):
    """With Redis unreachable, recording logs and returns instead of failing the request."""
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
        record_platform_metric(project_id=project.id, metric=EVENTS_INGESTED, value=1)
    assert redis_client().llen(QUEUE_KEY) == 0
