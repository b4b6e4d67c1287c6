"""Helpers for pipeline tests: real worker subprocesses, catalogue rows, waiting for embeddings."""

import os
import signal
import subprocess
import time
from pathlib import Path

from django.db import connection, transaction
from django.utils import timezone

from analytics.models import Project
from embeddings.models import Item
from embeddings.services import pending_embeddings
from embeddings.validation import content_hash
from embeddings.worker import model_name
from tests.helpers import celery_worker_argv, worker_environment

ROOT = Path(__file__).resolve().parent.parent.parent
WORDS = [
    "a",
    "sturdy",
    "cast",
    "iron",
    "skillet",
    "for",
    "searing",
    "steaks",
    "and",
    "baking",
    "cornbread",
    "over",
    "an",
    "open",
    "fire",
    "with",
    "a",
    "handle",
    "that",
    "stays",
    "cool",
    "and",
    "a",
    "surface",
    "seasoned",
    "by",
    "years",
    "of",
    "breakfasts",
]


class Worker:
    """A Celery worker subprocess in its own process group (so SIGKILL reaches its pool)."""

    def __init__(self, log: Path, *, queue: str, name: str, batch_size: int) -> None:
        env = worker_environment()
        env["EMBEDDINGS_BATCH_SIZE"] = str(batch_size)
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                celery_worker_argv(queue, name=name, extra=("--without-heartbeat",)),
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes (their group), as an OOM killer would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def create_catalogue(project: Project, count: int, prefix: str = "i") -> list[int]:
    """Store `count` items as if their after-commit message had been lost; return their ids."""
    now = timezone.now()
    items = []
    for index in range(count):
        title = f"Item {index}"
        text = " ".join(WORDS[(index + shift) % len(WORDS)] for shift in range(24))
        items.append(
            Item(
                project=project,
                external_id=f"{prefix}-{index}",
                title=title,
                text=text,
                content_hash=content_hash(title, text),
                embedding_requested_at=now,
            )
        )
    return sorted(item.pk for item in Item.objects.bulk_create(items))


def wait_embedded(item_ids: list[int], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while (left := pending_embeddings(model=model_name(), item_ids=item_ids)) > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{left} of {len(item_ids)} items still not embedded")
        time.sleep(0.2)


def wait_unlocked(item_ids: list[int], timeout: float = 30) -> None:
    """Wait until no other connection holds a row lock on these items (a dead worker's backend ends)."""
    deadline = time.monotonic() + timeout
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM (SELECT id FROM embeddings_item WHERE id = ANY(%s)"
                " FOR UPDATE SKIP LOCKED) free",
                [item_ids],
            )
            row = cursor.fetchone()
        if row and row[0] == len(item_ids):
            return
        if time.monotonic() > deadline:
            raise AssertionError("rows are still locked by another connection")
        time.sleep(0.05)
