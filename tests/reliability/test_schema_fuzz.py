"""Schemathesis against a live gunicorn, driven by the served OpenAPI schema.

Every operation of /api/schema/ is called with generated valid and invalid parameters
and bodies, with a read+write key of a stocked tenant (items with vectors, points,
a dashboard) and a real Celery worker for free-text examples. No answer may be a 5xx,
every answer must be one the schema documents (status, content type, body), and every
refusal must be JSON naming the problem: `{"error": "...", "detail": [...]}`, or
InfluxDB's `{"code", "message"}` on /api/v2/write. `make test` runs a few examples per
operation; the slow variant (`make test-full`) runs many more and the coverage phase.
"""

import functools
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from django.contrib.auth.models import User
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis import CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from analytics.services.rollups import refresh_rollups
from embeddings.services import upsert_items
from embeddings.validation import ItemInput
from embeddings.worker import model_name
from tests.helpers import running_gunicorn, worker_environment
from tests.reliability.tenants import (
    SHARED_ITEM,
    SHARED_METRIC,
    Tenant,
    build_tenant,
    remove_tenant,
)

# django_db: pytest-django sets up the test database only for runs that hold such tests;
# the server (another process) reads what the fixtures commit there.
pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
FAST_EXAMPLES = 25
FULL_EXAMPLES = 400
INFLUX_PATH = "/api/v2/write"
# Fixed, so the schema (loaded at collection, before the tenant exists) can name its objects.
MARKER = "fuzzseed"
# Error texts that say nothing about what was wrong (the generic handlers' fallbacks).
VAGUE = frozenset({"", "bad request", "forbidden", "internal error", "invalid request"})


@pytest.fixture(scope="module")
def fuzz_tenant(django_db_setup: None, django_db_blocker: Any) -> Iterator[Tenant]:
    """A committed tenant for the server to find: items with vectors, points, a dashboard."""
    with django_db_blocker.unblock():
        tenant = build_tenant("fuzz", shared_value=1.0, offset=0.0, marker=MARKER)
        doomed = [ItemInput(external_id, f"{external_id} title", "", {}) for external_id in DOOMED]
        upsert_items(project_id=tenant.project_id, items=doomed, model=model_name())
    yield tenant
    with django_db_blocker.unblock():
        remove_tenant(tenant)
        # What the fuzzing wrote and the deletes above are invalidations: leave none behind.
        refresh_rollups()


@pytest.fixture(scope="module")
def live_server_url(
    fuzz_tenant: Tenant,
    celery_worker: subprocess.Popen[bytes],
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """Serve the app with gunicorn (two workers, as `make run`) on the test database."""
    log = tmp_path_factory.mktemp("fuzz") / "gunicorn.log"
    with django_db_blocker.unblock():
        env = worker_environment()
    with running_gunicorn(env=env, log=log, workers=2) as url:
        yield url
    # A traceback in the log is a 500 the checks may have missed (a streamed body, say).
    assert "Traceback" not in log.read_text(), log.read_text()[-5000:]


@functools.cache
def _document() -> bytes:
    generator = SchemaGenerator()
    document = generator.get_schema(request=None, public=True)
    return bytes(OpenApiJsonRenderer().render(document, renderer_context={}))


def generated_schema() -> dict[str, Any]:
    """Return the OpenAPI document exactly as /api/schema/ serves it (as JSON)."""
    return dict(orjson.loads(_document()))


# Half of the generated ids and names are the fuzz tenant's own, so requests also reach
# what lies past "not found": similar items, trends, grouped series, tag values.
DOOMED = tuple(f"{MARKER}-doomed-{index}" for index in range(5))
DICTIONARIES = {
    "projects": {"values": [f"{MARKER}-proj"]},
    "items": {"values": [*(f"{MARKER}-item-{index}" for index in range(3)), SHARED_ITEM]},
    # Deletes get items of their own, so the ones searched for stay.
    "doomed": {"values": list(DOOMED)},
    "metrics": {"values": [f"{MARKER}.requests", SHARED_METRIC]},
    "tag_keys": {"values": [f"{MARKER}key", "region"]},
}
PARAMETERS = {
    "query.project": "projects",
    "path.external_id": "items",
    "query.metric": "metrics",
    "query.trend": "metrics",
    "query.key": "tag_keys",
    "query.group_by": "tag_keys",
    "body.like[*]": "items",
    "body.unlike[*]": "items",
    "body.trend": "metrics",
}


def _schema(*, coverage: bool) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "dictionaries": DICTIONARIES,
            "parameters": {
                key: {"dictionary": name, "probability": 0.5} for key, name in PARAMETERS.items()
            },
            "phases": {"coverage": {"enabled": coverage}, "stateful": {"enabled": False}},
            "operations": [
                {
                    "include-method": "DELETE",
                    "parameters": {
                        "path.external_id": {"dictionary": "doomed", "probability": 0.5}
                    },
                }
            ],
        }
    )
    return schemathesis.openapi.from_dict(generated_schema(), config=config)


# NDJSON bodies are described as text: send the generated text as it is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

# Loaded when the module is collected (schemathesis makes one test per operation from it);
# test_live_schema_is_the_one_fuzzed checks that the live server serves this very document.
fast_schema = _schema(coverage=False)
full_schema = _schema(coverage=True)


def errors_are_json_naming_the_problem(
    ctx: CheckContext, response: Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Check that a 4xx is JSON with an `error` string that says what was wrong."""
    if not 400 <= response.status_code < 500 or case.method.upper() == "HEAD":
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), (
        f"{response.status_code} answered as {content_type!r}: {response.content[:200]!r}"
    )
    body = response.json()
    assert isinstance(body, dict), f"{response.status_code} body is not an object: {body!r}"
    if case.operation.path == INFLUX_PATH:
        # InfluxDB clients read {"code", "message"}.
        for name in ("code", "message"):
            assert isinstance(body.get(name), str), f"no {name!r} string: {body!r}"
            assert body[name], f"an empty {name!r}: {body!r}"
        message = body["message"]
    else:
        assert isinstance(body.get("error"), str), f"no 'error' string: {body!r}"
        assert isinstance(body.get("detail", []), list), f"'detail' is not a list: {body!r}"
        message = body["error"]
    assert message.strip().lower().rstrip(".") not in VAGUE, f"a vague error: {body!r}"
    return None


TEXT_BODIES = ("text/plain", "application/x-ndjson")


def call(case: schemathesis.Case[Any], url: str, tenant: Tenant) -> None:
    """Send `case` with the tenant's read+write key and run CHECKS on the answer."""
    excluded = []
    if case.operation.path == "/healthz":
        # 503 is the documented answer of an unhealthy platform (here: no beat refreshes
        # the worker heartbeat); response_schema_conformance still checks its body.
        excluded.append(not_a_server_error)
    if case.media_type in TEXT_BODIES:
        # A text body has no JSON type on the wire: a "boolean" body is sent as the text
        # `false`, which is valid NDJSON, so "schema-violating" does not apply to it.
        excluded.append(negative_data_rejection)
    headers = {"Authorization": f"Bearer {tenant.rw_key}"}
    response = case.call(base_url=url, headers=headers, timeout=30)
    if response.status_code == 414 and b"Request Line is too large" in response.content:
        # gunicorn itself refuses a request line over 4094 bytes (its default, and
        # production's) before the app sees it: a refusal, but not one the app renders.
        return
    case.validate_response(
        response,
        checks=[check for check in CHECKS if check not in excluded],
        headers=headers,
        transport_kwargs={"base_url": url, "headers": headers, "timeout": 30},
    )


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
    errors_are_json_naming_the_problem,
]


def test_live_schema_is_the_one_fuzzed(live_server_url):
    """The live server's /api/schema/ is the document the operations below are generated from."""
    response = requests.get(f"{live_server_url}/api/schema/?format=json", timeout=30)
    assert response.status_code == 200
    assert response.json() == generated_schema()


@fast_schema.parametrize()
@settings(
    max_examples=FAST_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_documented_non_500_responses(case, live_server_url, fuzz_tenant):
    """A few generated requests per operation: no 5xx, documented answers, JSON errors naming the problem."""
    call(case, live_server_url, fuzz_tenant)


@pytest.mark.slow
@full_schema.parametrize()
@settings(max_examples=FULL_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_survives_many_hostile_requests(case, live_server_url, fuzz_tenant):
    """Many generated and boundary requests per operation, with the same checks."""
    call(case, live_server_url, fuzz_tenant)


# --- what fuzzing found, pinned --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/catalog/metrics?search=a%00", "search"),
        ("/api/v1/catalog/tag-keys?metric=a%00", "metric"),
        ("/api/v1/catalog/tag-values?metric=a&key=b%00", "key"),
        (f"/api/v1/catalog/tag-values?metric={MARKER}.requests&key=b&search=%00", "search"),
        ("/api/v1/series?metric=a&where=region:%00", "where"),
        ("/api/v1/series?metric=a&group_by=%00", "group_by"),
    ],
)
def test_nul_in_a_name_is_a_400_naming_the_parameter(path, field, live_server_url, fuzz_tenant):
    """A NUL byte (which PostgreSQL text cannot hold) is refused naming the parameter, never a 500."""
    headers = {"Authorization": f"Bearer {fuzz_tenant.rw_key}"}
    response = requests.get(f"{live_server_url}{path}", headers=headers, timeout=30)
    assert response.status_code == 400
    assert response.json() == {
        "error": f"invalid request: {field}: must not contain NUL (0x00) characters",
        "detail": [{"field": field, "error": "must not contain NUL (0x00) characters"}],
    }


def test_member_naming_a_project_with_nul_is_refused_like_any_other(client, fuzz_tenant):
    """A member's `?project=` holding NUL is a 403 like any project they are not in, not a 500."""
    client.force_login(User.objects.get(pk=fuzz_tenant.user_id))
    response = client.get("/api/v1/project?project=a%00b")
    assert response.status_code == 403
    assert response.json()["error"] == "you are not a member of project 'a\x00b'"


def test_partial_must_be_a_boolean(live_server_url, fuzz_tenant):
    """`?partial=` other than 1/true/yes/0/false/no is refused, not read as all-or-nothing."""
    response = requests.post(
        f"{live_server_url}/api/v1/events?partial=maybe",
        data=b"[]",
        headers={
            "Authorization": f"Bearer {fuzz_tenant.rw_key}",
            "Content-Type": "application/json",
        },
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "partial: 'maybe' is not one of 1, true, yes, 0, false, no",
        "detail": [{"field": "partial", "error": "must be 1, true, yes, 0, false or no"}],
    }
