"""A worker SIGKILLed mid-embedding and Redis restarted: every item is embedded exactly once.

Items are upserted through the API of the private stack and embedded by a real Celery
worker (queues `embeddings` and `default`, the real encoder). The worker is frozen the
moment its backend sits inside a claim (rows locked, vectors being computed, nothing
written), checked to be there still, and SIGKILLed. Redis is then killed and restarted
(every queued message lost, the dead worker's unacknowledged one included) while items
change through the API, a fresh worker starts, and the sweep is sent as beat would send
it once the requeue delay has passed. Afterwards every item has one embedding of its
current content, and a trigger on the private database proves each (item, content)
pair was written exactly once, which is also what the pipeline's own
`platform.embeddings_computed` samples add up to. Events ingested along the way must
leave the Apache-edition rollups equal to a direct aggregate of `points`, as in
test_faults_rollups.py.
"""

import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from celery import Celery
from django.conf import settings

from analytics.platform_metrics import EMBEDDINGS_COMPUTED
from tests.helpers import celery_worker_argv
from tests.reliability.clients import Answer, request, wait_until
from tests.reliability.stack import (
    DB_NAME,
    REDIS_TIMEOUT_S,
    TEST_REDIS_DB,
    PrivateStack,
    Service,
    Tenant,
    children,
)
from tests.reliability.test_faults_rollups import (
    _assert_rollups_equal_points,
    _events,
    _ingest,
    _refresh_until_done,
)

MODEL = settings.EMBEDDINGS_MODEL_NAME
# Small batches: many claims per task, so a kill lands inside one and loses little.
BATCH_SIZE = 8
WORDS = [
    "lantern",
    "river",
    "copper",
    "meadow",
    "violin",
    "harbor",
    "pepper",
    "glacier",
    "canvas",
    "orchard",
    "thunder",
    "marble",
    "saddle",
    "quartz",
    "willow",
    "ember",
    "biscuit",
    "falcon",
    "cobalt",
    "prairie",
    "tunnel",
    "velvet",
    "walnut",
    "beacon",
]
# Seconds an item upsert may take beyond REDIS_TIMEOUT while Redis is away (Celery's
# publish retries take under a second).
OUTAGE_MARGIN_S = 3
NEEDS_EMBEDDING = "(embedded_hash <> content_hash OR embedding_model <> %s)"

# Every write of an embedding, committed ones only (a rolled-back claim leaves no row):
# the independent record of how many times each (item, content) pair was computed.
AUDIT_DDL = """
CREATE TABLE IF NOT EXISTS faults_embedding_audit (
    item_id bigint NOT NULL, embedded_hash text NOT NULL, at timestamptz NOT NULL);
CREATE OR REPLACE FUNCTION faults_audit_embedding() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO faults_embedding_audit VALUES (NEW.id, NEW.embedded_hash, clock_timestamp());
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER faults_embedding_audit AFTER UPDATE OF embedding ON embeddings_item
    FOR EACH ROW EXECUTE FUNCTION faults_audit_embedding();
"""


@pytest.fixture
def audited(stack: PrivateStack) -> Iterator[PrivateStack]:
    """The private stack with every committed embedding write recorded; removed afterwards."""
    stack.sql(AUDIT_DDL)
    yield stack
    stack.sql(
        "DROP TRIGGER IF EXISTS faults_embedding_audit ON embeddings_item;"
        " DROP FUNCTION IF EXISTS faults_audit_embedding(); DROP TABLE faults_embedding_audit"
    )


def _worker(stack: PrivateStack, name: str) -> Service:
    """Return (unstarted) a worker of both queues, as `make run` starts it, with small batches."""
    return Service(
        f"celery-{name}",
        celery_worker_argv("embeddings,default", name=f"faults-{name}"),
        stack.root / f"celery-{name}.log",
        env=stack.app_env(
            EMBEDDINGS_BATCH_SIZE=str(BATCH_SIZE), EMBEDDINGS_DEVICE="cpu", LOG_LEVEL="INFO"
        ),
    )


def _start(worker: Service, timeout: float = 60) -> None:
    worker.start()
    assert wait_until(lambda: b" ready." in worker.log.read_bytes(), timeout=timeout), (
        worker.log_tail()
    )


def _items(prefix: str, count: int, version: int = 0) -> list[dict[str, Any]]:
    """Items whose texts differ by id and `version`, long enough that a batch takes a while."""
    items = []
    for index in range(count):
        rng = random.Random(f"{prefix}-{index}-{version}")
        text = " ".join(rng.choice(WORDS) for _ in range(60))
        items.append(
            {
                "external_id": f"{prefix}-{index}",
                "title": f"{prefix} {index} v{version}",
                "text": text,
                "attributes": {"version": version},
            }
        )
    return items


def _post(stack: PrivateStack, tenant: Tenant, path: str, document: Any) -> Answer:
    headers = {"Authorization": f"Bearer {tenant.secret}", "Content-Type": "application/json"}
    answer = request(stack.web_port, "POST", path, orjson.dumps(document), headers)
    assert answer.status == 200, (answer.body, stack.web.log_tail())
    return answer


def _upsert(stack: PrivateStack, tenant: Tenant, items: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = _post(stack, tenant, "/api/v1/items", items).json()
    return body


def _send(stack: PrivateStack, task: str, queue: str) -> None:
    """Queue one task by name, as beat sends it (the task's route names the queue)."""
    url = f"redis://127.0.0.1:{stack.redis_port}/{TEST_REDIS_DB}"
    app = Celery(broker=url)
    # Named explicitly: Celery prefers a CELERY_BROKER_URL in the environment (the
    # shared stack's) over the broker it was given.
    with app.connection_for_write(url) as connection:
        app.send_task(task, queue=queue, connection=connection)


def _pending(stack: PrivateStack, tenant: Tenant) -> set[int]:
    rows = stack.sql(
        f"SELECT id FROM embeddings_item WHERE project_id = %s AND {NEEDS_EMBEDDING}",
        [tenant.project_id, MODEL],
    )
    return {int(item_id) for (item_id,) in rows}


def _embedded_at(stack: PrivateStack, tenant: Tenant) -> dict[int, datetime]:
    rows = stack.sql(
        "SELECT id, embedded_at FROM embeddings_item WHERE project_id = %s"
        " AND embedded_at IS NOT NULL",
        [tenant.project_id],
    )
    return {int(item_id): at for item_id, at in rows}


def _locked(stack: PrivateStack, tenant: Tenant) -> set[int]:
    """Return the tenant's items whose rows another transaction holds locked right now."""
    with stack.connect() as connection:
        every = {
            int(row[0])
            for row in connection.execute(
                "SELECT id FROM embeddings_item WHERE project_id = %s", [tenant.project_id]
            )
        }
        with connection.transaction(force_rollback=True):
            free = {
                int(row[0])
                for row in connection.execute(
                    "SELECT id FROM embeddings_item WHERE project_id = %s FOR UPDATE SKIP LOCKED",
                    [tenant.project_id],
                )
            }
    return every - free


def _claiming(stack: PrivateStack) -> bool:
    """Return whether a backend holds a claim of embed_items open (it is computing vectors)."""
    return bool(
        stack.sql(
            "SELECT 1 FROM pg_stat_activity WHERE datname = %s"
            " AND state = 'idle in transaction' AND query LIKE %s",
            [DB_NAME, "%FROM embeddings_item%FOR UPDATE SKIP LOCKED%"],
        )
    )


def _kill_mid_embedding(
    stack: PrivateStack,
    tenant: Tenant,
    worker: Service,
    *,
    pid: int | None = None,
    timeout: float = 60,
) -> set[int] | None:
    """SIGKILL `worker` (or only its process `pid`) inside a claim; return the claimed ids.

    The worker is frozen as soon as a claim is seen and killed only if it is still in
    it: the vectors of those rows are being computed and none of them is written.
    Return None when no claim was seen in `timeout` seconds (nothing left to embed).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _claiming(stack):
            time.sleep(0.005)
            continue
        worker.freeze()
        if _claiming(stack):
            claimed = _locked(stack, tenant)
            if pid is None:
                worker.kill()
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                worker.thaw()
            return claimed
        worker.thaw()
    return None


def _no_open_claims(stack: PrivateStack) -> bool:
    """The dead worker's backend has ended its transaction, so its row locks are gone."""
    return not stack.sql(
        "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND state LIKE 'idle in transaction%%'",
        [DB_NAME],
    )


def _sweep_until_done(stack: PrivateStack, tenant: Tenant, *, timeout: float) -> bool:
    """Let the requeue delay pass, then send the sweep as beat would until nothing is pending.

    The sweep asks again only for requests older than EMBEDDINGS_REQUEUE_AFTER_SECONDS
    (ten minutes); moving the tenant's request times back by that much stands in for
    waiting for it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.sql(
            "UPDATE embeddings_item SET embedding_requested_at = embedding_requested_at - %s"
            " WHERE project_id = %s",
            [timedelta(seconds=settings.EMBEDDINGS_REQUEUE_AFTER_SECONDS + 1), tenant.project_id],
        )
        _send(stack, "embeddings.sweep", "embeddings")
        if wait_until(lambda: not _pending(stack, tenant), timeout=15, interval=0.2):
            return True
    return False


def _audit(stack: PrivateStack, tenant: Tenant) -> Counter[tuple[int, str]]:
    rows = stack.sql(
        "SELECT a.item_id, a.embedded_hash FROM faults_embedding_audit a"
        " JOIN embeddings_item i ON i.id = a.item_id WHERE i.project_id = %s",
        [tenant.project_id],
    )
    return Counter((int(item_id), str(content)) for item_id, content in rows)


def _assert_each_content_embedded_once(
    stack: PrivateStack, tenant: Tenant, expected: set[tuple[int, str]]
) -> Counter[tuple[int, str]]:
    """Every item holds an embedding of its current content, and each pair was computed once."""
    rows = stack.sql(
        "SELECT id, content_hash, embedded_hash, embedding_model, embedding IS NOT NULL"
        " FROM embeddings_item WHERE project_id = %s",
        [tenant.project_id],
    )
    assert rows
    for item_id, content, embedded, model, has_vector in rows:
        assert (embedded, model, has_vector) == (content, MODEL, True), item_id
    audit = _audit(stack, tenant)
    repeated = {pair: count for pair, count in audit.items() if count > 1}
    assert not repeated, f"computed more than once: {repeated}"
    assert set(audit) == expected
    return audit


def _hashes(stack: PrivateStack, tenant: Tenant) -> dict[int, str]:
    rows = stack.sql(
        "SELECT id, content_hash FROM embeddings_item WHERE project_id = %s", [tenant.project_id]
    )
    return {int(item_id): str(content) for item_id, content in rows}


def test_worker_killed_mid_embedding_and_redis_restarted_each_item_embedded_once(audited):
    """SIGKILL inside a claim, Redis restarted: the sweep embeds every content exactly once."""
    stack = audited
    tenant = stack.new_tenant()
    rng = random.Random(1)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=4)
    _ingest(stack, tenant, _events(rng, "before", 300, start))
    first = _worker(stack, "doomed")
    _start(first)
    try:
        _upsert(stack, tenant, _items("item", 48))
        _send(stack, "analytics.refresh_rollups", "default")
        # At least one batch committed first, so some items must survive the kill as they were.
        assert wait_until(lambda: len(_embedded_at(stack, tenant)) >= BATCH_SIZE, timeout=60), (
            first.log_tail()
        )
        claimed = _kill_mid_embedding(stack, tenant, first)
        assert claimed is not None, f"no claim seen in 60 s:\n{first.log_tail()}"
    finally:
        first.stop()
    assert wait_until(lambda: _no_open_claims(stack), timeout=15, interval=0.1)
    before = _embedded_at(stack, tenant)
    hashes_before = _hashes(stack, tenant)
    assert claimed, "the kill hit no claim"
    assert len(claimed) <= BATCH_SIZE
    assert claimed <= _pending(stack, tenant), "claimed rows were written"
    assert 0 < len(before) < len(hashes_before)
    # What the pipeline recorded so far (Redis loses it below): one sample per committed batch.
    computed_before = stack.queued_platform_metric(tenant, EMBEDDINGS_COMPUTED)
    assert computed_before == sum(_audit(stack, tenant).values()) == len(before)

    second = _worker(stack, "fresh")
    _start(second)
    try:
        stack.redis.kill()
        # Writes go on without Redis: their embedding requests are lost with it.
        changed = sorted(before)[:3] + sorted(claimed)[:2]
        renamed = {
            external_id
            for (external_id,) in stack.sql(
                "SELECT external_id FROM embeddings_item WHERE id = ANY(%s)", [changed]
            )
        }
        updates = [item for item in _items("item", 48, version=1) if item["external_id"] in renamed]
        answer = _post(stack, tenant, "/api/v1/items", updates + _items("late", 4))
        # Failing to queue is quick: the request never waited ~20 s on the result backend.
        assert answer.seconds < REDIS_TIMEOUT_S + OUTAGE_MARGIN_S
        receipt = answer.json()
        assert (receipt["updated"], receipt["created"]) == (len(changed), 4)
        assert receipt["embedding_queued"] == len(changed) + 4
        _ingest(stack, tenant, _events(rng, "outage", 100, start))
        stack.start_redis()
        assert _sweep_until_done(stack, tenant, timeout=90), second.log_tail()
        assert _refresh_until_done(stack, timeout=60), second.log_tail()
        # Free-text search needs a worker's answer through the restarted Redis, from
        # each web worker (a fresh connection lands on either).
        for number in range(4):
            search = {"like": [{"text": f"copper lantern {number}"}], "k": 3}
            assert _post(stack, tenant, "/api/v1/search", search).json()["count"] == 3
        assert second.running()
    finally:
        second.stop()

    hashes = _hashes(stack, tenant)
    expected = {(item_id, content) for item_id, content in hashes.items()}
    expected |= {(item_id, hashes_before[item_id]) for item_id in before}
    audit = _assert_each_content_embedded_once(stack, tenant, expected)
    after = _embedded_at(stack, tenant)
    for item_id, at in before.items():
        if item_id not in changed:
            assert after[item_id] == at, "an item committed before the kill was embedded again"
    # Every committed batch recorded its count, before Redis was lost and after.
    assert computed_before + stack.queued_platform_metric(tenant, EMBEDDINGS_COMPUTED) == sum(
        audit.values()
    )
    _assert_rollups_equal_points(stack, tenant)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_workers_killed_at_random_with_redis_restarts_each_item_embedded_once(audited, seed):
    """Worker processes killed at random while items change, Redis restarted: still once each."""
    stack = audited
    rng = random.Random(seed)
    tenant = stack.new_tenant()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=4)
    workers = [_worker(stack, f"chaos-{seed}-0")]
    _start(workers[0])
    seen: set[tuple[int, str]] = set()
    kills = 0
    try:
        for round_number in range(8):
            # New items, and new contents of some earlier ones (never an earlier content).
            items = _items(f"r{round_number}", 40)
            if round_number:
                earlier = f"r{rng.randrange(round_number)}"
                items += [item for item in _items(earlier, 40, round_number) if rng.random() < 0.3]
            _upsert(stack, tenant, items)
            seen |= set(_hashes(stack, tenant).items())
            _ingest(stack, tenant, _events(rng, f"r{round_number}", 500, start))
            _send(stack, "analytics.refresh_rollups", "default")
            time.sleep(rng.uniform(0, 3))
            roll = rng.random()
            if roll < 0.35:
                # The pool process alone: the parent sees it lost and requeues the task.
                pool = children(workers[-1].pid)
                if pool and _kill_mid_embedding(stack, tenant, workers[-1], pid=pool[0], timeout=5):
                    kills += 1
            elif roll < 0.7:
                workers[-1].kill()
                kills += 1
                workers.append(_worker(stack, f"chaos-{seed}-{round_number + 1}"))
                _start(workers[-1])
            if rng.random() < 0.5:
                stack.redis.kill()
                time.sleep(rng.uniform(0, 1))
                stack.start_redis()
        assert kills, "no worker was killed"
        assert _sweep_until_done(stack, tenant, timeout=240), workers[-1].log_tail()
        assert _refresh_until_done(stack, timeout=120), workers[-1].log_tail()
    finally:
        workers[-1].stop()
    # Contents replaced before anyone embedded them were rightly never computed.
    audit = _audit(stack, tenant)
    assert set(audit) <= seen
    expected = set(audit) | set(_hashes(stack, tenant).items())
    _assert_each_content_embedded_once(stack, tenant, expected)
    _assert_rollups_equal_points(stack, tenant)
