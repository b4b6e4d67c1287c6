"""Bring the rollups up to date with the invalidation log, on either edition.

Both editions share the log (migrations_sql/0004_rollup_invalidation.sql). A refresh
claims it under a lock that waits for in-flight writers, then hands the claimed pairs
to the edition's refresher (`rollups.apache` or `rollups.continuous`). A session
advisory lock lets only one refresh run at a time; a second one returns at once, and
one killed midway leaves its claimed pairs for the next run.
"""

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from analytics.locks import lock_id
from analytics.services.rollups.apache import refresh_claimed_tables
from analytics.services.rollups.continuous import (
    refresh_all_aggregates,
    refresh_claimed_aggregates,
)
from analytics.services.rollups.edition import installed_rollup_edition
from analytics.timescale import Edition

logger = logging.getLogger(__name__)

_REFRESH_LOCK = lock_id("rollup-refresh")


@dataclass(frozen=True)
class RefreshResult:
    edition: Edition
    ran: bool
    pairs: int
    seconds: float


@dataclass(frozen=True)
class _Refreshed:
    ran: bool  # False: another refresh held the lock
    pairs: int


def _claim(cursor: Any) -> None:
    with transaction.atomic():
        # Waits for every transaction that logged pairs (they hold ROW EXCLUSIVE until
        # they end), so all points behind the claimed pairs are committed.
        cursor.execute("LOCK TABLE rollup_invalidation IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(
            "INSERT INTO rollup_refreshing (series_id, bucket)"
            " SELECT DISTINCT series_id, bucket FROM rollup_invalidation"
        )
        # TRUNCATE, not DELETE: the log churns all day, and the dead rows a DELETE leaves
        # behind would slow every reader's pending lookup until autovacuum came by. No
        # writer can add rows meanwhile (the lock above), and readers wait for the commit.
        cursor.execute("TRUNCATE rollup_invalidation")


def _refresh_pending(edition: Edition) -> _Refreshed:
    """Claim the invalidation log and bring every tier up to date for it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_REFRESH_LOCK])
        if not cursor.fetchone()[0]:
            return _Refreshed(ran=False, pairs=0)
        try:
            _claim(cursor)
            if edition == "timescale":
                return _Refreshed(ran=True, pairs=refresh_claimed_aggregates(cursor))
            return _Refreshed(ran=True, pairs=refresh_claimed_tables(cursor))
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_REFRESH_LOCK])


def refresh_rollups(*, full: bool = False) -> RefreshResult:
    """Bring every tier up to date with the points; safe to run twice or concurrently."""
    started = time.perf_counter()
    edition = installed_rollup_edition(cached=False)
    if edition == "timescale" and full:
        refresh_all_aggregates()
    refreshed = _refresh_pending(edition)
    result = RefreshResult(edition, refreshed.ran, refreshed.pairs, time.perf_counter() - started)
    logger.info(
        "rollup refresh (%s): ran=%s pairs=%d in %.2f s",
        edition,
        result.ran,
        result.pairs,
        result.seconds,
    )
    return result
