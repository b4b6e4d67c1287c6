"""Move the platform's own metric samples from their Redis queue into the points hypertable."""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from django.conf import settings

from analytics.models import Project
from analytics.platform_metrics import QUEUE_KEY
from analytics.redis_client import redis_client
from analytics.services.points import CleanPoint, ingest_points

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlushResult:
    samples: int
    stored: int
    skipped: int


def _take(batch_size: int) -> list[bytes]:
    """Pop up to `batch_size` samples atomically (a concurrent flush never gets the same ones)."""
    pipeline = redis_client().pipeline(transaction=True)
    pipeline.lrange(QUEUE_KEY, 0, batch_size - 1)
    pipeline.ltrim(QUEUE_KEY, batch_size, -1)
    taken, _ = pipeline.execute()
    return list(taken)


def _points_by_project(samples: list[bytes]) -> tuple[dict[int, list[CleanPoint]], int]:
    """Group decodable samples by project; return them and the count of unreadable ones."""
    grouped: dict[int, list[CleanPoint]] = defaultdict(list)
    unreadable = 0
    for raw in samples:
        try:
            project_id, metric, value, tags, at = orjson.loads(raw)
            point = CleanPoint(
                (str(metric), tuple(sorted((str(k), str(v)) for k, v in tags.items())), None),
                datetime.fromtimestamp(float(at), tz=UTC),
                float(value),
                None,
            )
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
            unreadable += 1
            continue
        grouped[int(project_id)].append(point)
    return grouped, unreadable


def flush_platform_metrics(*, batch_size: int = 10_000, max_batches: int = 50) -> FlushResult:
    """Store queued samples in their projects' series; samples of deleted projects are dropped."""
    started = time.perf_counter()
    samples = stored = skipped = 0
    for _ in range(max_batches):
        taken = _take(batch_size)
        if not taken:
            break
        samples += len(taken)
        grouped, unreadable = _points_by_project(taken)
        skipped += unreadable
        alive = set(Project.objects.filter(id__in=grouped).values_list("id", flat=True))
        for project_id, points in grouped.items():
            if project_id not in alive:
                skipped += len(points)
                continue
            result = ingest_points(
                project_id=project_id,
                points=points,
                series_limit=settings.INGEST_MAX_SERIES_PER_PROJECT,
            )
            stored += result.accepted
    if samples:
        logger.info(
            "platform metrics: %d samples, %d stored, %d skipped in %.3f s",
            samples,
            stored,
            skipped,
            time.perf_counter() - started,
        )
    return FlushResult(samples=samples, stored=stored, skipped=skipped)
