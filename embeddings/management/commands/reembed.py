"""`manage.py reembed`: embed items again with the current model, by the faster path, resumably.

Run after changing EMBEDDINGS_MODEL_NAME (or the model behind it), after a bulk import,
or with `--force`. When a large share of the table needs vectors (always for a model
change) it takes the bulk path (`embeddings.bulk`): vectors computed beside the served
ones, then swapped in with one parallel index build, search answering throughout. Else
the incremental path: ordinary embedding tasks, followed from the database.

The bulk run's state lives in the database: a killed `reembed` resumes where it stopped
when run again (nothing computed is computed again). Its fill goes to the embedding
workers by default; `--inline` computes here instead (this process loads the model).
"""

import os
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.models import Project
from analytics.progress import progress_bar
from analytics.refusals import Refusal
from embeddings import bulk
from embeddings.active_model import target_model
from embeddings.bulk_tasks import send_fill
from embeddings.models import EmbeddingRun
from embeddings.services import (
    embed_items,
    mark_for_reembedding,
    pending_embeddings,
    send_embedding_requests,
)

POLL_S = 1.0
# A fill that moved no row for this long lost its lanes (a killed worker, a lost
# message): new ones are sent. Duplicates are harmless, claims skip locked rows.
STALL_S = 30.0
FILL_LANES = 2


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
            "--no-wait",
            action="store_true",
            help="incremental path: queue the work for workers and return",
        )
        parser.add_argument(
            "--timeout", type=float, default=3600.0, help="seconds to wait for the workers"
        )
        parser.add_argument(
            "--path",
            choices=["auto", "bulk", "incremental"],
            default="auto",
            help=f"auto: bulk when at least {bulk.BULK_MIN_SHARE:.0%} of the table and "
            f"{bulk.BULK_MIN_ITEMS} items need vectors, or the model changed",
        )
        parser.add_argument(
            "--direct-url",
            default="",
            help="the primary's own URL for the index DDL (needed with DATABASE_PGBOUNCER=1)",
        )
        parser.add_argument(
            "--maintenance-work-mem",
            default="1GB",
            help="memory of the HNSW build (the graph should fit: about 2.5 kB per item)",
        )
        parser.add_argument(
            "--build-workers",
            type=int,
            default=max(1, (os.cpu_count() or 2) - 1),
            help="parallel maintenance workers of the index build (besides the leader)",
        )
        parser.add_argument(
            "--lanes", type=int, default=FILL_LANES, help="fill tasks in flight at once"
        )
        parser.add_argument(
            "--batch-size", type=int, default=bulk.FILL_BATCH, help="items per fill claim"
        )
        parser.add_argument(
            "--stall-seconds",
            type=float,
            default=STALL_S,
            help="send new fill tasks after this long without progress (a killed worker)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        project_id = None
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"no project '{options['project']}'")
            project_id = project.pk
        try:
            self._handle(project_id, options)
        except Refusal as exc:
            raise CommandError(exc.error) from exc

    def _handle(self, project_id: int | None, options: dict[str, Any]) -> None:
        target = target_model()
        run = bulk.active_run()
        if run is not None and run.model != target.name:
            if run.state == EmbeddingRun.State.INDEXING:
                self._say(f"finishing run {run.pk} of {run.model}: its vectors are served")
                self._bulk(run, options)
                run = None
            else:
                self._say(f"cancelling run {run.pk} of {run.model}: the target is {target.name}")
                bulk.cancel_run(run)
                self._ensure_index(options)
                run = None
        if run is not None:
            self._say(f"resuming run {run.pk} ({run.state}, {run.planned} items, {run.model})")
            self._bulk(run, options)
            return
        candidates = bulk.count_candidates(
            target=target, project_id=project_id, force=options["force"]
        )
        if candidates.model_change and project_id is not None:
            raise CommandError(
                f"the served vectors are of another model than {target.name}: a model change "
                "re-embeds every project at once, run it without --project"
            )
        path = bulk.choose_path(candidates)
        if options["path"] == "incremental" and candidates.model_change:
            raise CommandError(
                "a model change takes the bulk path: incremental writes would mix two "
                "models' vectors in search"
            )
        if options["path"] != "auto":
            path = EmbeddingRun.Path(options["path"])
        if not candidates.count:
            if candidates.model_change:
                bulk.serve(target)  # every vector is the target's already: nothing to swap
            self._ensure_index(options)
            self.stdout.write(f"every item is already embedded with {target.name}")
            return
        self._say(
            f"{candidates.count} of {candidates.table} items need vectors of {target.name}"
            f" ({candidates.share:.0%}): {path} path"
        )
        if path == EmbeddingRun.Path.BULK:
            if options["no_wait"]:
                raise CommandError(
                    "--no-wait is for the incremental path: the bulk path's command stays to "
                    "swap the vectors in (run it again to resume if it is stopped)"
                )
            run = bulk.start_run(target=target, project_id=project_id, force=options["force"])
            self._bulk(run, options)
        else:
            self._incremental(target.name, project_id, options)

    def _say(self, message: str) -> None:
        if self.verbosity:
            self.stderr.write(message)

    # --- the bulk path ---------------------------------------------------------------------

    def _bulk(self, run: EmbeddingRun, options: dict[str, Any]) -> None:
        started = time.perf_counter()
        phases: dict[str, float] = {}
        if run.state == EmbeddingRun.State.FILLING:
            self._fill(run, options)
            phases["fill"] = time.perf_counter() - started
            EmbeddingRun.objects.filter(pk=run.pk, state=EmbeddingRun.State.FILLING).update(
                state=EmbeddingRun.State.APPLYING
            )
            run.refresh_from_db()
        with self._ddl(options) as ddl:
            if run.state == EmbeddingRun.State.APPLYING:
                self._say("dropping the HNSW index: searches use exact scans until it is rebuilt")
                moved = time.perf_counter()
                bulk.drop_index(ddl)
                applied = bulk.move_next_vectors(run)
                phases["swap"] = time.perf_counter() - moved
                self._say(f"swapped in {applied} vectors of {run.model} in {phases['swap']:.1f} s")
                run.refresh_from_db()
            if run.state == EmbeddingRun.State.INDEXING:
                waiting = bulk.request_the_rest(run)
                if waiting:
                    self._say(f"{len(waiting)} items changed meanwhile: asked the workers for them")
                built = time.perf_counter()
                self._build(ddl)
                phases["index"] = time.perf_counter() - built
                bulk.finish_run(run)
        run.refresh_from_db()
        timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items())
        self.stdout.write(
            f"embedded {run.applied} of {run.planned} items with {run.model} in "
            f"{time.perf_counter() - started:.1f} s (bulk path, run {run.pk}: {timings})"
        )

    def _fill(self, run: EmbeddingRun, options: dict[str, Any]) -> None:
        progress = bulk.run_progress(run.pk)
        with progress_bar(
            total=progress.planned,
            unit="item",
            desc=f"embedding with {run.model}",
            verbosity=self.verbosity,
        ) as bar:
            done = progress.planned - progress.left
            bar.update(done)
            if options["inline"]:
                # Imported here: only an inline fill loads the model in this process.
                from embeddings.worker import encode_texts, model_name

                while True:
                    result = bulk.fill_next_vectors(
                        run_id=run.pk,
                        encode=encode_texts,
                        model=model_name(),
                        batch_size=options["batch_size"],
                    )
                    bar.update(result.filled)
                    if result.filled:
                        continue
                    if not bulk.run_progress(run.pk).left:
                        return
                    time.sleep(POLL_S)  # what is left is claimed by a worker right now
            deadline = time.monotonic() + options["timeout"]
            lanes = max(1, options["lanes"])
            for _ in range(lanes):
                send_fill(run.pk, options["batch_size"])
            moved_at = time.monotonic()
            while True:
                left = bulk.run_progress(run.pk).left
                now = time.monotonic()
                if progress.planned - left > done:
                    bar.update(progress.planned - left - done)
                    done, moved_at = progress.planned - left, now
                if not left:
                    return
                if now > deadline:
                    raise CommandError(
                        f"{left} items still waiting after {options['timeout']:.0f} s: is a "
                        f"worker with {run.model} consuming the 'embeddings' queue? Run "
                        "reembed again to resume"
                    )
                if now - moved_at > options["stall_seconds"]:
                    for _ in range(lanes):
                        send_fill(run.pk, options["batch_size"])
                    moved_at = now
                time.sleep(POLL_S)

    def _ddl(self, options: dict[str, Any]) -> Any:
        return bulk.maintenance_connection(
            direct_url=options["direct_url"] or None,
            maintenance_work_mem=options["maintenance_work_mem"],
            workers=options["build_workers"],
        )

    def _build(self, ddl: Any) -> None:
        started = time.perf_counter()
        with progress_bar(
            total=0, unit="item", desc="building the HNSW index", verbosity=self.verbosity
        ) as bar:

            def progress(done: int, total: int) -> None:
                if total and bar.total != total:
                    bar.total = total
                bar.update(done - bar.n)

            bulk.build_index(ddl, progress)
            if bar.total:
                bar.update(bar.total - bar.n)
        self._say(f"HNSW index built in {time.perf_counter() - started:.1f} s")

    def _ensure_index(self, options: dict[str, Any]) -> None:
        """Rebuild the index if a cancelled or killed run left the table without it."""
        with self._ddl(options) as ddl:
            if not bulk.index_state(ddl):
                self._say("the HNSW index is missing or invalid: building it")
                self._build(ddl)

    # --- the incremental path --------------------------------------------------------------

    def _incremental(self, model: str, project_id: int | None, options: dict[str, Any]) -> None:
        ids = mark_for_reembedding(model=model, project_id=project_id, force=options["force"])
        if not ids:
            self.stdout.write(f"every item is already embedded with {model}")
            return
        started = time.perf_counter()
        with progress_bar(
            total=len(ids), unit="item", desc=f"embedding with {model}", verbosity=self.verbosity
        ) as bar:
            if options["inline"]:
                from embeddings.worker import encode_texts

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
            f"{time.perf_counter() - started:.1f} s (incremental path)"
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
