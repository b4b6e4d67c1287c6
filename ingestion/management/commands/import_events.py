"""`manage.py import_events`: stream a CSV, NDJSON or line-protocol file into a project.

The file (plain or gzip) is read line by line, never whole, validated with the same rules
as HTTP ingestion (see `ingestion.management.readers`) and stored in batches through
`ingest_points`. Rows without an id get one derived from their content, so importing the
same file twice stores it once.
"""

import gzip
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from analytics.models import Project
from analytics.progress import batch_logs, progress_bar
from analytics.services.points import CleanPoint, SeriesLimitExceeded, ingest_points
from ingestion.management.readers import (
    ContentIds,
    Entry,
    csv_entries,
    import_window,
    line_protocol_entries,
    ndjson_entries,
)

FORMATS = ("csv", "ndjson", "lp")
EXTENSIONS = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson", ".lp": "lp", ".txt": "lp"}
GZIP_MAGIC = b"\x1f\x8b"
MAX_ERRORS_SHOWN = 20
MAX_BATCH_SIZE = 1_000_000


@dataclass
class Totals:
    """What the import did so far; only the first invalid rows are kept for the report."""

    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    shown: list[tuple[int, str]] = field(default_factory=list)


class Command(BaseCommand):
    help = (
        "Import metric events from a CSV, NDJSON or line-protocol file (plain or gzip) into "
        "a project; importing the same file again stores nothing new."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--project", required=True, help="slug of the project")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            help="default: from the extension (.csv, .ndjson/.jsonl, .lp/.txt)",
        )
        parser.add_argument(
            "--precision",
            choices=("ns", "us", "ms", "s"),
            help="unit of line-protocol timestamps (default ns)",
        )
        parser.add_argument("--batch-size", type=int, default=5000, help="rows per stored batch")
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="report invalid rows and go on, instead of stopping at the first",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"unknown project {options['project']!r}")
        if not path.exists():
            raise CommandError(f"{path}: no such file")
        if not path.is_file():
            raise CommandError(f"{path}: not a regular file")
        batch_size: int = options["batch_size"]
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}")
        file_format = options["format"] or self.format_of(path)
        if options["precision"] and file_format != "lp":
            raise CommandError("--precision applies to line protocol only")
        window = import_window(timezone.now())
        self.project, self.skip_invalid = project, options["skip_invalid"]
        self.totals = Totals()
        started = time.perf_counter()
        verbosity: int = options["verbosity"]
        size = path.stat().st_size
        with (
            path.open("rb") as raw,
            progress_bar(total=size, unit="B", desc=path.name, verbosity=verbosity) as bar,
            batch_logs(verbosity),
        ):
            compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            lines: Iterable[bytes] = gzip.GzipFile(fileobj=raw) if compressed else raw
            ids = ContentIds()
            entries: Iterator[Entry]
            if file_format == "csv":
                entries = csv_entries(lines, window, ids)
            elif file_format == "ndjson":
                entries = ndjson_entries(lines, window, ids)
            else:
                precision = options["precision"] or "ns"
                entries = line_protocol_entries(lines, window, ids, precision=precision)
            batch: list[CleanPoint] = []
            batch_lines: list[int] = []
            line = 0
            try:
                for entry in entries:
                    line = entry.line
                    self.totals.rows += 1
                    if entry.error is not None:
                        self.reject(entry.line, entry.error, batch_lines)
                        continue
                    batch.extend(entry.points)
                    batch_lines.extend([entry.line] * len(entry.points))
                    if len(batch) >= batch_size:
                        self.store(batch, batch_lines)
                        batch, batch_lines = [], []
                        bar.update(raw.tell() - bar.n)
                self.store(batch, batch_lines)
            except (OSError, EOFError, zlib.error) as exc:
                raise CommandError(f"{path}: cannot read past line {line}: {exc}") from exc
            bar.update(size - bar.n)
        self.report(time.perf_counter() - started)

    @staticmethod
    def format_of(path: Path) -> str:
        name = path.name.lower().removesuffix(".gz")
        file_format = EXTENSIONS.get(Path(name).suffix)
        if file_format is None:
            raise CommandError(
                f"{path}: cannot tell the format from the extension; pass --format "
                f"({', '.join(FORMATS)})"
            )
        return file_format

    def reject(self, line: int, error: str, batch_lines: list[int]) -> None:
        """Record an invalid row, or stop at it unless --skip-invalid."""
        if not self.skip_invalid:
            stored = self.totals.accepted + self.totals.duplicates
            kept = (
                f"; the {stored} points before line {batch_lines[0] if batch_lines else line} "
                "are stored, and a re-run after fixing the file skips them as duplicates"
                if stored
                else "; nothing was stored"
            )
            raise CommandError(f"line {line}: {error}{kept}")
        self.totals.rejected += 1
        if len(self.totals.shown) < MAX_ERRORS_SHOWN:
            self.totals.shown.append((line, error))

    def store(self, batch: list[CleanPoint], batch_lines: list[int]) -> None:
        if not batch:
            return
        try:
            result = ingest_points(
                project_id=self.project.pk,
                points=batch,
                series_limit=settings.INGEST_MAX_SERIES_PER_PROJECT,
                refuse_over_limit=self.skip_invalid,
            )
        except SeriesLimitExceeded as exc:
            raise CommandError(
                f"lines {batch_lines[0]}-{batch_lines[-1]}: {exc}; nothing from line "
                f"{batch_lines[0]} on was stored"
            ) from exc
        self.totals.accepted += result.accepted
        self.totals.duplicates += result.duplicates
        if result.refused_series:
            message = (
                f"series cardinality limit ({settings.INGEST_MAX_SERIES_PER_PROJECT}) reached: "
                "new series refused"
            )
            for point, line in zip(batch, batch_lines, strict=True):
                if point.series in result.refused_series:
                    self.reject(line, message, batch_lines)

    def report(self, elapsed: float) -> None:
        totals = self.totals
        if totals.rejected:
            self.stderr.write(f"{totals.rejected} invalid row(s) skipped:")
            for line, error in totals.shown:
                self.stderr.write(f"  line {line}: {error}")
            if totals.rejected > len(totals.shown):
                self.stderr.write(f"  ... and {totals.rejected - len(totals.shown)} more")
        self.stdout.write(
            f"{totals.rows} rows read, {totals.accepted} accepted, {totals.duplicates} "
            f"duplicates, {totals.rejected} rejected in {elapsed:.1f} s "
            f"({totals.rows / max(elapsed, 1e-9):,.0f} rows/s)"
        )
