"""PostgreSQL crashes and outages under ingestion: acknowledged means stored exactly once.

Runs against the private stack (see conftest): the database is SIGKILLed as a whole
process group and restarted (crash recovery), or left down, while gunicorn keeps
serving. The fast variants run in `make test`; `make test-full` runs the `slow` ones.
"""

import random
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.reliability.clients import (
    ClientRun,
    assert_stored_exactly_once,
    make_batches,
    request,
    start_two_clients,
    wait_until,
)
from tests.reliability.stack import (
    CONNECT_TIMEOUT_S,
    THROUGH_PGBOUNCER,
    PrivateStack,
    Tenant,
    serving,
)

# Seconds an answer may take beyond DATABASE_CONNECT_TIMEOUT while the database is away.
MARGIN_S = 3


def _crash_while_ingesting(
    stack: PrivateStack,
    *,
    batches_per_client: int,
    batch_size: int,
    crashes: int,
    rng: random.Random,
    deadline_s: float,
) -> ClientRun:
    """Run two retrying clients and SIGKILL/restart PostgreSQL `crashes` times meanwhile."""
    tenant = stack.new_tenant()
    run = start_two_clients(
        stack.web_port,
        tenant.secret,
        prefix=f"c-{rng.getrandbits(32):08x}-",
        batches_per_client=batches_per_client,
        size=batch_size,
        deadline_s=deadline_s,
    )
    total = 2 * batches_per_client
    for crash in range(crashes):
        # Spread the crashes over the run so each one hits batches in flight.
        target = (crash + 1) * total // (crashes + 2)
        wait_until(lambda n=target: sum(len(log.acknowledged) for log in run.logs) >= n, timeout=20)
        time.sleep(rng.uniform(0, 0.05))
        stack.postgres.kill()
        time.sleep(rng.uniform(0.3, 1.5))
        stack.start_postgres()
    run.join()
    assert_stored_exactly_once(run, stack.event_id_counts(tenant))
    return run


def test_postgres_crash_while_two_clients_ingest_stores_each_event_once(stack):
    """SIGKILL of PostgreSQL mid-ingest: retried batches end up stored exactly once, no 500."""
    run = _crash_while_ingesting(
        stack,
        batches_per_client=20,
        batch_size=50,
        crashes=1,
        rng=random.Random(8),
        deadline_s=25,
    )
    refused = sum(log.statuses[503] + len(log.connection_errors) for log in run.logs)
    assert refused > 0, "the crash hit no request: the test proved nothing"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_repeated_postgres_crashes_store_each_event_once(stack, seed):
    """Several crashes at random moments under load: still exactly once, no 500."""
    _crash_while_ingesting(
        stack,
        batches_per_client=120,
        batch_size=200,
        crashes=4,
        rng=random.Random(seed),
        deadline_s=120,
    )


@pytest.mark.parametrize("fault", ["crash", "terminate"])
def test_connection_lost_in_the_middle_of_a_copy_is_503_and_the_retry_stores_once(stack, fault):
    """A batch's COPY cut off (server crash, or its backend terminated): 503 not 500; retry stores once."""
    _cut_off_a_copy(stack, stack.web_port, fault)


def test_backend_terminated_mid_copy_through_pgbouncer_is_503_and_the_retry_stores_once(stack):
    """Through PgBouncer, a backend terminated mid-COPY: 503 with Retry-After, not 500; retry stores once."""
    # PgBouncer answers that COPY with two errors (the server's, then its own "server
    # conn crashed?"), which psycopg reports as a ProgrammingError: a direct connection
    # never shows it, so this runs through PgBouncer whatever FAULTS_THROUGH_PGBOUNCER says.
    own_pgbouncer = not stack.pgbouncer.running()
    if own_pgbouncer:
        stack.start_pgbouncer()
    try:
        env = stack.app_env(DATABASE_URL=stack.pgbouncer_url, DATABASE_PGBOUNCER="1")
        with serving(stack, env, "web-pgbouncer") as port:
            _cut_off_a_copy(stack, port, "terminate")
    finally:
        if own_pgbouncer and not THROUGH_PGBOUNCER:
            stack.pgbouncer.stop(signal.SIGINT)


def _cut_off_a_copy(stack: PrivateStack, port: int, fault: str) -> None:
    """Cut a batch's COPY off on `port` by `fault`; check the 503, that nothing was stored, the retry."""
    tenant = stack.new_tenant()
    (batch,) = make_batches(f"copy-{fault}-{random.getrandbits(32):08x}", count=1, size=200)
    answers: list[Any] = []
    locker = stack.connect()
    # COPY into points needs a ROW EXCLUSIVE lock, which SHARE holds back: the request
    # stops inside its transaction, series created, rows on the wire.
    locker.execute("BEGIN")
    locker.execute("LOCK TABLE points IN SHARE MODE")
    sender = threading.Thread(
        target=lambda: answers.append(_post(port, tenant, batch.body, batch.key))
    )
    sender.start()
    assert wait_until(lambda: stack.blocked_backends("COPY points%"), timeout=15)
    if fault == "crash":
        stack.postgres.kill()
        locker.close()
    else:
        # The server stays up (an administrator, a failover proxy or a timeout ends the
        # session), so Django reconnects at once while the error is being handled.
        stack.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND query LIKE 'COPY points%'"
        )
        locker.close()
    sender.join(timeout=CONNECT_TIMEOUT_S + MARGIN_S + 5)
    (answer,) = answers
    assert answer.status == 503, answer.body
    assert answer.headers["retry-after"].isdigit()

    if fault == "crash":
        stack.start_postgres()
    # Nothing of the batch was stored half-way: neither its points nor its new series.
    assert stack.event_id_counts(tenant) == {}
    assert stack.sql(
        "SELECT count(*) FROM analytics_series WHERE project_id = %s", [tenant.project_id]
    ) == [(0,)]
    assert wait_until(
        lambda: _post(port, tenant, batch.body, batch.key).status == 200,
        timeout=15,
        interval=0.2,
    )
    retry = _post(port, tenant, batch.body, batch.key)
    assert retry.headers.get("idempotent-replayed") == "true"
    assert retry.json()["accepted"] == len(batch.event_ids)
    assert stack.event_id_counts(tenant) == dict.fromkeys(batch.event_ids, 1)


def _post(port: int, tenant: Tenant, body: bytes, key: str | None = None):
    headers = {"Authorization": f"Bearer {tenant.secret}", "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    return request(port, "POST", "/api/v1/events", body, headers, timeout=30)


def test_postgres_down_is_503_with_retry_after_and_service_resumes(stack):
    """Database down: 503 + Retry-After fast, /healthz names it; back up: served again, no restart."""
    tenant = stack.new_tenant()
    (batch,) = make_batches(f"down-{random.getrandbits(32):08x}", count=1, size=10)
    warm = f"{batch.key}-warm"
    assert _post(stack.web_port, tenant, orjson.dumps([{"metric": "m", "id": warm}])).status == 200
    workers = stack.web_workers()

    stack.postgres.kill()
    # Enough requests that both workers meet the dead database on their pooled connection.
    answers = [_post(stack.web_port, tenant, batch.body, batch.key) for _ in range(6)]
    health = request(stack.web_port, "GET", "/healthz")

    assert [answer.status for answer in answers] == [503] * 6
    for answer in answers:
        assert answer.headers["retry-after"].isdigit()
        assert answer.json()["error"] == (
            "the database is unavailable; nothing was written, retry later"
        )
        assert answer.seconds < CONNECT_TIMEOUT_S + MARGIN_S
    assert health.status == 503
    assert "postgres" in health.json()["failing"]
    assert health.json()["checks"]["postgres"]["ok"] is False
    assert health.seconds < 2 * CONNECT_TIMEOUT_S + MARGIN_S

    stack.start_postgres()
    assert wait_until(
        lambda: _post(stack.web_port, tenant, batch.body, batch.key).status == 200,
        timeout=15,
        interval=0.2,
    )
    health = request(stack.web_port, "GET", "/healthz").json()
    assert health["checks"]["postgres"]["ok"] is True
    assert "postgres" not in health["failing"]
    assert stack.web_workers() == workers, "gunicorn workers were restarted"
    assert stack.event_id_counts(tenant) == dict.fromkeys((warm, *batch.event_ids), 1)


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word, like a hung server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_silent_database_is_503_within_the_connect_timeout(stack, black_hole):
    """A database that accepts but never answers: 503 after DATABASE_CONNECT_TIMEOUT, not a hang."""
    tenant = stack.new_tenant()
    env = stack.app_env(DATABASE_URL=f"postgres://postgres@127.0.0.1:{black_hole}/analytics")
    with serving(stack, env, "web-black-hole") as port:
        answer = _post(port, tenant, orjson.dumps([{"metric": "m"}]))
        health = request(port, "GET", "/healthz")
    assert answer.status == 503
    assert answer.headers["retry-after"].isdigit()
    assert CONNECT_TIMEOUT_S - 0.5 < answer.seconds < CONNECT_TIMEOUT_S + MARGIN_S
    assert health.status == 503
    assert health.json()["checks"]["postgres"]["ok"] is False
    assert "timeout" in health.json()["checks"]["postgres"]["error"].lower()
    assert health.seconds < CONNECT_TIMEOUT_S + MARGIN_S
