"""Rollup maintenance: rebuild across editions, refresh command, retention, concurrency."""

import io
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from analytics.models import Project
from analytics.queries.series import SeriesQuery, align_down, series_buckets
from analytics.services.points import CleanPoint, ingest_points
from analytics.services.rollups import (
    apply_retention,
    drop_rollups,
    install_rollups,
    installed_rollup_edition,
    refresh_rollups,
)
from analytics.timescale import timescaledb_edition

pytestmark = pytest.mark.rollups
BASE = align_down(datetime.now(UTC) - timedelta(days=2), timedelta(days=1))


def seed(project: Project, count: int = 50) -> None:
    points = [
        CleanPoint(
            ("m", (("h", str(i % 3)),), None), BASE + timedelta(minutes=7 * i), float(i), None
        )
        for i in range(count)
    ]
    ingest_points(project_id=project.pk, points=points, series_limit=100)


def values(
    project: Project, agg: str, start: datetime, days: int, bucket: timedelta
) -> list[float | None]:
    """Return the values of metric `m` over `days` from `start`."""
    query = SeriesQuery(
        project_id=project.pk,
        metric="m",
        agg=agg,  # type: ignore[arg-type]
        start=start,
        end=start + timedelta(days=days),
        bucket=bucket,
    )
    found: list[float | None] = series_buckets(query).series[0].values
    return found


def daily(project: Project) -> list[float | None]:
    return values(project, "sum", BASE, 2, timedelta(days=1))


@pytest.mark.django_db(transaction=True)
def test_rebuild_moves_rollups_to_the_server_edition(project):
    """rebuild_rollups replaces the installed rollups with the server edition's and refills them."""
    seed(project)
    assert daily(project) == [float(sum(range(50)))]
    server = timescaledb_edition()
    if server == "timescale":
        # A database that was migrated on an Apache-2 server and then moved here.
        drop_rollups()
        install_rollups(edition="apache")
        assert installed_rollup_edition(cached=False) == "apache"
    out = io.StringIO()
    call_command("rebuild_rollups", stdout=out, stderr=io.StringIO())
    assert installed_rollup_edition(cached=False) == server
    assert f"-> {server}" in out.getvalue()
    refresh_rollups(full=True)
    assert daily(project) == [float(sum(range(50)))]


@pytest.mark.django_db(transaction=True)
def test_refresh_command_empties_the_backlog(project):
    """refresh_rollups materializes pending minutes; a second run has nothing to do."""
    seed(project)
    out = io.StringIO()
    call_command("refresh_rollups", stdout=out)
    assert "pending minutes" in out.getvalue()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM rollup_invalidation")
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            "SELECT sum(count) FROM rollup_1d r JOIN analytics_series s ON s.id = r.series_id"
            " WHERE s.project_id = %s",
            [project.pk],
        )
        assert cursor.fetchone()[0] == 50
    again = io.StringIO()
    call_command("refresh_rollups", stdout=again)
    assert "0 pending minutes" in again.getvalue()


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_do_not_collide(project):
    """Two refreshes at once: one runs, the other returns at once; the result is exact."""
    from django.db import connections

    seed(project, count=300)
    results = []

    def run() -> None:
        try:
            results.append(refresh_rollups())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.ran for r in results) in ([False, True], [True, True])
    refresh_rollups()
    assert daily(project) == [float(sum(range(206))), float(sum(range(206, 300)))]


@pytest.mark.django_db(transaction=True)
def test_retention_drops_raw_chunks_and_rollups_keep_history(project):
    """Past the raw horizon the points go, and the 1h and 1d rollups still answer."""
    old = align_down(datetime.now(UTC) - timedelta(days=100), timedelta(days=1))
    points = [CleanPoint(("m", (), None), old + timedelta(hours=i), 2.0, None) for i in range(5)]
    ingest_points(project_id=project.pk, points=points, series_limit=100)
    refresh_rollups(full=True)
    dropped = apply_retention()
    if installed_rollup_edition(cached=False) == "timescale":
        # TimescaleDB runs the policies itself; run the raw one now instead of waiting.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT job_id FROM timescaledb_information.jobs"
                " WHERE proc_name = 'policy_retention' AND hypertable_name = 'points'"
            )
            (job_id,) = cursor.fetchone()
            cursor.execute("CALL run_job(%s)", [job_id])
    else:
        assert dropped["points"] >= 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM points p JOIN analytics_series s ON s.id = p.series_id"
            " WHERE s.project_id = %s",
            [project.pk],
        )
        assert cursor.fetchone()[0] == 0
    assert values(project, "sum", old, 1, timedelta(days=1)) == [10.0]
    assert values(project, "count", old, 1, timedelta(hours=1)) == [1.0] * 5
