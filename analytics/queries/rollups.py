"""State of the rollups for /healthz and operators: kind, watermarks and backlog."""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from analytics.services.rollups import installed_rollup_edition
from analytics.timescale import timescaledb_edition


@dataclass(frozen=True)
class RollupStatus:
    server_edition: str
    installed: str
    watermarks: dict[str, datetime | None]
    pending_minutes: int
    oldest_pending: datetime | None


def rollup_status(*, server_edition: str | None = None) -> RollupStatus:
    """Return which rollups are installed, how far each tier is materialized, and the backlog."""
    installed = installed_rollup_edition(cached=False)
    with connection.cursor() as cursor:
        if installed == "timescale":
            cursor.execute(
                "SELECT user_view_name, _timescaledb_functions.to_timestamp("
                "_timescaledb_functions.cagg_watermark(mat_hypertable_id))"
                " FROM _timescaledb_catalog.continuous_agg"
                " WHERE user_view_name IN ('rollup_1m', 'rollup_1h', 'rollup_1d')"
            )
            marks = {name.removeprefix("rollup_"): mark for name, mark in cursor.fetchall()}
        else:
            cursor.execute("SELECT tier, nullif(watermark, '-infinity') FROM rollup_watermark")
            marks = dict(cursor.fetchall())
        cursor.execute("SELECT count(*), min(logged_at) FROM rollup_invalidation")
        count, oldest = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM rollup_refreshing")
        pending = int(count) + int(cursor.fetchone()[0])
    return RollupStatus(
        server_edition=server_edition or timescaledb_edition(),
        installed=installed,
        watermarks={tier: marks.get(tier) for tier in ("1m", "1h", "1d")},
        pending_minutes=pending,
        oldest_pending=oldest,
    )
