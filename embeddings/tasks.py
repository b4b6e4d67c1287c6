"""Celery tasks of embeddings: thin wrappers that call a service (queue: `embeddings`)."""

import os
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from embeddings import services
from embeddings.worker import encode_texts, model_name, top_up_size

# Hard limits leave the soft one time to roll the transaction back cleanly.
EMBED_SOFT_LIMIT_S = 240
EMBED_HARD_LIMIT_S = 300
QUERY_SOFT_LIMIT_S = 20
QUERY_HARD_LIMIT_S = 30

# Options of every task that computes and writes vectors (here and in bulk_tasks): acked
# after the work, so a killed worker's message is redelivered; a database that drops out
# is worth three more tries, anything else is a bug (and the sweep, or the bulk run's
# stall check, brings the items back once it is fixed).
VECTOR_WRITER: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "max_retries": 3,
    "retry_backoff": 5,
    "retry_jitter": True,
    "soft_time_limit": EMBED_SOFT_LIMIT_S,
    "time_limit": EMBED_HARD_LIMIT_S,
}
# Free-text queries: a query nobody waits for any more is not worth redelivering.
QUERY_ENCODER: dict[str, Any] = {
    "acks_late": False,
    "soft_time_limit": QUERY_SOFT_LIMIT_S,
    "time_limit": QUERY_HARD_LIMIT_S,
}


@shared_task(name="embeddings.embed_items", **VECTOR_WRITER)
def embed_items_task(self: "Task[Any, Any]", item_ids: list[int]) -> dict[str, Any]:
    """Embed the items among `item_ids` that need it (idempotent)."""
    result = services.embed_items(
        item_ids=item_ids,
        encode=encode_texts,
        model=model_name(),
        batch_size=settings.EMBEDDINGS_BATCH_SIZE,
        top_up=top_up_size(limit=settings.EMBEDDINGS_TOP_UP),
    )
    return {
        "embedded": result.embedded,
        "skipped": result.skipped,
        "topped_up": result.topped_up,
        "item_ids": result.item_ids,
        "seconds": round(result.seconds, 3),
        "worker": f"{self.request.hostname}:{os.getpid()}",
    }


@shared_task(name="embeddings.encode_query", **QUERY_ENCODER)
def encode_query_task(texts: list[str]) -> list[list[float]]:
    """Return the embeddings of free-text search examples, for the web tier."""
    return [vector.tolist() for vector in encode_texts(texts)]


@shared_task(name="embeddings.sweep", time_limit=120, soft_time_limit=100)
def sweep_task() -> dict[str, Any]:
    """Ask again for embeddings whose message was lost; record each project's backlog."""
    result = services.sweep_embeddings(
        model=model_name(),
        requeue_after=timedelta(seconds=settings.EMBEDDINGS_REQUEUE_AFTER_SECONDS),
    )
    return {"requested": len(result.requested), "backlog": sum(result.backlog.values())}
