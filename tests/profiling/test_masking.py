"""No API key, session key or other credential a request carries leaves a trace in silk's tables."""

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from silk.models import Request  # type: ignore[import-untyped]

from analytics.profiling.masking import MASK, mask_body, mask_mapping_json, request_secrets
from analytics.services import IssuedKey
from tests.profiling.conftest import silk_text

pytestmark = pytest.mark.django_db

Send = Callable[[Client, IssuedKey, str], Any]


def _bearer(web: Client, key: IssuedKey, other: str) -> Any:
    return web.get("/api/v1/catalog/metrics", HTTP_AUTHORIZATION=f"Bearer {key.secret}")


def _token(web: Client, key: IssuedKey, other: str) -> Any:
    body = "cpu,host=a value=1"
    return web.post(
        "/api/v2/write?org=x&bucket=y",
        body,
        content_type="text/plain",
        HTTP_AUTHORIZATION=f"Token {key.secret}",
    )


def _x_api_key(web: Client, key: IssuedKey, other: str) -> Any:
    return web.get("/api/v1/catalog/metrics", HTTP_X_API_KEY=key.secret)


def _query_string(web: Client, key: IssuedKey, other: str) -> Any:
    return web.get("/api/v1/catalog/metrics", {"api_key": key.secret, "apiKey": other})


def _json_body(web: Client, key: IssuedKey, other: str) -> Any:
    body = {"like": ["a"], "api_key": key.secret, "auth": {"access_token": other}}
    return web.post("/api/v1/search", body, content_type="application/json")


def _form_fields(web: Client, key: IssuedKey, other: str) -> Any:
    body = f"api_key={key.secret}&client_secret={other}&k=3"
    return web.post("/api/v1/search", body, content_type="application/x-www-form-urlencoded")


def _multipart_fields(web: Client, key: IssuedKey, other: str) -> Any:
    return web.post("/api/v1/search", {"api_key": key.secret, "token": other, "k": "3"})


def _ndjson_body(web: Client, key: IssuedKey, other: str) -> Any:
    lines = [
        {"metric": "cpu", "value": 1, "api_key": key.secret},
        {"metric": "cpu", "password": other},
    ]
    body = "\n".join(json.dumps(line) for line in lines)
    return web.post(
        "/api/v1/events",
        body,
        content_type="application/x-ndjson",
        HTTP_AUTHORIZATION=f"Bearer {key.secret}",
    )


def _echoed_in_text(web: Client, key: IssuedKey, other: str) -> Any:
    return web.post("/api/v1/search", f"please use {key.secret}", content_type="text/plain")


@pytest.mark.parametrize(
    "send",
    [
        _bearer,
        _token,
        _x_api_key,
        _query_string,
        _json_body,
        _form_fields,
        _multipart_fields,
        _ndjson_body,
        _echoed_in_text,
    ],
)
def test_api_key_leaves_no_trace_in_silk(web, project, make_key, send):
    """Wherever a request carries an API key, silk's tables hold neither it nor its prefix or secret part."""
    key = make_key(project)
    other = "tp-" + secrets.token_hex(16)  # a credential of another system, any shape
    send(web, key, other)
    assert Request.objects.count() == 1  # recorded, so there was something to leak
    stored = silk_text()
    _, prefix, secret_part = key.secret.split("_", 2)
    assert key.secret not in stored
    assert secret_part not in stored
    assert prefix not in stored
    assert other not in stored
    assert MASK in stored


def test_masked_places_keep_their_names(web, project, make_key):
    """Masking replaces values, so the record still shows which header, parameter and field held a key."""
    key = make_key(project)
    web.get(
        "/api/v1/catalog/metrics",
        {"api_key": key.secret, "metric": "cpu"},
        HTTP_X_API_KEY=key.secret,
        HTTP_AUTHORIZATION=f"Bearer {key.secret}",
    )
    request = Request.objects.get()
    headers = json.loads(request.encoded_headers)
    assert headers["authorization"] == headers["x-api-key"] == MASK
    assert json.loads(request.query_params) == {"api_key": MASK, "metric": "cpu"}
    key_lookup = request.queries.get(query__contains='FROM "analytics_apikey"')
    assert f"\"prefix\" = '{MASK}'" in key_lookup.query


def test_session_key_leaves_no_trace_in_silk(staff_web, staff_user, project):
    """A logged-in user's session key (cookie and session-table SQL) is not stored."""
    staff_web.get("/api/v1/catalog/metrics", {"project": project.slug})
    session_key = staff_web.cookies["sessionid"].value
    assert Request.objects.count() == 1
    stored = silk_text()
    assert "django_session" in stored  # the session lookup was recorded, masked
    assert session_key not in stored


def test_request_secrets_finds_each_carrier(rf):
    """The credentials of a request come from its Authorization, X-Api-Key, query, form and cookies."""
    request = rf.post(
        "/x?api_key=query-secret-1&metric=cpu",
        "token=form-secret-22&k=3",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION="Bearer header-secret-333",
        HTTP_X_API_KEY="xkey-secret-4444",
    )
    request.COOKIES["sessionid"] = "session-secret-55555"
    assert request_secrets(request) >= {
        "query-secret-1",
        "form-secret-22",
        "header-secret-333",
        "xkey-secret-4444",
        "session-secret-55555",
    }
    assert "cpu" not in request_secrets(request)


def test_mask_helpers_handle_json_ndjson_pairs_and_mappings():
    """Bodies of every shape and header/query JSON are masked by name and by value."""
    known = frozenset({"known-secret-value"})
    assert json.loads(
        mask_body('{"nested": {"apiKey": "v1"}, "note": "known-secret-value"}', known)
    ) == {
        "nested": {"apiKey": MASK},
        "note": MASK,
    }
    ndjson = mask_body('{"token": "v2"}\n{"ok": 1}', frozenset())
    assert [json.loads(line) for line in ndjson.splitlines()] == [{"token": MASK}, {"ok": 1}]
    assert mask_body("a=1&secret=v3&b=2", frozenset()) == f"a=1&secret={MASK}&b=2"
    assert json.loads(
        mask_mapping_json('{"X-Auth-Token": "v4", "Accept": "*/*"}', frozenset())
    ) == {
        "X-Auth-Token": MASK,
        "Accept": "*/*",
    }
