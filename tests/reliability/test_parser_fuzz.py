"""Hypothesis fuzzing of the JSON, NDJSON and line-protocol parsers and event validation.

Whatever the body, a parser either returns a batch whose every error names its index or
line and the field at fault, or refuses the whole body with `Refusal` (400/413);
never any other exception (which the API would turn into a 500). Points that pass are
storable: finite values, times inside the window, strings PostgreSQL accepts. Each
property runs with a modest number of examples in `make test` and many more under
`make test-full` (the `slow` variants).
"""

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.models import METRIC_MAX
from analytics.refusals import Refusal
from analytics.services.points import CleanPoint
from analytics.validation import CONTROL_RE, Invalid
from ingestion.line_protocol import PRECISIONS
from ingestion.parsers import parse_json, parse_line_protocol, parse_ndjson
from ingestion.services import ParsedBatch
from ingestion.validation import (
    EPOCH,
    EVENT_FIELDS,
    TimeWindow,
    clean_event,
)

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
WINDOW = TimeWindow.around(NOW, retention_days=90, max_future_seconds=3600)
MAX_EVENTS = 40
FAST = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
FULL = settings(max_examples=4000, deadline=None, suppress_health_check=list(HealthCheck))
# Error messages start with the field at fault: `metric: ...`, `tags.region: ...`,
# `tags key 'x': ...`, `event: ...`, or `<name>: unknown field (allowed: ...)`.
FIELD_PREFIXES = tuple(sorted(EVENT_FIELDS | {"event"}))
LINE_PREFIXES = (
    "measurement",
    "tags",
    "field",
    "timestamp",
    "missing field set",
    "more than",
)

# --- strategies ------------------------------------------------------------------------------

# Characters that break naive parsers: separators, escapes, quotes, controls, digits that
# are not ASCII (`'²'.isdigit()` is true but `int('²')` fails), and the odd whitespace.
NASTY = list(' ,=\\"\n\r\t#:.-+_eEiutTfF0123456789\x00\x7f\x1f²٣½\u2028\u00a0\ufeff')
nasty_text = st.text(alphabet=st.sampled_from(NASTY) | st.characters(), max_size=40)
numbers = (
    st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
)
window_times = st.datetimes(
    min_value=(NOW - timedelta(days=91)).replace(tzinfo=None),
    max_value=(NOW + timedelta(hours=2)).replace(tzinfo=None),
    timezones=st.sampled_from([UTC, None]),
)
times = (
    window_times.map(lambda moment: moment.isoformat())
    | window_times.map(lambda moment: moment.timestamp() if moment.tzinfo else 0)
    | window_times.map(lambda moment: int(moment.timestamp() * 1e9) if moment.tzinfo else 1)
    | st.datetimes(timezones=st.timezones() | st.none()).map(lambda moment: moment.isoformat())
    | numbers
    | nasty_text
    | st.booleans()
    | st.none()
)
json_leaf = st.none() | st.booleans() | numbers | nasty_text
json_values = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(nasty_text, children, max_size=4)
    ),
    max_leaves=12,
)
names = st.sampled_from(["cpu", "checkout.latency_ms", " padded ", "", "a" * 201]) | nasty_text
event_values: dict[str, st.SearchStrategy[Any]] = {
    "metric": names | json_values,
    "value": numbers | json_values,
    "time": times,
    "tags": st.dictionaries(names, names | json_leaf, max_size=5) | json_values,
    "item": names | st.integers() | json_values,
    "id": names | st.integers() | json_values,
}
# Mostly well-formed events, so the validation rules (not only JSON syntax) are reached.
plausible_events = st.fixed_dictionaries(
    {"metric": st.sampled_from(["cpu", "disk.used"]) | names},
    optional={
        "value": numbers,
        "time": times,
        "tags": st.dictionaries(names, names, max_size=4),
        "item": names,
        "id": names | st.integers(),
    },
)
events = (
    plausible_events
    | st.fixed_dictionaries({}, optional=event_values)
    | st.dictionaries(nasty_text, json_values, max_size=3)
)
event_lists = st.lists(events | json_values, max_size=MAX_EVENTS + 5)


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["array", "wrapped", "value", "bytes", "truncated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    document: Any = draw(event_lists)
    if kind == "wrapped":
        document = {"events": document}
    elif kind == "value":
        document = draw(json_values)
    text = json.dumps(document).encode()  # NaN and huge integers included, as clients send
    if kind == "truncated":
        text = text[: draw(st.integers(0, len(text)))]
    return text


@st.composite
def ndjson_bodies(draw: st.DrawFn) -> bytes:
    lines = draw(
        st.lists(
            events.map(lambda event: json.dumps(event).encode())
            | json_values.map(lambda value: json.dumps(value).encode())
            | st.binary(max_size=30)
            | st.sampled_from([b"", b"   ", b"\r", b"{", b"[]"]),
            max_size=MAX_EVENTS + 5,
        )
    )
    return draw(st.sampled_from([b"\n", b"\r\n"])).join(lines)


@st.composite
def line_protocol_pieces(draw: st.DrawFn) -> str:
    """Draw something line-protocol shaped: measurement, tags, fields, timestamp, with noise."""
    word = st.text(alphabet=st.sampled_from(NASTY + list("abcmnz")), max_size=8)
    value = st.sampled_from(
        [
            *("1", "-1.5", "1e400", "1i", "-5i", "--5i", "²i", "1u", "-1u", "1_0", "0x10", "٣"),
            *('"s"', '"a\\"b"', '"open', "t", "FALSE", "nan", "inf", "", "18446744073709551616u"),
            *("9" * 5000 + "i", "-" + "9" * 30 + "i", "9" * 5000 + "u", "9" * 5000),
        ]
    ) | st.text(alphabet=st.sampled_from(NASTY), max_size=6)
    stamp = st.sampled_from(
        ["", " 1795600800000000000", " -1", " --5", " ²", " 1e9", " ", " " + "9" * 5000]
    ) | (st.integers(min_value=-(2**80), max_value=2**80).map(lambda n: f" {n}"))
    tags = "".join(f",{draw(word)}={draw(word)}" for _ in range(draw(st.integers(0, 3))))
    fields = ",".join(f"{draw(word)}={draw(value)}" for _ in range(draw(st.integers(0, 3))))
    return f"{draw(word)}{tags} {fields}{draw(stamp)}"


@st.composite
def line_protocol_bodies(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    pieces = draw(
        st.lists(
            line_protocol_pieces()
            | nasty_text
            | st.sampled_from(["# comment", "", "  ", "m v=1", 'm s="multi\nline" 1']),
            max_size=MAX_EVENTS + 5,
        )
    )
    return draw(st.sampled_from(["\n", "\r\n"])).join(pieces).encode("utf-8", "surrogatepass")


# --- checks ----------------------------------------------------------------------------------


def _storable(text: str | None) -> bool:
    if text is None:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return bool(text) and not CONTROL_RE.search(text) and text == text.strip()


def _check_point(point: CleanPoint) -> None:
    metric, tags, item = point.series
    assert isinstance(point.value, float)
    assert math.isfinite(point.value)
    assert point.time.tzinfo is not None
    assert WINDOW.earliest <= point.time <= WINDOW.latest
    assert _storable(metric)
    assert len(metric) <= METRIC_MAX
    assert all(_storable(key) and _storable(value) and ":" not in key for key, value in tags)
    assert list(tags) == sorted(tags)
    assert _storable(item)
    assert point.event_id == "" or _storable(point.event_id)


def _check_refusal(exc: Refusal) -> None:
    assert exc.status in (400, 413), exc.status
    assert isinstance(exc.error, str)
    assert exc.error


def _parse(parse: Callable[[], ParsedBatch]) -> ParsedBatch | None:
    """Run a parser; return its batch, or None after checking a documented refusal."""
    try:
        return parse()
    except Refusal as exc:
        _check_refusal(exc)
        return None


def check_json(body: bytes) -> None:
    batch = _parse(lambda: parse_json(body, window=WINDOW, max_events=MAX_EVENTS))
    if batch is None:
        return
    assert len(batch.points) == len(batch.sources)
    indices = [source["index"] for source in batch.sources + batch.errors]
    assert sorted(indices) == list(range(len(indices)))
    for error in batch.errors:
        message = error["error"]
        assert message.startswith(FIELD_PREFIXES) or ": unknown field (allowed: " in message
        assert ": " in message
    for point in batch.points:
        _check_point(point)


def check_ndjson(body: bytes) -> None:
    batch = _parse(lambda: parse_ndjson(body, window=WINDOW, max_events=MAX_EVENTS))
    if batch is None:
        return
    lines = body.split(b"\n")
    located = batch.sources + batch.errors
    assert sorted(source["index"] for source in located) == list(range(len(located)))
    for source in located:
        assert 1 <= source["line"] <= len(lines)
        assert lines[source["line"] - 1].strip(), "an error points at a blank line"
    for error in batch.errors:
        message = error["error"]
        assert (
            message.startswith((*FIELD_PREFIXES, "not valid JSON: "))
            or ": unknown field (allowed: " in message
        )
    for point in batch.points:
        _check_point(point)


def check_line_protocol(body: bytes, precision: str) -> None:
    batch = _parse(
        lambda: parse_line_protocol(body, precision=precision, window=WINDOW, max_events=MAX_EVENTS)
    )
    if batch is None:
        return
    line_count = body.count(b"\n") + 1
    for source in batch.sources + batch.errors:
        assert 1 <= source["line"] <= line_count
    for error in batch.errors:
        assert error["error"].startswith(LINE_PREFIXES), error
    for point in batch.points:
        _check_point(point)


def check_clean_event(event: Any) -> None:
    try:
        point = clean_event(event, WINDOW)
    except Invalid as exc:
        message = str(exc)
    else:
        _check_point(point)
        return
    assert message.startswith(FIELD_PREFIXES) or ": unknown field (allowed: " in message


# --- the properties, fast and full -------------------------------------------------------------


@FAST
@given(json_bodies())
def test_json_parser_answers_a_batch_or_a_refusal(body):
    """Any JSON body yields located errors or Refusal, never another exception."""
    check_json(body)


@pytest.mark.slow
@FULL
@given(json_bodies())
def test_json_parser_answers_a_batch_or_a_refusal_full(body):
    """The JSON property with many examples."""
    check_json(body)


@FAST
@given(ndjson_bodies())
def test_ndjson_parser_names_the_line_of_every_error(body):
    """Any NDJSON body yields errors naming their line and index, or Refusal."""
    check_ndjson(body)


@pytest.mark.slow
@FULL
@given(ndjson_bodies())
def test_ndjson_parser_names_the_line_of_every_error_full(body):
    """The NDJSON property with many examples."""
    check_ndjson(body)


@FAST
@given(line_protocol_bodies(), st.sampled_from(PRECISIONS))
def test_line_protocol_parser_never_raises_anything_else(body, precision):
    """Any line-protocol body yields errors naming their line, or Refusal."""
    check_line_protocol(body, precision)


@pytest.mark.slow
@FULL
@given(line_protocol_bodies(), st.sampled_from(PRECISIONS))
def test_line_protocol_parser_never_raises_anything_else_full(body, precision):
    """The line-protocol property with many examples."""
    check_line_protocol(body, precision)


@FAST
@given(events | json_values)
def test_clean_event_accepts_or_names_the_field(event):
    """Validation of one event returns a storable point or Invalid naming the field."""
    check_clean_event(event)


@pytest.mark.slow
@FULL
@given(events | json_values)
def test_clean_event_accepts_or_names_the_field_full(event):
    """The validation property with many examples."""
    check_clean_event(event)


# --- line protocol round trip -----------------------------------------------------------------

_NAME_CHARS = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="\\"
)


def _name(max_size: int, forbidden: str = "") -> st.SearchStrategy[str]:
    return st.text(
        alphabet=_NAME_CHARS.filter(lambda c: c not in forbidden) | st.sampled_from(" ,="),
        min_size=1,
        max_size=max_size,
    ).filter(lambda text: text == text.strip() and text.strip() and not text.startswith("#"))


def _escape(text: str, specials: str) -> str:
    return "".join(f"\\{char}" if char in specials else char for char in text)


field_values = (
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: (repr(v), v))
    | st.integers(-(2**63), 2**63 - 1).map(lambda v: (f"{v}i", float(v)))
    | st.integers(0, 2**64 - 1).map(lambda v: (f"{v}u", float(v)))
    | st.booleans().map(lambda v: ("true" if v else "F", 1.0 if v else 0.0))
    | _name(10, '"').map(lambda v: (f'"{v}"', None))
)


@st.composite
def line_protocol_points(draw: st.DrawFn) -> tuple[str, list[tuple[str, dict[str, str], float]]]:
    """Draw one valid line and the (metric, tags, value) of each point it must yield."""
    measurement = draw(_name(60))
    tags = draw(st.dictionaries(_name(20, ":"), _name(20), max_size=4))
    fields = draw(st.dictionaries(_name(20), field_values, min_size=1, max_size=4))
    line = _escape(measurement, ", ") + "".join(
        f",{_escape(key, ',= ')}={_escape(value, ',= ')}" for key, value in tags.items()
    )
    line += " " + ",".join(f"{_escape(key, ',= ')}={raw}" for key, (raw, _) in fields.items())
    expected = [
        (measurement if key == "value" else f"{measurement}.{key}", tags, value)
        for key, (_, value) in fields.items()
        if value is not None
    ]
    return line, expected


def check_round_trip(drawn: tuple[str, list[tuple[str, dict[str, str], float]]], ns: int) -> None:
    line, expected = drawn
    body = f"{line} {ns}".encode()
    batch = parse_line_protocol(body, precision="ns", window=WINDOW, max_events=MAX_EVENTS)
    assert batch.errors == []
    moment = EPOCH + timedelta(microseconds=ns // 1000)
    assert [(p.series, p.time, p.value) for p in batch.points] == [
        ((metric, tuple(sorted(tags.items())), None), moment, value)
        for metric, tags, value in expected
    ]


nanoseconds = st.integers(
    min_value=int((WINDOW.earliest - EPOCH).total_seconds() * 1e9) + 10**9,
    max_value=int((WINDOW.latest - EPOCH).total_seconds() * 1e9) - 10**9,
)


@FAST
@given(line_protocol_points(), nanoseconds)
def test_line_protocol_round_trip(drawn, ns):
    """Escaped measurements, tags and fields of every type parse back to what was written."""
    check_round_trip(drawn, ns)


@pytest.mark.slow
@FULL
@given(line_protocol_points(), nanoseconds)
def test_line_protocol_round_trip_full(drawn, ns):
    """The round trip with many examples."""
    check_round_trip(drawn, ns)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("m v=--5i", "field 'v': '--5i' is not a valid integer"),
        ("m v=²i", "field 'v': '²i' is not a valid integer"),
        ("m v=1 --5", "timestamp: '--5' is not an integer"),
        ("m v=1 ²", "timestamp: '²' is not an integer"),
        ("m v=" + "9" * 5000 + "i", f"field 'v': {'9' * 64!r} is out of range"),
        ("m v=1 " + "9" * 5000, f"timestamp: {'9' * 64} is out of range for precision ns"),
    ],
)
def test_line_protocol_integers_found_by_fuzzing_are_refused(line, error):
    """Integers int() cannot read (found by the fuzzer; they were 500s) are errors of their line."""
    batch = parse_line_protocol(line.encode(), precision="ns", window=WINDOW, max_events=10)
    assert batch.errors == [{"line": 1, "error": error}]


def test_quote_in_a_field_key_is_a_plain_character():
    """A double quote in a field key does not open a string (as in InfluxDB; found by fuzzing)."""
    batch = parse_line_protocol(
        b'm k"ey=1,s="a b" 1795600800000000000',
        precision="ns",
        window=TimeWindow.around(
            datetime(2026, 11, 25, 10, tzinfo=UTC), retention_days=1, max_future_seconds=60
        ),
        max_events=10,
    )
    assert batch.errors == []
    assert [(point.series[0], point.value) for point in batch.points] == [('m.k"ey', 1.0)]
