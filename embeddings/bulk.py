"""The bulk path of re-embedding: fill vectors beside the served ones, then swap them in with one index build.

pgvector builds an HNSW index from loaded rows far faster than it inserts rows one by
one, and builds it in parallel. Every update of an item row inserts its new version
into the HNSW index (the rows are too wide for a HOT update), so the next vectors are
written to their own unindexed table, `embeddings_nextvector`, one row per planned item:

1. **plan** (one transaction): a run row, and a next-vector row without a vector for
   each item to compute. From then on the incremental path leaves those items to the run
   (`embeddings.currency`).
2. **fill** (workers, or the command with `--inline`): claim planned rows with `FOR
   UPDATE SKIP LOCKED`, encode, write vector and content hash. A killed filler's claim
   vanishes with its connection; a resumed run fills only what is left.
3. **apply**: drop the served HNSW index (`CONCURRENTLY`), then in one transaction move
   every next vector whose content is still the item's into `embeddings_item`, name
   the run's model as the served one, and forget the next vectors. Search flips from
   the old vectors to the new ones at that commit, never seeing a mix.
4. **index**: build the HNSW index again, `CONCURRENTLY` and in parallel, then ask
   the incremental path for whatever is still not current (items changed meanwhile).

Search keeps answering throughout: from the served vectors and their index while the
run fills, by exact scans between the drop and the end of the build.
"""

import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from pgvector.psycopg.vector import VectorBinaryDumper
from psycopg import sql
from psycopg.types import TypeInfo

from analytics.refusals import Refusal
from embeddings.active_model import Served, served_model
from embeddings.currency import needs_embedding_sql
from embeddings.models import HNSW_EF_CONSTRUCTION, HNSW_M, EmbeddingRun
from embeddings.services import mark_for_reembedding, send_embedding_requests
from embeddings.validation import embedding_input

logger = logging.getLogger(__name__)

# The bulk path pays one index build over the whole table (about 1,200 vectors/s on 2
# cores) instead of one HNSW insertion per re-embedded item (about 100/s), plus a few
# minutes of exact-scan search: worth it once a quarter of the table changes, and not
# below a couple of thousand items, where either path takes seconds (bench/reembed.py).
BULK_MIN_SHARE = 0.25
BULK_MIN_ITEMS = 2_000
# Texts per fill claim: enough for the encoder's length sorting to pay, few enough that
# a free-text query never waits long behind one on a CPU worker.
FILL_BATCH = 512
INDEX_NAME = "item_embedding_hnsw"
ACTIVE = (EmbeddingRun.State.FILLING, EmbeddingRun.State.APPLYING, EmbeddingRun.State.INDEXING)

Encode = Callable[[list[str]], np.ndarray]

# pgvector's `vector` type per connection (an extension's type has its own oid in every
# database).
_vector_types: "weakref.WeakKeyDictionary[psycopg.Connection[Any], TypeInfo]" = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class Candidates:
    count: int  # items the run would compute
    table: int  # items in the whole table (the index is the table's)
    model_change: bool  # the target is not the served model

    @property
    def share(self) -> float:
        return self.count / self.table if self.table else 0.0


@dataclass(frozen=True)
class FillResult:
    filled: int
    seconds: float


@dataclass(frozen=True)
class RunProgress:
    state: str
    planned: int
    left: int  # planned rows without a vector


def _scope(project_id: int | None) -> tuple[str, dict[str, Any]]:
    if project_id is None:
        return "TRUE", {}
    return "project_id = %(project)s", {"project": project_id}


def count_candidates(*, target: Served, project_id: int | None, force: bool) -> Candidates:
    """Return how many items a run for `target` would compute, and the table's size."""
    scope, params = _scope(project_id)
    stale = "TRUE" if force else needs_embedding_sql(state_only=True)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FILTER (WHERE {scope} AND {stale}), count(*) FROM embeddings_item",
            {**params, "model": target.name},
        )
        row = cursor.fetchone()
    count, table = (int(row[0]), int(row[1])) if row else (0, 0)
    model_change = served_model(connection).name != target.name
    return Candidates(count=count, table=table, model_change=model_change)


def choose_path(candidates: Candidates) -> EmbeddingRun.Path:
    """Return the path that re-embeds `candidates` faster without breaking search.

    A model change always takes the bulk path: only a swap keeps every search inside
    one model's vectors.
    """
    if candidates.model_change:
        return EmbeddingRun.Path.BULK
    if candidates.count >= BULK_MIN_ITEMS and candidates.share >= BULK_MIN_SHARE:
        return EmbeddingRun.Path.BULK
    return EmbeddingRun.Path.INCREMENTAL


def active_run() -> EmbeddingRun | None:
    """Return the bulk run in progress, if any (at most one exists)."""
    return EmbeddingRun.objects.filter(state__in=ACTIVE).order_by("pk").first()


def start_run(*, target: Served, project_id: int | None, force: bool) -> EmbeddingRun:
    """Plan a bulk run: one next-vector row per item to compute, in one transaction."""
    scope, params = _scope(project_id)
    stale = "TRUE" if force else needs_embedding_sql(state_only=True)
    with transaction.atomic():
        try:
            with transaction.atomic():
                run = EmbeddingRun.objects.create(
                    model=target.name,
                    model_dir=target.model_dir,
                    project_id=project_id,
                    force=force,
                    path=EmbeddingRun.Path.BULK,
                )
        except IntegrityError as exc:  # `embedding_run_one_active`
            raise Refusal(
                409, "another reembed run is in progress: run reembed to resume it"
            ) from exc
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO embeddings_nextvector (item_id, run_id, content_hash)
                    SELECT id, %(run)s, '' FROM embeddings_item WHERE {scope} AND {stale}""",
                {**params, "run": run.pk, "model": target.name},
            )
            run.planned = cursor.rowcount
        run.save(update_fields=["planned", "updated_at"])
    logger.info("bulk run %d planned %d items for %s", run.pk, run.planned, target.name)
    return run


def cancel_run(run: EmbeddingRun) -> None:
    """Give up a run that has not swapped anything in: its next vectors are forgotten."""
    with transaction.atomic():
        EmbeddingRun.objects.filter(pk=run.pk).update(
            state=EmbeddingRun.State.CANCELLED, finished_at=timezone.now()
        )
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM embeddings_nextvector WHERE run_id = %s", [run.pk])


def run_progress(run_id: int) -> RunProgress:
    """Return the phase of the run and how much of its fill is left."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT r.state, r.planned,
                      (SELECT count(*) FROM embeddings_nextvector n
                       WHERE n.run_id = r.id AND n.embedding IS NULL)
               FROM embeddings_embeddingrun r WHERE r.id = %s""",
            [run_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise LookupError(f"no embedding run {run_id}")
    return RunProgress(state=str(row[0]), planned=int(row[1]), left=int(row[2]))


_CLAIM = """
SELECT n.item_id, i.title, i.text, i.content_hash
FROM embeddings_nextvector n JOIN embeddings_item i ON i.id = n.item_id
WHERE n.run_id = %(run)s AND n.embedding IS NULL
ORDER BY n.item_id
LIMIT %(limit)s
FOR UPDATE OF n SKIP LOCKED"""

# Only vectors of the content the item still has: one changed while it was encoded
# stays planned, and the next claim reads its new content. Vectors travel in pgvector's
# binary format: formatting and parsing 384 floats as text cost more than the write.
_WRITE = """
UPDATE embeddings_nextvector AS n
SET embedding = v.embedding, content_hash = v.content_hash
FROM unnest(%(ids)s::bigint[], %(hashes)s::text[], %(vectors)b::vector[])
     AS v(item_id, content_hash, embedding)
JOIN embeddings_item i ON i.id = v.item_id AND i.content_hash = v.content_hash
WHERE n.item_id = v.item_id AND n.run_id = %(run)s"""


def _binary_cursor() -> psycopg.Cursor[Any]:
    """Return a cursor with server-side binding on Django's connection (same transaction).

    Django's own cursors bind on the client, as text; this one sends parameters in
    binary, vectors in pgvector's format. The adapters are registered on this cursor
    alone: the connection's other readers keep reading vectors as before.
    """
    raw = connection.connection
    info = _vector_types.get(raw)
    if info is None:
        info = TypeInfo.fetch(raw, "vector")
        if info is None:
            raise LookupError("the vector type is missing: is pgvector installed?")
        _vector_types[raw] = info
    cursor = psycopg.Cursor(raw)
    info.register(cursor)  # `vector[]` for lists of vectors
    dumper = type("VectorOidDumper", (VectorBinaryDumper,), {"oid": info.oid})
    cursor.adapters.register_dumper(np.ndarray, dumper)
    return cursor


def fill_next_vectors(
    *, run_id: int, encode: Encode, model: str, batch_size: int = FILL_BATCH
) -> FillResult:
    """Claim, encode and write one batch of the run's planned items; idempotent.

    Refuses (409) when `model` is not the run's: a worker with another model must never
    fill it.
    """
    started = time.perf_counter()
    run = EmbeddingRun.objects.filter(pk=run_id).values("model", "state").first()
    if run is None or run["state"] != EmbeddingRun.State.FILLING:
        return FillResult(filled=0, seconds=0.0)
    if run["model"] != model:
        raise Refusal(409, f"run {run_id} embeds with {run['model']}, this process with {model}")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM, {"run": run_id, "limit": batch_size})
        rows = cursor.fetchall()
        if not rows:
            return FillResult(filled=0, seconds=time.perf_counter() - started)
        vectors = encode([embedding_input(title, text) for _, title, text, _ in rows])
        params = {
            "run": run_id,
            "ids": [row[0] for row in rows],
            "hashes": [row[3] for row in rows],
            "vectors": [np.asarray(vector, dtype=np.float32) for vector in vectors],
        }
        with _binary_cursor() as binary:
            binary.execute(_WRITE, params, binary=True)
            filled = binary.rowcount
    seconds = time.perf_counter() - started
    logger.info("bulk run %d: filled %d next vectors in %.2f s", run_id, filled, seconds)
    return FillResult(filled=filled, seconds=seconds)


def maintenance_connection(
    *, direct_url: str | None, maintenance_work_mem: str, workers: int
) -> psycopg.Connection[Any]:
    """Return an autocommit connection to the primary for the index DDL, with build settings.

    `CREATE INDEX CONCURRENTLY` cannot run in a transaction, and its settings must hold
    for the session that runs it: neither survives PgBouncer's transaction pooling, so
    with DATABASE_PGBOUNCER=1 the DDL needs the primary's own URL, as migrations do.
    """
    options = (
        f"-c maintenance_work_mem={maintenance_work_mem}"
        f" -c max_parallel_maintenance_workers={workers}"
    )
    if direct_url:
        return psycopg.connect(direct_url, autocommit=True, options=options)
    if settings.DATABASE_PGBOUNCER:
        raise Refusal(
            409,
            "the bulk path builds the index with CREATE INDEX CONCURRENTLY and session "
            "settings, which PgBouncer's transaction pooling cannot carry: pass "
            "--direct-url with the primary's own URL (as for migrate), or --path incremental",
        )
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"],
        host=db["HOST"],
        port=db["PORT"] or None,
        autocommit=True,
        options=options,
    )


def index_state(ddl: psycopg.Connection[Any]) -> bool | None:
    """Return whether the served HNSW index is valid; None when it does not exist."""
    row = ddl.execute(
        "SELECT x.indisvalid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
        " WHERE c.relname = %s",
        [INDEX_NAME],
    ).fetchone()
    return None if row is None else bool(row[0])


def drop_index(ddl: psycopg.Connection[Any]) -> None:
    """Drop the served HNSW index without blocking searches (they turn to exact scans)."""
    ddl.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(INDEX_NAME)))


_LOCK = """
SELECT i.id FROM embeddings_item i JOIN embeddings_nextvector n ON n.item_id = i.id
WHERE n.run_id = %(run)s
ORDER BY i.project_id, i.external_id
FOR UPDATE OF i"""

_MOVE = """
UPDATE embeddings_item AS i
SET embedding = n.embedding, embedded_hash = n.content_hash, embedding_model = %(model)s,
    embedded_at = now()
FROM embeddings_nextvector n
WHERE n.run_id = %(run)s AND n.item_id = i.id AND n.embedding IS NOT NULL
  AND n.content_hash = i.content_hash"""

_SERVE = """
INSERT INTO embeddings_servedmodel (id, name, model_dir, changed_at)
VALUES (1, %(model)s, %(model_dir)s, now())
ON CONFLICT (id) DO UPDATE SET name = excluded.name, model_dir = excluded.model_dir,
    changed_at = excluded.changed_at"""


def serve(model: Served) -> None:
    """Name `model` as the served one (when every stored vector is already of it)."""
    with connection.cursor() as cursor:
        cursor.execute(_SERVE, {"model": model.name, "model_dir": model.model_dir})


def move_next_vectors(run: EmbeddingRun) -> int:
    """Swap the run's vectors in, in one transaction; return how many items got theirs.

    Must run without the HNSW index (or it pays one insertion per row). Rows are
    locked first in the upserts' order (project, external id), so a concurrent upsert
    waits instead of deadlocking.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        params: dict[str, Any] = {"run": run.pk, "model": run.model, "model_dir": run.model_dir}
        cursor.execute(_LOCK, params)
        cursor.execute(_MOVE, params)
        applied = int(cursor.rowcount)
        cursor.execute(_SERVE, params)
        cursor.execute("DELETE FROM embeddings_nextvector WHERE run_id = %(run)s", params)
        EmbeddingRun.objects.filter(pk=run.pk).update(
            state=EmbeddingRun.State.INDEXING, applied=applied, updated_at=timezone.now()
        )
    logger.info("bulk run %d: %d vectors of %s swapped in", run.pk, applied, run.model)
    return applied


def build_index(
    ddl: psycopg.Connection[Any], progress: Callable[[int, int], None] | None = None
) -> None:
    """Build the served HNSW index again, concurrently; an invalid leftover is dropped first.

    `progress(done, total)` is called about once a second with the build's tuple counts
    (pg_stat_progress_create_index), read on a second connection.
    """
    state = index_state(ddl)
    if state:
        return
    if state is False:  # a build killed half-way leaves an invalid index behind
        drop_index(ddl)
    statement = sql.SQL(
        "CREATE INDEX CONCURRENTLY {} ON embeddings_item USING hnsw (embedding vector_cosine_ops)"
        " WITH (m = {}, ef_construction = {})"
    ).format(sql.Identifier(INDEX_NAME), sql.Literal(HNSW_M), sql.Literal(HNSW_EF_CONSTRUCTION))
    failure: list[BaseException] = []
    pid = ddl.info.backend_pid

    def create() -> None:
        try:
            ddl.execute(statement)
        except BaseException as exc:  # re-raised in the caller's thread below
            failure.append(exc)

    builder = threading.Thread(target=create, name="hnsw-build")
    builder.start()
    while builder.is_alive():
        builder.join(timeout=1.0)
        if progress is not None and builder.is_alive():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT tuples_done, tuples_total FROM pg_stat_progress_create_index"
                    " WHERE pid = %s",
                    [pid],
                )
                row = cursor.fetchone()
            if row:
                progress(int(row[0] or 0), int(row[1] or 0))
    if failure:
        raise failure[0]


def request_the_rest(run: EmbeddingRun) -> list[int]:
    """Ask the incremental path for every item still not current (changed during the run)."""
    waiting = mark_for_reembedding(model=run.model)
    send_embedding_requests(waiting)
    return waiting


def finish_run(run: EmbeddingRun) -> None:
    """Mark the run done."""
    EmbeddingRun.objects.filter(pk=run.pk).update(
        state=EmbeddingRun.State.DONE, finished_at=timezone.now()
    )
