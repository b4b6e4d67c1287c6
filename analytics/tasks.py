"""Celery tasks of the core domain: thin wrappers that call a service."""

import socket
from typing import Any

from celery import shared_task

from analytics.health import record_worker_heartbeat


@shared_task(name="analytics.worker_heartbeat", ignore_result=False, time_limit=30)
def worker_heartbeat() -> dict[str, Any]:
    """Record that a worker answered (beat sends this every 30 s) and return the beat."""
    return record_worker_heartbeat(hostname=socket.gethostname())
