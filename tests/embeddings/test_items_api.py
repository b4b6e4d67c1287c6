"""POST/GET/DELETE /api/v1/items: upsert by external id, validation, limits, tenants."""

import gzip
import hashlib

import orjson
import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from analytics.models import Membership
from embeddings.models import Item
from embeddings.services import mark_for_reembedding
from embeddings.worker import model_name
from tests.embeddings.helpers import get, item_row, post_json, set_embeddings, unit

pytestmark = pytest.mark.django_db
ITEMS = "/api/v1/items"


@pytest.fixture
def key(project, make_key):
    return make_key(project, scopes=("read", "write")).secret


@pytest.fixture
def read_key(project, make_key):
    return make_key(project, scopes=("read",)).secret


def book(external_id, **fields):
    return {"external_id": external_id, "title": f"Book {external_id}", **fields}


def test_upsert_creates_items(client, project, key):
    """A batch creates its items, says so per item, and stores the hash of title and text."""
    response = post_json(
        client,
        ITEMS,
        key,
        {
            "items": [
                book("b-1", text="A cosy mystery.", attributes={"category": "books", "year": 2021}),
                book("b-2"),
            ]
        },
    )
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "embedding_queued": 2,
        "items": [
            {"external_id": "b-1", "status": "created"},
            {"external_id": "b-2", "status": "created"},
        ],
    }
    row = item_row(project, "b-1")
    assert row["title"] == "Book b-1"
    assert row["text"] == "A cosy mystery."
    assert row["attributes"] == {"category": "books", "year": 2021}
    assert row["content_hash"] == hashlib.sha256(b"Book b-1\n\nA cosy mystery.").hexdigest()
    assert row["embedding"] is None
    assert item_row(project, "b-2")["content_hash"] == hashlib.sha256(b"Book b-2").hexdigest()


def test_upsert_updates_replaces_and_skips_unchanged(client, project, key):
    """A second upsert replaces whole items, leaves identical ones alone, and re-embeds only new text."""
    post_json(
        client, ITEMS, key, [book("b-1", text="one", attributes={"a": 1}), book("b-2"), book("b-3")]
    )
    set_embeddings(project, {"b-1": unit(1), "b-2": unit(0, 1), "b-3": unit(0, 0, 1)})
    before = Item.objects.get(project=project, external_id="b-3").updated_at
    response = post_json(
        client,
        ITEMS,
        key,
        [
            book("b-1", attributes={"a": 2}),  # text omitted: replaced by ""
            book("b-2", attributes={"a": 2}),  # attributes only: no new embedding
            book("b-3"),  # identical
            book("b-4"),
        ],
    )
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"]) == (1, 2, 1)
    assert body["embedding_queued"] == 2  # b-1 (new text) and b-4 (new item)
    assert [entry["status"] for entry in body["items"]] == [
        "updated",
        "updated",
        "unchanged",
        "created",
    ]
    assert item_row(project, "b-1")["text"] == ""
    assert item_row(project, "b-2")["attributes"] == {"a": 2}
    assert Item.objects.get(project=project, external_id="b-3").updated_at == before
    b2 = item_row(project, "b-2")
    assert b2["embedded_hash"] == b2["content_hash"]


INVALID_ITEMS = [
    ({"title": "t"}, "external_id: required"),
    ({"external_id": "x"}, "title: required"),
    ({"external_id": "", "title": "t"}, "external_id: must not be empty"),
    ({"external_id": " x", "title": "t"}, "external_id: ' x' starts or ends with whitespace"),
    ({"external_id": "x\ny", "title": "t"}, "external_id: contains a control character"),
    ({"external_id": "x" * 201, "title": "t"}, "external_id: longer than 200 characters"),
    ({"external_id": ["x"], "title": "t"}, "external_id: must be a string, not an array"),
    ({"external_id": "x", "title": "   "}, "title: must not be blank"),
    ({"external_id": "x", "title": "t" * 501}, "title: longer than 500 characters"),
    ({"external_id": "x", "title": "t", "text": "a\x00b"}, "text: contains a control character"),
    ({"external_id": "x", "title": "t", "text": 5}, "text: must be a string, not a number"),
    ({"external_id": "x", "title": "t", "attributes": []}, "attributes: must be an object"),
    ({"external_id": "x", "title": "t", "attributes": {"a": {"b": 1}}}, "attributes.a: must be"),
    (
        {"external_id": "x", "title": "t", "attributes": {"a:b": 1}},
        "attributes: name 'a:b' must not contain ':'",
    ),
    (
        {"external_id": "x", "title": "t", "attributes": {"a": "\x00"}},
        "attributes.a: contains a NUL",
    ),
    ({"external_id": "x", "title": "t", "attributes": {"a": [[1]]}}, "attributes.a[0]: must be"),
    ({"external_id": "x", "title": "t", "colour": "red"}, "colour: unknown field"),
    ("x", "item: must be an object, not a string"),
]


@pytest.mark.parametrize(("item", "message"), INVALID_ITEMS)
def test_invalid_item_refuses_the_whole_batch(client, project, key, item, message):
    """One invalid item gets a 400 naming its index and field, and no item of the batch is written."""
    response = post_json(client, ITEMS, key, [book("ok-1"), item])
    assert response.status_code == 400
    body = response.json()
    assert "nothing was written" in body["error"]
    assert body["detail"][0]["index"] == 1
    assert body["detail"][0]["error"].startswith(message), body["detail"]
    assert not Item.objects.filter(project=project).exists()


def test_repeated_external_id_is_refused(client, project, key):
    """An external id twice in one batch is refused, naming both positions."""
    response = post_json(client, ITEMS, key, [book("a"), book("b"), book("a")])
    assert response.status_code == 400
    assert response.json()["detail"] == [
        {"index": 2, "error": "external_id: 'a' repeats item 0 of this batch"}
    ]
    assert not Item.objects.exists()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"{not json", "application/json", 400, "body is not valid JSON"),
        (b"[]", "application/json", 400, "no items"),
        (b'{"items": 3}', "application/json", 400, "body must be a JSON array"),
        (b'"\\ud800"', "application/json", 400, "body is not valid JSON"),
        (b"[]", "text/plain", 415, "Content-Type 'text/plain' is not supported"),
    ],
)
def test_malformed_bodies(client, key, body, content_type, status, message):
    """Bodies that are not a JSON batch get a 4xx saying why."""
    response = client.generic(
        "POST", ITEMS, body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == status
    assert response.json()["error"].startswith(message)


def test_limits(client, project, key):
    """Too many items or too many bytes is a 413 naming the limit; nothing is written."""
    with override_settings(ITEMS_MAX_PER_REQUEST=3):
        response = post_json(client, ITEMS, key, [book(f"b-{i}") for i in range(4)])
    assert response.status_code == 413
    assert response.json()["error"] == "4 items in one request, at most 3 allowed"
    with override_settings(ITEMS_MAX_BODY_BYTES=100):
        response = post_json(client, ITEMS, key, [book("b-1", text="x" * 200)])
    assert response.status_code == 413
    assert "exceeds the limit of 100 bytes" in response.json()["error"]
    assert not Item.objects.filter(project=project).exists()


def test_gzip_body(client, project, key):
    """A gzip-encoded batch is accepted."""
    response = client.generic(
        "POST",
        ITEMS,
        gzip.compress(orjson.dumps([book("g-1")])),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 200
    assert Item.objects.filter(project=project, external_id="g-1").exists()


def test_integer_external_id_is_read_as_text(client, project, key):
    """An integer external id is stored as its decimal string, as the `item` of events is."""
    post_json(client, ITEMS, key, [{"external_id": 42, "title": "Answer"}])
    assert get(client, f"{ITEMS}/42", key).json()["title"] == "Answer"


def test_writes_need_a_write_key(client, project, read_key):
    """A read key, no key, or a member's session cannot write items."""
    assert post_json(client, ITEMS, read_key, [book("b")]).status_code == 403
    assert post_json(client, ITEMS, None, [book("b")]).status_code == 401
    user = User.objects.create_user("reader", password="pw")
    Membership.objects.create(project=project, user=user)
    client.force_login(user)
    assert post_json(client, f"{ITEMS}?project=acme", None, [book("b")]).status_code == 403
    assert not Item.objects.exists()


def test_get_one_item(client, project, key, read_key):
    """GET returns the item and the state of its embedding."""
    post_json(client, ITEMS, key, [book("b-1", text="t", attributes={"category": "books"})])
    body = get(client, f"{ITEMS}/b-1", read_key).json()
    assert body["external_id"] == "b-1"
    assert body["text"] == "t"
    assert body["attributes"] == {"category": "books"}
    assert body["embedding"] == {"status": "pending", "model": None, "embedded_at": None}
    set_embeddings(project, {"b-1": unit(1)})
    embedding = get(client, f"{ITEMS}/b-1", read_key).json()["embedding"]
    assert embedding["status"] == "current"
    assert embedding["model"] == "all-MiniLM-L6-v2"
    post_json(client, ITEMS, key, [book("b-1", text="new text")])
    assert get(client, f"{ITEMS}/b-1", read_key).json()["embedding"]["status"] == "stale"
    assert get(client, f"{ITEMS}/nope", read_key).status_code == 404


def test_forced_reembedding_is_stale_in_the_api_and_the_admin(client, project, key, read_key):
    """After mark_for_reembedding(force=True) the old vector is "stale", never "pending", everywhere."""
    post_json(client, ITEMS, key, [book("b-1", text="t")])
    set_embeddings(project, {"b-1": unit(1)})
    mark_for_reembedding(model=model_name(), project_id=project.pk, force=True)
    assert get(client, f"{ITEMS}/b-1", read_key).json()["embedding"]["status"] == "stale"
    listed = get(client, ITEMS, read_key).json()["items"]
    assert [item["embedded"] for item in listed] == [False]
    admin = User.objects.create_superuser("admin", password="pw")
    client.force_login(admin)
    page = client.get("/admin/embeddings/item/")
    assert page.status_code == 200
    assert b'<td class="field-embedding_state">stale</td>' in page.content


def test_external_ids_with_slashes(client, project, key):
    """An external id holding slashes is reachable under its path, as is its similar list."""
    post_json(client, ITEMS, key, [book("shop/sku/1"), book("shop/sku/2")])
    set_embeddings(project, {"shop/sku/1": unit(1), "shop/sku/2": unit(1, 1)})
    assert get(client, f"{ITEMS}/shop/sku/1", key).json()["external_id"] == "shop/sku/1"
    similar = get(client, f"{ITEMS}/shop/sku/1/similar", key).json()
    assert [r["external_id"] for r in similar["results"]] == ["shop/sku/2"]


def test_delete(client, project, key, read_key):
    """DELETE removes the item (204), then it is 404; a read key may not delete."""
    post_json(client, ITEMS, key, [book("b-1")])
    assert client.delete(f"{ITEMS}/b-1", HTTP_AUTHORIZATION=f"Bearer {read_key}").status_code == 403
    assert client.delete(f"{ITEMS}/b-1", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 204
    assert get(client, f"{ITEMS}/b-1", key).status_code == 404
    assert client.delete(f"{ITEMS}/b-1", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 404


def test_list_searches_titles(client, project, key, read_key):
    """?q= matches every word in titles or ids, case-insensitively, titles starting with it first."""
    post_json(
        client,
        ITEMS,
        key,
        [
            {"external_id": "k-1", "title": "Cast iron pan", "attributes": {"category": "kitchen"}},
            {"external_id": "k-2", "title": "Large cast iron skillet"},
            {"external_id": "k-3", "title": "Garden hose"},
            {"external_id": "k-4", "title": "100% cotton apron"},
        ],
    )
    set_embeddings(project, {"k-1": unit(1)})
    body = get(client, ITEMS, read_key, q="CAST iron").json()
    assert body["items"] == [
        {
            "external_id": "k-1",
            "title": "Cast iron pan",
            "attributes": {"category": "kitchen"},
            "embedded": True,
        },
        {
            "external_id": "k-2",
            "title": "Large cast iron skillet",
            "attributes": {},
            "embedded": False,
        },
    ]
    assert [i["external_id"] for i in get(client, ITEMS, read_key, q="k-3").json()["items"]] == [
        "k-3"
    ]
    assert [i["external_id"] for i in get(client, ITEMS, read_key, q="100%").json()["items"]] == [
        "k-4"
    ]
    assert len(get(client, ITEMS, read_key, limit=2).json()["items"]) == 2
    assert get(client, ITEMS, read_key, limit=0).status_code == 400


def test_member_session_reads(client, project, key):
    """A logged-in member reads items of their project with ?project=<slug>."""
    post_json(client, ITEMS, key, [book("b-1")])
    user = User.objects.create_user("member", password="pw")
    Membership.objects.create(project=project, user=user)
    client.force_login(user)
    assert client.get(f"{ITEMS}/b-1", {"project": "acme"}).json()["external_id"] == "b-1"
    assert len(client.get(ITEMS, {"project": "acme"}).json()["items"]) == 1
    assert client.get(ITEMS, {"project": "globex"}).status_code == 403


def test_tenants_are_isolated(client, project, other_project, make_key, key):
    """Another project's key never sees, lists, overwrites or deletes this project's items."""
    post_json(client, ITEMS, key, [book("b-1", text="mine")])
    set_embeddings(project, {"b-1": unit(1)})
    other = make_key(other_project).secret
    assert get(client, f"{ITEMS}/b-1", other).status_code == 404
    assert get(client, ITEMS, other).json() == {"items": []}
    assert get(client, f"{ITEMS}/b-1/similar", other).status_code == 404
    assert client.delete(f"{ITEMS}/b-1", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 404
    response = post_json(client, ITEMS, other, [book("b-1", text="theirs")])
    assert response.json()["created"] == 1  # their own item with the same external id
    assert item_row(project, "b-1")["text"] == "mine"
    assert item_row(other_project, "b-1")["text"] == "theirs"
    assert get(client, f"{ITEMS}/b-1", key).json()["text"] == "mine"


def test_upsert_query_count_is_constant(client, project, key, django_assert_num_queries):
    """An upsert costs the same queries for 1 item as for 200."""
    post_json(client, ITEMS, key, [book("warm-up")])
    with django_assert_num_queries(4) as one:
        post_json(client, ITEMS, key, [book("one")])
    with django_assert_num_queries(len(one.captured_queries)):
        post_json(client, ITEMS, key, [book(f"many-{i}") for i in range(200)])
    assert Item.objects.filter(project=project).count() == 202


def test_read_query_counts_are_constant(client, project, key, django_assert_num_queries):
    """Listing 1 or 20 items, and reading one, cost a fixed number of queries."""
    post_json(client, ITEMS, key, [book(f"b-{i:02d}") for i in range(20)])
    with django_assert_num_queries(2):  # the key, then the items
        assert len(get(client, ITEMS, key, limit=1).json()["items"]) == 1
    with django_assert_num_queries(2):
        assert len(get(client, ITEMS, key, limit=20).json()["items"]) == 20
    with django_assert_num_queries(2):
        assert get(client, f"{ITEMS}/b-01", key).status_code == 200
