"""Writes on silk's tables: garbage collection that keeps the recorded requests under their cap."""

import logging
import time
from dataclasses import dataclass

from django.db import transaction
from silk.models import Request  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SilkGarbageResult:
    kept: int
    deleted: int
    batches: int
    seconds: float


def collect_silk_garbage(*, keep: int, batch_size: int = 500) -> SilkGarbageResult:
    """Delete the oldest recorded requests beyond `keep`, `batch_size` at a time.

    Each batch is its own short transaction (its responses, SQL and profiles go with it by
    cascade), so web requests recording meanwhile never wait long on a lock. Requests
    recorded while this runs are left for the next run.
    """
    if keep < 0 or batch_size < 1:
        raise ValueError(f"keep must be >= 0 and batch_size >= 1, not {keep} and {batch_size}")
    started = time.monotonic()
    excess = Request.objects.count() - keep
    deleted = batches = 0
    while deleted < max(excess, 0):
        oldest = list(
            Request.objects.order_by("start_time", "id").values_list("id", flat=True)[
                : min(batch_size, excess - deleted)
            ]
        )
        if not oldest:
            break
        with transaction.atomic():
            Request.objects.filter(id__in=oldest).delete()
        deleted += len(oldest)
        batches += 1
    seconds = time.monotonic() - started
    logger.info(
        "silk garbage collection: deleted %d requests in %d batches (%.2f s), cap %d",
        deleted,
        batches,
        seconds,
        keep,
    )
    return SilkGarbageResult(kept=keep, deleted=deleted, batches=batches, seconds=seconds)
