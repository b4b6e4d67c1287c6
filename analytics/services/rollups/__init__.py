"""Rollups: keep the 1m/1h/1d tiers fresh, rebuild them across editions, apply retention.

One module per role: `edition` (which kind is installed), `refresh` (claim the
invalidation log and dispatch), `apache` (the platform's own incremental refresh),
`continuous` (continuous aggregates), `ddl` (install, drop, rebuild) and `retention`.
"""

from analytics.services.rollups.ddl import (
    RebuildResult,
    drop_rollups,
    install_rollups,
    rebuild_rollups,
)
from analytics.services.rollups.edition import installed_rollup_edition
from analytics.services.rollups.refresh import RefreshResult, refresh_rollups
from analytics.services.rollups.retention import apply_retention

__all__ = [
    "RebuildResult",
    "RefreshResult",
    "apply_retention",
    "drop_rollups",
    "install_rollups",
    "installed_rollup_edition",
    "rebuild_rollups",
    "refresh_rollups",
]
