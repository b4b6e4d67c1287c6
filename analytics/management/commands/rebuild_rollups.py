"""Rebuild the rollups for the server's TimescaleDB edition (after moving between editions)."""

from typing import Any

from django.core.management.base import BaseCommand

from analytics.services.rollups import rebuild_rollups


class Command(BaseCommand):
    help = (
        "Drop the rollups, create those of the server's current TimescaleDB edition "
        "(continuous aggregates or the platform's own) and fill them from the points."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stderr.write("rebuilding rollups; this reads every stored point once...")
        result = rebuild_rollups()
        self.stdout.write(
            f"rollups rebuilt: {result.before} -> {result.after}, "
            f"filled in {result.refresh.seconds:.1f} s"
        )
