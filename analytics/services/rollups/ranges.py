"""What both editions' refreshers share: the tiers in order, and merging windows into ranges."""

from datetime import timedelta
from typing import Any

from analytics.queries.tiers import TIER_WIDTHS

TIERS: tuple[tuple[str, timedelta], ...] = tuple(TIER_WIDTHS.items())


def dense_ranges(
    windows: list[tuple[Any, Any, Any]], window: timedelta, width: timedelta
) -> list[tuple[Any, Any]]:
    """Merge consecutive (window, first bucket, last bucket) into [lo, hi) time ranges.

    Each range is one query, reading only from its first pending bucket to the end of
    its last one (not the whole windows around them).
    """
    ranges: list[tuple[Any, Any]] = []
    previous = None
    for start, first, last in sorted(windows):
        if ranges and previous is not None and previous + window == start:
            ranges[-1] = (ranges[-1][0], last + width)
        else:
            ranges.append((first, last + width))
        previous = start
    return ranges
