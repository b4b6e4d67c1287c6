"""The series catalog over HTTP: metrics, tag keys of a metric, values of a tag."""

from typing import Any

import pytest

from analytics.models import Membership, Project
from analytics.services import IssuedKey, add_member
from tests.analytics.helpers_series import MINUTE, invalid, write
from tests.helpers import bearer

pytestmark = pytest.mark.django_db

METRICS = "/api/v1/catalog/metrics"
TAG_KEYS = "/api/v1/catalog/tag-keys"
TAG_VALUES = "/api/v1/catalog/tag-values"


@pytest.fixture
def reader(project, make_key):
    return make_key(project, scopes=("read",))


def get(client: Any, path: str, issued: IssuedKey | None, **params: Any) -> Any:
    headers = bearer(issued) if issued is not None else {}
    return client.get(path, params, **headers)


def point(project: Project, metric: str, **tags: str) -> None:
    write(project, metric, tags, [(MINUTE, 1.0)])


def write_catalog(project: Project, other_project: Project) -> None:
    """cpu (3 series), mem (1), disk.io (1) here; cpu and secret in the other project."""
    point(project, "cpu", host="a", region="eu")
    point(project, "cpu", host="b", region="us")
    point(project, "cpu", host="c")
    point(project, "mem", host="a")
    point(project, "disk.io")
    point(other_project, "cpu", host="z", rack="r1")
    point(other_project, "secret", host="a")


def test_metrics_are_listed_with_series_counts(api_client, project, other_project, reader):
    """The project's metrics, by name, each with its number of series; nothing of others."""
    write_catalog(project, other_project)
    response = get(api_client, METRICS, reader)
    assert response.status_code == 200
    assert response.json() == {
        "metrics": [
            {"name": "cpu", "series": 3},
            {"name": "disk.io", "series": 1},
            {"name": "mem", "series": 1},
        ]
    }


def test_metric_search_is_case_insensitive_substring(api_client, project, other_project, reader):
    """search matches anywhere in the name, whatever the case."""
    write_catalog(project, other_project)
    point(project, "Disk.Free")
    names = [m["name"] for m in get(api_client, METRICS, reader, search="DISK").json()["metrics"]]
    assert sorted(names) == ["Disk.Free", "disk.io"]
    assert get(api_client, METRICS, reader, search="secret").json() == {"metrics": []}


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("%", ["load%busy"]),
        ("_", ["load_busy"]),
        ("D%B", ["load%busy"]),
        ("d_b", ["load_busy"]),
        ("\\", ["load\\busy"]),
        ("load", ["load%busy", "load\\busy", "loadXbusy", "load_busy"]),
    ],
)
def test_metric_search_takes_wildcards_literally(api_client, project, reader, search, expected):
    """'%', '_' and backslash in search are plain characters, not LIKE patterns."""
    for metric in ("load%busy", "load_busy", "loadXbusy", "load\\busy"):
        point(project, metric)
    response = get(api_client, METRICS, reader, search=search)
    assert sorted(m["name"] for m in response.json()["metrics"]) == sorted(expected)


def test_metric_list_is_limited(api_client, project, other_project, reader):
    """limit keeps the first metrics by name."""
    write_catalog(project, other_project)
    response = get(api_client, METRICS, reader, limit="2")
    assert [m["name"] for m in response.json()["metrics"]] == ["cpu", "disk.io"]


@pytest.mark.parametrize("path", [METRICS, TAG_VALUES])
@pytest.mark.parametrize("limit", ["0", "1001", "ten", "-5", ""])
def test_bad_limit_is_400(api_client, project, other_project, reader, path, limit):
    """limit must be an integer from 1 to 1000; anything else is a 400 naming it."""
    write_catalog(project, other_project)
    response = get(api_client, path, reader, metric="cpu", key="host", limit=limit)
    assert response.status_code == 400
    assert response.json() == invalid("limit", "must be an integer from 1 to 1000")


@pytest.mark.parametrize("path", [METRICS, TAG_KEYS, TAG_VALUES])
def test_a_parameter_sent_twice_is_400(api_client, project, other_project, reader, path):
    """Two values of a one-value parameter are refused, not silently narrowed to the last."""
    write_catalog(project, other_project)
    response = get(api_client, path, reader, metric="cpu", key="host", limit=["abc", "4"])
    assert response.status_code == 400
    assert response.json() == invalid("limit", "given 2 times; it takes one value")


def test_limit_with_non_ascii_digit_is_400(api_client, project, other_project, reader):
    """A limit that str.isdigit() accepts but int() does not ('²') is a 400, not a crash."""
    write_catalog(project, other_project)
    response = get(api_client, METRICS, reader, limit="²")
    assert response.status_code == 400
    assert response.json() == invalid("limit", "must be an integer from 1 to 1000")


def test_tag_keys_of_a_metric_with_counts(api_client, project, other_project, reader):
    """The keys a metric's series carry, each with how many series carry it; only this project's."""
    write_catalog(project, other_project)
    response = get(api_client, TAG_KEYS, reader, metric="cpu")
    assert response.status_code == 200
    assert response.json() == {
        "metric": "cpu",
        "keys": [{"name": "host", "series": 3}, {"name": "region", "series": 2}],
    }
    assert get(api_client, TAG_KEYS, reader, metric="disk.io").json() == {
        "metric": "disk.io",
        "keys": [],
    }


def test_tag_values_of_a_key_with_counts(api_client, project, other_project, reader):
    """The values of one tag of a metric, each with its series count; only this project's."""
    write_catalog(project, other_project)
    point(project, "cpu", host="a", region="us")
    response = get(api_client, TAG_VALUES, reader, metric="cpu", key="host")
    assert response.status_code == 200
    assert response.json() == {
        "metric": "cpu",
        "key": "host",
        "values": [
            {"name": "a", "series": 2},
            {"name": "b", "series": 1},
            {"name": "c", "series": 1},
        ],
    }
    regions = get(api_client, TAG_VALUES, reader, metric="cpu", key="region").json()["values"]
    assert regions == [{"name": "eu", "series": 1}, {"name": "us", "series": 2}]
    assert get(api_client, TAG_VALUES, reader, metric="cpu", key="rack").json()["values"] == []


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("WEB", ["web%1", "web-1", "web_1"]),
        ("_", ["web_1"]),
        ("%", ["web%1"]),
        ("b-", ["web-1"]),
        ("db", []),
    ],
)
def test_tag_value_search_is_literal_and_case_insensitive(
    api_client, project, reader, search, expected
):
    """search filters tag values by substring, ignoring case, with '%' and '_' taken literally."""
    for host in ("web%1", "web_1", "web-1"):
        point(project, "cpu", host=host)
    response = get(api_client, TAG_VALUES, reader, metric="cpu", key="host", search=search)
    assert sorted(v["name"] for v in response.json()["values"]) == sorted(expected)


def test_tag_values_are_limited(api_client, project, reader):
    """limit keeps the first values by name."""
    for host in ("h3", "h1", "h2"):
        point(project, "cpu", host=host)
    response = get(api_client, TAG_VALUES, reader, metric="cpu", key="host", limit="2")
    assert [v["name"] for v in response.json()["values"]] == ["h1", "h2"]


@pytest.mark.parametrize("path", [TAG_KEYS, TAG_VALUES])
@pytest.mark.parametrize("metric", ["secret", "never_written"])
def test_metric_not_in_this_project_is_404(
    api_client, project, other_project, reader, path, metric
):
    """Another project's metric answers exactly like one nobody has: 404."""
    write_catalog(project, other_project)
    response = get(api_client, path, reader, metric=metric, key="host")
    assert response.status_code == 404
    assert response.json() == {
        "error": f"metric {metric!r} not found in this project",
        "detail": [],
    }


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (TAG_KEYS, {}, "metric"),
        (TAG_KEYS, {"metric": ""}, "metric"),
        (TAG_VALUES, {"key": "host"}, "metric"),
        (TAG_VALUES, {"metric": "cpu"}, "key"),
        (TAG_VALUES, {"metric": "cpu", "key": ""}, "key"),
    ],
)
def test_missing_metric_or_key_is_400(
    api_client, project, other_project, reader, path, params, field
):
    """tag-keys needs metric and tag-values needs metric and key; the 400 names the missing one."""
    write_catalog(project, other_project)
    response = get(api_client, path, reader, **params)
    assert response.status_code == 400
    assert response.json() == invalid(field, "required")


@pytest.mark.parametrize("path", [METRICS, TAG_KEYS, TAG_VALUES])
def test_catalog_needs_a_read_key(api_client, project, make_key, path):
    """Without a key the catalog is 401; with a write-only key it is 403."""
    point(project, "cpu", host="a")
    params = {"metric": "cpu", "key": "host"}
    assert get(api_client, path, None, **params).status_code == 401
    response = get(api_client, path, make_key(project, scopes=("write",)), **params)
    assert response.status_code == 403
    assert response.json()["error"] == "this API key lacks the 'read' scope (it has: write)"


def test_logged_in_member_reads_the_catalog(api_client, project, other_project, django_user_model):
    """A logged-in member reads their project's catalog and is refused another's."""
    write_catalog(project, other_project)
    user = django_user_model.objects.create_user("alice", password="pw-alice-123")
    add_member(project=project, user=user, role=Membership.Role.VIEWER)
    api_client.force_login(user)
    metrics = get(api_client, METRICS, None, project="acme").json()["metrics"]
    assert [m["name"] for m in metrics] == ["cpu", "disk.io", "mem"]
    values = get(api_client, TAG_VALUES, None, project="acme", metric="mem", key="host")
    assert values.json()["values"] == [{"name": "a", "series": 1}]
    refused = get(api_client, METRICS, None, project="globex")
    assert refused.status_code == 403
    assert refused.json() == {"error": "you are not a member of project 'globex'", "detail": []}
