"""Silk's recorded requests stay under their cap: a beat task deletes the oldest in batches, off the request path."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from silk.config import SilkyConfig  # type: ignore[import-untyped]
from silk.models import Request, Response, SQLQuery  # type: ignore[import-untyped]

from analytics.profiling.services import collect_silk_garbage
from analytics.profiling.tasks import collect_silk_garbage_task
from tests.helpers import bearer


def record(count: int) -> list[str]:
    """Store `count` requests a second apart, oldest first, each with a response and two statements."""
    start = timezone.now() - timedelta(hours=1)
    paths = []
    for index in range(count):
        request = Request.objects.create(
            path=f"/recorded/{index}", method="GET", start_time=start + timedelta(seconds=index)
        )
        Response.objects.create(request=request, status_code=200)
        for _ in range(2):
            SQLQuery.objects.create(request=request, query="SELECT 1", traceback="")
        paths.append(request.path)
    return paths


@pytest.mark.django_db
def test_request_path_garbage_collection_is_off(web, project, make_key, silk_config):
    """Silk never deletes on the request path: past a cap of 3, twelve requests stay until the task runs."""
    assert SilkyConfig().SILKY_MAX_RECORDED_REQUESTS_CHECK_PERCENT == 0
    silk_config("SILKY_MAX_RECORDED_REQUESTS", 3)
    key = make_key(project)
    for _ in range(12):
        web.get("/api/v1/catalog/metrics", **bearer(key))
    assert Request.objects.count() == 12


def test_beat_runs_the_collection_task():
    """Beat schedules the collection task every 5 minutes when silk is on (the worker test runs it by name)."""
    entry = settings.CELERY_BEAT_SCHEDULE["collect-silk-garbage"]
    assert entry["task"] == collect_silk_garbage_task.name == "profiling.collect_silk_garbage"
    assert entry["schedule"] == 300.0


@pytest.mark.django_db(transaction=True)
def test_worker_task_keeps_the_newest_up_to_the_cap_in_batches(staging_worker):
    """With a cap of 10, the task on a real worker deletes the 15 oldest of 25, 4 per batch, with their rows."""
    paths = record(25)
    result = collect_silk_garbage_task.delay(batch_size=4).get(timeout=60)
    assert result["deleted"] == 15
    assert result["batches"] == 4
    assert sorted(Request.objects.values_list("path", flat=True)) == sorted(paths[15:])
    assert Response.objects.count() == 10
    assert SQLQuery.objects.count() == 20
    again = collect_silk_garbage_task.delay(batch_size=4).get(timeout=60)
    assert again["deleted"] == 0


@pytest.mark.django_db
def test_collection_refuses_nonsense_arguments():
    """A negative cap or an empty batch is a programming error, named."""
    with pytest.raises(ValueError, match="keep must be >= 0"):
        collect_silk_garbage(keep=-1)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        collect_silk_garbage(keep=1, batch_size=0)
