"""A rollup refresh killed midway and Redis restarted: the rollups still equal the points.

On the Apache-2 edition (the one the private cluster runs) the platform keeps its own
rollup tables, refreshed by a Celery task that beat sends every 30 s. Here a worker is
SIGKILLed in the middle of a refresh (its claimed pairs committed, its slice not), Redis
is killed and restarted (every queued message lost) while ingestion goes on, and a new
refresh is sent as beat would send it. Afterwards every tier must equal, row for row, a
direct aggregate of `points`.
"""

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from celery import Celery
from psycopg import sql

from tests.helpers import celery_worker_argv
from tests.reliability.clients import request, wait_until
from tests.reliability.stack import TEST_REDIS_DB, PrivateStack, Service, Tenant

TIERS = (("rollup_1m", "1 minute"), ("rollup_1h", "1 hour"), ("rollup_1d", "1 day"))


@pytest.fixture
def refresh_worker(stack: PrivateStack) -> Iterator[Service]:
    """A Celery worker of the private stack, consuming the default queue (refreshes)."""
    worker = _worker(stack, "first")
    worker.start()
    yield worker
    worker.stop()


def _worker(stack: PrivateStack, name: str) -> Service:
    return Service(
        f"celery-{name}",
        celery_worker_argv("default", name=f"faults-{name}", loglevel="WARNING"),
        stack.root / f"celery-{name}.log",
        env=stack.app_env(),
    )


def _send_refresh(stack: PrivateStack) -> None:
    """Queue one rollup refresh, as beat does every 30 s."""
    url = f"redis://127.0.0.1:{stack.redis_port}/{TEST_REDIS_DB}"
    app = Celery(broker=url)
    # The connection is named explicitly: Celery prefers a CELERY_BROKER_URL in the
    # environment (the shared stack's) over the broker it was given.
    with app.connection_for_write(url) as connection:
        app.send_task("analytics.refresh_rollups", queue="default", connection=connection)


def _pending_pairs(stack: PrivateStack) -> tuple[int, int]:
    """Return the (logged, claimed) pairs no refresh has finished yet."""
    ((logged, claimed),) = stack.sql(
        "SELECT (SELECT count(*) FROM rollup_invalidation), (SELECT count(*) FROM rollup_refreshing)"
    )
    return int(logged), int(claimed)


def _ingest(stack: PrivateStack, tenant: Tenant, events: list[dict[str, Any]]) -> None:
    headers = {"Authorization": f"Bearer {tenant.secret}", "Content-Type": "application/json"}
    answer = request(stack.web_port, "POST", "/api/v1/events", orjson.dumps(events), headers)
    assert answer.status == 200, answer.body
    assert answer.json()["accepted"] == len(events)


def _events(rng: random.Random, name: str, count: int, start: datetime) -> list[dict[str, Any]]:
    """Integer values (sums stay exact across tiers) spread over three days from `start`."""
    return [
        {
            "metric": rng.choice(["rollup.a", "rollup.b"]),
            "tags": {"host": rng.choice(["x", "y"])},
            "value": rng.randint(-50, 50),
            "time": (start + timedelta(seconds=rng.randrange(3 * 86400))).isoformat(),
            "id": f"{name}-{index}",
        }
        for index in range(count)
    ]


def _refresh_until_done(stack: PrivateStack, *, timeout: float) -> bool:
    """Send refreshes every few seconds, as beat would, until no pair is pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _send_refresh(stack)
        if wait_until(lambda: _pending_pairs(stack) == (0, 0), timeout=3, interval=0.2):
            return True
    return False


def _assert_rollups_equal_points(stack: PrivateStack, tenant: Tenant) -> None:
    for table, width in TIERS:
        direct = stack.sql(
            "SELECT time_bucket(%s::interval, p.time), p.series_id, count(*), sum(p.value),"
            " min(p.value), max(p.value) FROM points p"
            " JOIN analytics_series s ON s.id = p.series_id WHERE s.project_id = %s"
            " GROUP BY 1, 2 ORDER BY 1, 2",
            [width, tenant.project_id],
        )
        rolled = stack.sql(
            sql.SQL(
                "SELECT r.bucket, r.series_id, r.count, r.sum, r.min, r.max FROM {} r"
                " JOIN analytics_series s ON s.id = r.series_id WHERE s.project_id = %s"
                " ORDER BY 1, 2"
            ).format(sql.Identifier(table)),
            [tenant.project_id],
        )
        assert direct, "no points to compare"
        assert rolled == direct, table


def test_refresh_killed_midway_and_redis_restarted_rollups_equal_points(stack, refresh_worker):
    """Worker SIGKILLed mid-refresh, Redis restarted: the next refresh makes every tier exact."""
    rng = random.Random(8)
    tenant = stack.new_tenant()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=4)
    _ingest(stack, tenant, _events(rng, "first", 400, start))
    _send_refresh(stack)
    assert wait_until(lambda: _pending_pairs(stack) == (0, 0), timeout=60, interval=0.2), (
        refresh_worker.log_tail()
    )
    _assert_rollups_equal_points(stack, tenant)

    # Late points into buckets already materialized, and new ones.
    _ingest(stack, tenant, _events(rng, "late", 400, start))
    locker = stack.connect()
    try:
        # Writing rollup_1m needs ROW EXCLUSIVE, which SHARE holds back: the refresh has
        # claimed its pairs (committed) and stops inside its first slice.
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE rollup_1m IN SHARE MODE")
        _send_refresh(stack)
        assert wait_until(lambda: stack.blocked_backends("%rollup_1m%"), timeout=30)
        refresh_worker.kill()
    finally:
        locker.rollback()
        locker.close()
    # The dead worker's backend ends its transaction (and the refresh lock) on its own.
    assert wait_until(
        lambda: not stack.sql("SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"),
        timeout=15,
        interval=0.1,
    )
    assert _pending_pairs(stack)[1] > 0, "the kill left no claimed pairs: it hit no refresh"

    second = _worker(stack, "second")
    second.start()
    try:
        time.sleep(1)  # let it connect, so losing Redis is a reconnection, not a first try
        stack.redis.kill()
        # Ingestion goes on without Redis: rate limits and platform metrics step aside.
        _ingest(stack, tenant, _events(rng, "outage", 200, start))
        stack.start_redis()
        assert _refresh_until_done(stack, timeout=60), second.log_tail()
        assert second.running()
    finally:
        second.stop()
    _assert_rollups_equal_points(stack, tenant)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_refreshes_killed_at_random_with_redis_restarts_rollups_equal_points(stack, seed):
    """Workers killed at random moments of refreshes, Redis restarted at random: still exact."""
    rng = random.Random(seed)
    tenant = stack.new_tenant()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=4)
    workers = [_worker(stack, f"chaos-{seed}-0")]
    workers[0].start()
    try:
        for round_number in range(8):
            _ingest(stack, tenant, _events(rng, f"r{round_number}", 3000, start))
            _send_refresh(stack)
            time.sleep(rng.uniform(0, 2))
            if rng.random() < 0.7:
                workers[-1].kill()
                workers.append(_worker(stack, f"chaos-{seed}-{round_number + 1}"))
                workers[-1].start()
            if rng.random() < 0.5:
                stack.redis.kill()
                time.sleep(rng.uniform(0, 1))
                stack.start_redis()
        assert _refresh_until_done(stack, timeout=120), workers[-1].log_tail()
    finally:
        workers[-1].stop()
    _assert_rollups_equal_points(stack, tenant)
