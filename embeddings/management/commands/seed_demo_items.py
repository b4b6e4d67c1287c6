"""`manage.py seed_demo_items`: store the demo catalogue of `embeddings.demo` (idempotent).

A re-run upserts identical items and writes nothing; the embeddings follow after
commit, in the workers.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from analytics.services import ensure_project
from embeddings.demo import catalogue_item, demo_products
from embeddings.services import upsert_items
from embeddings.worker import model_name

BATCH = 500


class Command(BaseCommand):
    help = "Create the catalogue items of the demo shop's products (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", default="demo", help="slug; created when missing")
        parser.add_argument(
            "--series", type=int, default=300, help="the --series seed_demo was run with"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["project"]
        project = ensure_project(slug=slug, name=slug.replace("-", " ").title())
        items = [
            catalogue_item(sku, category) for sku, category in demo_products(options["series"])
        ]
        created = updated = queued = 0
        for start in range(0, len(items), BATCH):
            result = upsert_items(
                project_id=project.pk, items=items[start : start + BATCH], model=model_name()
            )
            created += len(result.created)
            updated += len(result.updated)
            queued += len(result.queued)
        self.stdout.write(
            f"demo catalogue of project '{slug}': {len(items)} items ({created} created, "
            f"{updated} updated); {queued} queued for embedding"
        )
