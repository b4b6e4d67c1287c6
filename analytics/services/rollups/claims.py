"""Claiming the invalidation log for a refresh, under the refresh lock, on either edition.

The refresh lock is transaction-level, never a session lock: through PgBouncer in
transaction mode a session lock would stay behind on whichever server connection took
it. Each transaction of a refresh (the claim, every slice, the final clean-up) takes it,
so claims and slices never overlap: a claim that finds it taken returns at once, a slice
waits for it, and one killed midway leaves its claimed pairs for the next run. A second
refresh that claims between the first one's slices is harmless: each slice recomputes,
under the lock, every pair claimed in its range so far, whoever claimed it.
"""

from typing import Any

from django.db import transaction

from analytics.locks import lock_id

REFRESH_LOCK = lock_id("rollup-refresh")


def claim_invalidations(cursor: Any) -> bool:
    """Move the logged pairs to rollup_refreshing; False when another refresh is claiming."""
    with transaction.atomic():
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [REFRESH_LOCK])
        if not cursor.fetchone()[0]:
            return False
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
    return True


def hold_refresh_lock(cursor: Any) -> None:
    """Wait for the refresh lock until the current transaction ends."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REFRESH_LOCK])


def forget_dead_claims(cursor: Any) -> None:
    """Drop the dead rows the slices left in rollup_refreshing, unless a claim added live ones."""
    with transaction.atomic():
        hold_refresh_lock(cursor)
        cursor.execute("SELECT EXISTS (SELECT 1 FROM rollup_refreshing)")
        if not cursor.fetchone()[0]:
            cursor.execute("TRUNCATE rollup_refreshing")
