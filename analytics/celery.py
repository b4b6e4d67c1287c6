"""The Celery app: configured from Django settings (CELERY_*), tasks found in every app."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics.settings.local")

app = Celery("analytics")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Apps whose tasks outgrow one module keep the rest in `bulk_tasks` (embeddings' bulk path).
app.autodiscover_tasks(related_name="bulk_tasks")


@worker_ready.connect
def _announce_worker(sender: object = None, **_: object) -> None:
    """Record a heartbeat as soon as a worker is up, so /healthz need not wait for beat."""
    from analytics.health import record_worker_heartbeat

    record_worker_heartbeat(hostname=str(getattr(sender, "hostname", "worker")))
