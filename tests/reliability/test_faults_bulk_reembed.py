"""A worker SIGKILLed in the middle of the bulk path's fill: every item still ends with one current vector.

A model change on the private stack: the tenant's items hold vectors of an old model,
which is the served one, and `manage.py reembed` (a real process, the index DDL on the
direct connection) takes the bulk path with a real Celery worker filling the next
vectors. The worker is frozen the moment its backend sits inside a fill claim (next
vector rows locked, vectors being computed, nothing written), checked to be there
still, and SIGKILLed. Items change and arrive through the API while no worker runs;
search answers from the old vectors meanwhile. A fresh worker starts, `reembed` sends
new fill tasks once the fill stalls, swaps the vectors in and rebuilds the index.
Afterwards every item holds one vector of its current content by the new model, and
triggers on the private database prove that the fill computed no (item, content) twice
and that no item's served vector was written twice for one content.
"""

import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.reliability.clients import request, wait_until
from tests.reliability.stack import DB_NAME, PrivateStack, Service, Tenant
from tests.reliability.test_faults_embeddings import (
    MODEL,
    _items,
    _start,
    _sweep_until_done,
    _upsert,
    _worker,
    audited,  # noqa: F401 (a fixture: every committed write of embeddings_item.embedding)
)

OLD = "old-model"
BATCH = 8
FILL_AUDIT_DDL = """
CREATE TABLE IF NOT EXISTS faults_fill_audit (item_id bigint NOT NULL, content_hash text NOT NULL);
CREATE OR REPLACE FUNCTION faults_audit_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO faults_fill_audit VALUES (NEW.item_id, NEW.content_hash);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER faults_fill_audit AFTER UPDATE OF embedding ON embeddings_nextvector
    FOR EACH ROW EXECUTE FUNCTION faults_audit_fill();
"""


@pytest.fixture
def fill_audited(request: pytest.FixtureRequest) -> Iterator[PrivateStack]:
    """The audited stack, with every committed next vector of a bulk fill recorded too."""
    stack: PrivateStack = request.getfixturevalue("audited")
    stack.sql(FILL_AUDIT_DDL)
    yield stack
    stack.sql(
        "DROP TRIGGER IF EXISTS faults_fill_audit ON embeddings_nextvector;"
        " DROP FUNCTION IF EXISTS faults_audit_fill(); DROP TABLE faults_fill_audit"
    )


def _as_old_model(stack: PrivateStack, tenant: Tenant) -> None:
    """Give the tenant's items vectors of the old model and make it the served one."""
    # Mostly along one axis chosen by the id, so the vectors point different ways.
    stack.sql(
        "UPDATE embeddings_item SET embedding = (SELECT ('[' || string_agg(CASE WHEN g = id %% 384"
        " + 1 THEN '1' ELSE '0.01' END, ',' ORDER BY g) || ']')::vector"
        " FROM generate_series(1, 384) g),"
        " embedded_hash = content_hash, embedding_model = %s, embedded_at = now()"
        " WHERE project_id = %s",
        [OLD, tenant.project_id],
    )
    stack.sql(
        "INSERT INTO embeddings_servedmodel (id, name, model_dir, changed_at)"
        " VALUES (1, %s, '', now()) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
        [OLD],
    )


def _filling(stack: PrivateStack) -> bool:
    """Return whether a backend holds a fill claim open (it is computing next vectors)."""
    return bool(
        stack.sql(
            "SELECT 1 FROM pg_stat_activity WHERE datname = %s"
            " AND state = 'idle in transaction' AND query LIKE %s",
            [DB_NAME, "%FROM embeddings_nextvector n JOIN embeddings_item%SKIP LOCKED%"],
        )
    )


def _locked_next_vectors(stack: PrivateStack) -> set[int]:
    with stack.connect() as connection:
        every = {
            int(row[0])
            for row in connection.execute(
                "SELECT item_id FROM embeddings_nextvector WHERE embedding IS NULL"
            )
        }
        with connection.transaction(force_rollback=True):
            free = {
                int(row[0])
                for row in connection.execute(
                    "SELECT item_id FROM embeddings_nextvector WHERE embedding IS NULL"
                    " FOR UPDATE SKIP LOCKED"
                )
            }
    return every - free


def _kill_mid_fill(stack: PrivateStack, worker: Service, timeout: float = 120) -> set[int] | None:
    """SIGKILL `worker` inside a fill claim; return the item ids it had claimed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _filling(stack):
            time.sleep(0.005)
            continue
        worker.freeze()
        if _filling(stack):
            claimed = _locked_next_vectors(stack)
            worker.kill()
            return claimed
        worker.thaw()
    return None


def _fill_audit(stack: PrivateStack) -> Counter[tuple[int, str]]:
    rows = stack.sql("SELECT item_id, content_hash FROM faults_fill_audit")
    return Counter((int(item_id), str(content)) for item_id, content in rows)


def _item_audit(stack: PrivateStack, tenant: Tenant) -> Counter[tuple[int, str]]:
    rows = stack.sql(
        "SELECT a.item_id, a.embedded_hash FROM faults_embedding_audit a"
        " JOIN embeddings_item i ON i.id = a.item_id WHERE i.project_id = %s",
        [tenant.project_id],
    )
    return Counter((int(item_id), str(content)) for item_id, content in rows)


def _similar(stack: PrivateStack, tenant: Tenant, external_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {tenant.secret}"}
    answer = request(
        stack.web_port, "GET", f"/api/v1/items/{external_id}/similar?k=5", b"", headers
    )
    assert answer.status == 200, answer.body
    body: dict[str, Any] = orjson.loads(answer.body)
    assert body["count"] == 5
    return body


def test_worker_killed_mid_bulk_fill_each_item_gets_one_current_vector(fill_audited):
    """SIGKILL inside a fill claim of `reembed`'s bulk path: the run still ends exactly once each."""
    stack = fill_audited
    tenant = stack.new_tenant()
    _upsert(stack, tenant, _items("bulk", 64))
    _as_old_model(stack, tenant)
    stack.sql("DELETE FROM faults_embedding_audit")  # the setup's writes are not the run's
    assert _similar(stack, tenant, "bulk-0")["model"] == OLD

    first = _worker(stack, "bulk-doomed")
    _start(first)
    command = Service(
        "reembed",
        [
            sys.executable,
            "manage.py",
            "reembed",
            "--batch-size",
            str(BATCH),
            "--lanes",
            "1",
            "--stall-seconds",
            "5",
            "--timeout",
            "300",
            "--direct-url",
            stack.direct_url,
        ],
        stack.root / "reembed.log",
        env=stack.app_env(LOG_LEVEL="INFO"),
    )
    command.start()
    try:
        # At least one batch committed first, so the kill leaves done and planned rows.
        assert wait_until(lambda: sum(_fill_audit(stack).values()) >= BATCH, timeout=120), (
            command.log_tail() + first.log_tail()
        )
        claimed = _kill_mid_fill(stack, first)
        assert claimed is not None, f"no fill claim seen:\n{first.log_tail()}"
    finally:
        first.stop()
    assert claimed, "the kill hit no claim"
    assert len(claimed) <= BATCH
    filled_before = _fill_audit(stack)
    assert not {item_id for item_id, _ in filled_before} & claimed, "claimed rows were written"

    # No worker: items change and arrive, and search answers from the old vectors.
    rows = stack.sql(
        "SELECT i.external_id FROM embeddings_item i JOIN embeddings_nextvector n"
        " ON n.item_id = i.id WHERE i.project_id = %s ORDER BY n.embedding IS NULL, i.id",
        [tenant.project_id],
    )
    names = [external_id for (external_id,) in rows]
    changed = {names[0], names[-1], *sorted(claimed_names(stack, claimed))[:1]}
    updates = [item for item in _items("bulk", 64, version=1) if item["external_id"] in changed]
    receipt = _upsert(stack, tenant, updates + _items("late", 2))
    assert (receipt["updated"], receipt["created"]) == (len(changed), 2)
    assert _similar(stack, tenant, "bulk-1")["model"] == OLD

    second = _worker(stack, "bulk-fresh")
    _start(second)
    try:
        assert command.process is not None
        assert command.process.wait(timeout=300) == 0, command.log_tail()
        assert "(bulk path" in command.log_tail()
        assert _sweep_until_done(stack, tenant, timeout=120), second.log_tail()
        assert _similar(stack, tenant, "bulk-1")["model"] == MODEL
    finally:
        second.stop()
        command.stop()

    items = stack.sql(
        "SELECT id, content_hash, embedded_hash, embedding_model, embedding IS NOT NULL"
        " FROM embeddings_item WHERE project_id = %s",
        [tenant.project_id],
    )
    assert len(items) == 66
    for item_id, content, embedded, model, has_vector in items:
        assert (embedded, model, has_vector) == (content, MODEL, True), item_id
    fill = _fill_audit(stack)
    assert not {pair: n for pair, n in fill.items() if n > 1}, "a next vector computed twice"
    writes = _item_audit(stack, tenant)
    assert not {pair: n for pair, n in writes.items() if n > 1}, "a vector written twice"
    assert {(int(i), str(c)) for i, c, *_ in items} <= set(writes)
    assert stack.sql("SELECT name FROM embeddings_servedmodel") == [(MODEL,)]
    assert stack.sql(
        "SELECT x.indisvalid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
        " WHERE c.relname = 'item_embedding_hnsw'"
    ) == [(True,)]
    assert not stack.sql("SELECT 1 FROM embeddings_nextvector")


def claimed_names(stack: PrivateStack, claimed: set[int]) -> set[str]:
    return {
        str(external_id)
        for (external_id,) in stack.sql(
            "SELECT external_id FROM embeddings_item WHERE id = ANY(%s)", [sorted(claimed)]
        )
    }
