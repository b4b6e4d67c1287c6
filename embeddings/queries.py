"""Reads of items and similarity search over their embeddings (pgvector HNSW, cosine).

Every query filters on the project. A search is one HNSW index scan with pgvector's
iterative scan on, so attribute filters applied after the scan still fill k results;
only when fewer than k come back does it count the matches and, if the scan gave up
early (very selective filters), answer exactly with a scan of the matching rows.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from django.db import transaction
from pgvector import Vector
from psycopg import sql

from analytics.db.replicas import read_connection
from analytics.queries.like import contains_pattern, prefix_pattern
from embeddings.currency import EmbeddingState, embedding_state_sql, needs_embedding_sql
from embeddings.validation import AttributeFilter

# ef_search: the candidate list of an HNSW scan. pgvector's default 40 gives recall@10
# above 0.95 on 100k items (bench/vector.py); larger k needs a proportionally longer list.
EF_SEARCH_MIN = 40
EF_SEARCH_PER_K = 4
EF_SEARCH_MAX = 1000
# With filters, the iterative scan's first matches are not quite the nearest ones: taking
# twice k and keeping the best k lifts recall@10 from 0.91 to 0.94 on the 10% filter of
# bench/vector.py, at about twice the time of a filtered query.
FILTERED_CANDIDATES_PER_K = 2
# Candidates beyond k, so that items tied at the k-th place go to the smaller external id
# as the outer ORDER BY says: the index returns tied items in the order of its graph,
# which changes with every build, and identical texts give identical vectors. Ties
# longer than this stay in index order.
TIE_CANDIDATES = 10
LIST_LIMIT_MAX = 100


@dataclass(frozen=True)
class ItemSummary:
    external_id: str
    title: str
    attributes: dict[str, Any]
    embedded: bool


@dataclass(frozen=True)
class ItemDetail:
    external_id: str
    title: str
    text: str
    attributes: dict[str, Any]
    content_hash: str
    embedding_status: EmbeddingState
    embedding_model: str | None
    embedded_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ExampleVector:
    external_id: str
    vector: np.ndarray | None  # None: not embedded with the current model yet


@dataclass(frozen=True)
class Neighbour:
    external_id: str
    title: str
    score: float  # cosine similarity to the query vector, 1 is identical
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Neighbours:
    results: list[Neighbour]
    # How many items passed the filters, counted only when fewer than k came back.
    matched: int | None
    exact: bool  # answered by the exact fallback, not the index


def item_detail(*, project_id: int, external_id: str, model: str) -> ItemDetail | None:
    """Return one item of the project, or None."""
    with read_connection().cursor() as cursor:
        cursor.execute(
            f"""SELECT external_id, title, text, attributes::text, content_hash,
                       {embedding_state_sql(model="%s")},
                       nullif(embedding_model, ''), embedded_at, created_at, updated_at
                FROM embeddings_item WHERE project_id = %s AND external_id = %s""",
            [model, project_id, external_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return ItemDetail(
        external_id=row[0],
        title=row[1],
        text=row[2],
        attributes=orjson.loads(row[3]),
        content_hash=row[4],
        embedding_status=EmbeddingState(row[5]),
        embedding_model=row[6],
        embedded_at=row[7],
        created_at=row[8],
        updated_at=row[9],
    )


def item_summaries(*, project_id: int, search: str, limit: int, model: str) -> list[ItemSummary]:
    """Return items whose title or external id holds every word of `search` (all if empty).

    Titles starting with the search come first, then by title. pg_trgm's index serves
    the substring matches.
    """
    words = search.split()
    conditions: list[sql.Composable] = [sql.SQL("project_id = %s")]
    params: list[Any] = [model, project_id]
    for word in words:
        pattern = contains_pattern(word)
        conditions.append(sql.SQL("(title ILIKE %s OR external_id ILIKE %s)"))
        params += [pattern, pattern]
    prefix = prefix_pattern(search.strip())
    query = sql.SQL(
        """SELECT external_id, title, attributes::text,
                  NOT {needs_embedding}
           FROM embeddings_item WHERE {conditions}
           ORDER BY title ILIKE %s DESC, title, external_id
           LIMIT %s"""
    ).format(
        needs_embedding=sql.SQL(needs_embedding_sql(model="%s", state_only=True)),
        conditions=sql.SQL(" AND ").join(conditions),
    )
    with read_connection().cursor() as cursor:
        cursor.execute(query, [*params, prefix, min(limit, LIST_LIMIT_MAX)])
        return [
            ItemSummary(external_id, title, orjson.loads(attributes), embedded)
            for external_id, title, attributes, embedded in cursor.fetchall()
        ]


def example_vectors(
    *, project_id: int, external_ids: Sequence[str], model: str
) -> dict[str, ExampleVector]:
    """Return the project's items among `external_ids` with their current vectors, in one query."""
    if not external_ids:
        return {}
    with read_connection().cursor() as cursor:
        cursor.execute(
            """SELECT external_id,
                      CASE WHEN embedding_model = %s THEN embedding::text END
               FROM embeddings_item WHERE project_id = %s AND external_id = ANY(%s)""",
            [model, project_id, list(external_ids)],
        )
        rows = cursor.fetchall()
    return {
        external_id: ExampleVector(
            external_id, None if text is None else Vector.from_text(text).to_numpy()
        )
        for external_id, text in rows
    }


def combine_examples(like: Sequence[np.ndarray], unlike: Sequence[np.ndarray]) -> np.ndarray:
    """Return the query vector of Qdrant's average_vector strategy.

    With negatives: avg(like) + (avg(like) - avg(unlike)), which moves the query away
    from what is not wanted; without, avg(like).
    """
    positive: np.ndarray = np.mean(np.stack(like), axis=0)
    if not unlike:
        return positive
    negative: np.ndarray = np.mean(np.stack(unlike), axis=0)
    combined: np.ndarray = 2 * positive - negative
    return combined


def _filters(where: Sequence[AttributeFilter], params: dict[str, Any]) -> sql.Composable:
    """`AND (attributes @> … OR …)` per filter: a value matches a scalar or a list holding it."""
    parts: list[sql.Composable] = []
    for index, attribute_filter in enumerate(where):
        options: list[sql.Composable] = []
        for position, value in enumerate(attribute_filter.values):
            for form, document in enumerate(
                ({attribute_filter.key: value}, {attribute_filter.key: [value]})
            ):
                name = f"f{index}_{position}_{form}"
                params[name] = orjson.dumps(document).decode()
                options.append(sql.SQL("attributes @> {}::jsonb").format(sql.Placeholder(name)))
        parts.append(sql.SQL(" AND ({})").format(sql.SQL(" OR ").join(options)))
    return sql.Composed(parts)


_NEAREST = """
WITH nearest AS MATERIALIZED (
    SELECT external_id, title, attributes, embedding <=> %(vector)s::vector AS distance
    FROM embeddings_item
    WHERE {matching}
    ORDER BY distance
    LIMIT %(candidates)s
)
SELECT external_id, title, attributes::text, 1 - distance FROM nearest
ORDER BY distance, external_id
LIMIT %(k)s"""

_MATCHING = """project_id = %(project)s AND embedding_model = %(model)s
      AND embedding IS NOT NULL AND external_id <> ALL(%(exclude)s){filters}"""


def ef_search_for(k: int) -> int:
    """Return the HNSW candidate list length for `k` results."""
    return min(EF_SEARCH_MAX, max(EF_SEARCH_MIN, EF_SEARCH_PER_K * k))


def nearest_items(
    *,
    project_id: int,
    vector: np.ndarray,
    k: int,
    model: str,
    where: Sequence[AttributeFilter] = (),
    exclude: Sequence[str] = (),
) -> Neighbours:
    """Return the k items closest to `vector` (cosine) that pass `where`, minus `exclude`."""
    params: dict[str, Any] = {
        "project": project_id,
        "model": model,
        "vector": Vector(vector.astype(np.float32)).to_text(),
        "k": k,
        "candidates": max(k * FILTERED_CANDIDATES_PER_K if where else k, k + TIE_CANDIDATES),
        "exclude": list(exclude),
    }
    matching = sql.SQL(_MATCHING).format(filters=_filters(where, params))
    nearest = sql.SQL(_NEAREST).format(matching=matching)
    database = read_connection()
    with transaction.atomic(using=database.alias), database.cursor() as cursor:
        # relaxed_order: the scan keeps going until enough rows pass the filters; the
        # outer ORDER BY restores exact order among them. SET LOCAL ends with the
        # transaction.
        cursor.execute(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
            " set_config('hnsw.ef_search', %s, true)",
            [str(ef_search_for(k))],
        )
        cursor.execute(nearest, params)
        rows = cursor.fetchall()
        matched = None
        exact = False
        if len(rows) < k:
            cursor.execute(
                sql.SQL("SELECT count(*) FROM embeddings_item WHERE {}").format(matching), params
            )
            count_row = cursor.fetchone()
            matched = int(count_row[0]) if count_row else 0
            if matched > len(rows):
                # The scan stopped at hnsw.max_scan_tuples before finding k matches: the
                # matches are few, so reading them all is cheap and exact.
                cursor.execute("SELECT set_config('enable_indexscan', 'off', true)")
                cursor.execute(nearest, params)
                rows = cursor.fetchall()
                exact = True
    return Neighbours(
        results=[
            Neighbour(external_id, title, float(score), orjson.loads(attributes))
            for external_id, title, attributes, score in rows
        ],
        matched=matched,
        exact=exact,
    )
