"""A gunicorn worker SIGKILLed mid-request: the client's retry is stored and counted once.

The worker is caught at exact points of the request by holding something it needs:
before the commit (a row lock on the receipt it is about to write, after its points are
COPYed) and after the commit (Redis frozen while the worker records the platform metric),
then killed; the client retries with the same Idempotency-Key, as clients must.
"""

import contextlib
import http.client
import os
import random
import signal
import threading
import time

import pytest

from analytics.platform_metrics import EVENTS_INGESTED
from tests.reliability.clients import (
    Answer,
    Batch,
    assert_stored_exactly_once,
    make_batches,
    request,
    start_two_clients,
    wait_until,
)
from tests.reliability.stack import WEB_WORKERS, PrivateStack, Tenant


def _headers(tenant: Tenant, batch: Batch) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {tenant.secret}",
        "Content-Type": "application/json",
        "Idempotency-Key": batch.key,
    }


def _send_in_background(
    stack: PrivateStack, tenant: Tenant, batch: Batch
) -> tuple[threading.Thread, list[Answer | BaseException]]:
    """POST `batch` from a thread; the list gets its Answer or the connection error."""
    outcome: list[Answer | BaseException] = []

    def send() -> None:
        try:
            outcome.append(
                request(
                    stack.web_port, "POST", "/api/v1/events", batch.body, _headers(tenant, batch)
                )
            )
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    return thread, outcome


def _kill_worker(stack: PrivateStack, client_port: int) -> int:
    worker = stack.worker_connected_from(client_port)
    os.kill(worker, signal.SIGKILL)
    return worker


def _retry(stack: PrivateStack, tenant: Tenant, batch: Batch) -> Answer:
    answer = request(stack.web_port, "POST", "/api/v1/events", batch.body, _headers(tenant, batch))
    assert answer.status == 200, answer.body
    return answer


def _assert_worker_replaced(stack: PrivateStack, killed: int) -> None:
    assert wait_until(
        lambda: len(stack.web_workers()) == WEB_WORKERS and killed not in stack.web_workers(),
        timeout=20,
        interval=0.1,
    )


def test_worker_killed_before_commit_retry_is_stored_and_counted_once(stack):
    """Worker killed after its COPY, before its commit: nothing stays; the retry counts once."""
    tenant = stack.new_tenant()
    (batch,) = make_batches(f"pre-{random.getrandbits(32):08x}", count=1, size=300)
    locker = stack.connect()
    # An uncommitted receipt with the same key: the request sees none (MVCC), COPYs its
    # points, then waits on the unique index when it writes its own receipt.
    locker.execute("BEGIN")
    locker.execute(
        "INSERT INTO ingestion_ingestreceipt (project_id, key, request_hash, receipt,"
        " created_at) VALUES (%s, %s, 'held', '{}', now())",
        [tenant.project_id, batch.key],
    )
    thread, outcome = _send_in_background(stack, tenant, batch)
    try:
        assert wait_until(
            lambda: stack.blocked_backends('INSERT INTO "ingestion_ingestreceipt"%'), timeout=15
        )
        (port,) = stack.blocked_backends('INSERT INTO "ingestion_ingestreceipt"%')
        killed = _kill_worker(stack, port)
    finally:
        locker.rollback()
        locker.close()
    thread.join(timeout=15)
    assert isinstance(outcome[0], (OSError, http.client.HTTPException)), outcome

    answer = _retry(stack, tenant, batch)
    assert "idempotent-replayed" not in answer.headers
    assert answer.json()["accepted"] == len(batch.event_ids)
    assert stack.event_id_counts(tenant) == dict.fromkeys(batch.event_ids, 1)
    assert stack.queued_platform_metric(tenant, EVENTS_INGESTED) == len(batch.event_ids)
    _assert_worker_replaced(stack, killed)


def test_worker_killed_after_commit_retry_gets_the_first_receipt(stack):
    """Worker killed after its commit, before answering: the retry replays the receipt, stores nothing."""
    tenant = stack.new_tenant()
    (batch,) = make_batches(f"post-{random.getrandbits(32):08x}", count=1, size=300)
    # With Redis frozen, the worker stalls (REDIS_TIMEOUT) on every Redis call: the rate
    # limits before the batch, and the platform metric after its commit.
    stack.redis.freeze()
    try:
        thread, outcome = _send_in_background(stack, tenant, batch)
        assert wait_until(
            lambda: stack.sql(
                "SELECT 1 FROM ingestion_ingestreceipt WHERE project_id = %s AND key = %s",
                [tenant.project_id, batch.key],
            ),
            timeout=15,
        )
        killed = _kill_worker(stack, stack.last_committer())
    finally:
        stack.redis.thaw()
    thread.join(timeout=15)
    assert isinstance(outcome[0], (OSError, http.client.HTTPException)), outcome

    answer = _retry(stack, tenant, batch)
    assert answer.headers["idempotent-replayed"] == "true"
    assert (answer.json()["accepted"], answer.json()["duplicates"]) == (len(batch.event_ids), 0)
    assert stack.event_id_counts(tenant) == dict.fromkeys(batch.event_ids, 1)
    # The metric is recorded after the commit: a kill there may lose it, never double it.
    assert stack.queued_platform_metric(tenant, EVENTS_INGESTED) <= len(batch.event_ids)
    _assert_worker_replaced(stack, killed)


def _kill_workers_while_ingesting(
    stack: PrivateStack, *, batches_per_client: int, kills: int, seed: int, deadline_s: float
) -> None:
    rng = random.Random(seed)
    tenant = stack.new_tenant()
    run = start_two_clients(
        stack.web_port,
        tenant.secret,
        prefix=f"w-{rng.getrandbits(32):08x}-",
        batches_per_client=batches_per_client,
        size=400,
        deadline_s=deadline_s,
    )
    killed = 0
    # Kill at random moments, each time a worker that is serving a request (a kill
    # between two requests proves nothing), until `kills` kills are done; the clients
    # keep retrying through them, and keep sending new batches until then (however fast
    # the machine), `batches_per_client` being only a bound.
    while killed < kills and run.running():
        time.sleep(rng.uniform(0.05, 0.4))
        serving = stack.serving_web_workers()
        if serving:
            with contextlib.suppress(ProcessLookupError):
                os.kill(rng.choice(serving), signal.SIGKILL)
                killed += 1
    run.stop()
    run.join()

    assert_stored_exactly_once(run, stack.event_id_counts(tenant))
    assert killed == kills, f"only {killed} of {kills} kills happened before the clients finished"
    assert sum(len(log.connection_errors) for log in run.logs) > 0, "no kill hit a request"


def test_random_worker_kills_under_load_store_each_event_once(stack):
    """Workers SIGKILLed at random under two clients: every batch acknowledged, stored once."""
    _kill_workers_while_ingesting(stack, batches_per_client=400, kills=3, seed=8, deadline_s=40)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_random_worker_kills_under_load_store_each_event_once(stack, seed):
    """Many kills at random moments: still exactly once, no 500."""
    _kill_workers_while_ingesting(
        stack, batches_per_client=2000, kills=20, seed=seed, deadline_s=120
    )
