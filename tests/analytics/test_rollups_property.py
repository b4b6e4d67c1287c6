"""Rollups answer exactly what a GROUP BY over the raw points answers, whatever was written.

Hypothesis writes random histories (out-of-order, late and backfilled points, deletes)
and checks every tier, aggregate, fill and filter against the raw aggregate, before and
after refreshes. `make test` runs it on the Apache-2 edition the local stack builds;
`make test-tsl` runs it against a server with the Timescale License (see the README).
"""

import itertools
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from analytics.models import Project
from analytics.queries.series import AGGS, SeriesQuery, TagFilter, align_down, series_buckets
from analytics.services.points import CleanPoint, ingest_points
from analytics.services.rollups import refresh_rollups

BASE = align_down(datetime.now(UTC) - timedelta(days=3), timedelta(days=1))
SPAN_S = 3 * 86400
SERIES = [
    ("m", (("host", "a"), ("region", "eu"))),
    ("m", (("host", "b"), ("region", "eu"))),
    ("m", (("host", "c"), ("region", "us"))),
    ("m", (("region", "us"),)),
    ("other", (("host", "a"), ("region", "eu"))),
]
values = st.one_of(
    st.integers(-1000, 1000).map(float),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)
point = st.tuples(st.integers(0, len(SERIES) - 1), st.integers(0, SPAN_S - 1), values)
# Most points crowd into a few hours so buckets hold several; some spread over days.
crowded = st.tuples(st.integers(0, len(SERIES) - 1), st.integers(0, 3 * 3600), values)
histories = st.lists(st.one_of(point, crowded), min_size=1, max_size=120)
deletions = st.lists(st.tuples(st.integers(0, SPAN_S - 1), st.integers(1, 7200)), max_size=3)

BUCKETS = [
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=2),
]
VARIANTS: list[dict[str, Any]] = [
    {},
    {"filters": (TagFilter("region", ("eu",)),)},
    {"filters": (TagFilter("host", ("a", "c")),)},
    {"filters": (TagFilter("region", ("eu",), negate=True),)},
    {"group_by": "host", "limit": 2},
    {"group_by": "region", "fill": "zero"},
    {"fill": "previous"},
    {"fill": "null", "compare": True},
]


def write(project: Project, history: list[tuple[int, int, float]]) -> None:
    points = [
        CleanPoint(
            (SERIES[i][0], SERIES[i][1], None),
            BASE + timedelta(seconds=s, microseconds=s % 7),
            v,
            None,
        )
        for i, s, v in history
    ]
    ingest_points(project_id=project.pk, points=points, series_limit=1000)


def delete(project: Project, ranges: list[tuple[int, int]]) -> None:
    with connection.cursor() as cursor:
        for start, length in ranges:
            cursor.execute(
                "DELETE FROM points WHERE series_id IN (SELECT id FROM analytics_series WHERE project_id = %s)"
                " AND time >= %s AND time < %s",
                [
                    project.pk,
                    BASE + timedelta(seconds=start),
                    BASE + timedelta(seconds=start + length),
                ],
            )


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


ROTATION = itertools.count()


def assert_matches_raw(project: Project) -> None:
    """Every tier and aggregate (each with one filter/fill/group variant) equals the raw GROUP BY."""
    end = BASE + timedelta(seconds=SPAN_S)
    for bucket in BUCKETS:
        for agg in AGGS:
            # A rotating variant per (bucket, agg): across calls every pair meets them all.
            for variant in [VARIANTS[next(ROTATION) % len(VARIANTS)]]:
                query = SeriesQuery(
                    project_id=project.pk,
                    metric="m",
                    agg=agg,  # type: ignore[arg-type]
                    start=BASE + timedelta(minutes=7),
                    end=end,
                    bucket=bucket,
                    **variant,
                )
                ours, raw = series_buckets(query), series_buckets(query, raw=True)
                context = f"{bucket} {agg} {variant}"
                assert (
                    ours.source
                    == f"rollup_{'1d' if bucket >= timedelta(days=1) else '1h' if bucket >= timedelta(hours=1) else '1m'}"
                )
                assert ours.times == raw.times, context
                assert [s.name for s in ours.series] == [s.name for s in raw.series], context
                for mine, theirs in zip(ours.series, raw.series, strict=True):
                    assert all(
                        same(a, b) for a, b in zip(mine.values, theirs.values, strict=True)
                    ), (context, mine, theirs)
                    if agg in ("count", "min", "max"):
                        assert mine.values == theirs.values, context
                if query.compare:
                    assert ours.compare is not None
                    assert raw.compare is not None
                    for mine, theirs in zip(ours.compare.series, raw.compare.series, strict=True):
                        assert all(
                            same(a, b) for a, b in zip(mine.values, theirs.values, strict=True)
                        )


@pytest.mark.rollups
@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=histories, late=histories, gone=deletions, refresh_between=st.booleans())
def test_rollups_equal_raw_aggregates_at_every_moment(first, late, gone, refresh_between):
    """Before, between and after refreshes, with late points and deletes, tiers equal raw.

    Runs on whichever edition the server has: the platform's rollup tables on Apache-2,
    continuous aggregates on the Timescale License edition (`make test-tsl`).
    """
    project = Project.objects.create(slug=f"p-{uuid.uuid4().hex[:12]}", name="prop")
    write(project, first)
    assert_matches_raw(project)  # nothing refreshed yet: pending buckets are read live
    if refresh_between:
        refresh_rollups()
        assert_matches_raw(project)
    write(project, late)  # late and out-of-order points land in refreshed buckets
    delete(project, gone)
    assert_matches_raw(project)
    refresh_rollups()
    assert_matches_raw(project)
    refresh_rollups()  # a second refresh changes nothing
    assert_matches_raw(project)
