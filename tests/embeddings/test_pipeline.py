"""The embedding pipeline on real workers: after-commit requests, idempotency, kills and the sweep."""

import time
from collections import Counter
from datetime import timedelta

import numpy as np
import orjson
import pytest
from celery.signals import before_task_publish
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import F
from django.test import override_settings

from analytics.celery import app
from analytics.platform_metrics import EMBEDDING_BACKLOG, EMBEDDINGS_COMPUTED, QUEUE_KEY
from analytics.redis_client import redis_client
from embeddings.models import Item
from embeddings.services import (
    EMBED_PRIORITY,
    embed_items,
    sweep_embeddings,
    upsert_items,
)
from embeddings.validation import ItemInput, embedding_input
from embeddings.worker import encode_texts, get_encoder, model_name
from tests.embeddings.helpers import item_row, post_json
from tests.embeddings.workers import Worker, create_catalogue, wait_embedded, wait_unlocked


@pytest.fixture
def published():
    """Record (task name, args, inside a transaction?) of every task this process sends."""
    sent = []

    def record(sender=None, body=None, **_):
        sent.append((sender, body[0], connection.in_atomic_block))

    before_task_publish.connect(record)
    yield sent
    before_task_publish.disconnect(record)


def embedded_times(ids):
    rows = Item.objects.filter(pk__in=ids).values_list("pk", "embedded_at")
    return {pk: at for pk, at in rows if at is not None}


def item(external_id, text="", **attributes):
    return ItemInput(external_id, f"Title {external_id}", text, attributes)


@pytest.mark.django_db(transaction=True)
def test_embeddings_are_requested_after_commit(project, published):
    """Creating an item asks for its embedding only once the transaction has committed."""
    with transaction.atomic():
        result = upsert_items(
            project_id=project.pk, items=[item("a"), item("b")], model=model_name()
        )
        assert published == []
    assert published == [("embeddings.embed_items", [sorted(result.queued)], False)]


@pytest.mark.django_db(transaction=True)
def test_nothing_is_requested_when_the_transaction_rolls_back(project, published):
    """A rolled-back upsert sends nothing."""

    def upsert_then_fail():
        with transaction.atomic():
            upsert_items(project_id=project.pk, items=[item("a")], model=model_name())
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        upsert_then_fail()
    assert published == []
    assert not Item.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_only_new_text_is_requested(project, published):
    """Changing attributes alone asks for nothing; changing the text asks again."""
    upsert_items(project_id=project.pk, items=[item("a", "old")], model=model_name())
    item_id = Item.objects.get(external_id="a").pk
    embed_items(item_ids=[item_id], encode=encode_texts, model=model_name(), batch_size=8)
    published.clear()
    upsert_items(project_id=project.pk, items=[item("a", "old", colour="red")], model=model_name())
    assert published == []
    upsert_items(project_id=project.pk, items=[item("a", "new", colour="red")], model=model_name())
    assert published == [("embeddings.embed_items", [[item_id]], False)]


@pytest.mark.django_db
def test_same_content_is_embedded_once(project):
    """Embedding twice, or after the text comes back to what was embedded, computes nothing."""
    upsert_items(
        project_id=project.pk, items=[item("a", "one"), item("b", "two")], model=model_name()
    )
    ids = sorted(Item.objects.values_list("pk", flat=True))
    encoded = []

    def counting_encode(texts):
        encoded.extend(texts)
        return encode_texts(texts)

    first = embed_items(item_ids=ids, encode=counting_encode, model=model_name(), batch_size=8)
    stamp = item_row(project, "a")["embedded_at"]
    second = embed_items(
        item_ids=ids + ids, encode=counting_encode, model=model_name(), batch_size=8
    )
    assert (first.embedded, second.embedded, second.skipped) == (2, 0, 2)
    assert encoded == ["Title a\n\none", "Title b\n\ntwo"]
    upsert_items(project_id=project.pk, items=[item("a", "changed")], model=model_name())
    upsert_items(project_id=project.pk, items=[item("a", "one")], model=model_name())
    third = embed_items(item_ids=ids, encode=counting_encode, model=model_name(), batch_size=8)
    assert third.embedded == 0
    assert len(encoded) == 2
    assert item_row(project, "a")["embedded_at"] == stamp


@pytest.mark.django_db
def test_a_task_tops_up_its_batch_with_the_oldest_pending_items(project):
    """A task embeds up to `top_up` pending items beyond its own, oldest first; their tasks find them done."""
    upsert_items(
        project_id=project.pk,
        items=[item(name, name) for name in ("a", "b", "c", "d", "e")],
        model=model_name(),
    )
    ids = dict(Item.objects.values_list("external_id", "pk"))
    encoded = []

    def counting_encode(texts):
        encoded.extend(texts)
        return encode_texts(texts)

    first = embed_items(
        item_ids=[ids["e"]], encode=counting_encode, model=model_name(), batch_size=8, top_up=2
    )
    assert (first.embedded, first.topped_up) == (3, 2)
    assert sorted(first.item_ids) == sorted([ids["a"], ids["b"], ids["e"]])
    rest = embed_items(
        item_ids=sorted(ids.values()),
        encode=counting_encode,
        model=model_name(),
        batch_size=8,
        top_up=8,
    )
    assert (rest.embedded, rest.topped_up, rest.skipped) == (2, 0, 3)
    assert Counter(encoded) == Counter(f"Title {name}\n\n{name}" for name in ids)
    assert not Item.objects.exclude(embedded_hash=F("content_hash")).exists()


@pytest.mark.django_db
def test_an_item_the_encoder_fails_on_fails_only_its_own_task(project):
    """Topping up with an item the encoder rejects still embeds the task's own items."""
    upsert_items(
        project_id=project.pk,
        items=[item("bad", "poison"), item("good", "fine")],
        model=model_name(),
    )
    ids = dict(Item.objects.values_list("external_id", "pk"))

    def picky_encode(texts):
        if any("poison" in text for text in texts):
            raise ValueError("cannot encode poison")
        return encode_texts(texts)

    result = embed_items(
        item_ids=[ids["good"]], encode=picky_encode, model=model_name(), batch_size=8, top_up=8
    )
    assert (result.embedded, result.topped_up, result.item_ids) == (1, 0, [ids["good"]])
    with pytest.raises(ValueError, match="poison"):
        embed_items(item_ids=[ids["bad"]], encode=picky_encode, model=model_name(), batch_size=8)
    assert item_row(project, "bad")["embedded_at"] is None


@pytest.mark.django_db(transaction=True)
def test_worker_embeds_created_and_changed_items(client, project, make_key, celery_worker):
    """Items posted through the API are embedded by a real worker with the real encoder."""
    key = make_key(project).secret
    payload = [
        {"external_id": "pan", "title": "Cast iron skillet", "text": "Sears steaks."},
        {"external_id": "kite", "title": "Kite", "text": "Flies in the wind."},
    ]
    assert post_json(client, "/api/v1/items", key, payload).status_code == 200
    ids = sorted(Item.objects.values_list("pk", flat=True))
    wait_embedded(ids)
    expected = get_encoder().encode([embedding_input("Cast iron skillet", "Sears steaks.")])[0]
    row = item_row(project, "pan")
    assert row["embedding_model"] == "all-MiniLM-L6-v2"
    assert np.allclose(row["embedding"], expected, atol=1e-4)
    payload[0]["text"] = "Bakes cornbread."
    post_json(client, "/api/v1/items", key, payload)
    wait_embedded(ids)
    changed = item_row(project, "pan")
    assert changed["embedded_at"] > row["embedded_at"]
    assert not np.allclose(changed["embedding"], row["embedding"], atol=1e-3)
    assert item_row(project, "kite")["embedded_at"] < changed["embedded_at"]


@pytest.mark.django_db(transaction=True)
def test_two_workers_share_the_backlog_without_doing_an_item_twice(project, tmp_path):
    """Duplicate messages on two workers: each item is computed by exactly one of them."""
    ids = create_catalogue(project, 160)
    workers = [
        Worker(tmp_path / f"w{n}.log", queue="embeddings-pair", name=f"pair{n}", batch_size=16)
        for n in (1, 2)
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        # Every chunk twice, as after a redelivery overlapping a sweep.
        results = [
            app.send_task(
                "embeddings.embed_items",
                args=[ids[start : start + 40]],
                queue="embeddings-pair",
                priority=EMBED_PRIORITY,
            )
            for start in range(0, len(ids), 40)
            for _ in range(2)
        ]
        answers = [result.get(timeout=240) for result in results]
    finally:
        for worker in workers:
            worker.stop()
    computed = Counter(item_id for answer in answers for item_id in answer["item_ids"])
    assert sorted(computed) == ids
    assert set(computed.values()) == {1}
    assert sum(answer["embedded"] for answer in answers) == len(ids)
    assert len({answer["worker"] for answer in answers if answer["embedded"]}) == 2


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_task_then_sweep_embeds_every_item_once(project, tmp_path, celery_worker):
    """SIGKILL of the worker mid-task loses its message; the sweep brings back only what is missing."""
    ids = create_catalogue(project, 200)
    worker = Worker(
        tmp_path / "doomed.log", queue="embeddings-doomed", name="doomed", batch_size=16
    )
    try:
        worker.wait_ready()
        app.send_task("embeddings.embed_items", args=[ids], queue="embeddings-doomed")
        deadline = time.monotonic() + 120
        while Item.objects.filter(pk__in=ids, embedded_at__isnull=False).count() < 16:
            assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
            time.sleep(0.02)
    finally:
        worker.kill()
    killed_at = time.time()
    wait_unlocked(ids)
    before = dict(
        Item.objects.filter(pk__in=ids, embedded_at__isnull=False).values_list("pk", "embedded_at")
    )
    assert 16 <= len(before) < len(ids)

    swept = sweep_embeddings(model=model_name(), requeue_after=timedelta(0))
    assert sorted(swept.requested) == sorted(set(ids) - set(before))
    assert swept.backlog == {project.pk: len(ids) - len(before)}
    wait_embedded(ids)

    rows = Item.objects.filter(pk__in=ids).values_list(
        "pk", "embedded_at", "embedded_hash", "content_hash"
    )
    for pk, embedded_at, embedded_hash, content in rows:
        assert embedded_hash == content
        if pk in before:
            assert embedded_at == before[pk]  # committed before the kill: never redone
        else:
            assert embedded_at is not None
            assert embedded_at.timestamp() > killed_at
    again = sweep_embeddings(model=model_name(), requeue_after=timedelta(0))
    assert (again.requested, again.backlog) == ([], {project.pk: 0})


@pytest.mark.django_db
def test_sweep_asks_again_only_for_long_lost_requests(project):
    """The sweep skips recent requests and embedded items, and asks again for old ones."""
    ids = create_catalogue(project, 3)
    Item.objects.filter(pk=ids[0]).update(embedding_requested_at=None)
    Item.objects.filter(pk=ids[1]).update(embedding_requested_at="2020-01-01T00:00:00Z")
    swept = sweep_embeddings(model=model_name(), requeue_after=timedelta(minutes=10))
    assert sorted(swept.requested) == ids[:2]
    assert swept.backlog == {project.pk: 3}
    # Asked again just now: the next sweep leaves them alone.
    assert sweep_embeddings(model=model_name(), requeue_after=timedelta(minutes=10)).requested == []


@pytest.mark.django_db(transaction=True)
def test_reembed_after_a_model_change(project, celery_worker, capsys):
    """`manage.py reembed` re-embeds every item for a new model name through the workers."""
    ids = create_catalogue(project, 12)
    embed_items(item_ids=ids, encode=encode_texts, model="old-model", batch_size=8)
    call_command("reembed", "--project", project.slug, "--timeout", "60")
    out, err = capsys.readouterr()
    assert "embedded 12 of 12 items with all-MiniLM-L6-v2" in out
    assert "100%" in err  # the progress bar
    assert set(Item.objects.filter(pk__in=ids).values_list("embedding_model", flat=True)) == {
        "all-MiniLM-L6-v2"
    }
    call_command("reembed", "--project", project.slug)
    assert "every item is already embedded" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_reembed_inline_with_force(project, capsys):
    """`reembed --inline --force` computes every item again in the command's own process."""
    ids = create_catalogue(project, 5)
    with override_settings(EMBEDDINGS_MODEL_NAME="model-b"):
        call_command("reembed", "--inline", "--force")
        stamps = embedded_times(ids)
        call_command("reembed", "--inline", "--force")
    assert "embedded 5 of 5 items with model-b" in capsys.readouterr().out
    again = embedded_times(ids)
    assert len(again) == len(stamps) == 5
    assert all(again[pk] > stamps[pk] for pk in ids)


def queued_samples(project, metric):
    """Return the values of `metric` queued for `project` by record_platform_metric."""
    samples = [orjson.loads(raw) for raw in redis_client().lrange(QUEUE_KEY, 0, -1)]
    return [
        value
        for project_id, name, value, _, _ in samples
        if (project_id, name) == (project.pk, metric)
    ]


@pytest.mark.django_db
def test_platform_metrics_of_the_pipeline(project, django_capture_on_commit_callbacks):
    """Committed batches count as embeddings computed; the sweep records the backlog gauge."""
    ids = create_catalogue(project, 3)
    assert sweep_embeddings(model=model_name(), requeue_after=timedelta(minutes=10)).requested == []
    assert queued_samples(project, EMBEDDING_BACKLOG)[-1:] == [3.0]
    with django_capture_on_commit_callbacks(execute=True):
        embed_items(item_ids=ids[:2], encode=encode_texts, model=model_name(), batch_size=8)
    assert queued_samples(project, EMBEDDINGS_COMPUTED)[-1:] == [2.0]
    sweep_embeddings(model=model_name(), requeue_after=timedelta(minutes=10))
    assert queued_samples(project, EMBEDDING_BACKLOG)[-1:] == [1.0]
