"""Similar items and search by example over vectors of known geometry (pgvector, HNSW)."""

import json

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import override_settings

from analytics.models import Membership
from embeddings.models import Item, ServedModel
from embeddings.queries import nearest_items
from embeddings.validation import AttributeFilter
from embeddings.worker import model_name
from tests.embeddings.helpers import get, post_json, set_embeddings, unit

pytestmark = pytest.mark.django_db
ITEMS, SEARCH = "/api/v1/items", "/api/v1/search"


@pytest.fixture
def key(project, make_key):
    return make_key(project).secret


@pytest.fixture
def catalogue(client, project, key):
    """Six items around the first two axes, with categories, tags and years."""
    items = {
        "a": ({"category": "books", "year": 2021}, unit(1, 0)),
        "b": ({"category": "books", "tags": ["new", "sale"]}, unit(1, 0.2)),
        "c": ({"category": "toys", "year": "2021"}, unit(1, 0.5)),
        # Not (1, 1): p and q would tie for third nearest to a, and HNSW returns tied
        # items at the k-th place in the order of its graph, which changes per build.
        "p": ({"category": "books"}, unit(1, 0.9)),
        "q": ({"category": "music", "tags": ["sale"]}, unit(1, -1)),
        "z": ({"category": "garden"}, unit(-1, 0)),
    }
    payload = [
        {"external_id": name, "title": f"Item {name}", "attributes": attributes}
        for name, (attributes, _) in items.items()
    ]
    assert post_json(client, ITEMS, key, payload).status_code == 200
    set_embeddings(project, {name: vector for name, (_, vector) in items.items()})
    return {name: vector for name, (_, vector) in items.items()}


def ids(response):
    assert response.status_code == 200, response.json()
    return [result["external_id"] for result in response.json()["results"]]


def test_similar_ranks_by_cosine_and_excludes_the_item(client, key, catalogue):
    """The nearest items come best first with their cosine similarity; the item itself is left out."""
    response = get(client, f"{ITEMS}/a/similar", key, k=3)
    body = response.json()
    assert ids(response) == ["b", "c", "p"]
    assert body["k"] == 3
    assert body["count"] == 3
    assert body["matched"] is None
    assert body["model"] == "all-MiniLM-L6-v2"
    first = body["results"][0]
    assert first["title"] == "Item b"
    assert first["attributes"] == {"category": "books", "tags": ["new", "sale"]}
    assert first["score"] == pytest.approx(float(catalogue["a"] @ catalogue["b"]), abs=1e-5)
    assert "trend" not in first


def test_fewer_than_k_says_how_many_matched(client, key, catalogue):
    """With fewer matches than k, the response says how many items passed the filter."""
    body = get(client, f"{ITEMS}/a/similar", key, k=10, where="category:books").json()
    assert [r["external_id"] for r in body["results"]] == ["b", "p"]
    assert (body["count"], body["matched"]) == (2, 2)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (["category:books"], ["b", "p"]),
        (["category:books,toys"], ["b", "c", "p"]),
        (["category:in(toys,music)"], ["c", "q"]),
        (["tags:sale"], ["b", "q"]),
        (["tags:sale", "category:music"], ["q"]),
        (["year:2021"], ["c"]),
        (["category:none"], []),
    ],
)
def test_query_string_filters(client, key, catalogue, where, expected):
    """where=key:value filters (AND when repeated, OR for listed values, lists hold, numbers as text too)."""
    response = get(client, f"{ITEMS}/a/similar", key, k=5, where=where)
    assert ids(response) == expected


def test_json_filters_match_exact_values(client, key, catalogue):
    """In a search body, `where` matches exact JSON values, a list meaning any of them."""
    search = {"like": ["a"], "k": 5}
    assert ids(post_json(client, SEARCH, key, {**search, "where": {"year": 2021}})) == []
    assert ids(post_json(client, SEARCH, key, {**search, "where": {"year": "2021"}})) == ["c"]
    both = {**search, "where": {"category": ["books", "music"]}}
    assert ids(post_json(client, SEARCH, key, both)) == ["b", "p", "q"]


def test_unlike_moves_the_query_away(client, key, catalogue):
    """A negative example turns the query to avg(like) + (avg(like) - avg(unlike)), as Qdrant's."""
    where = {"category": ["books", "music"]}
    liked = post_json(client, SEARCH, key, {"like": ["a"], "where": where, "k": 2}).json()
    assert [r["external_id"] for r in liked["results"]][:1] == ["b"]
    body = post_json(
        client, SEARCH, key, {"like": ["a"], "unlike": ["b"], "where": where, "k": 3}
    ).json()
    # 2a - b points below the first axis: q (1, -1) now beats p (1, 0.9); a and b are excluded.
    assert [r["external_id"] for r in body["results"]] == ["q", "p"]
    query = 2 * catalogue["a"] - catalogue["b"]
    query /= np.linalg.norm(query)
    assert body["results"][0]["score"] == pytest.approx(float(query @ catalogue["q"]), abs=1e-5)


def test_several_likes_are_averaged(client, key, catalogue):
    """Two positive examples search around their mean; both are left out of the results."""
    body = post_json(client, SEARCH, key, {"like": ["p", "q"], "k": 2}).json()
    assert [r["external_id"] for r in body["results"]] == ["a", "b"]


def test_examples_that_are_missing_or_not_embedded(client, project, key, catalogue):
    """Unknown examples are a 422 and unembedded ones a 409, each naming the example."""
    post_json(client, ITEMS, key, [{"external_id": "fresh", "title": "Not embedded yet"}])
    response = post_json(client, SEARCH, key, {"like": ["a", "nope"], "unlike": ["fresh"]})
    assert response.status_code == 422
    assert response.json()["detail"] == [{"field": "like[1]", "error": "no item 'nope'"}]
    response = post_json(client, SEARCH, key, {"like": ["a"], "unlike": ["fresh"]})
    assert response.status_code == 409
    assert response["Retry-After"] == "5"
    assert response.json()["detail"] == [
        {"field": "unlike[0]", "error": "item 'fresh' not embedded yet"}
    ]
    similar = get(client, f"{ITEMS}/fresh/similar", key)
    assert similar.status_code == 409
    assert similar.json()["error"] == "item 'fresh' is not embedded yet; retry shortly"
    assert get(client, f"{ITEMS}/nope/similar", key).status_code == 404


def test_search_answers_from_the_served_model_until_reembed_swaps(client, project, key, catalogue):
    """A new model in the settings changes nothing in search until `reembed` swaps its vectors in."""
    # As the migration left it (a transactional test's flush may have emptied the table).
    ServedModel.objects.update_or_create(pk=1, defaults={"name": model_name()})
    before = get(client, f"{ITEMS}/a/similar", key, k=5).json()
    with override_settings(EMBEDDINGS_MODEL_NAME="another-model"):
        during = get(client, f"{ITEMS}/a/similar", key, k=5)
        assert during.status_code == 200
        assert during.json() == before
        assert during.json()["model"] == before["model"] == "all-MiniLM-L6-v2"
        # The item's own state speaks of the target model: its vector is stale for it.
        assert get(client, f"{ITEMS}/a", key).json()["embedding"]["status"] == "stale"
    # Vectors of neither the served model answer nor serve as examples.
    Item.objects.filter(project=project, external_id="b").update(embedding_model="old-model")
    assert "b" not in ids(get(client, f"{ITEMS}/a/similar", key, k=5))
    assert get(client, f"{ITEMS}/b/similar", key).status_code == 409


INVALID_SEARCHES = [
    ({}, "like", "must be a non-empty array"),
    ({"like": []}, "like", "must be a non-empty array"),
    ({"like": "a"}, "like", "must be a non-empty array"),
    ({"like": ["a"] * 21}, "like", "21 examples, at most 20 allowed"),
    ({"like": [3.5]}, "like[0]", "must be a string, not a number"),
    ({"like": [{"id": "a"}]}, "like[0]", 'an object example must be exactly {"text": ...}'),
    ({"like": [{"text": ""}]}, "like[0].text", "must not be blank"),
    ({"like": [{"text": "x" * 2001}]}, "like[0].text", "longer than 2000 characters"),
    ({"like": ["a"], "unlike": ["a"]}, "unlike[0]", "'a' is also a positive example"),
    ({"like": ["a"], "k": 0}, "k", "must be an integer from 1 to 100"),
    ({"like": ["a"], "k": True}, "k", "must be an integer from 1 to 100"),
    ({"like": ["a"], "where": []}, "where", "must be an object of attribute values"),
    ({"like": ["a"], "where": {"c": []}}, "where.c", "an empty list matches nothing"),
    ({"like": ["a"], "where": {"c": {"d": 1}}}, "where.c", "must be a string, number"),
    ({"like": ["a"], "trend": "m", "range": "7x"}, "range", "must be <n><m|h|d|w>"),
    ({"like": ["a"], "trend": "m", "agg": "median"}, "agg", "must be one of avg, sum"),
    ({"like": ["a"], "limit": 3}, "limit", "unknown field"),
]


@pytest.mark.parametrize(("body", "field", "message"), INVALID_SEARCHES)
def test_invalid_search_bodies(client, key, catalogue, body, field, message):
    """A malformed search is a 400 naming the field at fault."""
    response = post_json(client, SEARCH, key, body)
    assert response.status_code == 400, response.json()
    detail = response.json()["detail"][0]
    assert detail["field"] == field
    assert detail["error"].startswith(message), detail


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"k": "0"}, "k"),
        ({"k": "many"}, "k"),
        ({"where": "nocolon"}, "where"),
        ({"where": "category:"}, "where"),
        ({"where": ":books"}, "where"),
        ({"where": [f"k{i}:v" for i in range(17)]}, "where"),
        ({"trend": "m", "range": "0h"}, "range"),
        ({"k": ["3", "4"]}, "k"),
    ],
)
def test_invalid_similar_parameters(client, key, catalogue, params, field):
    """A malformed similar query is a 400 naming the parameter."""
    response = get(client, f"{ITEMS}/a/similar", key, **params)
    assert response.status_code == 400
    assert response.json()["detail"][0]["field"] == field


def test_search_is_isolated_per_project(client, project, other_project, make_key, key, catalogue):
    """Another project's items never appear in results, and cannot be used as examples."""
    other = make_key(other_project).secret
    payload = [{"external_id": f"o-{name}", "title": name} for name in catalogue]
    post_json(client, ITEMS, other, payload)
    set_embeddings(other_project, {f"o-{name}": vector for name, vector in catalogue.items()})
    assert set(ids(get(client, f"{ITEMS}/a/similar", key, k=20))) == set(catalogue) - {"a"}
    assert post_json(client, SEARCH, other, {"like": ["a"]}).status_code == 422
    assert get(client, f"{ITEMS}/a/similar", other).status_code == 404
    theirs = ids(post_json(client, SEARCH, other, {"like": ["o-a"], "k": 20}))
    assert set(theirs) == {f"o-{name}" for name in catalogue} - {"o-a"}


def _random_catalogue(project, count, rng):
    """Store `count` items with random unit vectors and 10 categories; return the vectors."""
    vectors = rng.normal(size=(count, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    _store_embedded(
        project,
        [f"r-{n}" for n in range(count)],
        vectors,
        [{"category": f"c{n % 10}", "rare": n % 500 == 7} for n in range(count)],
    )
    return vectors


def _store_embedded(project, external_ids, vectors, attributes):
    """Insert items already embedded with the served model: one vector and attributes each."""
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO embeddings_item (project_id, external_id, title, text, attributes,
                   content_hash, embedding, embedded_hash, embedding_model, embedded_at,
                   created_at, updated_at)
               SELECT %s, n, n, '', a::jsonb, 'h', v::vector, 'h', %s, now(), now(), now()
               FROM unnest(%s::text[], %s::text[], %s::text[]) AS u(n, v, a)""",
            [
                project.pk,
                model_name(),
                list(external_ids),
                ["[" + ",".join(map(str, row)) + "]" for row in vectors],
                [json.dumps(value) for value in attributes],
            ],
        )
        cursor.execute("ANALYZE embeddings_item")


def _exact(vectors, query, mask, k):
    scores = vectors @ query
    scores[~mask] = -np.inf
    return [f"r-{i}" for i in np.argsort(-scores)[:k] if np.isfinite(scores[i])]


def test_filtered_index_scan_still_returns_k(project):
    """Through the HNSW index, a filter keeping 10% still yields k results (iterative scan)."""
    rng = np.random.default_rng(7)
    vectors = _random_catalogue(project, 1500, rng)
    categories = np.arange(1500) % 10
    with connection.cursor() as cursor:
        # Only the index can order by distance now: the scan under test is the HNSW one.
        # Without iterative scans it would stop at ef_search (40) candidates, about 4 of
        # them in the category.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM embeddings_item WHERE project_id = %s"
            " ORDER BY embedding <=> %s::vector LIMIT 10",
            [project.pk, "[" + ",".join(["0.05"] * 384) + "]"],
        )
        assert "item_embedding_hnsw" in " ".join(row[0] for row in cursor.fetchall())
    where = [AttributeFilter("category", ("c3",))]
    for index in (3, 13, 23):
        query = vectors[index]
        found = nearest_items(
            project_id=project.pk, vector=query, k=10, model=model_name(), where=where
        )
        assert len(found.results) == 10
        assert (found.matched, found.exact) == (None, False)
        assert all(r.attributes["category"] == "c3" for r in found.results)
        scores = [r.score for r in found.results]
        assert scores == sorted(scores, reverse=True)
        # The item itself is the exact nearest; the rest is approximate by design.
        assert found.results[0].external_id == _exact(vectors, query, categories == 3, 1)[0]


def test_selective_filter_falls_back_to_an_exact_answer(project):
    """When the index scan gives up before k matches, every match is still found, exactly."""
    rng = np.random.default_rng(8)
    vectors = _random_catalogue(project, 1500, rng)
    rare = np.arange(1500) % 500 == 7
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        # As on a large table: the scan stops after this many tuples.
        cursor.execute("SET LOCAL hnsw.max_scan_tuples = 50")
    # The query points away from the three matches, so the scan, which walks outwards from
    # the query, stops long before it reaches them whatever the graph (a query among random
    # vectors sometimes met all three within the limit, and then the index answer was whole).
    query = -vectors[rare].sum(axis=0)
    query /= np.linalg.norm(query)
    found = nearest_items(
        project_id=project.pk,
        vector=query,
        k=10,
        model=model_name(),
        where=[AttributeFilter("rare", (True,))],
    )
    assert found.exact
    assert found.matched == int(rare.sum()) == 3
    assert [r.external_id for r in found.results] == _exact(vectors, query, rare, 10)


def test_items_tied_at_the_kth_place_go_to_the_smaller_external_ids(project):
    """Identical texts give identical vectors: among items tied at the k-th place the
    answer keeps the smallest external ids, not whichever the index's graph meets first."""
    rng = np.random.default_rng(9)
    vectors = _random_catalogue(project, 300, rng)
    duplicate = vectors[0]
    # Twelve copies of item r-0's vector, stored in an order unrelated to their ids.
    copies = [f"d-{n:02d}" for n in rng.permutation(12)]
    _store_embedded(project, copies, [duplicate] * len(copies), [{}] * len(copies))
    with connection.cursor() as cursor:
        # As on a large table: the HNSW scan, whose order among ties is its graph's.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
    found = nearest_items(
        project_id=project.pk, vector=duplicate, k=6, model=model_name(), exclude=["r-0"]
    )
    assert [r.external_id for r in found.results] == [f"d-{n:02d}" for n in range(6)]
    assert [r.score for r in found.results] == pytest.approx([1.0] * 6, abs=1e-6)


def test_search_query_counts_do_not_grow_with_k(client, key, catalogue, django_assert_num_queries):
    """Similar and search cost the same queries for 1 result as for several (no N+1)."""
    get(client, f"{ITEMS}/a/similar", key, k=1)
    # Key, served model, examples, settings, search, and the savepoint pair of the
    # test's transaction.
    with django_assert_num_queries(7) as few:
        get(client, f"{ITEMS}/a/similar", key, k=1)
    with django_assert_num_queries(len(few.captured_queries)):
        get(client, f"{ITEMS}/a/similar", key, k=5)
    with django_assert_num_queries(7) as few:
        post_json(client, SEARCH, key, {"like": ["a"], "unlike": ["z"], "k": 1})
    with django_assert_num_queries(len(few.captured_queries)):
        post_json(client, SEARCH, key, {"like": ["a", "b"], "unlike": ["z"], "k": 3})


def test_members_search_their_own_projects(client, project, other_project, catalogue):
    """A logged-in member searches with ?project=<slug>, and only in projects they belong to."""
    user = User.objects.create_user("member", password="pw")
    Membership.objects.create(project=project, user=user)
    client.force_login(user)
    similar = client.get(f"{ITEMS}/a/similar", {"project": "acme", "k": 2})
    assert ids(similar) == ["b", "c"]
    assert ids(post_json(client, f"{SEARCH}?project=acme", None, {"like": ["a"], "k": 1})) == ["b"]
    assert client.get(f"{ITEMS}/a/similar", {"project": "globex"}).status_code == 403
    refused = post_json(client, f"{SEARCH}?project=globex", None, {"like": ["a"]})
    assert refused.status_code == 403


def test_a_search_that_raced_a_swap_is_answered_in_the_new_space(
    client, project, key, catalogue, monkeypatch
):
    """A served model read just before a bulk run's swap finds its vectors gone: asked again."""
    from embeddings import active_model, search
    from embeddings.active_model import Served

    real = active_model.served_model
    reads = []

    def stale_first(database):
        reads.append(database)
        return Served("old-model", "") if len(reads) == 1 else real(database)

    monkeypatch.setattr(search, "served_model", stale_first)
    response = get(client, f"{ITEMS}/a/similar", key, k=2)
    assert response.status_code == 200
    assert (response.json()["model"], response.json()["count"]) == (model_name(), 2)
    assert len(reads) == 2
