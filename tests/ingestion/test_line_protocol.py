"""POST /api/v2/write speaks the InfluxDB v2 write API: line protocol in, points stored."""

import contextlib
import gzip
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from analytics.validation import Invalid
from ingestion.line_protocol import parse_lines
from ingestion.validation import TimeWindow
from tests.ingestion.helpers import footprint, stored_points

pytestmark = pytest.mark.django_db
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
NS = int(BASE.timestamp()) * 10**9


@pytest.fixture
def key(project, make_key):
    return make_key(project, scopes=("write",)).secret


def write(client, key, body, *, precision=None, **headers):
    """Send `body` exactly as the InfluxDB v2 clients do."""
    query = "org=acme&bucket=metrics" + (f"&precision={precision}" if precision else "")
    return client.generic(
        "POST",
        f"/api/v2/write?{query}",
        body.encode() if isinstance(body, str) else body,
        content_type="text/plain; charset=utf-8",
        HTTP_AUTHORIZATION=headers.pop("authorization", f"Token {key}"),
        HTTP_ACCEPT="application/json",
        **headers,
    )


def test_fields_of_every_type_become_points(client, project, key):
    """Float, integer, unsigned and boolean fields are stored as numbers; strings are skipped."""
    body = (
        f"cpu,host=server01,region=eu usage_idle=92.5,usage_user=-1.5e1,procs=42i,uptime=7u,"
        f'up=t,degraded=FALSE,note="all good, \\"really\\"" {NS}\n'
    )
    response = write(client, key, body)
    assert response.status_code == 204
    assert response.content == b""
    points = {p.metric: p for p in stored_points(project)}
    assert {m: p.value for m, p in points.items()} == {
        "cpu.usage_idle": 92.5,
        "cpu.usage_user": -15.0,
        "cpu.procs": 42.0,
        "cpu.uptime": 7.0,
        "cpu.up": 1.0,
        "cpu.degraded": 0.0,
    }
    assert {p.time for p in points.values()} == {BASE}
    assert points["cpu.procs"].tags == {"host": "server01", "region": "eu"}


def test_value_field_keeps_the_measurement_name(client, project, key):
    """A field named `value` becomes the metric `measurement` itself."""
    write(client, key, f"temperature,room=kitchen value=21.5 {NS}")
    (point,) = stored_points(project)
    assert point.metric == "temperature"
    assert point.value == 21.5


def test_escaping_rules(client, project, key):
    """Escaped spaces, commas and equals signs in measurement, tags and field keys are unescaped."""
    body = f"my\\ meas\\,urement,tag\\ key\\,1=tag\\ value\\=x\\,y field\\ k\\=ey\\,z=1 {NS}"
    assert write(client, key, body).status_code == 204
    (point,) = stored_points(project)
    assert point.metric == "my meas,urement.field k=ey,z"
    assert point.tags == {"tag key,1": "tag value=x,y"}


@pytest.mark.parametrize(
    ("precision", "timestamp"),
    [(None, NS), ("ns", NS), ("us", NS // 1000), ("ms", NS // 10**6), ("s", NS // 10**9)],
)
def test_precision(client, project, key, precision, timestamp):
    """The timestamp is read in the unit `precision` names (nanoseconds by default)."""
    assert write(client, key, f"m v=1 {timestamp}", precision=precision).status_code == 204
    assert stored_points(project)[0].time == BASE


def test_comments_blank_lines_and_missing_timestamp(client, project, key):
    """Comments and blank lines are skipped; a line without timestamp gets the receipt time."""
    before = datetime.now(UTC)
    body = "# a comment\n\n   \nm v=1\r\nm v=2 " + str(NS) + "\n"
    assert write(client, key, body).status_code == 204
    times = sorted(p.time for p in stored_points(project))
    assert times[0] == BASE
    assert times[1] >= before - timedelta(seconds=1)


def test_string_field_may_span_lines(client, project, key):
    """A string field holding a newline does not break the line; the numeric field is kept."""
    body = f'log,app=web msg="first line\nsecond line",count=3i {NS}\nm v=1 {NS}'
    assert write(client, key, body).status_code == 204
    assert {p.metric: p.value for p in stored_points(project)} == {"log.count": 3.0, "m.v": 1.0}


def test_line_with_only_string_fields_stores_nothing_and_does_not_fail(client, project, key):
    """String-only lines are accepted (204) and add no points."""
    assert write(client, key, f'event text="deployed" {NS}').status_code == 204
    assert stored_points(project) == []


def test_retried_batch_is_not_stored_twice(client, project, key):
    """Series and timestamp identify a point, as in InfluxDB: a resent batch adds nothing."""
    body = f"m,h=a v=1 {NS}\nm,h=a v=2 {NS + 10**9}"
    write(client, key, body)
    write(client, key, body)
    assert len(stored_points(project)) == 2


def test_gzip(client, project, key):
    """Telegraf's gzip content encoding is accepted."""
    response = write(
        client, key, gzip.compress(f"m v=1 {NS}".encode()), HTTP_CONTENT_ENCODING="gzip"
    )
    assert response.status_code == 204
    assert len(stored_points(project)) == 1


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("m", "missing field set (expected 'measurement[,tags] field=value')"),
        ("m v=", "field 'v': missing field value"),
        ("m v=abc", "field 'v': 'abc' is not a number, boolean or string"),
        ("m v=1.5i", "field 'v': '1.5i' is not a valid integer"),
        ("m v=-3u", "field 'v': '-3u' is not a valid unsigned integer"),
        ("m v=99999999999999999999i", "field 'v': '99999999999999999999i' is out of range"),
        ("m v=NaN", "field 'v': must be a finite number"),
        ("m,tag v=1", "tags: 'tag' is not key=value"),
        ("m,t= v=1", "tags: 't=' needs a non-empty key and value"),
        ("m v=1 12ab", "timestamp: '12ab' is not an integer"),
        ('m s="unterminated', "field set: unterminated string value"),
        ("m v=1,", "field set: trailing comma"),
        (",t=1 v=1", "measurement: must not be empty"),
        (
            "m v=1 99999999999999999999999",
            "timestamp: 99999999999999999999999 is out of range for precision ns",
        ),
    ],
)
def test_bad_line_is_400_naming_line_and_reason(client, project, key, bad_line, reason):
    """The first bad line is named with its number and reason, InfluxDB-style; nothing is written."""
    body = f"ok v=1 {NS}\n# comment\n{bad_line}\nok v=2 {NS}"
    response = write(client, key, body)
    assert response.status_code == 400
    body_json = response.json()
    assert body_json["code"] == "invalid"
    assert body_json["line"] == 3
    assert body_json["message"] == f"line 3: {reason}; nothing was written"
    assert body_json["error"] == body_json["message"]
    assert footprint(project) == (0, 0, 0)


def test_point_in_the_future_is_refused(client, project, key):
    """Timestamps beyond the allowed future are a 400 naming the line."""
    future = int((datetime.now(UTC) + timedelta(days=2)).timestamp())
    response = write(client, key, f"m v=1 {future}", precision="s")
    assert response.status_code == 400
    assert "is more than 3600 s in the future" in response.json()["message"]


def test_unknown_precision_is_400(client, project, key):
    """Only ns, us, ms and s are valid precisions."""
    response = write(client, key, "m v=1", precision="h")
    assert response.status_code == 400
    assert response.json()["message"] == "precision: 'h' is not one of ns, us, ms, s"


def test_bad_token_is_401_influx_style(client, project, key):
    """An unknown token answers 401 with InfluxDB's error shape and a Token challenge."""
    response = write(client, key, "m v=1", authorization="Token ak_nope_nope")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.json()["message"] == "unknown API key"
    missing = client.post("/api/v2/write", b"m v=1", content_type="text/plain")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Token")


def test_read_key_is_403(client, project, make_key):
    """A read-only key cannot write line protocol."""
    response = write(client, make_key(project, scopes=("read",)).secret, "m v=1")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_bearer_works_too(client, project, key):
    """The endpoint also accepts the platform's own Bearer scheme."""
    response = write(client, key, f"m v=1 {NS}", authorization=f"Bearer {key}")
    assert response.status_code == 204


def test_too_large_is_413_and_rate_limit_is_429(client, project, key):
    """Size and rate limits answer InfluxDB's 413 and 429."""
    with override_settings(INGEST_MAX_BODY_BYTES=10):
        big = write(client, key, f"m v=1 {NS}")
    assert big.status_code == 413
    assert big.json()["code"] == "request too large"
    with override_settings(INGEST_RATE_LIMIT_REQUESTS=1):
        statuses = [write(client, key, f"m v=1 {NS}").status_code for _ in range(3)]
    assert 429 in statuses


def test_too_many_points_is_413(client, project, key):
    """More fields than INGEST_MAX_EVENTS in one request is refused."""
    with override_settings(INGEST_MAX_EVENTS=3):
        response = write(client, key, f"m a=1,b=2,c=3,d=4 {NS}")
    assert response.status_code == 413


def test_parser_never_raises_anything_but_invalid():
    """Random garbage yields errors per line, never an unexpected exception."""
    window = TimeWindow.around(datetime.now(UTC), retention_days=90, max_future_seconds=3600)
    for text in ["\\", "m\\", "m,\\ v=1", 'm v="\\', "=,= =", "m v=1 -", "m  v=1", "\x00 v=1"]:
        with contextlib.suppress(Invalid):
            parse_lines(text, precision="ns", window=window, max_points=10)


def test_unclosed_quote_costs_linear_time_and_spares_later_lines():
    """A stray quote fails its own line only; the lines after it still parse, quickly."""
    window = TimeWindow.around(datetime.now(UTC), retention_days=90, max_future_seconds=3600)
    text = 'm s="never closed\n' + "\n".join(f"m v={i}" for i in range(5000))
    points, lines, errors = parse_lines(text, precision="ns", window=window, max_points=10_000)
    assert [(e.line, e.error) for e in errors] == [(1, "field set: unterminated string value")]
    assert len(points) == 5000
    assert lines[0] == 2
