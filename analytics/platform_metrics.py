"""The platform's own metrics: their names, and a cheap way to record one from any process.

Recording is one Redis RPUSH, so it can sit on hot paths (ingestion, search); a beat
task (`analytics.services.platform_metrics.flush_platform_metrics`) moves the queue
into each project's own series in the points hypertable, where dashboards read them
like any other metric. Each tenant therefore sees the platform's work on its behalf
only, and nothing here needs a table of its own.
"""

import logging
import time
from typing import Any

import orjson
import redis
from django.http import HttpRequest

from analytics.redis_client import redis_client

logger = logging.getLogger(__name__)

EVENTS_INGESTED = "platform.events_ingested"  # value: events accepted by one request
INGEST_ERRORS = "platform.ingest_errors"  # value 1 per refused ingest request, tag status
EMBEDDING_BACKLOG = "platform.embedding_backlog"  # gauge: items waiting for an embedding
EMBEDDINGS_COMPUTED = "platform.embeddings_computed"  # value: items embedded by one batch
REQUEST_MS = "platform.request_ms"  # latency of a read request, tag endpoint

QUEUE_KEY = "platform-metrics:queue"
# If beat stops, the queue keeps the newest samples only: telemetry must never be
# what fills Redis.
MAX_QUEUED = 200_000
_PROJECT_ATTRIBUTE = "platform_metrics_project_id"


def record_platform_metric(
    *,
    project_id: int,
    metric: str,
    value: float,
    tags: dict[str, str] | None = None,
    at: float | None = None,
) -> None:
    """Queue one sample; a Redis outage drops it with a warning and never fails the caller."""
    sample = orjson.dumps([project_id, metric, float(value), tags or {}, at or time.time()])
    try:
        pipeline = redis_client().pipeline(transaction=False)
        pipeline.rpush(QUEUE_KEY, sample)
        pipeline.ltrim(QUEUE_KEY, -MAX_QUEUED, -1)
        pipeline.execute()
    except redis.RedisError:
        logger.warning("platform metric %s dropped: Redis unavailable", metric, exc_info=True)


def note_request_project(request: Any, project_id: int) -> None:
    """Remember which project a request acts on, so the metrics middleware can file it."""
    django_request: HttpRequest = getattr(request, "_request", request)
    setattr(django_request, _PROJECT_ATTRIBUTE, project_id)


def request_project_id(request: HttpRequest) -> int | None:
    """Return the project noted for `request`, or None when none was resolved."""
    project_id: int | None = getattr(request, _PROJECT_ATTRIBUTE, None)
    return project_id
