"""Embedding workers started as `make run` starts them: the settings size the pool and torch."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from analytics.celery import app
from embeddings import worker
from embeddings.services import EMBED_PRIORITY
from tests.embeddings.workers import create_catalogue, wait_embedded
from tests.helpers import running_celery_worker, worker_environment

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "embeddings-sizing"


def make_run_worker_argv(queue: str) -> list[str]:
    """Return `make run`'s worker command line (scripts/run.py), serving `queue` instead."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from run import worker_command
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    argv = worker_command()
    argv[argv.index("-Q") + 1] = queue
    return [sys.executable, "-m", *argv, "-n", "sizing@%h", "--without-gossip", "--without-mingle"]


@pytest.mark.django_db(transaction=True)
def test_pool_processes_and_torch_threads_come_from_the_settings(project, tmp_path):
    """Without --concurrency the pool has EMBEDDINGS_WORKER_CONCURRENCY processes, each with
    EMBEDDINGS_TORCH_THREADS torch threads set after the fork, and they embed."""
    env = worker_environment()
    # No topping up: each task embeds its own ten items, so both processes load an encoder
    # (they preload one only when they serve the `embeddings` queue itself).
    env.update(
        EMBEDDINGS_WORKER_CONCURRENCY="2",
        EMBEDDINGS_TORCH_THREADS="1",
        EMBEDDINGS_DEVICE="cpu",
        EMBEDDINGS_TOP_UP="0",
    )
    log = tmp_path / "worker.log"
    ids = create_catalogue(project, 40)
    with running_celery_worker(argv=make_run_worker_argv(QUEUE), env=env, log=log):
        for start in range(0, len(ids), 10):
            app.send_task(
                "embeddings.embed_items",
                args=[ids[start : start + 10]],
                queue=QUEUE,
                priority=EMBED_PRIORITY,
            )
        wait_embedded(ids)
    text = log.read_text()
    assert re.search(r"concurrency: 2 \(prefork\)", text), text[-3000:]
    loaded = re.findall(r"encoder \S+ loaded on cpu with (\d+) torch threads", text)
    assert loaded == ["1", "1"], text[-3000:]


def test_a_claim_tops_up_with_what_the_process_encodes_in_half_a_second(monkeypatch):
    """The top-up follows this process's recent encoding speed, within the configured cap."""
    monkeypatch.setattr(worker, "_recent", {"texts": 0.0, "seconds": 0.0})
    assert worker.top_up_size(limit=64) == 0  # nothing encoded yet
    worker.note_encoding_speed(texts=10, seconds=1.0)  # 10 texts/s: a slow CPU
    assert worker.top_up_size(limit=64) == 5
    for _ in range(30):
        worker.note_encoding_speed(texts=256, seconds=2.0)  # 128 texts/s
    assert 60 <= worker.top_up_size(limit=4096) <= 64
    assert worker.top_up_size(limit=16) == 16
    worker.note_encoding_speed(texts=1, seconds=0.05)  # a free-text query counts as one text
    assert 60 <= worker.top_up_size(limit=4096) <= 64


def test_a_process_outside_a_worker_encodes_with_every_core():
    """`reembed --inline` (or a shell) is the only process computing: its encoder gets every
    usable core, not a pool process's share (EMBEDDINGS_TORCH_THREADS is per pool process)."""
    env = worker_environment()
    env.update(
        EMBEDDINGS_WORKER_CONCURRENCY="2", EMBEDDINGS_TORCH_THREADS="1", EMBEDDINGS_DEVICE="cpu"
    )
    script = (
        "import django; django.setup()\n"
        "import torch\n"
        "from analytics.settings.machine import usable_cores\n"
        "from embeddings.worker import encode_texts\n"
        "assert encode_texts(['a kettle']).shape == (1, 384)\n"
        "print(torch.get_num_threads(), usable_cores())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    threads, cores = map(int, done.stdout.split())
    assert threads == cores
