"""Refresh the 1m/1h/1d rollups now (the beat task does it every 30 s)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from analytics.services.rollups import refresh_rollups


class Command(BaseCommand):
    help = (
        "Refresh the rollups now; --full also re-reads old ranges on the Timescale License edition."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--full",
            action="store_true",
            help="refresh continuous aggregates over all time, not only the recent window",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = refresh_rollups(full=options["full"])
        if not result.ran:
            self.stdout.write("another refresh is running; nothing done")
            return
        self.stdout.write(
            f"refreshed {result.edition} rollups: {result.pairs} pending minutes in {result.seconds:.2f} s"
        )
