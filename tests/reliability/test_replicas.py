"""Read replicas through PgBouncer: read-your-writes, the lag limit, dead replicas, two replicas.

The private cluster gets two real streaming replicas (pg_basebackup -R) and a real
PgBouncer in transaction mode in front of the primary; a gunicorn reads from the
replicas and writes through PgBouncer. Which server answered is told by the data: a
point written straight into the primary (recording nothing in Redis) is missing from a
read exactly when a replica whose replay is paused served it.
"""

import contextlib
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from embeddings.constants import EMBEDDING_DIMENSIONS
from tests.reliability.clients import Answer, request, wait_until
from tests.reliability.stack import THROUGH_PGBOUNCER, PrivateStack, Replica, Tenant, serving

MAX_LAG_S = 3
METRIC = "replicas.value"
# The replica code leaves a replica that did not answer alone this long (RETRY_DOWN_S).
RETRY_DOWN_S = 5


@pytest.fixture(scope="module")
def replicas(private_stack: PrivateStack) -> Iterator[tuple[Replica, Replica]]:
    """Two streaming replicas of the private cluster, and PgBouncer in front of its primary."""
    stack = private_stack
    stack.ensure_running()
    own_pgbouncer = not stack.pgbouncer.running()
    if own_pgbouncer:
        stack.start_pgbouncer()
    pair = (stack.add_replica(), stack.add_replica())
    try:
        yield pair
    finally:
        for replica in pair:
            stack.remove_replica(replica)
        if own_pgbouncer and not THROUGH_PGBOUNCER:
            stack.pgbouncer.stop(signal.SIGINT)


def _env(stack: PrivateStack, replicas: tuple[Replica, ...], max_lag_s: int) -> dict[str, str]:
    return stack.app_env(
        DATABASE_URL=stack.pgbouncer_url,
        DATABASE_PGBOUNCER="1",
        DATABASE_REPLICA_URLS=",".join(replica.database_url for replica in replicas),
        DATABASE_REPLICA_MAX_LAG_S=str(max_lag_s),
    )


@pytest.fixture(scope="module")
def web(private_stack: PrivateStack, replicas: tuple[Replica, Replica]) -> Iterator[int]:
    """The port of a gunicorn that reads from both replicas, lag limit MAX_LAG_S."""
    with serving(private_stack, _env(private_stack, replicas, MAX_LAG_S), "replicas-web") as port:
        yield port


@pytest.fixture(autouse=True)
def replaying(stack: PrivateStack, replicas: tuple[Replica, Replica]) -> Iterator[None]:
    """Every test starts and ends with both replicas running and replaying."""
    yield
    stack.ensure_running()
    for replica in replicas:
        with contextlib.suppress(Exception):
            replica.resume_replay()


BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def _headers(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.secret}", "Content-Type": "application/json"}


def _ingest(port: int, tenant: Tenant, name: str) -> None:
    """POST one point through the app (its project's write position is recorded)."""
    event = {"metric": METRIC, "tags": {"host": "a"}, "value": 1, "time": _time(name), "id": name}
    answer = request(port, "POST", "/api/v1/events", orjson.dumps([event]), _headers(tenant))
    assert answer.status == 200, answer.body


def _time(name: str) -> str:
    return (BASE + timedelta(seconds=sum(map(ord, name)) % 3000)).isoformat()


def _insert_behind_the_apps_back(stack: PrivateStack, tenant: Tenant, name: str) -> None:
    """Write a point straight into the primary: no Redis record, so nobody waits for it."""
    stack.sql(
        "INSERT INTO points (time, series_id, value, event_id)"
        " SELECT %s, id, 1, %s FROM analytics_series WHERE project_id = %s",
        [_time(name), name, tenant.project_id],
    )


def _get(port: int, tenant: Tenant, path: str, **params: Any) -> Answer:
    query = f"?{urlencode(params)}" if params else ""
    return request(port, "GET", f"{path}{query}", headers=_headers(tenant))


def _points(port: int, tenant: Tenant) -> int:
    """Return how many points the series API counts for the tenant."""
    answer = _get(
        port,
        tenant,
        "/api/v1/series",
        metric=METRIC,
        agg="count",
        bucket="1h",
        start=BASE.isoformat(),
        end=(BASE + timedelta(hours=1)).isoformat(),
    )
    assert answer.status == 200, answer.body
    return int(sum(value or 0 for value in answer.json()["series"][0]["values"]))


def _freeze_replicas(stack: PrivateStack, replicas: tuple[Replica, ...]) -> None:
    """Pause replay right after a fresh commit, so the replicas start out within the lag limit."""
    stack.sql(
        "UPDATE analytics_project SET name = name WHERE id = (SELECT min(id) FROM analytics_project)"
    )
    stack.wait_replicas_caught_up()
    for replica in replicas:
        replica.pause_replay()


def _health(port: int) -> dict[str, Any]:
    report: dict[str, Any] = request(port, "GET", "/healthz").json()
    replicas: dict[str, Any] = report["checks"]["replicas"]["replicas"]
    return replicas


def test_a_write_is_read_back_while_replay_is_paused_then_reads_return_to_the_replicas(
    stack, replicas, web
):
    """Right after its write a project reads it (paused replicas skipped), then replicas again."""
    tenant = stack.new_tenant()
    _ingest(web, tenant, "first")
    stack.wait_replicas_caught_up()
    for replica in replicas:
        replica.pause_replay()
    _ingest(web, tenant, "second")
    # The replicas have not replayed it, yet every read sees it at once.
    for replica in replicas:
        ((on_replica,),) = replica.sql("SELECT count(*) FROM points WHERE event_id = 'second'")
        assert on_replica == 0
    assert [_points(web, tenant) for _ in range(6)] == [2] * 6

    for replica in replicas:
        replica.resume_replay()
    stack.wait_replicas_caught_up()
    # Caught up past the write: the project's reads go to a replica again, which a point
    # written behind the app's back (and not yet replayed) shows.
    _freeze_replicas(stack, replicas)
    _insert_behind_the_apps_back(stack, tenant, "third")
    assert _points(web, tenant) == 2


def test_replicas_paused_past_the_lag_limit_are_left_and_healthz_says_so(stack, replicas, web):
    """Other projects read a paused replica while within the lag limit, the primary after it."""
    tenant = stack.new_tenant()
    _ingest(web, tenant, "first")
    stack.wait_replicas_caught_up()
    assert all(entry["in_use"] for entry in _health(web).values())
    _freeze_replicas(stack, replicas)
    _insert_behind_the_apps_back(stack, tenant, "second")
    assert _points(web, tenant) == 1  # data at most MAX_LAG_S old, from a replica
    started = time.monotonic()
    assert wait_until(lambda: _points(web, tenant) == 2, timeout=MAX_LAG_S + 10, interval=0.2)
    assert time.monotonic() - started >= MAX_LAG_S - 1.5
    health = _health(web)
    assert [entry["in_use"] for entry in health.values()] == [False, False], health
    assert all(entry["lag_seconds"] > MAX_LAG_S for entry in health.values()), health


def _tenant_with_items(stack: PrivateStack, port: int) -> Tenant:
    tenant = stack.new_tenant()
    _ingest(port, tenant, "first")
    items = [{"external_id": name, "title": f"Book {name}", "text": name} for name in "ab"]
    answer = request(port, "POST", "/api/v1/items", orjson.dumps(items), _headers(tenant))
    assert answer.status in (200, 201, 207), answer.body
    vector = "[" + ",".join(["0.1"] * EMBEDDING_DIMENSIONS) + "]"
    stack.sql(
        "UPDATE embeddings_item SET embedding = %s::vector, embedding_model = 'all-MiniLM-L6-v2',"
        " embedded_hash = content_hash, embedded_at = now() WHERE project_id = %s",
        [vector, tenant.project_id],
    )
    stack.wait_replicas_caught_up()
    return tenant


def _every_read_endpoint(port: int, tenant: Tenant) -> None:
    """Each read endpoint answers 200 with the tenant's data."""
    assert _points(port, tenant) == 1
    answers = {
        "metrics": _get(port, tenant, "/api/v1/catalog/metrics"),
        "keys": _get(port, tenant, "/api/v1/catalog/tag-keys", metric=METRIC),
        "values": _get(port, tenant, "/api/v1/catalog/tag-values", metric=METRIC, key="host"),
        "project": _get(port, tenant, "/api/v1/project"),
        "items": _get(port, tenant, "/api/v1/items"),
        "item": _get(port, tenant, "/api/v1/items/a"),
        "similar": _get(port, tenant, "/api/v1/items/a/similar", k=5),
        "search": request(
            port,
            "POST",
            "/api/v1/search",
            orjson.dumps({"like": ["a"], "k": 5}),
            _headers(tenant),
        ),
    }
    for name, answer in answers.items():
        assert answer.status == 200, (name, answer.body)
    text = {name: answer.body.decode() for name, answer in answers.items()}
    assert METRIC in text["metrics"]
    assert '"host"' in text["keys"]
    assert '"a"' in text["values"]
    assert str(tenant.project_id) in text["project"] or "faults-" in text["project"]
    assert '"b"' in text["items"]
    assert '"Book a"' in text["item"]
    assert '"b"' in text["similar"]
    assert '"b"' in text["search"]


def test_killed_replicas_every_read_endpoint_answers_and_they_come_back(stack, replicas, web):
    """Replica postmasters SIGKILLed: every read endpoint answers 200 with the right data."""
    tenant = _tenant_with_items(stack, web)
    _every_read_endpoint(web, tenant)
    first, second = replicas
    first.server.kill()
    for _ in range(3):  # each request picks a replica at random: both get asked
        _every_read_endpoint(web, tenant)
    second.server.kill()
    _every_read_endpoint(web, tenant)
    health = _health(web)
    assert [entry["in_use"] for entry in health.values()] == [False, False], health
    assert all("error" in entry for entry in health.values()), health

    stack.ensure_running()  # restarts both: crash recovery, then streaming again
    stack.wait_replicas_caught_up(timeout=60)
    assert wait_until(lambda: all(entry["in_use"] for entry in _health(web).values()), timeout=30)
    time.sleep(RETRY_DOWN_S + 1)  # each web worker asks a dead replica again after this
    _freeze_replicas(stack, replicas)
    _insert_behind_the_apps_back(stack, tenant, "second")
    assert [_points(web, tenant) for _ in range(4)] == [1] * 4  # served by the replicas again


def test_a_sticky_project_never_reads_from_the_replica_that_has_not_replayed_its_write(
    stack, replicas
):
    """Two replicas, one paused: the writer never reads the paused one; others still do."""
    caught_up, paused = replicas
    # No lag limit to speak of: only the write positions keep the writer off `paused`.
    with serving(stack, _env(stack, replicas, 3600), "replicas-no-lag-limit") as port:
        writer, other = stack.new_tenant(), stack.new_tenant()
        _ingest(port, writer, "first")
        _ingest(port, other, "first")
        stack.wait_replicas_caught_up()
        paused.pause_replay()
        _ingest(port, writer, "second")
        _insert_behind_the_apps_back(stack, other, "second")
        ((target,),) = stack.sql("SELECT pg_current_wal_insert_lsn()::text")
        assert wait_until(
            lambda: caught_up.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])[0][0],
            timeout=30,
        )
        writer_reads = [_points(port, writer) for _ in range(30)]
        other_reads = [_points(port, other) for _ in range(30)]
    assert writer_reads == [2] * 30
    # The paused replica still serves projects that wrote nothing it lacks.
    assert set(other_reads) == {1, 2}, other_reads
