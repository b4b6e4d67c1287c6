"""Items: anything with a title, text and attributes that users search by example.

Whether an item's embedding is current is decided in one place, `embeddings.currency`;
`services.embed_items` is the only writer of the embedding columns.
"""

from django.contrib.postgres.indexes import GinIndex
from django.db import models
from pgvector.django import HnswIndex, VectorField

from analytics.models import Project
from embeddings.constants import EMBEDDING_DIMENSIONS

EXTERNAL_ID_MAX = 200
TITLE_MAX = 500
MODEL_NAME_MAX = 200
# HNSW build parameters: pgvector's defaults, which give recall@10 above 0.95 at
# ef_search 40 on 100k items (bench/vector.py).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


class Item(models.Model):
    """One catalogue entry of a project, with its sentence embedding."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    # The same identifier events carry in their `item` field, so trends can be joined.
    external_id = models.CharField(max_length=EXTERNAL_ID_MAX)
    title = models.CharField(max_length=TITLE_MAX)
    text = models.TextField(blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True)
    # SHA-256 of exactly what the encoder reads (title and text), so a change of the
    # attributes alone never costs an embedding.
    content_hash = models.CharField(max_length=64)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    # The content hash and model the stored embedding was computed from.
    embedded_hash = models.CharField(max_length=64, blank=True, default="")
    embedding_model = models.CharField(max_length=MODEL_NAME_MAX, blank=True, default="")
    embedded_at = models.DateTimeField(null=True, blank=True)
    # When an embedding was last asked for (after commit, or by the sweep); the sweep
    # asks again only when that is long past, i.e. the message was lost.
    embedding_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="item_unique_external_id"
            )
        ]
        indexes = [
            # Substring search of titles (the item picker's `?q=`).
            GinIndex(fields=["title"], name="item_title_trgm", opclasses=["gin_trgm_ops"]),
            # jsonb_path_ops: smaller and faster for the `attributes @> …` filters we run.
            GinIndex(
                fields=["attributes"], name="item_attributes_gin", opclasses=["jsonb_path_ops"]
            ),
            HnswIndex(
                name="item_embedding_hnsw",
                fields=["embedding"],
                m=HNSW_M,
                ef_construction=HNSW_EF_CONSTRUCTION,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.external_id}: {self.title}"
