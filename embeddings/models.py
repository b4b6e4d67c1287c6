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
            # The items whose vector is missing or older than their text: where an
            # embedding task looks for pending items beyond its own ids (services.embed_items).
            models.Index(
                fields=["id"],
                name="item_embedding_outdated",
                condition=~models.Q(embedded_hash=models.F("content_hash")),
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


class ServedModel(models.Model):
    """The model whose vectors `Item.embedding` holds for search (one row, `pk` 1).

    It changes only when a bulk run swaps in a new model's vectors (`embeddings.bulk`),
    so changing EMBEDDINGS_MODEL_NAME never leaves search comparing two models' vectors
    or answering empty before `manage.py reembed` has run. `model_dir` is where workers
    load that model from to encode free-text queries while another one is the target.
    """

    name = models.CharField(max_length=MODEL_NAME_MAX)
    model_dir = models.CharField(max_length=1000, blank=True, default="")
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class EmbeddingRun(models.Model):
    """One `manage.py reembed`: its scope, path and phase, so a killed run resumes where it stopped."""

    class Path(models.TextChoices):
        BULK = "bulk"
        INCREMENTAL = "incremental"

    class State(models.TextChoices):
        FILLING = "filling"  # computing next vectors beside the served ones
        APPLYING = "applying"  # dropping the served HNSW index, moving the vectors in
        INDEXING = "indexing"  # building the HNSW index again, in parallel
        DONE = "done"
        CANCELLED = "cancelled"

    model = models.CharField(max_length=MODEL_NAME_MAX)
    model_dir = models.CharField(max_length=1000, blank=True, default="")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE)
    force = models.BooleanField(default=False)
    path = models.CharField(max_length=16, choices=Path.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.FILLING)
    planned = models.IntegerField(default=0)
    applied = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One run at a time: the bulk path swaps the whole table's index.
            models.UniqueConstraint(
                fields=["path"],
                condition=models.Q(state__in=["filling", "applying", "indexing"]),
                name="embedding_run_one_active",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk}: {self.path} {self.model} ({self.state})"


class NextVector(models.Model):
    """The next vector of one item in a bulk run, written beside the served one, unindexed.

    A row without an embedding is planned work; with one, the vector of `content_hash`.
    Kept out of `embeddings_item`: any update of an item row adds its new version to
    the HNSW index (the row never fits a HOT update), which is the cost the bulk path avoids.
    """

    item = models.OneToOneField(Item, primary_key=True, on_delete=models.CASCADE)
    run = models.ForeignKey(EmbeddingRun, on_delete=models.CASCADE)
    content_hash = models.CharField(max_length=64, blank=True, default="")
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)

    class Meta:
        indexes = [
            # The fill's claim: the planned rows of a run, in item order.
            models.Index(
                fields=["run", "item"],
                name="next_vector_planned",
                condition=models.Q(embedding__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"next vector of item {self.item_id} (run {self.run_id})"
