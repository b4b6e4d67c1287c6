"""The encoder inside embedding workers: loaded once per worker process, after the fork.

Nothing here imports torch at import time (the web imports this module through the
tasks). A worker that consumes the `embeddings` queue starts loading the model in a
background thread as soon as each pool process starts, so the first free-text query
does not pay for it; any other process loads it on first use, if ever.
"""

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from celery.signals import celeryd_after_setup, worker_process_init
from django.conf import settings

from analytics.settings.machine import usable_cores
from embeddings.active_model import model_name as model_name
from embeddings.constants import EMBEDDING_DIMENSIONS

if TYPE_CHECKING:
    from embeddings.encoder import SentenceEncoder

logger = logging.getLogger(__name__)

EMBEDDINGS_QUEUE = "embeddings"

# Seconds of encoding a claim may grow by when it takes pending items beyond its task's
# own: every item in a claim waits for the whole claim, and a trickle's p95 is held to 2 s.
TOP_UP_SECONDS = 0.5
# Of this process's recent encoding: texts and seconds, each decayed by _DECAY per call
# (so a free-text query's single text counts as one text, not as one call).
_DECAY = 0.8
_recent = {"texts": 0.0, "seconds": 0.0}

_lock = threading.Lock()
_encoder: "SentenceEncoder | None" = None
# Set in a Celery worker's parent before the pool forks; the children inherit them.
_in_worker = False
_consumes_embeddings = False


def get_encoder() -> "SentenceEncoder":
    """Return this process's encoder, loading it on the first call."""
    global _encoder
    if _encoder is not None:
        return _encoder
    with _lock:
        if _encoder is None:
            # Imported here: torch must never load in the web tier or a worker's parent.
            import torch

            from embeddings.encoder import load_encoder

            # The count is process-wide: threads that start computing later (the task's,
            # after this preload thread) take it up too.
            torch.set_num_threads(torch_threads())
            started = time.perf_counter()
            _encoder = load_encoder(
                settings.EMBEDDINGS_MODEL_DIR or None,
                name=model_name(),
                device=settings.EMBEDDINGS_DEVICE,
                dimensions=EMBEDDING_DIMENSIONS,
            )
            logger.info(
                "encoder %s loaded on %s with %d torch threads in %.1f s",
                _encoder.model_name,
                _encoder.device,
                torch.get_num_threads(),
                time.perf_counter() - started,
            )
    return _encoder


def torch_threads() -> int:
    """Return the torch threads for this process's encoder.

    In a worker, after the fork, in the child: pool processes x threads must not exceed the
    cores, and the settings size both. Any other process that encodes (`reembed --inline`,
    a shell, a benchmark) is the only one computing and gets every usable core: with the
    pool's share it ran `reembed --inline` at half speed on 2 cores.
    """
    if _in_worker:
        return int(settings.EMBEDDINGS_TORCH_THREADS)
    return usable_cores()


def encode_texts(texts: list[str]) -> np.ndarray:
    """Return unit vectors (len(texts), dimensions) for `texts`."""
    encoder = get_encoder()
    started = time.perf_counter()
    vectors = encoder.encode(texts)
    note_encoding_speed(texts=len(texts), seconds=time.perf_counter() - started)
    return vectors


def note_encoding_speed(*, texts: int, seconds: float) -> None:
    """Add one call's `texts` and `seconds` to this process's recent encoding speed."""
    _recent["texts"] = _DECAY * _recent["texts"] + texts
    _recent["seconds"] = _DECAY * _recent["seconds"] + seconds


def top_up_size(*, limit: int) -> int:
    """Return how many pending items a claim may take beyond its task's own ids.

    About TOP_UP_SECONDS of encoding at this process's recent speed, at most `limit`
    (EMBEDDINGS_TOP_UP): a slow CPU tops up little, a GPU thousands; none before the
    process has encoded anything.
    """
    if _recent["texts"] <= 0 or _recent["seconds"] <= 0:
        return 0
    per_second = _recent["texts"] / _recent["seconds"]
    return max(0, min(limit, int(TOP_UP_SECONDS * per_second)))


@celeryd_after_setup.connect
def _note_queues(sender: object = None, instance: Any = None, **_: object) -> None:
    """Remember, in the parent, that this process is a worker and whether it serves the
    embeddings queue."""
    global _in_worker, _consumes_embeddings
    _in_worker = True
    queues = getattr(getattr(instance, "app", None), "amqp", None)
    names = set(queues.queues.consume_from) if queues is not None else set()
    _consumes_embeddings = EMBEDDINGS_QUEUE in names


def consumes_embeddings() -> bool:
    """Whether this worker serves the embeddings queue (known once the worker is set up)."""
    return _consumes_embeddings


def _preload() -> None:
    try:
        get_encoder()
    except Exception:  # a broken model is reported again by the first task that needs it
        logger.exception("loading the encoder in the background failed")


@worker_process_init.connect
def _start_preload(**_: object) -> None:
    """Load the model in a pool process of an embeddings worker without delaying its start."""
    if _consumes_embeddings:
        threading.Thread(target=_preload, name="encoder-preload", daemon=True).start()
