"""POST /api/v1/events: receipts, validation errors, limits, dedup and idempotency."""

import gzip
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from analytics.models import Series
from ingestion.models import IngestReceipt
from tests.ingestion.helpers import footprint, post_events, stored_points

pytestmark = pytest.mark.django_db
NOW = datetime.now(UTC).replace(microsecond=0)
ISO = (NOW - timedelta(minutes=5)).isoformat()


@pytest.fixture
def key(project, make_key):
    return make_key(project, scopes=("write",)).secret


def test_events_are_stored_with_their_series(client, project, key):
    """A valid batch answers 200 with a receipt and its points read back exactly."""
    events = [
        {
            "metric": "checkout.latency_ms",
            "value": 12.5,
            "time": ISO,
            "tags": {"region": "eu"},
            "item": "sku-123",
            "id": "evt-1",
        },
        {"metric": "checkout.latency_ms", "value": 7, "time": ISO, "tags": {"region": "us"}},
    ]
    response = post_events(client, key, events)
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": [], "rejected_count": 0}
    points = stored_points(project)
    assert [(p.metric, p.tags, p.item, p.value, p.event_id) for p in points] == [
        ("checkout.latency_ms", {"region": "us"}, None, 7.0, None),
        ("checkout.latency_ms", {"region": "eu"}, "sku-123", 12.5, "evt-1"),
    ]
    assert {p.time for p in points} == {NOW - timedelta(minutes=5)}


def test_events_wrapper_object_and_defaults(client, project, key):
    """`{"events": [...]}` works; value defaults to 1 and time to the receipt time."""
    before = datetime.now(UTC)
    response = post_events(client, key, {"events": [{"metric": "signups"}]})
    after = datetime.now(UTC)
    assert response.status_code == 200
    (point,) = stored_points(project)
    assert point.value == 1.0
    assert before - timedelta(seconds=1) <= point.time <= after


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T11:00:00+01:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        (1795600800, datetime(2026, 11, 25, 10, tzinfo=UTC)),
        (1795600800500, datetime(2026, 11, 25, 10, 0, 0, 500000, tzinfo=UTC)),
        (1795600800000001, datetime(2026, 11, 25, 10, 0, 0, 1, tzinfo=UTC)),
        (1795600800000001000, datetime(2026, 11, 25, 10, 0, 0, 1, tzinfo=UTC)),
    ],
)
def test_time_formats(client, project, key, value, expected):
    """ISO 8601 (naive is UTC) and epoch s/ms/us/ns are all read to the microsecond."""
    with override_settings(INGEST_MAX_FUTURE_SECONDS=86400 * 3650, RETENTION_RAW_DAYS=3650):
        response = post_events(client, key, [{"metric": "m", "time": value}])
    assert response.status_code == 200, response.json()
    assert stored_points(project)[0].time == expected


INVALID_EVENTS = [
    ({"value": 1}, "metric: required"),
    ({"metric": ""}, "metric: must not be empty"),
    ({"metric": 5}, "metric: must be a string, not a number"),
    ({"metric": "m" * 201}, "metric: longer than 200 characters"),
    ({"metric": "a\u0000b"}, "metric: contains a control character"),
    ({"metric": " padded"}, "metric: ' padded' starts or ends with whitespace"),
    ({"metric": "m", "value": "12"}, "value: must be a finite number, not a string"),
    ({"metric": "m", "value": True}, "value: must be a finite number, not a boolean"),
    ({"metric": "m", "value": None}, "value: must be a finite number, not null"),
    ({"metric": "m", "value": [1]}, "value: must be a finite number, not an array"),
    ({"metric": "m", "tags": ["eu"]}, "tags: must be an object of string values, not an array"),
    ({"metric": "m", "tags": {"region": 1}}, "tags.region: must be a string, not a number"),
    ({"metric": "m", "tags": {"region": ""}}, "tags.region: must not be empty"),
    ({"metric": "m", "tags": {"a:b": "x"}}, "tags: key 'a:b' must not contain ':'"),
    ({"metric": "m", "tags": {"k" * 65: "x"}}, f"tags key {'k' * 64!r}: longer than 64 characters"),
    (
        {"metric": "m", "tags": {f"t{i}": "x" for i in range(33)}},
        "tags: 33 tags, at most 32 allowed",
    ),
    ({"metric": "m", "item": 3.5}, "item: must be a string, not a number"),
    ({"metric": "m", "id": "i" * 201}, "id: longer than 200 characters"),
    ({"metric": "m", "id": False}, "id: must be a string, not a boolean"),
    (
        {"metric": "m", "time": "yesterday"},
        "time: 'yesterday' is not an ISO 8601 time or epoch number",
    ),
    (
        {"metric": "m", "time": True},
        "time: must be an ISO 8601 string or an epoch number, not a boolean",
    ),
    (
        {"metric": "m", "time": "2999-01-01T00:00:00Z"},
        "time: 2999-01-01T00:00:00+00:00 is more than 3600 s in the future",
    ),
    (
        {"metric": "m", "time": "2000-01-01T00:00:00Z"},
        "time: 2000-01-01T00:00:00+00:00 is before the retention horizon (90 days ago)",
    ),
    (
        {"metric": "m", "colour": "red"},
        "colour: unknown field (allowed: id, item, metric, tags, time, value)",
    ),
    ("just a string", "event: must be an object, not a string"),
]


@pytest.mark.parametrize(("event", "error"), INVALID_EVENTS)
def test_invalid_event_refuses_the_batch(client, project, key, event, error):
    """Any invalid event makes the batch a 400 naming index and field; nothing is written."""
    batch = [{"metric": "ok", "time": ISO}, event]
    response = post_events(client, key, batch)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == (
        "1 invalid event(s); nothing was written (send ?partial=1 to store the valid ones)"
    )
    assert body["detail"] == [{"index": 1, "error": error}]
    assert body["accepted"] == 0
    assert footprint(project) == (0, 0, 0)


def test_numeric_id_is_accepted_as_text(client, project, key):
    """A numeric event id is stored as its decimal text."""
    assert post_events(client, key, [{"metric": "m", "id": 42}]).status_code == 200
    assert stored_points(project)[0].event_id == "42"


def test_only_first_hundred_errors_are_listed(client, project, key):
    """A batch with many bad events lists the first 100, in index order."""
    response = post_events(client, key, [{"metric": "m", "value": "x"}] * 150)
    body = response.json()
    assert response.status_code == 400
    assert body["error"].startswith("150 invalid event(s)")
    assert [e["index"] for e in body["detail"]] == list(range(100))


def test_partial_mode_stores_valid_events_and_reports_the_rest(client, project, key):
    """With ?partial=1 valid events are stored and invalid ones listed by index."""
    batch = [
        {"metric": "a", "time": ISO},
        {"metric": "b", "value": "NaN"},
        {"metric": "c", "time": ISO},
    ]
    response = post_events(client, key, batch, path="/api/v1/events?partial=1")
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 2,
        "duplicates": 0,
        "rejected": [{"index": 1, "error": "value: must be a finite number, not a string"}],
        "rejected_count": 1,
    }
    assert [p.metric for p in stored_points(project)] == ["a", "c"]


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "error"),
    [
        (b"[{", "application/json", 400, "body is not valid JSON: "),
        (
            b'{"metric": "m"}',
            "application/json",
            400,
            'body must be a JSON array of events or {"events": [...]}',
        ),
        (b'"\\ud800"', "application/json", 400, "body is not valid JSON: "),
        (b"[1e400]", "application/json", 400, "body is not valid JSON: "),
        (
            b"metric=m",
            "application/x-www-form-urlencoded",
            415,
            "Content-Type 'application/x-www-form-urlencoded' is not supported",
        ),
        (b"[]", "", 415, "Content-Type '(none)' is not supported"),
    ],
)
def test_malformed_bodies(client, project, key, raw, content_type, status, error):
    """Unparseable bodies and unknown content types are refused, naming the problem."""
    response = post_events(client, key, None, raw=raw, content_type=content_type)
    assert response.status_code == status
    assert response.json()["error"].startswith(error)
    assert footprint(project) == (0, 0, 0)


def test_ndjson_errors_name_the_line(client, project, key):
    """NDJSON is one event per line; blank lines are skipped and errors give the line."""
    raw = b'{"metric": "a"}\n\n{"metric": 3}\n{not json}\n'
    response = post_events(client, key, None, raw=raw, content_type="application/x-ndjson")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail[0] == {"index": 1, "line": 3, "error": "metric: must be a string, not a number"}
    assert detail[1]["line"] == 4
    assert detail[1]["error"].startswith("not valid JSON")
    ok = post_events(
        client,
        key,
        None,
        raw=b'{"metric": "a"}\n{"metric": "b"}\n',
        content_type="application/x-ndjson; charset=utf-8",
    )
    assert ok.json()["accepted"] == 2


def test_gzip_body_is_accepted(client, project, key):
    """Content-Encoding: gzip bodies are decompressed."""
    raw = gzip.compress(b'[{"metric": "zipped", "value": 2}]')
    response = post_events(client, key, None, raw=raw, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200
    assert stored_points(project)[0].metric == "zipped"


def test_gzip_bomb_is_413_without_inflating_it(client, project, key):
    """A small gzip that inflates past the limit is refused with 413."""
    bomb = gzip.compress(b"[" + b" " * (50 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 100_000
    with override_settings(INGEST_MAX_DECOMPRESSED_BYTES=1024 * 1024):
        response = post_events(client, key, None, raw=bomb, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413
    assert response.json()["error"] == "decompressed body exceeds the limit of 1048576 bytes"
    assert footprint(project) == (0, 0, 0)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"not gzip at all", "body is not valid gzip: "),
        (gzip.compress(b"[]")[:-6], "body is not valid gzip"),
    ],
)
def test_broken_gzip_is_400(client, project, key, raw, error):
    """Corrupt or truncated gzip is a 400."""
    response = post_events(client, key, None, raw=raw, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)


def test_unknown_encoding_is_415(client, project, key):
    """Only gzip and identity encodings are accepted."""
    response = post_events(client, key, [], HTTP_CONTENT_ENCODING="br")
    assert response.status_code == 415
    assert response.json()["error"] == "Content-Encoding 'br' is not supported (use gzip or none)"


def test_oversized_body_is_413(client, project, key):
    """A body over INGEST_MAX_BODY_BYTES is refused with 413 naming the limit."""
    with override_settings(INGEST_MAX_BODY_BYTES=1000):
        response = post_events(client, key, [{"metric": "m" * 100}] * 20)
    assert response.status_code == 413
    assert "exceeds the limit of 1000 bytes" in response.json()["error"]
    assert footprint(project) == (0, 0, 0)


def test_too_many_events_is_413(client, project, key):
    """More events than INGEST_MAX_EVENTS in one request is a 413."""
    with override_settings(INGEST_MAX_EVENTS=3):
        response = post_events(client, key, [{"metric": "m"}] * 4)
    assert response.status_code == 413
    assert response.json()["error"] == "4 events in one request, at most 3 allowed"


def test_retried_event_with_same_id_is_a_duplicate(client, project, key):
    """The same id, metric, tags and time is stored once; the retry reports a duplicate."""
    event = {"metric": "m", "value": 5, "time": ISO, "tags": {"a": "b"}, "id": "e-1"}
    assert post_events(client, key, [event]).json()["accepted"] == 1
    retry = post_events(client, key, [event, {**event, "time": NOW.isoformat()}])
    assert retry.json() == {"accepted": 1, "duplicates": 1, "rejected": [], "rejected_count": 0}
    assert len(stored_points(project)) == 2


def test_duplicate_within_one_batch(client, project, key):
    """Two copies of one event in the same batch store one point."""
    event = {"metric": "m", "time": ISO, "id": "same"}
    response = post_events(client, key, [event, event, {**event, "tags": {"x": "y"}}])
    assert response.json()["accepted"] == 2
    assert response.json()["duplicates"] == 1


def test_events_without_ids_are_never_deduplicated(client, project, key):
    """Identical events without an id are separate occurrences (counts work)."""
    event = {"metric": "clicks", "time": ISO}
    post_events(client, key, [event, event])
    assert len(stored_points(project)) == 2


def test_idempotency_key_returns_the_first_receipt(client, project, key):
    """A retry with the same Idempotency-Key gets the original receipt and writes nothing."""
    batch = [{"metric": "m", "time": ISO}, {"metric": "n", "value": "bad"}]
    first = post_events(
        client, key, batch, path="/api/v1/events?partial=1", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    again = post_events(
        client, key, batch, path="/api/v1/events?partial=1", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert len(stored_points(project)) == 1


def test_idempotency_key_reused_for_another_body_is_422(client, project, key):
    """Reusing a key for a different batch is refused and writes nothing."""
    post_events(client, key, [{"metric": "m"}], HTTP_IDEMPOTENCY_KEY="k-2")
    before = footprint(project)
    response = post_events(client, key, [{"metric": "other"}], HTTP_IDEMPOTENCY_KEY="k-2")
    assert response.status_code == 422
    assert response.json()["error"].startswith(
        "Idempotency-Key was already used for a different request"
    )
    assert footprint(project) == before


def test_idempotency_key_expires_after_a_day(client, project, key):
    """After 24 h the same key is a new batch."""
    post_events(client, key, [{"metric": "m"}], HTTP_IDEMPOTENCY_KEY="k-3")
    IngestReceipt.objects.update(created_at=datetime.now(UTC) - timedelta(hours=25))
    response = post_events(client, key, [{"metric": "m"}], HTTP_IDEMPOTENCY_KEY="k-3")
    assert "Idempotent-Replayed" not in response
    assert len(stored_points(project)) == 2


def test_invalid_idempotency_key_is_400(client, project, key):
    """An over-long Idempotency-Key is refused before anything is written."""
    response = post_events(client, key, [{"metric": "m"}], HTTP_IDEMPOTENCY_KEY="k" * 201)
    assert response.status_code == 400
    assert response.json()["detail"] == [{"field": "Idempotency-Key", "error": "invalid"}]
    assert footprint(project) == (0, 0, 0)


def test_failed_batch_with_idempotency_key_can_be_retried(client, project, key):
    """A refused batch leaves no receipt, so fixing it and retrying with the key works."""
    bad = post_events(client, key, [{"metric": 1}], HTTP_IDEMPOTENCY_KEY="k-4")
    assert bad.status_code == 400
    assert footprint(project) == (0, 0, 0)
    good = post_events(client, key, [{"metric": "m"}], HTTP_IDEMPOTENCY_KEY="k-4")
    assert good.json()["accepted"] == 1


def test_series_cardinality_limit(client, project, key):
    """New series past the project's limit are refused (422) naming the limit; nothing is written."""
    with override_settings(INGEST_MAX_SERIES_PER_PROJECT=3):
        assert post_events(client, key, [{"metric": "m", "tags": {"h": "1"}}]).status_code == 200
        response = post_events(
            client, key, [{"metric": "m", "tags": {"h": str(i)}} for i in range(4)]
        )
        assert response.status_code == 422
        assert response.json()["error"] == (
            "series cardinality limit reached: the project has 1 series, the batch adds 3 new ones, "
            "and the limit is 3"
        )
        assert footprint(project) == (1, 1, 0)
        existing = post_events(client, key, [{"metric": "m", "tags": {"h": "1"}}])
        assert existing.status_code == 200


def test_series_cardinality_limit_in_partial_mode(client, project, key):
    """In partial mode, events of series past the limit are rejected by index."""
    with override_settings(INGEST_MAX_SERIES_PER_PROJECT=2):
        batch = [{"metric": "m", "tags": {"h": str(i)}} for i in range(3)]
        response = post_events(client, key, batch, path="/api/v1/events?partial=1")
    body = response.json()
    assert response.status_code == 200
    assert body["accepted"] == 2
    assert body["rejected"] == [
        {"index": 2, "error": "series cardinality limit (2) reached: new series refused"}
    ]
    assert Series.objects.filter(project=project).count() == 2


def test_rate_limit_per_key(client, project, key, make_key):
    """Past the per-key request rate the answer is 429 with Retry-After; other keys go on."""
    time.sleep(1 - time.time() % 1 + 0.02)  # start at the beginning of a one-second window
    with override_settings(INGEST_RATE_LIMIT_REQUESTS=2):
        statuses = [post_events(client, key, [{"metric": "m"}]).status_code for _ in range(2)]
        limited = post_events(client, key, [{"metric": "m"}])
        other = post_events(client, make_key(project, scopes=("write",)).secret, [{"metric": "m"}])
    assert statuses == [200, 200]
    assert limited.status_code == 429
    assert limited["Retry-After"] == "1"
    assert (
        limited.json()["error"]
        == "rate limit exceeded: more than 2 requests per second for this API key"
    )
    assert other.status_code == 200
    assert len(stored_points(project)) == 3


def test_event_rate_limit(client, project, key):
    """The events-per-second budget counts events, not requests."""
    time.sleep(1 - time.time() % 1 + 0.02)
    with override_settings(INGEST_RATE_LIMIT_EVENTS=5):
        assert post_events(client, key, [{"metric": "m"}] * 5).status_code == 200
        response = post_events(client, key, [{"metric": "m"}])
    assert response.status_code == 429
    assert (
        response.json()["error"]
        == "rate limit exceeded: more than 5 events per second for this API key"
    )
    assert len(stored_points(project)) == 5


@pytest.mark.parametrize(
    ("scopes", "status", "error"),
    [(("read",), 403, "this API key lacks the 'write' scope (it has: read)")],
)
def test_read_key_cannot_write(client, project, make_key, scopes, status, error):
    """A read-only key gets 403 naming the scope; nothing is written."""
    response = post_events(client, make_key(project, scopes=scopes).secret, [{"metric": "m"}])
    assert response.status_code == status
    assert response.json()["error"] == error
    assert footprint(project) == (0, 0, 0)


def test_no_key_is_401(client, project):
    """Without a key the endpoint answers 401 and writes nothing."""
    response = client.post("/api/v1/events", b"[]", content_type="application/json")
    assert response.status_code == 401
    assert footprint(project) == (0, 0, 0)


def test_session_user_cannot_write(client, project, django_user_model):
    """Writes need an API key: a logged-in member gets 403."""
    from analytics.services import add_member

    user = django_user_model.objects.create_user("bob", password="pw-bob-12345")
    add_member(project=project, user=user)
    client.force_login(user)
    response = client.post("/api/v1/events", b'[{"metric": "m"}]', content_type="application/json")
    assert response.status_code == 403
    assert footprint(project) == (0, 0, 0)


def test_each_project_writes_only_its_own_series(client, project, other_project, make_key):
    """Two projects sending the same metric and tags get separate series and points."""
    event = [{"metric": "shared", "tags": {"a": "b"}, "time": ISO, "id": "same-id"}]
    post_events(client, make_key(project).secret, event)
    response = post_events(client, make_key(other_project).secret, event)
    assert response.json()["accepted"] == 1  # not a duplicate of the other project's event
    assert len(stored_points(project)) == 1
    assert len(stored_points(other_project)) == 1
    assert Series.objects.get(project=project).pk != Series.objects.get(project=other_project).pk


@pytest.mark.django_db(transaction=True)
def test_unreachable_database_is_503_with_retry_after(client, project, make_key):
    """With PostgreSQL unreachable, ingestion answers 503 with Retry-After, never 500."""
    from django.db import connection

    from tests.helpers import free_port

    secret = make_key(project, scopes=("write",)).secret
    original_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())
    try:
        response = post_events(client, secret, [{"metric": "m"}])
    finally:
        connection.close()
        connection.settings_dict["PORT"] = original_port
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert (
        response.json()["error"] == "the database is unavailable; nothing was written, retry later"
    )
    assert footprint(project) == (0, 0, 0)
