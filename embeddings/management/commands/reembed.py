"""`manage.py reembed`: embed every item again with the current model, with a progress bar.

Run after changing EMBEDDINGS_MODEL_NAME (or the model behind it). By default the work
goes to the embedding workers, as ordinary embedding tasks, and the command follows
their progress; `--inline` computes here instead (this process loads the model).
"""

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.models import Project
from analytics.progress import progress_bar
from embeddings.services import (
    embed_items,
    mark_for_reembedding,
    pending_embeddings,
    send_embedding_requests,
)
from embeddings.worker import encode_texts, model_name

POLL_S = 1.0


class Command(BaseCommand):
    help = "Embed items whose embedding is missing or from another model (all with --force)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="slug; default: every project")
        parser.add_argument(
            "--force", action="store_true", help="also items already embedded with this model"
        )
        parser.add_argument(
            "--inline", action="store_true", help="compute in this process, not in workers"
        )
        parser.add_argument(
            "--no-wait", action="store_true", help="queue the work for workers and return"
        )
        parser.add_argument(
            "--timeout", type=float, default=3600.0, help="seconds to wait for the workers"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project_id = None
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"no project '{options['project']}'")
            project_id = project.pk
        model = model_name()
        ids = mark_for_reembedding(model=model, project_id=project_id, force=options["force"])
        if not ids:
            self.stdout.write(f"every item is already embedded with {model}")
            return
        started = time.perf_counter()
        verbosity: int = options["verbosity"]
        with progress_bar(
            total=len(ids), unit="item", desc=f"embedding with {model}", verbosity=verbosity
        ) as bar:
            if options["inline"]:
                batch = settings.EMBEDDINGS_BATCH_SIZE
                for start in range(0, len(ids), batch):
                    chunk = ids[start : start + batch]
                    embed_items(item_ids=chunk, encode=encode_texts, model=model, batch_size=batch)
                    bar.update(len(chunk))
            else:
                send_embedding_requests(ids)
                if options["no_wait"]:
                    self.stdout.write(f"queued {len(ids)} items for the embedding workers")
                    return
                self._follow(ids, model, bar, options["timeout"])
        left = pending_embeddings(model=model, item_ids=ids)
        self.stdout.write(
            f"embedded {len(ids) - left} of {len(ids)} items with {model} in "
            f"{time.perf_counter() - started:.1f} s"
        )
        if left:
            raise CommandError(f"{left} items are still waiting for an embedding")

    def _follow(self, ids: list[int], model: str, bar: Any, timeout: float) -> None:
        """Update the bar from the database until nothing is pending or `timeout` passes."""
        deadline = time.monotonic() + timeout
        done = 0
        while True:
            left = pending_embeddings(model=model, item_ids=ids)
            bar.update(len(ids) - left - done)
            done = len(ids) - left
            if not left:
                return
            if time.monotonic() > deadline:
                raise CommandError(
                    f"{left} items still waiting after {timeout:.0f} s: is a worker consuming "
                    "the 'embeddings' queue?"
                )
            time.sleep(POLL_S)
