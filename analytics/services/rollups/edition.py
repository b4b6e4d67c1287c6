"""Which kind of rollups are installed: continuous aggregates (TSL) or the platform's own tables."""

import time

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

from analytics.timescale import Edition

_installed_cache: dict[str, tuple[float, Edition]] = {}
INSTALLED_CACHE_SECONDS = 60.0


def installed_rollup_edition(
    *, using: BaseDatabaseWrapper | None = None, cached: bool = True
) -> Edition:
    """Return which kind of rollups exist: continuous aggregates or the platform's own.

    Only a rebuild (`rollups.ddl`) changes it, so readers may use an answer up to a minute old.
    """
    database = using or connection
    key = str(database.settings_dict.get("NAME"))
    hit = _installed_cache.get(key)
    if cached and hit and time.monotonic() - hit[0] < INSTALLED_CACHE_SECONDS:
        return hit[1]
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM _timescaledb_catalog.continuous_agg"
            " WHERE user_view_name = 'rollup_1m')"
        )
        row = cursor.fetchone()
    edition: Edition = "timescale" if row and row[0] else "apache"
    _installed_cache[key] = (time.monotonic(), edition)
    return edition


def forget_installed_edition() -> None:
    """Drop the cached answers, after the rollups were created or dropped."""
    _installed_cache.clear()
