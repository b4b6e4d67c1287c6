"""A real Celery worker on the real Redis runs tasks and returns their results."""

import pytest

from analytics.tasks import worker_heartbeat


@pytest.mark.django_db
def test_worker_returns_a_task_result(celery_worker):
    """A task sent through Redis is run by the worker process and its result comes back."""
    result = worker_heartbeat.delay().get(timeout=30)
    assert set(result) == {"hostname", "at"}
    assert result["at"] > 0
    assert celery_worker.poll() is None
