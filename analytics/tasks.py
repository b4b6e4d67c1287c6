"""Celery tasks of the core domain: thin wrappers that call a service."""

import socket
from typing import Any

from celery import shared_task

from analytics.health import record_worker_heartbeat
from analytics.services.platform_metrics import flush_platform_metrics
from analytics.services.rollups import apply_retention, refresh_rollups


@shared_task(name="analytics.worker_heartbeat", ignore_result=False, time_limit=30)
def worker_heartbeat() -> dict[str, Any]:
    """Record that a worker answered (beat sends this every 30 s) and return the beat."""
    return record_worker_heartbeat(hostname=socket.gethostname())


@shared_task(name="analytics.refresh_rollups", time_limit=1800, soft_time_limit=1700)
def refresh_rollups_task() -> dict[str, Any]:
    """Refresh the rollups (a second concurrent run returns at once)."""
    result = refresh_rollups()
    return {"ran": result.ran, "pairs": result.pairs, "seconds": round(result.seconds, 3)}


@shared_task(name="analytics.apply_retention", time_limit=3600)
def apply_retention_task() -> dict[str, int]:
    """Drop raw and rollup chunks past their retention horizons."""
    return apply_retention()


@shared_task(name="analytics.flush_platform_metrics", time_limit=120, soft_time_limit=100)
def flush_platform_metrics_task() -> dict[str, int]:
    """Store the platform's own queued metric samples in their projects' series."""
    result = flush_platform_metrics()
    return {"samples": result.samples, "stored": result.stored, "skipped": result.skipped}
