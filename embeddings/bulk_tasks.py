"""Celery tasks of the bulk path (queue `embeddings`): fill a run's next vectors, encode queries of the served model.

Thin wrappers over `embeddings.bulk`, registered by the Celery app's autodiscovery
(`analytics/celery.py`). A fill task does one claim and queues its successor, so a
free-text query (sent at a higher priority) never waits behind more than one batch.
"""

import logging
import threading
from typing import TYPE_CHECKING, Any

from celery import Task, shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.db import connection

from analytics.celery import app
from embeddings import bulk
from embeddings.active_model import served_model
from embeddings.constants import EMBEDDING_DIMENSIONS
from embeddings.services import EMBED_PRIORITY
from embeddings.tasks import QUERY_ENCODER, VECTOR_WRITER
from embeddings.worker import consumes_embeddings, encode_texts, get_encoder, model_name

if TYPE_CHECKING:
    from embeddings.encoder import SentenceEncoder

logger = logging.getLogger(__name__)

_lock = threading.Lock()
# The served model's encoder while a model change is re-embedded: one at a time.
_other: "tuple[tuple[str, str], SentenceEncoder] | None" = None


def send_fill(run_id: int, batch_size: int = bulk.FILL_BATCH) -> str:
    """Queue one fill task of the run; return its id (nobody waits for its result)."""
    return str(
        app.send_task(
            "embeddings.fill_next_vectors",
            args=[run_id, batch_size],
            priority=EMBED_PRIORITY,
            ignore_result=True,
        ).id
    )


@shared_task(name="embeddings.fill_next_vectors", **VECTOR_WRITER)
def fill_next_vectors_task(
    self: "Task[Any, Any]", run_id: int, batch_size: int = bulk.FILL_BATCH
) -> dict[str, Any]:
    """Fill one batch of the run's planned next vectors; queue the next batch if one was done."""
    result = bulk.fill_next_vectors(
        run_id=run_id, encode=encode_texts, model=model_name(), batch_size=batch_size
    )
    # A lane ends when it finds nothing to claim; `reembed` starts new lanes when the
    # fill stalls (a lost message, a killed worker).
    if result.filled:
        send_fill(run_id, batch_size)
    return {"filled": result.filled, "seconds": round(result.seconds, 3)}


def _encoder_for(name: str, model_dir: str) -> "SentenceEncoder":
    """Return an encoder of model `name` from `model_dir`: this worker's own, or one loaded beside it."""
    global _other
    if name == model_name():
        return get_encoder()
    with _lock:
        if _other is None or _other[0] != (name, model_dir):
            # Imported here: torch must never load in the web tier or a worker's parent.
            from embeddings.encoder import load_encoder

            encoder = load_encoder(
                model_dir or None,
                name=name,
                device=settings.EMBEDDINGS_DEVICE,
                dimensions=EMBEDDING_DIMENSIONS,
            )
            logger.info("served model %s loaded beside %s for queries", name, model_name())
            _other = ((name, model_dir), encoder)
        return _other[1]


@shared_task(name="embeddings.encode_query_as", **QUERY_ENCODER)
def encode_query_as_task(texts: list[str], model: str, model_dir: str) -> list[list[float]]:
    """Return the embeddings of free-text examples by `model` (the served one, during a model change)."""
    return [vector.tolist() for vector in _encoder_for(model, model_dir).encode(texts)]


def _preload_served() -> None:
    try:
        served = served_model(connection)
        if served.name != model_name():
            _encoder_for(served.name, served.model_dir)
    except Exception:  # the first query that needs it reports it again
        logger.exception("loading the served model in the background failed")
    finally:
        connection.close()


@worker_process_init.connect
def _start_preload(**_: object) -> None:
    """While a model change waits for its swap, load the served model for free-text queries too."""
    if consumes_embeddings():
        threading.Thread(target=_preload_served, name="served-preload", daemon=True).start()
