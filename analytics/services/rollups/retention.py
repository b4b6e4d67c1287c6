"""Retention: drop raw points and rollups past their horizons, on either edition."""

import logging

from django.conf import settings
from django.db import connection

from analytics.services.rollups.edition import installed_rollup_edition

logger = logging.getLogger(__name__)

RETENTION_SETTINGS = {
    "points": "RETENTION_RAW_DAYS",
    "rollup_1m": "RETENTION_1M_DAYS",
    "rollup_1h": "RETENTION_1H_DAYS",
    "rollup_1d": "RETENTION_1D_DAYS",
}


def apply_retention() -> dict[str, int]:
    """Drop chunks older than each relation's horizon (0 days keeps forever).

    On the Apache edition this drops chunks now (daily beat task); on the Timescale
    License edition it installs retention policies that TimescaleDB runs itself.
    Rollups keep their own, longer history after raw points are gone.
    """
    edition = installed_rollup_edition(cached=False)
    dropped: dict[str, int] = {}
    with connection.cursor() as cursor:
        for relation, setting in RETENTION_SETTINGS.items():
            days = int(getattr(settings, setting))
            if edition == "timescale":
                cursor.execute("SELECT remove_retention_policy(%s, if_exists => true)", [relation])
                if days > 0:
                    cursor.execute(
                        "SELECT add_retention_policy(%s, drop_after => %s::interval)",
                        [relation, f"{days} days"],
                    )
                dropped[relation] = 0
            elif days > 0:
                cursor.execute(
                    "SELECT count(*) FROM drop_chunks(%s, older_than => now() - %s::interval)",
                    [relation, f"{days} days"],
                )
                dropped[relation] = int(cursor.fetchone()[0])
    logger.info("retention applied (%s): %s", edition, dropped)
    return dropped
