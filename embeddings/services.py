"""Writes of items and their embeddings: upsert, delete, embed, sweep and re-embed.

An item needs an embedding while its stored one is not current (`embeddings.currency`
owns that rule). Whoever changes that (an upsert, a re-embed)
asks for embeddings after the transaction commits; `embed_items` claims rows with
`FOR UPDATE SKIP LOCKED`, so two workers never compute the same item at once, and a
killed worker's claims vanish with its connection. The sweep re-asks for items whose
request is long past, so a lost message delays an embedding but never loses it.
"""

import logging
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial, update_wrapper
from typing import Any

import numpy as np
import orjson
import psycopg
from django.conf import settings
from django.db import connection, transaction
from pgvector.psycopg.vector import VectorBinaryDumper
from psycopg import sql

from analytics.celery import app
from analytics.platform_metrics import (
    EMBEDDING_BACKLOG,
    EMBEDDINGS_COMPUTED,
    record_platform_metric,
)
from embeddings.currency import needs_embedding_sql
from embeddings.validation import ItemInput, embedding_input

logger = logging.getLogger(__name__)

# Redis priorities: 0 is served first. Free-text queries (sent with the default 0) pass
# a backlog of embedding batches, which go at this lower priority.
EMBED_PRIORITY = 6
SWEEP_LIMIT = 20_000

Encode = Callable[[list[str]], np.ndarray]

_NEEDS_EMBEDDING = needs_embedding_sql()


@dataclass(frozen=True)
class UpsertResult:
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    queued: list[int]  # item ids whose embedding was asked for


@dataclass
class EmbedResult:
    embedded: int = 0
    skipped: int = 0  # done already, or being embedded by another worker right now
    topped_up: int = 0  # embedded beyond the task's own ids
    seconds: float = 0.0
    item_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SweepResult:
    requested: list[int]  # ids whose embedding was asked for again
    backlog: dict[int, int]  # project id -> items waiting for an embedding


def _chunks(values: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def send_embedding_requests(item_ids: Sequence[int]) -> list[str]:
    """Queue embedding tasks for `item_ids`; return their task ids.

    Called after commit only: a worker must find the committed rows. Nobody waits
    for these results (progress is read from the rows), and asking for them would make
    the sender subscribe to the result backend first, which retries for about 20 s
    when Redis is down, holding a web request that long instead of failing at once.
    """
    # EMBEDDINGS_IDS_PER_TASK: big enough to amortise a task, small enough that a worker
    # killed mid-task loses little and free-text queries never wait long behind it. Each
    # commit sends its own ids at once: a trickle's few items never wait for more to come.
    return [
        app.send_task(
            "embeddings.embed_items", args=[chunk], priority=EMBED_PRIORITY, ignore_result=True
        ).id
        for chunk in _chunks(sorted(item_ids), max(1, settings.EMBEDDINGS_IDS_PER_TASK))
    ]


def request_embeddings_on_commit(item_ids: Sequence[int]) -> None:
    """Ask for embeddings once the current transaction commits (never if it rolls back).

    `robust`: a broker outage at that moment is logged, not raised, because the items
    are already committed; the sweep asks again later.
    """
    if item_ids:
        _on_commit_robust(send_embedding_requests, list(item_ids))


def _on_commit_robust(func: Callable[..., object], *args: Any) -> None:
    """Run `func(*args)` after commit; an exception is logged, never raised.

    Django logs a failed robust callback by its `__qualname__`, which a bare
    functools.partial lacks: the AttributeError would escape instead (a 500 from
    POST /api/v1/items while the broker is down), so the partial carries `func`'s names.
    """
    transaction.on_commit(update_wrapper(partial(func, *args), func), robust=True)


_UPSERT = f"""
INSERT INTO embeddings_item AS i (project_id, external_id, title, text, attributes, content_hash,
    embedded_hash, embedding_model, embedding_requested_at, created_at, updated_at)
SELECT %(project)s, u.external_id, u.title, u.text, u.attributes::jsonb, u.content_hash,
       '', '', now(), now(), now()
FROM unnest(%(ids)s::text[], %(titles)s::text[], %(texts)s::text[], %(attributes)s::text[],
            %(hashes)s::text[]) AS u(external_id, title, text, attributes, content_hash)
ON CONFLICT (project_id, external_id) DO UPDATE SET
    title = excluded.title,
    text = excluded.text,
    attributes = excluded.attributes,
    content_hash = excluded.content_hash,
    updated_at = now(),
    embedding_requested_at = CASE
        WHEN {needs_embedding_sql(alias="i", content_hash="excluded.content_hash")} THEN now()
        ELSE i.embedding_requested_at END
WHERE (i.title, i.text, i.attributes) IS DISTINCT FROM
      (excluded.title, excluded.text, excluded.attributes)
RETURNING i.id, i.external_id, i.xmax = 0, {needs_embedding_sql(alias="i")}"""


def upsert_items(*, project_id: int, items: Sequence[ItemInput], model: str) -> UpsertResult:
    """Create or replace items by external id, in one statement; ask for their embeddings.

    Omitted fields were already filled with their defaults: an upsert replaces the whole
    item. Rows whose title, text and attributes are unchanged are not written at all.
    """
    # One order for every writer, so two overlapping batches cannot deadlock.
    ordered = sorted(items, key=lambda item: item.external_id)
    params: dict[str, Any] = {
        "project": project_id,
        "model": model,
        "ids": [item.external_id for item in ordered],
        "titles": [item.title for item in ordered],
        "texts": [item.text for item in ordered],
        "attributes": [orjson.dumps(item.attributes).decode() for item in ordered],
        "hashes": [item.content_hash for item in ordered],
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_UPSERT, params)
        rows = cursor.fetchall()
        queued = [item_id for item_id, _, _, needs in rows if needs]
        request_embeddings_on_commit(queued)
    written = {external_id for _, external_id, _, _ in rows}
    return UpsertResult(
        created=sorted(external_id for _, external_id, inserted, _ in rows if inserted),
        updated=sorted(external_id for _, external_id, inserted, _ in rows if not inserted),
        unchanged=[item.external_id for item in ordered if item.external_id not in written],
        queued=queued,
    )


def delete_item(*, project_id: int, external_id: str) -> bool:
    """Delete one item of the project; return whether it existed."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM embeddings_item WHERE project_id = %s AND external_id = %s",
            [project_id, external_id],
        )
        return bool(cursor.rowcount)


_CLAIM = f"""
SELECT id, project_id, title, text, content_hash FROM embeddings_item
WHERE id = ANY(%(ids)s) AND {_NEEDS_EMBEDDING}
ORDER BY id
FOR UPDATE SKIP LOCKED"""

# Pending items beyond a task's own ids, oldest first, that no other worker holds. The
# candidates are read from the partial index `item_embedding_outdated` (the subquery's
# condition is its predicate, so the planner can use it) and capped, so a
# task never scans a table-wide backlog that is not its to take (a bulk run's items are
# outdated too, but the bulk run embeds them: the needs-embedding rule leaves them out).
_TOP_UP = f"""
SELECT id, project_id, title, text, content_hash FROM embeddings_item
WHERE id IN (
        SELECT id FROM embeddings_item WHERE embedded_hash <> content_hash
        ORDER BY id LIMIT %(scan)s)
  AND {_NEEDS_EMBEDDING} AND id <> ALL(%(own)s)
ORDER BY id
LIMIT %(extra)s
FOR UPDATE SKIP LOCKED"""
TOP_UP_SCAN = 1024

# Vectors go in by binary COPY into a staging table, then one UPDATE joins it: no text
# formatting of 384 floats per row in Python, no parsing in PostgreSQL (README, "Pipeline
# throughput"). `vector` without a width: the UPDATE checks it against the column's.
_STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS embedding_staging (
    id bigint NOT NULL, content_hash text NOT NULL, embedding vector NOT NULL
) ON COMMIT DELETE ROWS"""
_COPY_STAGING = "COPY embedding_staging (id, content_hash, embedding) FROM STDIN (FORMAT BINARY)"
# The write takes the staged rows out as it reads them: a caller's outer transaction may
# stage and write again before the commit empties the table.
_WRITE = """
WITH s AS (DELETE FROM embedding_staging RETURNING id, content_hash, embedding)
UPDATE embeddings_item AS i
SET embedding = s.embedding, embedded_hash = s.content_hash,
    embedding_model = %(model)s, embedded_at = now()
FROM s
WHERE i.id = s.id AND i.content_hash = s.content_hash"""

# The oid of pgvector's `vector` type, per connection (an extension's type has a different
# oid in every database).
_vector_oids: "weakref.WeakKeyDictionary[psycopg.Connection[Any], int]" = (
    weakref.WeakKeyDictionary()
)


def _vector_dumper(raw: psycopg.Connection[Any]) -> type[VectorBinaryDumper]:
    """Return a binary dumper of numpy vectors to `vector` for `raw`'s database."""
    oid = _vector_oids.get(raw)
    if oid is None:
        row = raw.execute("SELECT 'vector'::regtype::oid").fetchone()
        assert row is not None
        oid = _vector_oids[raw] = int(row[0])
    # pgvector's own dumper, given the oid that COPY's set_types looks dumpers up by.
    return type("VectorOidDumper", (VectorBinaryDumper,), {"oid": oid})


def write_vectors(
    cursor: psycopg.Cursor[Any],
    *,
    model: str,
    ids: Sequence[int],
    hashes: Sequence[str],
    vectors: np.ndarray,
) -> int:
    """Store `vectors` as the embeddings of `ids` where the content is still `hashes`.

    Run inside the transaction that claimed the rows. Return how many rows were written.
    """
    dumper = _vector_dumper(cursor.connection)
    # Registered on this cursor alone: the connection's other readers keep text vectors.
    cursor.adapters.register_dumper(np.ndarray, dumper)
    cursor.execute(_STAGING_DDL)
    with cursor.copy(_COPY_STAGING) as copy:
        copy.set_types(["int8", "text", dumper.oid])
        for row in zip(ids, hashes, vectors.astype(np.float32, copy=False), strict=True):
            copy.write_row(row)
    cursor.execute(_WRITE, {"model": model})
    return cursor.rowcount


def embed_items(
    *, item_ids: Sequence[int], encode: Encode, model: str, batch_size: int, top_up: int = 0
) -> EmbedResult:
    """Embed those of `item_ids` that need it, `batch_size` at a time; idempotent.

    Each batch is claimed, encoded and written in one transaction: the row locks keep
    other workers off these items until the vectors are committed, and vanish with
    the connection if this process dies, so the sweep can hand them to another.

    A batch that the task's own ids leave short is topped up with other pending items,
    oldest first, at most `top_up` of them. Under a steady trickle each commit sends a
    task of a few ids; when the workers fall behind, the tasks they pick up find the
    backlog's items in their claims and encode them in batches big enough to amortise a
    transaction and sort by length, and the tasks that sent those items find them done.
    The workers catch up instead of falling further behind at the cost per item of the
    smallest batches.
    """
    started = time.perf_counter()
    result = EmbedResult()
    unique = sorted(set(item_ids))
    phases: dict[str, float] = {"claim": 0.0, "encode": 0.0, "write": 0.0}
    size = max(1, batch_size)
    for chunk in _chunks(unique, size):
        with transaction.atomic():
            connection.ensure_connection()
            raw: psycopg.Connection[Any] = connection.connection
            with raw.cursor() as cursor:
                began = time.perf_counter()
                own = _claim(cursor, _CLAIM, {"ids": chunk, "model": model})
                result.skipped += len(chunk) - len(own)
                room = min(size - len(own), max(0, top_up))
                others = {"own": chunk, "model": model, "scan": TOP_UP_SCAN, "extra": room}
                extra = _claim(cursor, _TOP_UP, others) if room else []
                if not own and not extra:
                    continue
                claimed = time.perf_counter()
                rows, vectors = _encode_claimed(encode, own=own, extra=extra)
                encoded = time.perf_counter()
                result.embedded += write_vectors(
                    cursor,
                    model=model,
                    ids=[row[0] for row in rows],
                    hashes=[row[4] for row in rows],
                    vectors=vectors,
                )
            result.item_ids.extend(row[0] for row in rows)
            result.topped_up += len(rows) - len(own)
            per_project = Counter(row[1] for row in rows)
            _on_commit_robust(_record_computed, per_project)
        phases["claim"] += claimed - began
        phases["encode"] += encoded - claimed
        phases["write"] += time.perf_counter() - encoded  # the commit included
    result.seconds = time.perf_counter() - started
    logger.info(
        "embedded %d items (%d beyond the task's own, %d skipped) in %.2f s with %s"
        " (claim %.2f s, encode %.2f s, write %.2f s)",
        result.embedded,
        result.topped_up,
        result.skipped,
        result.seconds,
        model,
        phases["claim"],
        phases["encode"],
        phases["write"],
    )
    return result


_Claimed = list[tuple[Any, ...]]  # (id, project_id, title, text, content_hash)


def _claim(cursor: psycopg.Cursor[Any], query: str, params: dict[str, Any]) -> _Claimed:
    cursor.execute(query, params)
    return cursor.fetchall()


def _encode_claimed(
    encode: Encode, *, own: _Claimed, extra: _Claimed
) -> tuple[_Claimed, np.ndarray]:
    """Return the rows to write and their vectors: all claimed rows, or the own ones alone.

    An item the encoder fails on must not stop every task that tops up with it: the
    task then encodes its own items only, and the failing item fails its own task,
    which is retried and reported like before.
    """
    rows = own + extra
    try:
        return rows, encode(_encoder_inputs(rows))
    except Exception:
        if not extra:
            raise
        logger.exception(
            "encoding %d claimed items failed; encoding the task's own %d alone",
            len(rows),
            len(own),
        )
    return own, encode(_encoder_inputs(own))


def _encoder_inputs(rows: _Claimed) -> list[str]:
    return [embedding_input(title, text) for _, _, title, text, _ in rows]


def _record_computed(per_project: Counter[int]) -> None:
    for project_id, count in per_project.items():
        record_platform_metric(project_id=project_id, metric=EMBEDDINGS_COMPUTED, value=count)


_SWEEP = f"""
UPDATE embeddings_item SET embedding_requested_at = now()
WHERE id IN (
    SELECT id FROM embeddings_item
    WHERE {_NEEDS_EMBEDDING}
      AND (embedding_requested_at IS NULL OR embedding_requested_at < now() - %(after)s)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING id"""

_BACKLOG = f"""
SELECT project_id, count(*) FILTER (WHERE {_NEEDS_EMBEDDING})
FROM embeddings_item GROUP BY project_id"""


def sweep_embeddings(
    *, model: str, requeue_after: timedelta, limit: int = SWEEP_LIMIT
) -> SweepResult:
    """Ask again for embeddings that were asked for before `requeue_after` and are missing.

    Items being embedded right now are locked and skipped. Each project's backlog is
    recorded as the `platform.embedding_backlog` gauge.
    """
    params: dict[str, Any] = {"model": model, "after": requeue_after, "limit": limit}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_SWEEP, params)
        ids = [row[0] for row in cursor.fetchall()]
        request_embeddings_on_commit(ids)
        cursor.execute(_BACKLOG, params)
        backlog = dict(cursor.fetchall())
    for project_id, waiting in backlog.items():
        record_platform_metric(project_id=project_id, metric=EMBEDDING_BACKLOG, value=waiting)
    if ids:
        logger.info("sweep asked again for %d embeddings", len(ids))
    return SweepResult(requested=ids, backlog=backlog)


def mark_for_reembedding(
    *, model: str, project_id: int | None = None, force: bool = False
) -> list[int]:
    """Return the ids of items to embed with `model` (all of them with `force`).

    `force` forgets the content hash of current embeddings, so even items already
    embedded with this model are computed again; their old vectors stay searchable
    until replaced.
    """
    query = sql.SQL(
        "UPDATE embeddings_item SET embedding_requested_at = now(){reset} WHERE {condition}{scope} RETURNING id"
    ).format(
        reset=sql.SQL(", embedded_hash = ''" if force else ""),
        condition=sql.SQL("TRUE" if force else _NEEDS_EMBEDDING),
        scope=sql.SQL(" AND project_id = %(project)s" if project_id is not None else ""),
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(query, {"model": model, "project": project_id})
        return sorted(row[0] for row in cursor.fetchall())


def pending_embeddings(*, model: str, item_ids: Sequence[int]) -> int:
    """Return how many of `item_ids` still wait for an embedding with `model`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM embeddings_item WHERE id = ANY(%(ids)s) AND {_NEEDS_EMBEDDING}",
            {"ids": list(item_ids), "model": model},
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0
