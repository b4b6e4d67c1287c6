from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built concurrently: an upgrade must not block writes to a large catalogue.
    atomic = False

    dependencies = [
        ("analytics", "0004_rollups"),
        ("embeddings", "0004_next_vector_cascade"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="item",
            index=models.Index(
                condition=models.Q(("embedded_hash", models.F("content_hash")), _negated=True),
                fields=["id"],
                name="item_embedding_outdated",
            ),
        ),
    ]
