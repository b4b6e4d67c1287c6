"""Celery tasks of the bulk path (queue `embeddings`): fill a run's next vectors, encode queries of the served model.

Thin wrappers over `embeddings.bulk`, registered by the Celery app's autodiscovery
(`analytics/celery.py`). A fill task does one claim and queues its successor, so a
free-text query (sent at a higher priority) never waits behind more than one batch.
"""

import logging
import threading
from typing import TYPE_CHECKING, Any

from celery import Task, shared_task
from celery.signals import celeryd_after_setup, worker_process_init
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from analytics.celery import app
from embeddings import bulk
from embeddings.active_model import served_model
from embeddings.constants import EMBEDDING_DIMENSIONS
from embeddings.services import EMBED_PRIORITY
from embeddings.worker import EMBEDDINGS_QUEUE, encode_texts, get_encoder, model_name

if TYPE_CHECKING:
    from embeddings.encoder import SentenceEncoder

logger = logging.getLogger(__name__)

FILL_SOFT_LIMIT_S = 240
FILL_HARD_LIMIT_S = 300
QUERY_SOFT_LIMIT_S = 20
QUERY_HARD_LIMIT_S = 30

_lock = threading.Lock()
# The served model's encoder while a model change is re-embedded: one at a time.
_other: "tuple[tuple[str, str], SentenceEncoder] | None" = None
# Set in the worker's parent before the pool forks; the children inherit it.
_consumes_embeddings = False


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


@shared_task(
    bind=True,
    name="embeddings.fill_next_vectors",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    max_retries=3,
    retry_backoff=5,
    retry_jitter=True,
    soft_time_limit=FILL_SOFT_LIMIT_S,
    time_limit=FILL_HARD_LIMIT_S,
)
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


@shared_task(
    name="embeddings.encode_query_as",
    # A query nobody waits for any more is not worth redelivering.
    acks_late=False,
    soft_time_limit=QUERY_SOFT_LIMIT_S,
    time_limit=QUERY_HARD_LIMIT_S,
)
def encode_query_as_task(texts: list[str], model: str, model_dir: str) -> list[list[float]]:
    """Return the embeddings of free-text examples by `model` (the served one, during a model change)."""
    return [vector.tolist() for vector in _encoder_for(model, model_dir).encode(texts)]


@celeryd_after_setup.connect
def _note_queues(sender: object = None, instance: Any = None, **_: object) -> None:
    """Remember, in the parent, whether this worker serves the embeddings queue."""
    global _consumes_embeddings
    queues = getattr(getattr(instance, "app", None), "amqp", None)
    names = set(queues.queues.consume_from) if queues is not None else set()
    _consumes_embeddings = EMBEDDINGS_QUEUE in names


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
    if _consumes_embeddings:
        threading.Thread(target=_preload_served, name="served-preload", daemon=True).start()
