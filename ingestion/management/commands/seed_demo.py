"""`manage.py seed_demo`: fill a project with the demo metrics of `ingestion.demo`.

Every value is a function of its series and time, so a later run writes the same
points for the same times and the unique index skips them.
"""

import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from analytics.models import Series
from analytics.progress import batch_logs, progress_bar
from analytics.services import ensure_project
from analytics.services.points import CleanPoint, SeriesLimitExceeded, ingest_points
from ingestion.demo import build_specs, generate

BATCH_POINTS = 20_000


class Command(BaseCommand):
    help = (
        "Generate demo metrics (HTTP, hosts, shop products) for a project; does nothing "
        "when the project already has data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", default="demo", help="slug; created when missing")
        parser.add_argument("--days", type=int, default=30, help="days of history up to now")
        parser.add_argument("--step", type=int, default=300, help="seconds between points")
        parser.add_argument("--series", type=int, default=300, help="about how many series")
        parser.add_argument(
            "--force",
            action="store_true",
            help="generate even when the project has data: stored points are skipped as "
            "duplicates, so this completes an interrupted seed or extends it to now",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days, step, series = options["days"], options["step"], options["series"]
        if not 1 <= days <= settings.RETENTION_RAW_DAYS:
            raise CommandError(
                f"--days must be between 1 and {settings.RETENTION_RAW_DAYS} (RETENTION_RAW_DAYS)"
            )
        if not 10 <= step <= 86400:
            raise CommandError("--step must be between 10 and 86400 seconds")
        if not 10 <= series <= settings.INGEST_MAX_SERIES_PER_PROJECT:
            raise CommandError(
                f"--series must be between 10 and {settings.INGEST_MAX_SERIES_PER_PROJECT} "
                "(INGEST_MAX_SERIES_PER_PROJECT)"
            )
        slug = options["project"]
        project = ensure_project(slug=slug, name=slug.replace("-", " ").title())
        existing = Series.objects.filter(project=project).count()
        if existing and not options["force"]:
            self.stdout.write(
                f"demo data already present in project '{slug}' ({existing} series); nothing "
                "written (--force adds what is missing)"
            )
            return
        specs = build_specs(series)
        # Points end at now rounded down to the step, so a later run lines up with this one.
        end = int(timezone.now().timestamp()) // step * step
        steps = days * 86400 // step
        first = end - (steps - 1) * step
        total = steps * len(specs)
        accepted = duplicates = late = 0
        newest = datetime.fromtimestamp(first, UTC)
        started = time.perf_counter()
        verbosity: int = options["verbosity"]
        points = generate(specs, first=first, steps=steps, step=step)
        with (
            progress_bar(
                total=total, unit="pt", desc=f"seeding {slug}", verbosity=verbosity
            ) as bar,
            batch_logs(verbosity),
        ):
            for batch in batches(points, BATCH_POINTS):
                for point in batch:
                    if point.time < newest:
                        late += 1
                    else:
                        newest = point.time
                try:
                    result = ingest_points(
                        project_id=project.pk,
                        points=batch,
                        series_limit=settings.INGEST_MAX_SERIES_PER_PROJECT,
                    )
                except SeriesLimitExceeded as exc:
                    raise CommandError(f"project '{slug}': {exc}") from exc
                accepted += result.accepted
                duplicates += result.duplicates
                bar.update(len(batch))
        elapsed = time.perf_counter() - started
        already = f", {duplicates} already present" if duplicates else ""
        self.stdout.write(
            f"seeded project '{slug}': {len(specs)} series, {accepted} points{already} "
            f"({late} written out of order) from {datetime.fromtimestamp(first, UTC):%Y-%m-%d %H:%M} "
            f"to {datetime.fromtimestamp(end, UTC):%Y-%m-%d %H:%M} UTC in {elapsed:.1f} s "
            f"({total / max(elapsed, 1e-9):,.0f} points/s)"
        )


def batches(points: Iterable[CleanPoint], size: int) -> Iterator[list[CleanPoint]]:
    """Yield lists of `size` points (the last one shorter)."""
    batch: list[CleanPoint] = []
    for point in points:
        batch.append(point)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
