"""Bring the rollups up to date with the invalidation log, on either edition.

Both editions share the log (migrations_sql/0004_rollup_invalidation.sql). A refresh
claims it (`rollups.claims`: a lock that waits for in-flight writers, under the
transaction-level refresh lock), then hands the claimed pairs to the edition's
refresher (`rollups.apache` or `rollups.continuous`).
"""

import logging
import time
from dataclasses import dataclass

from django.db import connection

from analytics.services.rollups.apache import refresh_claimed_tables
from analytics.services.rollups.claims import claim_invalidations
from analytics.services.rollups.continuous import (
    refresh_all_aggregates,
    refresh_claimed_aggregates,
)
from analytics.services.rollups.edition import installed_rollup_edition
from analytics.timescale import Edition

logger = logging.getLogger(__name__)


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


def _refresh_pending(edition: Edition) -> _Refreshed:
    """Claim the invalidation log and bring every tier up to date for it."""
    with connection.cursor() as cursor:
        if not claim_invalidations(cursor):
            return _Refreshed(ran=False, pairs=0)
        if edition == "timescale":
            return _Refreshed(ran=True, pairs=refresh_claimed_aggregates(cursor))
        return _Refreshed(ran=True, pairs=refresh_claimed_tables(cursor))


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
