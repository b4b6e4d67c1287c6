"""InfluxDB v2 line protocol: `measurement[,tag=v...] field=v[,field=v...] [timestamp]`.

Follows https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/:
commas and spaces are escaped with a backslash in measurements; commas, equals signs
and spaces in tag keys, tag values and field keys; double quotes and backslashes in
string field values. Each field becomes the metric `measurement.field` (or
`measurement` when the field is `value`). Floats, integers (`1i`), unsigned integers
(`1u`) and booleans (stored as 1 and 0) become points; string fields are skipped.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from analytics.services.points import CleanPoint
from analytics.validation import Invalid
from ingestion.validation import (
    EPOCH,
    TimeWindow,
    finite_number,
    metric_name,
    tag_set,
)

PRECISIONS = ("ns", "us", "ms", "s")
# A string field may hold newlines; a quote left open longer than this is an error on
# its own line (parsing then goes on with the next line), which keeps parsing linear.
MAX_STRING_LINES = 100
_TRUE = {"t", "T", "true", "True", "TRUE"}
_FALSE = {"f", "F", "false", "False", "FALSE"}
# Line-protocol points have no client id: series + timestamp is their identity, as in
# InfluxDB, so a retried batch is recognised as duplicates (see migrations_sql/0003).
LINE_PROTOCOL_EVENT_ID = ""
# ASCII digits only: str.isdigit() also accepts '²' and '٣', which int() then refuses.
_INTEGER = re.compile(r"-?[0-9]+")
# Longer digit strings are out of range anyway, and int() refuses past 4300 digits.
_MAX_DIGITS = 24


class _Unterminated(Invalid):
    """A string field value runs past the end of the line (it may hold a newline)."""


@dataclass(frozen=True)
class LineError:
    line: int
    error: str


def _scan(text: str, start: int, stops: str) -> int:
    """Return the index of the first unescaped character of `stops` at or after `start`."""
    i, n = start, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n:
            i += 2
            continue
        if char in stops:
            return i
        i += 1
    return n


def _split(text: str, separator: str) -> list[str]:
    """Split `text` at unescaped `separator` characters."""
    pieces, start = [], 0
    while True:
        end = _scan(text, start, separator)
        pieces.append(text[start:end])
        if end >= len(text):
            return pieces
        start = end + 1


def _unescape(raw: str, specials: str) -> str:
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        if raw[i] == "\\" and i + 1 < n and raw[i + 1] in specials:
            out.append(raw[i + 1])
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def _field_value(raw: str, field: str) -> float | None:
    """Return the numeric value of a field, or None for a (skipped) string field."""
    if not raw:
        raise Invalid(f"{field}: missing field value")
    if raw[0] == '"':
        return None
    if raw in _TRUE:
        return 1.0
    if raw in _FALSE:
        return 0.0
    last = raw[-1]
    if last in "iu":
        digits = raw[:-1]
        if not _INTEGER.fullmatch(digits) or (last == "u" and digits.startswith("-")):
            kind = "integer" if last == "i" else "unsigned integer"
            raise Invalid(f"{field}: {raw[:64]!r} is not a valid {kind}")
        number = int(digits) if len(digits) <= _MAX_DIGITS else 2**64
        if (last == "i" and not -(2**63) <= number < 2**63) or (last == "u" and number >= 2**64):
            raise Invalid(f"{field}: {raw[:64]!r} is out of range")
        return float(number)
    try:
        number_value = float(raw)
    except ValueError as exc:
        raise Invalid(f"{field}: {raw[:64]!r} is not a number, boolean or string") from exc
    if raw.lower().lstrip("+-") in {"nan", "inf", "infinity"}:
        raise Invalid(f"{field}: must be a finite number")
    return finite_number(number_value, field)


def _timestamp(raw: str, precision: str, window: TimeWindow) -> datetime:
    if not raw:
        return window.now
    if not _INTEGER.fullmatch(raw):
        raise Invalid(f"timestamp: {raw[:64]!r} is not an integer")
    number = int(raw) if len(raw) <= _MAX_DIGITS else 10**_MAX_DIGITS
    try:
        if precision == "ns":
            moment = EPOCH + timedelta(microseconds=number // 1000)
        elif precision == "us":
            moment = EPOCH + timedelta(microseconds=number)
        elif precision == "ms":
            moment = EPOCH + timedelta(milliseconds=number)
        else:
            moment = EPOCH + timedelta(seconds=number)
    except OverflowError as exc:
        raise Invalid(f"timestamp: {raw[:64]} is out of range for precision {precision}") from exc
    return window.check(moment, "timestamp")


def _fields_end(line: str, start: int) -> int:
    """Return the index just after the field set, honouring quoted string values."""
    i, n = start, len(line)
    # Quotes open strings in field values only; in a field key they are plain characters
    # (as in InfluxDB's own parser).
    in_string = in_value = False
    while i < n:
        char = line[i]
        if char == "\\" and i + 1 < n:
            i += 2
            continue
        if char == '"' and (in_string or in_value):
            in_string = not in_string
        elif not in_string:
            if char == " ":
                return i
            if char in "=,":
                in_value = char == "="
        i += 1
    if in_string:
        raise _Unterminated("field set: unterminated string value")
    return n


def _split_fields(field_set: str) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    i, n = 0, len(field_set)
    while i < n:
        eq = _scan(field_set, i, "=,")
        if eq >= n or field_set[eq] != "=":
            raise Invalid(f"field set: {field_set[i:eq][:64]!r} has no '=value'")
        key = _unescape(field_set[i:eq], ",= ")
        if not key:
            raise Invalid("field set: empty field key")
        j = eq + 1
        if j < n and field_set[j] == '"':
            k = j + 1
            while k < n and field_set[k] != '"':
                k += 2 if field_set[k] == "\\" else 1
            end = min(k + 1, n)
        else:
            end = _scan(field_set, j, ",")
        fields.append((key, field_set[j:end]))
        if end < n and field_set[end] != ",":
            raise Invalid(f"field set: unexpected {field_set[end]!r} after field {key!r}")
        i = end + 1
        if end < n and i >= n:
            raise Invalid("field set: trailing comma")
    if not fields:
        raise Invalid("field set: at least one field is required")
    return fields


def parse_line(line: str, precision: str, window: TimeWindow) -> list[CleanPoint]:
    """Parse one line into one point per numeric field."""
    series_end = _scan(line, 0, " ")
    if series_end >= len(line):
        raise Invalid("missing field set (expected 'measurement[,tags] field=value')")
    series_part = line[:series_end]
    comma = _scan(series_part, 0, ",")
    measurement = _unescape(series_part[:comma], ", ")
    if not measurement:
        raise Invalid("measurement: must not be empty")
    tags: dict[str, str] = {}
    if comma < len(series_part):
        for pair in _split(series_part[comma + 1 :], ","):
            eq = _scan(pair, 0, "=")
            if eq >= len(pair):
                raise Invalid(f"tags: {pair[:64]!r} is not key=value")
            tag_key, tag_value = _unescape(pair[:eq], ",= "), _unescape(pair[eq + 1 :], ",= ")
            if not tag_key or not tag_value:
                raise Invalid(f"tags: {pair[:64]!r} needs a non-empty key and value")
            tags[tag_key] = tag_value
    tag_pairs = tag_set(tags)
    fields_start = series_end + 1
    fields_end = _fields_end(line, fields_start)
    timestamp = _timestamp(line[fields_end + 1 :].strip(), precision, window)
    points = []
    for key, raw_value in _split_fields(line[fields_start:fields_end]):
        value = _field_value(raw_value, f"field {key!r}")
        if value is None:
            continue
        metric = metric_name(
            measurement if key == "value" else f"{measurement}.{key}", "measurement"
        )
        points.append(
            CleanPoint((metric, tag_pairs, None), timestamp, value, LINE_PROTOCOL_EVENT_ID)
        )
    return points


def parse_lines(
    text: str, *, precision: str, window: TimeWindow, max_points: int
) -> tuple[list[CleanPoint], list[int], list[LineError]]:
    """Parse a whole body; return its points, the line of each, and the errors."""
    points: list[CleanPoint] = []
    point_lines: list[int] = []
    errors: list[LineError] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].rstrip("\r")
        index += 1
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        joined = 0
        while True:
            try:
                parsed = parse_line(stripped, precision, window)
                points.extend(parsed)
                point_lines.extend([number] * len(parsed))
                index += joined
            except _Unterminated as exc:
                if joined < MAX_STRING_LINES and index + joined < len(lines):
                    stripped += "\n" + lines[index + joined].rstrip("\r")
                    joined += 1
                    continue
                errors.append(LineError(number, str(exc)))
            except Invalid as exc:
                errors.append(LineError(number, str(exc)))
                index += joined
            break
        if len(points) > max_points:
            raise Invalid(f"more than {max_points} points in one request")
    return points, point_lines, errors
