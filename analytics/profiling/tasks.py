"""Celery tasks of profiling: thin wrappers that call a service (beat schedules them when silk is on)."""

from typing import Any

from celery import shared_task
from silk.config import SilkyConfig  # type: ignore[import-untyped]

from analytics.profiling.services import collect_silk_garbage

GC_BATCH_SIZE = 500


@shared_task(name="profiling.collect_silk_garbage", time_limit=600, soft_time_limit=540)
def collect_silk_garbage_task(batch_size: int = GC_BATCH_SIZE) -> dict[str, Any]:
    """Keep silk's recorded requests at SILKY_MAX_RECORDED_REQUESTS, deleting the oldest in batches."""
    result = collect_silk_garbage(
        keep=int(SilkyConfig().SILKY_MAX_RECORDED_REQUESTS), batch_size=batch_size
    )
    return {
        "deleted": result.deleted,
        "batches": result.batches,
        "seconds": round(result.seconds, 3),
    }
