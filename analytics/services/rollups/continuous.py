"""The Timescale License edition's refresh: continuous aggregates over the claimed days, or all."""

from datetime import timedelta
from typing import Any

from django.db import connection

from analytics.services.rollups.claims import forget_dead_claims
from analytics.services.rollups.ranges import TIERS, dense_ranges


def refresh_claimed_aggregates(cursor: Any) -> int:
    """Refresh the continuous aggregates over the days of the claimed pairs, then forget them."""
    cursor.execute(
        "SELECT time_bucket(INTERVAL '1 day', bucket) AS day, count(*)"
        " FROM rollup_refreshing GROUP BY 1 ORDER BY 1"
    )
    days = cursor.fetchall()
    one_day = timedelta(days=1)
    for lo, hi in dense_ranges([(day, day, day) for day, _ in days], one_day, one_day):
        # The claims committed so far: their points are all in, so the CALLs below
        # materialize them. A claim made meanwhile (by another refresh) stays pending.
        cursor.execute(
            "SELECT coalesce(array_agg(DISTINCT xmin::text), '{}') FROM rollup_refreshing"
            " WHERE bucket >= %s AND bucket < %s",
            [lo, hi],
        )
        claims = cursor.fetchone()[0]
        # Each CALL commits on its own (it cannot run inside a transaction block).
        for tier, _ in TIERS:
            cursor.execute(
                "CALL refresh_continuous_aggregate(%s, %s::timestamptz, %s::timestamptz)",
                [f"rollup_{tier}", lo, hi],
            )
        cursor.execute(
            "DELETE FROM rollup_refreshing WHERE bucket >= %s AND bucket < %s"
            " AND xmin::text = ANY(%s)",
            [lo, hi, claims],
        )
    forget_dead_claims(cursor)
    return sum(int(count) for _, count in days)


def refresh_all_aggregates() -> None:
    """Refresh every continuous aggregate over its whole range."""
    with connection.cursor() as cursor:
        for tier, _ in TIERS:
            cursor.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", [f"rollup_{tier}"])
