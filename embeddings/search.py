"""Search by example: resolve the examples to vectors, combine them, find the nearest items.

Free-text examples are encoded by an embedding worker through a Celery call with a
short timeout, so the web tier never loads torch; the vectors are cached in Redis by
model and text, so repeating a search (paging, a changed filter) needs no worker.

Everything is compared in the space of the served model (`active_model.served_model`):
item examples use their stored vectors, and free text is encoded with that model even
while workers compute another one's vectors for a bulk run. A search that raced the
run's swap is answered again in the new space.
"""

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from celery.exceptions import TaskRevokedError
from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings
from django.core.cache import cache
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from analytics.celery import app
from analytics.db.replicas import read_connection
from analytics.queries.item_trends import ItemTrends, item_trends
from analytics.refusals import Refusal, not_found
from embeddings.active_model import Served, model_name, served_model
from embeddings.queries import Neighbours, combine_examples, example_vectors, nearest_items
from embeddings.validation import AttributeFilter, Example, SearchRequest, TrendRequest

logger = logging.getLogger(__name__)

QUERY_VECTOR_TTL_S = 24 * 3600
# Below this norm the combined query points nowhere (like and unlike cancel out).
MIN_QUERY_NORM = 1e-6


# Not embedded yet, or no worker: both pass by themselves, so say when to retry.
RETRY_AFTER = {"Retry-After": "5"}


@dataclass(frozen=True)
class SearchOutcome:
    neighbours: Neighbours
    trends: ItemTrends | None
    model: str  # the served model whose vectors answered


def _cache_key(model: str, text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return f"query-vector:{model}:{digest}"


def _encode_task(texts: list[str], model: Served) -> tuple[str, list[Any]]:
    """Return the task and arguments that encode `texts` with `model`.

    The workers' own model answers through `embeddings.encode_query`; another one (the
    served model while a model change is re-embedded) through `embeddings.encode_query_as`,
    which loads it beside theirs.
    """
    if model.name == model_name():
        return "embeddings.encode_query", [texts]
    return "embeddings.encode_query_as", [texts, model.name, model.model_dir]


def text_vectors(texts: Sequence[str], *, model: Served) -> list[np.ndarray]:
    """Return the embeddings of `texts` by `model`: from the cache, else from one worker call.

    Raises Refusal(503) when no worker answers within EMBEDDINGS_QUERY_TIMEOUT.
    """
    keys = [_cache_key(model.name, text) for text in texts]
    try:
        cached: dict[str, Any] = cache.get_many(keys) if keys else {}
    except RedisError:
        logger.warning("query vector cache unavailable", exc_info=True)
        cached = {}
    missing = [text for text, key in zip(texts, keys, strict=True) if key not in cached]
    if missing:
        timeout = settings.EMBEDDINGS_QUERY_TIMEOUT
        try:
            # `expires`: a worker that picks the message up after we gave up drops it.
            task, args = _encode_task(missing, model)
            pending = app.send_task(task, args=args, expires=timeout)
            vectors = pending.get(timeout=timeout)
        # A worker that took the message after it expired revokes it: that is a timeout too.
        except (CeleryTimeoutError, TaskRevokedError, BrokerError, RedisError) as exc:
            logger.warning("free-text query not encoded: %s", exc.__class__.__name__)
            raise Refusal(
                503,
                f"no embedding worker answered within {timeout} s; free-text examples need "
                "a worker consuming the 'embeddings' queue (item examples work without one)",
                headers=RETRY_AFTER,
            ) from exc
        except Exception as exc:  # the worker's own error, re-raised here by Celery
            logger.exception("the embedding worker failed to encode a query")
            raise Refusal(
                503,
                f"the embedding worker failed to encode the text ({exc.__class__.__name__})",
                headers=RETRY_AFTER,
            ) from exc
        fresh = {
            _cache_key(model.name, text): vector
            for text, vector in zip(missing, vectors, strict=True)
        }
        try:
            cache.set_many(fresh, timeout=QUERY_VECTOR_TTL_S)
        except RedisError:
            logger.warning("query vectors not cached", exc_info=True)
        cached.update(fresh)
    return [np.asarray(cached[key], dtype=np.float32) for key in keys]


def _item_examples(
    *, project_id: int, examples: Sequence[Example], model: str
) -> dict[str, np.ndarray]:
    """Return the vectors of item examples; refuse unknown (422) or unembedded (409) ones."""
    wanted = [e for e in examples if e.external_id is not None]
    found = example_vectors(
        project_id=project_id, external_ids=[e.external_id or "" for e in wanted], model=model
    )
    unknown = [e for e in wanted if e.external_id not in found]
    if unknown:
        raise Refusal(
            422,
            f"{unknown[0].field}: no item {unknown[0].external_id!r} in this project",
            [{"field": e.field, "error": f"no item {e.external_id!r}"} for e in unknown],
        )
    waiting = [e for e in wanted if found[e.external_id or ""].vector is None]
    if waiting:
        first = waiting[0]
        raise _not_embedded_yet(
            f"{first.field}: item {first.external_id!r}",
            [(e.field, e.external_id or "") for e in waiting],
        )
    return {
        external_id: example.vector
        for external_id, example in found.items()
        if example.vector is not None
    }


def _not_embedded_yet(what: str, examples: Sequence[tuple[str, str]]) -> Refusal:
    return Refusal(
        409,
        f"{what} is not embedded yet; retry shortly",
        [
            {"field": field, "error": f"item {external_id!r} not embedded yet"}
            for field, external_id in examples
        ],
        headers=RETRY_AFTER,
    )


def _trends(
    *, project_id: int, trend: TrendRequest | None, neighbours: Neighbours
) -> ItemTrends | None:
    if trend is None:
        return None
    end = datetime.now(UTC)
    return item_trends(
        project_id=project_id,
        metric=trend.metric,
        items=[n.external_id for n in neighbours.results],
        agg=trend.agg,
        start=end - trend.range,
        end=end,
    )


def _in_served_space(answer: Callable[[Served], SearchOutcome]) -> SearchOutcome:
    """Return `answer(served model)`, once more if a bulk run swapped models meanwhile.

    The swap is one transaction, so each query sees one space whole; only the model read
    first (to encode the examples) can be out of date, and then its vectors are gone but
    for a few: an example "not embedded yet" or fewer than k results. Only then is the
    served model read again, so an ordinary search pays one query for it.
    """
    database = read_connection()
    served = served_model(database)
    try:
        outcome = answer(served)
    except Refusal as exc:
        if exc.status != 409 or (now := served_model(database)) == served:
            raise
        return answer(now)
    if outcome.neighbours.matched is None or (now := served_model(database)) == served:
        return outcome
    return answer(now)


def similar_items(
    *,
    project_id: int,
    external_id: str,
    k: int,
    where: Sequence[AttributeFilter],
    trend: TrendRequest | None,
) -> SearchOutcome:
    """Return the items most similar to one item of the project (itself excluded).

    The item is the resource of the request: unknown is a 404, not yet embedded a 409.
    """

    def answer(model: Served) -> SearchOutcome:
        example = example_vectors(
            project_id=project_id, external_ids=[external_id], model=model.name
        ).get(external_id)
        if example is None:
            raise not_found(f"no item {external_id[:64]!r} in this project")
        if example.vector is None:
            raise _not_embedded_yet(f"item {external_id!r}", [("external_id", external_id)])
        neighbours = nearest_items(
            project_id=project_id,
            vector=example.vector,
            k=k,
            model=model.name,
            where=where,
            exclude=[external_id],
        )
        trends = _trends(project_id=project_id, trend=trend, neighbours=neighbours)
        return SearchOutcome(neighbours, trends, model.name)

    return _in_served_space(answer)


def search_by_examples(*, project_id: int, request: SearchRequest) -> SearchOutcome:
    """Answer POST /api/v1/search: positive and negative examples, items or free text."""
    examples = [*request.like, *request.unlike]
    texts = list(dict.fromkeys(e.text for e in examples if e.text is not None))

    def answer(model: Served) -> SearchOutcome:
        by_item = _item_examples(project_id=project_id, examples=examples, model=model.name)
        by_text = dict(zip(texts, text_vectors(texts, model=model), strict=True)) if texts else {}

        def vector(example: Example) -> np.ndarray:
            if example.text is not None:
                return by_text[example.text]
            return by_item[example.external_id or ""]

        query = combine_examples(
            [vector(e) for e in request.like], [vector(e) for e in request.unlike]
        )
        if float(np.linalg.norm(query)) < MIN_QUERY_NORM:
            raise Refusal(
                422,
                "like and unlike cancel out: the combined query vector is zero",
                [{"field": "unlike", "error": "cancels the positive examples"}],
            )
        neighbours = nearest_items(
            project_id=project_id,
            vector=query,
            k=request.k,
            model=model.name,
            where=request.where,
            exclude=[e.external_id for e in examples if e.external_id is not None],
        )
        trends = _trends(project_id=project_id, trend=request.trend, neighbours=neighbours)
        return SearchOutcome(neighbours, trends, model.name)

    return _in_served_space(answer)
