"""Helpers for ingestion tests: posting, reading back, and proving nothing was written."""

from dataclasses import dataclass
from typing import Any

import orjson
from django.db import connection

from analytics.models import Project, Series
from ingestion.models import IngestReceipt


def post_events(
    client: Any,
    secret: str,
    payload: Any,
    *,
    path: str = "/api/v1/events",
    content_type: str = "application/json",
    raw: bytes | None = None,
    **extra: Any,
) -> Any:
    """POST `payload` (JSON-encoded unless `raw` is given) with a Bearer key."""
    body = raw if raw is not None else orjson.dumps(payload)
    return client.generic(
        "POST",
        path,
        body,
        content_type=content_type,
        HTTP_AUTHORIZATION=f"Bearer {secret}",
        **extra,
    )


@dataclass(frozen=True)
class StoredPoint:
    metric: str
    tags: dict[str, str]
    item: str | None
    time: Any
    value: float
    event_id: str | None


def stored_points(project: Project) -> list[StoredPoint]:
    """Return every stored point of `project`, in time order, with its series."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT s.metric, s.tags::text, s.item, p.time, p.value, p.event_id
               FROM points p JOIN analytics_series s ON s.id = p.series_id
               WHERE s.project_id = %s ORDER BY p.time, s.metric, p.value""",
            [project.pk],
        )
        return [
            StoredPoint(metric, orjson.loads(tags), item, time, value, event_id)
            for metric, tags, item, time, value, event_id in cursor.fetchall()
        ]


def footprint(project: Project) -> tuple[int, int, int]:
    """Return (points, series, receipts) of `project`: what a refused request must not change."""
    return (
        len(stored_points(project)),
        Series.objects.filter(project=project).count(),
        IngestReceipt.objects.filter(project=project).count(),
    )
