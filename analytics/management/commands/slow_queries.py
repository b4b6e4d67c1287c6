"""`manage.py slow_queries`: the costliest SQL in silk's records, grouped by fingerprint, with plans.

Needs silk (staging or local settings with SILK_ENABLED=1). Plans come from EXPLAIN of
each listed fingerprint's slowest run: never ANALYZE, only for a single plain SELECT, in a
read-only transaction with a statement timeout, so no recorded statement is ever run.
"""

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_MAX_SHOWN = 1000  # characters of a fingerprint in the text report (--json has all)


def parse_since(value: str, *, now: datetime) -> datetime:
    """Return the start of the window `value` names: 30m, 24h, 7d, 2w, or an ISO 8601 time."""
    match = _DURATION.fullmatch(value.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(
            f"--since must be a duration (30m, 24h, 7d, 2w) or an ISO 8601 time, not {value!r}"
        )
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def _at_least(minimum: int) -> Any:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, not {value!r}")
        return number

    return parse


class Command(BaseCommand):
    help = "List the slowest SQL recorded by silk, grouped by fingerprint, with EXPLAIN plans."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=_at_least(1), default=10)
        parser.add_argument(
            "--by", choices=["total", "mean", "max", "count"], default="total", help="ranking"
        )
        parser.add_argument("--since", help="30m, 24h, 7d, 2w or an ISO 8601 time (default: all)")
        parser.add_argument(
            "--explain",
            type=_at_least(0),
            default=3,
            help="how many of the top fingerprints get a plan (0: none)",
        )
        parser.add_argument(
            "--statement-timeout",
            type=_at_least(1),
            default=2000,
            help="milliseconds each EXPLAIN may take",
        )
        parser.add_argument("--json", action="store_true", help="print JSON for machines")

    def handle(self, *args: Any, **options: Any) -> None:
        if not apps.is_installed("silk"):
            raise CommandError(
                "silk is not installed in these settings: use staging or local settings with SILK_ENABLED=1"
            )
        # Imported here: silk's models exist only where silk is installed.
        from analytics.profiling.queries import slow_statements
        from analytics.profiling.statements import explain

        since = parse_since(options["since"], now=timezone.now()) if options["since"] else None
        report = slow_statements(by=options["by"], limit=options["limit"], since=since)
        entries: list[dict[str, Any]] = []
        for rank, group in enumerate(report.statements, start=1):
            plan = (
                explain(group.example, timeout_ms=options["statement_timeout"])
                if rank <= options["explain"]
                else None
            )
            entries.append(
                {
                    "rank": rank,
                    "fingerprint": group.fingerprint,
                    "count": group.count,
                    "total_ms": round(group.total_ms, 3),
                    "mean_ms": round(group.mean_ms, 3),
                    "max_ms": round(group.max_ms, 3),
                    "sources": [
                        {"name": name, "count": count}
                        for name, count in group.sources.most_common()
                    ],
                    "slowest": group.example,
                    "plan": plan.text if plan else None,
                    "plan_note": plan.note if plan else "not explained: beyond --explain",
                }
            )
        summary = {
            "by": options["by"],
            "since": since.isoformat() if since else None,
            "recorded_requests": report.recorded_requests,
            "recorded_statements": report.recorded_statements,
            "statements": entries,
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self._write_text(summary)

    def _write_text(self, summary: dict[str, Any]) -> None:
        window = f"since {summary['since']}" if summary["since"] else "all recorded"
        self.stdout.write(
            f"Slowest SQL ranked by {summary['by']} ({window}): "
            f"{summary['recorded_statements']} statements in {summary['recorded_requests']} requests"
        )
        if not summary["statements"]:
            self.stdout.write("No SQL recorded yet: make some requests with silk on.")
        for entry in summary["statements"]:
            shown = entry["fingerprint"]
            if len(shown) > _MAX_SHOWN:
                shown = shown[:_MAX_SHOWN] + " …"
            sources = ", ".join(f"{s['name']} ({s['count']})" for s in entry["sources"][:8])
            more = len(entry["sources"]) - 8
            self.stdout.write(
                f"\n#{entry['rank']}  total {entry['total_ms']:.1f} ms | count {entry['count']} | "
                f"mean {entry['mean_ms']:.1f} ms | max {entry['max_ms']:.1f} ms"
            )
            self.stdout.write(f"    from: {sources}" + (f" and {more} more" if more > 0 else ""))
            self.stdout.write(f"    sql:  {shown}")
            if entry["plan"]:
                self.stdout.write(f"    plan of the slowest run ({entry['max_ms']:.1f} ms):")
                for line in entry["plan"].splitlines():
                    self.stdout.write(f"      {line}")
            else:
                self.stdout.write(f"    plan: {entry['plan_note']}")
