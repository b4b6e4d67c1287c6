"""Helpers for item and search tests: posting, unit vectors with known geometry, embedding."""

from typing import Any

import numpy as np
import orjson
from django.db import connection

from analytics.models import Project
from embeddings.constants import EMBEDDING_DIMENSIONS
from embeddings.worker import model_name


def post_json(client: Any, path: str, secret: str | None, payload: Any, **extra: Any) -> Any:
    """POST `payload` as JSON, with a Bearer key when `secret` is given."""
    if secret is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client.generic(
        "POST", path, orjson.dumps(payload), content_type="application/json", **extra
    )


def get(client: Any, path: str, secret: str | None, **params: Any) -> Any:
    extra = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret is not None else {}
    return client.get(path, params, **extra)


def unit(*components: float) -> np.ndarray:
    """Return a unit vector whose first coordinates are `components` (the rest 0)."""
    vector = np.zeros(EMBEDDING_DIMENSIONS, dtype=np.float32)
    vector[: len(components)] = components
    return vector / np.linalg.norm(vector)


def set_embeddings(project: Project, vectors: dict[str, np.ndarray]) -> None:
    """Store `vectors` as the current embeddings of the project's items (known geometry)."""
    with connection.cursor() as cursor:
        for external_id, vector in vectors.items():
            cursor.execute(
                """UPDATE embeddings_item SET embedding = %s::vector, embedded_hash = content_hash,
                          embedding_model = %s, embedded_at = now()
                   WHERE project_id = %s AND external_id = %s""",
                [
                    "[" + ",".join(str(float(v)) for v in vector) + "]",
                    model_name(),
                    project.pk,
                    external_id,
                ],
            )
            assert cursor.rowcount == 1, external_id


def item_row(project: Project, external_id: str) -> dict[str, Any]:
    """Return the stored columns of one item (embedding as a numpy array or None)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT title, text, attributes::text, content_hash, embedded_hash, embedding_model,
                      embedded_at, embedding::text
               FROM embeddings_item WHERE project_id = %s AND external_id = %s""",
            [project.pk, external_id],
        )
        row = cursor.fetchone()
    assert row is not None, external_id
    title, text, attributes, content_hash, embedded_hash, model, embedded_at, embedding = row
    return {
        "title": title,
        "text": text,
        "attributes": orjson.loads(attributes),
        "content_hash": content_hash,
        "embedded_hash": embedded_hash,
        "embedding_model": model,
        "embedded_at": embedded_at,
        "embedding": None
        if embedding is None
        else np.array(orjson.loads(embedding), dtype=np.float32),
    }
