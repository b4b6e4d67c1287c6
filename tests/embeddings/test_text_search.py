"""Search by free text: encoded by a real embedding worker, or a clear 503 when none answers."""

import uuid

import pytest
from django.test import override_settings

from embeddings.models import Item
from tests.embeddings.helpers import post_json
from tests.embeddings.workers import wait_embedded

SEARCH = "/api/v1/search"
CATALOGUE = [
    ("skillet", "Cast iron skillet", "Heavy pan for searing steak and frying eggs.", "kitchen"),
    ("knife", "Chef's knife", "Sharp steel blade for chopping onions and herbs.", "kitchen"),
    ("kettle", "Gooseneck kettle", "Pour-over coffee kettle that boils water fast.", "kitchen"),
    ("novel", "Mystery novel", "A detective story set in a foggy London winter.", "books"),
    ("atlas", "Road atlas", "Maps of every motorway for a long road trip.", "books"),
    ("hose", "Garden hose", "Flexible hose to water flower beds and lawns.", "garden"),
    ("guitar", "Acoustic guitar", "Six strings and a warm sound for campfire songs.", "music"),
    ("kite", "Stunt kite", "Fly loops on a windy beach afternoon.", "toys"),
]


@pytest.fixture
def embedded_catalogue(client, project, make_key, celery_worker):
    key = make_key(project).secret
    payload = [
        {"external_id": eid, "title": title, "text": text, "attributes": {"category": category}}
        for eid, title, text, category in CATALOGUE
    ]
    assert post_json(client, "/api/v1/items", key, payload).status_code == 200
    wait_embedded(list(Item.objects.filter(project=project).values_list("pk", flat=True)))
    return key


def ranked(response):
    assert response.status_code == 200, response.json()
    return [result["external_id"] for result in response.json()["results"]]


@pytest.mark.django_db(transaction=True)
def test_free_text_finds_the_matching_items(client, embedded_catalogue):
    """A free-text example, encoded by the worker, ranks the items it describes first."""
    key = embedded_catalogue
    cooking = {"like": [{"text": "something to fry a steak in"}], "k": 3}
    assert ranked(post_json(client, SEARCH, key, cooking))[0] == "skillet"
    music = {"like": [{"text": "play songs around the campfire"}], "k": 1}
    assert ranked(post_json(client, SEARCH, key, music)) == ["guitar"]
    books = {"like": [{"text": "detective"}], "where": {"category": "books"}, "k": 5}
    assert ranked(post_json(client, SEARCH, key, books)) == ["novel", "atlas"]


@pytest.mark.django_db(transaction=True)
def test_items_and_text_mix_with_negative_examples(client, embedded_catalogue):
    """Item and text examples combine; a negative text pushes its topic down the ranking."""
    key = embedded_catalogue
    kitchen = {"like": ["knife"], "where": {"category": "kitchen"}, "k": 2}
    assert set(ranked(post_json(client, SEARCH, key, kitchen))) == {"skillet", "kettle"}
    no_coffee = {**kitchen, "unlike": [{"text": "coffee and boiling water"}]}
    assert ranked(post_json(client, SEARCH, key, no_coffee)) == ["skillet", "kettle"]
    no_steak = {**kitchen, "unlike": [{"text": "frying steak in a heavy pan"}]}
    assert ranked(post_json(client, SEARCH, key, no_steak)) == ["kettle", "skillet"]


@pytest.mark.django_db
def test_no_worker_answer_is_a_503(client, project, make_key):
    """When no worker encodes the text within the timeout, the answer is a clear 503."""
    key = make_key(project).secret
    post_json(client, "/api/v1/items", key, [{"external_id": "a", "title": "A"}])
    # No worker can answer within a millisecond (a fresh text is never cached).
    with override_settings(EMBEDDINGS_QUERY_TIMEOUT=0.001):
        response = post_json(client, SEARCH, key, {"like": [{"text": str(uuid.uuid4())}]})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"].startswith("no embedding worker answered within 0.001 s")
