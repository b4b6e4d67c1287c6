"""`manage.py reembed` and its bulk path: the swap, the incremental path's share, search throughout, resume."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from analytics.models import Project
from analytics.refusals import Refusal
from embeddings import bulk
from embeddings.active_model import Served, served_model, target_model
from embeddings.bulk_tasks import send_fill
from embeddings.models import EmbeddingRun, Item, NextVector, ServedModel
from embeddings.services import sweep_embeddings, upsert_items
from embeddings.validation import ItemInput, embedding_input
from embeddings.worker import encode_texts, get_encoder, model_name
from tests.embeddings.helpers import get, post_json
from tests.embeddings.workers import ROOT, Worker, create_catalogue, wait_embedded
from tests.helpers import worker_environment

OLD = "old-model"
SEARCH = "/api/v1/search"


def embed_as_old_model(project: Project, ids: list[int]) -> None:
    """Store vectors of another model for `ids` and make it the served one (a model change)."""
    rng = np.random.default_rng(len(ids))
    vectors = rng.normal(size=(len(ids), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with connection.cursor() as cursor:
        cursor.execute(
            """UPDATE embeddings_item i SET embedding = v.embedding::vector,
                      embedded_hash = i.content_hash, embedding_model = %s, embedded_at = now()
               FROM unnest(%s::bigint[], %s::text[]) AS v(id, embedding) WHERE i.id = v.id""",
            [OLD, ids, ["[" + ",".join(map(str, vector)) + "]" for vector in vectors]],
        )
    ServedModel.objects.update_or_create(pk=1, defaults={"name": OLD, "model_dir": ""})


def index_valid() -> bool | None:
    with bulk.maintenance_connection(
        direct_url=None, maintenance_work_mem="64MB", workers=1
    ) as ddl:
        return bulk.index_state(ddl)


def current_rows(ids: list[int]) -> dict[int, tuple[str, str, str, bool]]:
    rows = Item.objects.filter(pk__in=ids).values_list(
        "pk", "content_hash", "embedded_hash", "embedding_model", "embedding"
    )
    return {
        pk: (content, embedded, model, vector is not None)
        for pk, content, embedded, model, vector in rows
    }


def assert_all_current(ids: list[int]) -> None:
    for pk, (content, embedded, model, has_vector) in current_rows(ids).items():
        assert (embedded, model, has_vector) == (content, model_name(), True), pk


@pytest.fixture
def nextvector_audit() -> Iterator[None]:
    """Record every committed next vector (item, content): what the fill computed."""
    with connection.cursor() as cursor:
        cursor.execute(
            """CREATE TABLE test_nextvector_audit (item_id bigint, content_hash text);
               CREATE FUNCTION test_audit_nextvector() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN INSERT INTO test_nextvector_audit VALUES (NEW.item_id, NEW.content_hash);
                     RETURN NULL; END $$;
               CREATE TRIGGER test_nextvector_audit AFTER UPDATE OF embedding
                   ON embeddings_nextvector FOR EACH ROW EXECUTE FUNCTION test_audit_nextvector();"""
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER test_nextvector_audit ON embeddings_nextvector;"
            " DROP FUNCTION test_audit_nextvector(); DROP TABLE test_nextvector_audit"
        )


def audited() -> Counter[tuple[int, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT item_id, content_hash FROM test_nextvector_audit")
        return Counter((int(item_id), str(content)) for item_id, content in cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_a_model_change_takes_the_bulk_path_and_swaps_the_vectors_in(project):
    """reembed after a model change fills next vectors, swaps them in and rebuilds the index."""
    ids = create_catalogue(project, 30)
    embed_as_old_model(project, ids)
    out = StringIO()
    call_command("reembed", "--inline", "--batch-size", "8", stdout=out, stderr=StringIO())
    assert "embedded 30 of 30 items with all-MiniLM-L6-v2" in out.getvalue()
    assert "(bulk path" in out.getvalue()
    assert_all_current(ids)
    items = Item.objects.filter(pk__in=ids).order_by("pk")
    expected = get_encoder().encode([embedding_input(i.title, i.text) for i in items])
    stored = np.stack([np.asarray(i.embedding, dtype=np.float32) for i in items])
    assert np.allclose(stored, expected, atol=1e-4)
    assert served_model(connection) == Served(model_name(), "")
    assert index_valid() is True
    assert not NextVector.objects.exists()
    assert EmbeddingRun.objects.get().state == EmbeddingRun.State.DONE
    call_command("reembed", "--inline", stdout=out)
    assert "every item is already embedded" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_model_change_refuses_a_project_scope_or_the_incremental_path(project):
    """A model change re-embeds every project by the bulk path; asking otherwise is an error."""
    embed_as_old_model(project, create_catalogue(project, 3))
    with pytest.raises(Exception, match="run it without --project"):
        call_command("reembed", "--project", project.slug, "--inline")
    with pytest.raises(Exception, match="a model change takes the bulk path"):
        call_command("reembed", "--path", "incremental", "--inline")
    assert not EmbeddingRun.objects.exists()


@pytest.mark.django_db
def test_one_bulk_run_at_a_time(project):
    """A second run while one is in progress is refused, naming the way out."""
    create_catalogue(project, 2)
    bulk.start_run(target=target_model(), project_id=None, force=True)
    with pytest.raises(Refusal, match="another reembed run is in progress: run reembed to resume"):
        bulk.start_run(target=target_model(), project_id=None, force=True)


def test_the_path_follows_the_share_of_the_table():
    """Bulk from a quarter of the table and 2,000 items, or for any model change."""
    assert (
        bulk.choose_path(bulk.Candidates(count=2_500, table=10_000, model_change=False)) == "bulk"
    )
    assert bulk.choose_path(bulk.Candidates(count=2_400, table=10_000, model_change=False)) == (
        "incremental"
    )
    assert bulk.choose_path(bulk.Candidates(count=1_999, table=2_000, model_change=False)) == (
        "incremental"
    )
    assert bulk.choose_path(bulk.Candidates(count=3, table=10, model_change=True)) == "bulk"


@pytest.mark.django_db
def test_the_incremental_path_leaves_what_a_bulk_run_covers(project):
    """During a model change the sweep and upserts ask only for what no run will deliver."""
    ids = create_catalogue(project, 6)
    embed_as_old_model(project, ids)
    target = model_name()
    # Every request long lost, so the sweep would ask again for anything it finds.
    Item.objects.update(embedding_requested_at=None)
    # A pending model change: old vectors wait for `reembed`, none is asked for.
    assert sweep_embeddings(model=target, requeue_after=timedelta(0)).requested == []
    run = bulk.start_run(target=target_model(), project_id=None, force=False)
    assert run.planned == 6
    fresh = upsert_items(
        project_id=project.pk, items=[ItemInput("new", "New", "", {})], model=target
    )
    assert len(fresh.queued) == 1  # created after the plan: the incremental path's
    # Changed while planned: the fill will read the new text when it gets there.
    items = {i.external_id: i for i in Item.objects.filter(pk__in=ids)}
    changed = upsert_items(
        project_id=project.pk, items=[ItemInput("i-0", "Item 0", "new words", {})], model=target
    )
    assert changed.queued == []
    filled = bulk.fill_next_vectors(run_id=run.pk, encode=encode_texts, model=target)
    assert filled.filled == 6
    # Changed after its next vector was computed: that vector is of the old text.
    again = upsert_items(
        project_id=project.pk, items=[ItemInput("i-1", "Item 1", "other words", {})], model=target
    )
    assert again.queued == [items["i-1"].pk]
    Item.objects.update(embedding_requested_at=None)
    swept = sweep_embeddings(model=target, requeue_after=timedelta(0))
    assert sorted(swept.requested) == sorted([*fresh.queued, items["i-1"].pk])


def search_models(client: Any, key: str) -> list[str]:
    """Search by an item, then by free text; both must answer 200 with k results.

    Return the model each answer came from, in order (two requests: a swap may fall between).
    """
    similar = get(client, "/api/v1/items/i-0/similar", key, k=5)
    assert similar.status_code == 200, similar.json()
    assert similar.json()["count"] == 5
    text = post_json(client, SEARCH, key, {"like": [{"text": "a cast iron skillet"}], "k": 5})
    assert text.status_code == 200, text.json()
    assert text.json()["count"] == 5
    return [str(similar.json()["model"]), str(text.json()["model"])]


def search_answers(client: Any, key: str) -> str:
    """`search_models` where nothing can swap meanwhile: both answers of one model, returned."""
    similar_model, text_model = search_models(client, key)
    assert text_model == similar_model
    return similar_model


@pytest.mark.django_db(transaction=True)
@override_settings(EMBEDDINGS_QUERY_TIMEOUT=60)
def test_search_answers_in_every_phase_of_a_bulk_run(client, project, make_key, celery_worker):
    """Before, while workers fill, without the index, after the swap and after the build: k results."""
    key = make_key(project).secret
    ids = create_catalogue(project, 40)
    embed_as_old_model(project, ids)
    assert search_answers(client, key) == OLD
    run = bulk.start_run(target=target_model(), project_id=None, force=False)
    for _ in range(2):
        send_fill(run.pk, 4)
    searched_while_filling = 0
    changed = False
    deadline = time.monotonic() + 180
    while bulk.run_progress(run.pk).left:
        assert time.monotonic() < deadline, "the workers stopped filling"
        assert search_answers(client, key) == OLD
        searched_while_filling += 1
        if not changed:
            # Changed and deleted during the fill: still one current vector each at the end.
            post_json(client, "/api/v1/items", key, [{"external_id": "i-5", "title": "Five"}])
            client.delete("/api/v1/items/i-6", HTTP_AUTHORIZATION=f"Bearer {key}")
            changed = True
        time.sleep(0.05)
    assert searched_while_filling
    EmbeddingRun.objects.filter(pk=run.pk).update(state=EmbeddingRun.State.APPLYING)
    with bulk.maintenance_connection(
        direct_url=None, maintenance_work_mem="64MB", workers=1
    ) as ddl:
        bulk.drop_index(ddl)
        assert bulk.index_state(ddl) is None
        assert search_answers(client, key) == OLD  # exact scans
        bulk.move_next_vectors(EmbeddingRun.objects.get(pk=run.pk))
        assert search_answers(client, key) == model_name()  # the new space, still exact
        run.refresh_from_db()
        bulk.request_the_rest(run)
        bulk.build_index(ddl)
        assert bulk.index_state(ddl) is True
        bulk.finish_run(run)
    assert search_answers(client, key) == model_name()
    left = list(Item.objects.filter(project=project).values_list("pk", flat=True))
    assert len(left) == 39
    wait_embedded(left, timeout=120)
    assert_all_current(left)


@pytest.mark.django_db(transaction=True)
@override_settings(EMBEDDINGS_QUERY_TIMEOUT=60)
def test_search_never_fails_while_reembed_runs_with_workers(
    client, project, make_key, celery_worker
):
    """The command itself, its fill in the workers: every search meanwhile answers k results."""
    key = make_key(project).secret
    ids = create_catalogue(project, 40)
    embed_as_old_model(project, ids)
    failure: list[BaseException] = []

    def reembed() -> None:
        try:
            call_command(
                "reembed",
                "--batch-size",
                "4",
                "--timeout",
                "180",
                stdout=StringIO(),
                stderr=StringIO(),
            )
        except BaseException as exc:  # reported by the test below
            failure.append(exc)
        finally:
            connection.close()

    command = threading.Thread(target=reembed)
    command.start()
    models = []
    while command.is_alive():
        models.extend(search_models(client, key))
        time.sleep(0.1)  # leave the cores to the workers
    command.join()
    assert not failure, failure
    models.append(search_answers(client, key))
    assert models[-1] == model_name()
    # Never a model other than the two, and never back once swapped.
    assert set(models) <= {OLD, model_name()}
    first_new = models.index(model_name())
    assert set(models[first_new:]) == {model_name()}
    assert_all_current(ids)


@pytest.mark.django_db(transaction=True)
def test_reembed_resumes_after_a_kill_without_computing_anything_twice(
    client, project, make_key, nextvector_audit
):
    """SIGKILL of `reembed --inline` mid-fill: search still answers; a rerun finishes the rest."""
    key = make_key(project).secret
    ids = create_catalogue(project, 200)
    embed_as_old_model(project, ids)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "reembed", "--inline", "--batch-size", "4", "-v", "0"],
        cwd=ROOT,
        env=worker_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while sum(audited().values()) < 8:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the fill did not start"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGSTOP)
        run = EmbeddingRun.objects.get()
        assert bulk.run_progress(run.pk).left > 0, "the fill ended before the kill"
    finally:
        process.kill()
        process.wait()
    done_before = audited()
    assert set(done_before.values()) == {1}
    # Killed with the run half-filled: search still answers from the served vectors.
    similar = get(client, "/api/v1/items/i-0/similar", key, k=5)
    assert (similar.status_code, similar.json()["count"], similar.json()["model"]) == (200, 5, OLD)

    out, err = StringIO(), StringIO()
    call_command("reembed", "--inline", "--batch-size", "16", stdout=out, stderr=err)
    assert f"resuming run {run.pk} (filling, 200 items" in err.getvalue()
    assert "embedded 200 of 200 items" in out.getvalue()
    done = audited()
    assert set(done.values()) == {1}, "a next vector was computed twice"
    assert set(done) >= set(done_before)
    assert len(done) == 200
    assert_all_current(ids)
    assert index_valid() is True


@pytest.mark.django_db(transaction=True)
def test_reembed_resumes_an_interrupted_swap_and_index_build(project):
    """Killed after dropping the index, or leaving an invalid one mid-build: a rerun finishes."""
    ids = create_catalogue(project, 12)
    embed_as_old_model(project, ids)
    run = bulk.start_run(target=target_model(), project_id=None, force=False)
    bulk.fill_next_vectors(run_id=run.pk, encode=encode_texts, model=model_name())
    EmbeddingRun.objects.filter(pk=run.pk).update(state=EmbeddingRun.State.APPLYING)
    with bulk.maintenance_connection(
        direct_url=None, maintenance_work_mem="64MB", workers=1
    ) as ddl:
        bulk.drop_index(ddl)
    err = StringIO()
    call_command("reembed", "--inline", stdout=StringIO(), stderr=err)
    assert f"resuming run {run.pk} (applying, 12 items" in err.getvalue()
    assert_all_current(ids)
    assert index_valid() is True
    # A build killed half-way leaves the index invalid (the planner ignores it).
    EmbeddingRun.objects.filter(pk=run.pk).update(state=EmbeddingRun.State.INDEXING)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass",
            [bulk.INDEX_NAME],
        )
    assert index_valid() is False
    err = StringIO()
    call_command("reembed", "--inline", stdout=StringIO(), stderr=err)
    assert f"resuming run {run.pk} (indexing" in err.getvalue()
    assert index_valid() is True
    assert EmbeddingRun.objects.get(pk=run.pk).state == EmbeddingRun.State.DONE


@pytest.mark.django_db(transaction=True)
def test_progress_is_one_plain_line_per_bar_off_a_terminal(project, capsys):
    """Written to a file or a pipe, each progress bar is its final state once, never CR redraws."""
    embed_as_old_model(project, create_catalogue(project, 12))
    call_command("reembed", "--inline", "--batch-size", "2")
    err = capsys.readouterr().err
    assert "\r" not in err
    fill = [line for line in err.splitlines() if line.startswith("embedding with")]
    assert len(fill) == 1
    assert "100%" in fill[0]
    assert "12.0/12.0" in fill[0]


def test_the_index_ddl_refuses_pgbouncer_without_a_direct_url(settings):
    """Through PgBouncer the bulk path's DDL needs the primary's own URL, and says so."""
    settings.DATABASE_PGBOUNCER = True
    with pytest.raises(Refusal, match="pass --direct-url with the primary's own URL"):
        bulk.maintenance_connection(direct_url=None, maintenance_work_mem="64MB", workers=1)


@pytest.mark.django_db(transaction=True)
def test_workers_load_the_served_model_while_a_change_waits(project, tmp_path):
    """An embedding worker started during a pending model change loads the served model too."""
    embed_as_old_model(project, create_catalogue(project, 1))
    worker = Worker(tmp_path / "w.log", queue="embeddings", name="served", batch_size=8)
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 120
        while (
            b"served model old-model loaded beside all-MiniLM-L6-v2" not in worker.log.read_bytes()
        ):
            assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        worker.stop()
