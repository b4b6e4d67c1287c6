"""Readers of the files `import_events` takes: CSV, NDJSON and line protocol, as rows.

Each reader turns a stream of byte lines into `Entry` rows (points or the reason the row
is invalid, with its line number) using the validation of HTTP ingestion, and gives rows
without an id a deterministic one (`ContentIds`).
"""

import csv
import hashlib
import math
import sys
import zlib
from array import array
from collections.abc import Generator, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from django.conf import settings
from django.core.management.base import CommandError

from analytics.services.points import CleanPoint
from analytics.validation import Invalid
from ingestion.line_protocol import MAX_STRING_LINES, parse_lines
from ingestion.validation import EPOCH, TimeWindow, clean_event, tag_set

CSV_FIELDS = frozenset({"metric", "value", "time", "id", "item"})
# Line protocol goes to `parse_lines` in chunks of this many lines, whatever the batch
# size, so a file always parses the same way. A string value may hold newlines: one
# still open at the end of a chunk is carried into the next when it began within the
# last MAX_CARRIED_LINES lines; otherwise it is reported, as over HTTP, as unterminated.
# (An unterminated string costs `parse_lines` time quadratic in the lines after it, so
# the chunk also bounds what one stray quote can cost.)
LP_CHUNK_LINES = 1000
MAX_CARRIED_LINES = MAX_STRING_LINES
UNTERMINATED = "field set: unterminated string value"

# `clean_event` and `parse_lines` give an event without a time the window's `now`. An
# import refuses such events (a re-run would stamp them anew and store them twice), so
# `now` is set to a moment no checked time can equal, since it lies before any horizon.
NO_TIME = datetime.min.replace(tzinfo=UTC)


def import_window(now: datetime) -> TimeWindow:
    """Return the times an imported row may carry: those of HTTP ingestion, none implied."""
    window = TimeWindow.around(
        now,
        retention_days=settings.RETENTION_RAW_DAYS,
        max_future_seconds=settings.INGEST_MAX_FUTURE_SECONDS,
    )
    return replace(window, now=NO_TIME)


_MICROSECOND = timedelta(microseconds=1)


class Entry(NamedTuple):
    """One row of the file: its points, or why it was refused."""

    line: int
    points: list[CleanPoint]
    error: str | None = None


class ContentIds:
    """Event ids for rows that carry none: "h:" + sha256(content + occurrence)[:32].

    The content is the validated row (series, time in microseconds, value), so the same
    event written as CSV or NDJSON gets the same id. The occurrence number counts the
    earlier rows of the file that fall into the same of 4M buckets (CRC-32 of the
    content): identical rows therefore get distinct ids, a re-run of the file gets the
    same ids again, and memory stays at 16 MiB whatever the size of the file.
    """

    BUCKETS = 1 << 22

    def __init__(self) -> None:
        self._seen = array("I", [0]) * self.BUCKETS

    def event_id(self, point: CleanPoint) -> str:
        metric, tags, item = point.series
        micros = (point.time - EPOCH) // _MICROSECOND
        content = orjson.dumps([metric, tags, item, micros, point.value])
        bucket = zlib.crc32(content) & (self.BUCKETS - 1)
        occurrence = self._seen[bucket]
        self._seen[bucket] = occurrence + 1
        return "h:" + hashlib.sha256(b"%s#%d" % (content, occurrence)).hexdigest()[:32]


def _finish(point: CleanPoint, ids: ContentIds, time_field: str = "time") -> CleanPoint:
    if point.time == NO_TIME:
        raise Invalid(f"{time_field}: required in an imported file (a re-run could not skip it)")
    if point.event_id is None:
        return point._replace(event_id=ids.event_id(point))
    return point


def _csv_columns(header: list[str]) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Return the positions of the event fields and of the tag columns."""
    names = [name.strip() for name in header]
    if "metric" not in names:
        raise CommandError(
            f"line 1: the header needs a 'metric' column (it has: {', '.join(names)})"
        )
    for index, name in enumerate(names):
        if names.index(name) != index:
            raise CommandError(f"line 1: column {name!r} appears twice in the header")
        if not name:
            raise CommandError(f"line 1: column {index + 1} of the header has no name")
    tags = [(name, index) for index, name in enumerate(names) if name not in CSV_FIELDS]
    for name, _ in tags:
        try:
            tag_set({name: "x"})
        except Invalid as exc:
            raise CommandError(f"line 1: column {name!r} cannot be a tag: {exc}") from exc
    return {name: i for i, name in enumerate(names) if name in CSV_FIELDS}, tags


def _csv_time(cell: str) -> str | int | float:
    """Return an epoch number as a number (so clean_event reads it as one), else the text."""
    if cell.removeprefix("-").isdigit() and cell.isascii():
        return int(cell)
    try:
        number = float(cell)
    except ValueError:
        return cell
    return number if math.isfinite(number) else cell


def _csv_event(
    cells: list[str], columns: dict[str, int], tags: list[tuple[str, int]], width: int
) -> dict[str, Any]:
    if len(cells) != width:
        raise Invalid(f"row: {len(cells)} cells, the header has {width}")
    event: dict[str, Any] = {"metric": cells[columns["metric"]]}
    for name in ("id", "item"):
        if name in columns and cells[columns[name]]:
            event[name] = cells[columns[name]]
    if "value" in columns and (value := cells[columns["value"]]):
        try:
            event["value"] = float(value)
        except ValueError:
            raise Invalid(f"value: {value[:64]!r} is not a number") from None
    if "time" in columns and (moment := cells[columns["time"]]):
        event["time"] = _csv_time(moment)
    tag_values = {name: cells[index] for name, index in tags if cells[index]}
    if tag_values:
        event["tags"] = tag_values
    return event


def csv_entries(lines: Iterable[bytes], window: TimeWindow, ids: ContentIds) -> Iterator[Entry]:
    """Read a CSV with a header row; every column but the event fields is a tag."""
    bad_lines: list[int] = []

    def text(raw_lines: Iterable[bytes]) -> Iterator[str]:
        for number, raw in enumerate(raw_lines, start=1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                bad_lines.append(number)
                yield raw.decode("utf-8", "replace")

    reader = csv.reader(text(lines))
    header = next(reader, None)
    if header is None:
        return
    columns, tags = _csv_columns(header)
    width, last = len(header), reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Entry(last + 1, [], f"not valid CSV: {exc}")
            last = reader.line_num
            continue
        first, last = last + 1, reader.line_num
        if not cells:
            continue
        if bad_lines and bad_lines[0] <= last:
            del bad_lines[: sum(1 for number in bad_lines if number <= last)]
            yield Entry(first, [], "row: not valid UTF-8")
            continue
        try:
            point = clean_event(_csv_event(cells, columns, tags, width), window)
            yield Entry(first, [_finish(point, ids)])
        except Invalid as exc:
            yield Entry(first, [], str(exc))


def ndjson_entries(lines: Iterable[bytes], window: TimeWindow, ids: ContentIds) -> Iterator[Entry]:
    """Read one JSON event per line, as the HTTP endpoint does; blank lines are skipped."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield Entry(number, [], f"not valid JSON: {exc}")
            continue
        try:
            yield Entry(number, [_finish(clean_event(event, window), ids)])
        except Invalid as exc:
            yield Entry(number, [], str(exc))


def _parse_chunk(
    chunk: list[str], first: int, *, precision: str, window: TimeWindow, ids: ContentIds, last: bool
) -> tuple[list[Entry], list[str]]:
    """Parse lines `first`... of the file; return their entries and the lines to carry over."""
    points, point_lines, errors = parse_lines(
        "\n".join(chunk), precision=precision, window=window, max_points=sys.maxsize
    )
    carry: list[str] = []
    # A string left open near the end of the chunk may close in the next one: carry its
    # lines over and drop what was parsed from them here (they are parsed again then).
    open_near_end = [
        e.line
        for e in errors
        if e.error == UNTERMINATED and len(chunk) - e.line < MAX_CARRIED_LINES
    ]
    if open_near_end and not last:
        cut = min(open_near_end)
        carry = chunk[cut - 1 :]
        errors = [e for e in errors if e.line < cut]
        kept = [(p, n) for p, n in zip(points, point_lines, strict=True) if n < cut]
        points, point_lines = [p for p, _ in kept], [n for _, n in kept]
    entries: dict[int, Entry] = {}
    for point, line in zip(points, point_lines, strict=True):
        number = first + line - 1
        entry = entries.get(number)
        if entry is None:
            entry = entries[number] = Entry(number, [])
        if entry.error is None:
            try:
                entry.points.append(_finish(point, ids, "timestamp"))
            except Invalid as exc:
                entries[number] = Entry(number, [], str(exc))
    for error in errors:
        entries[first + error.line - 1] = Entry(first + error.line - 1, [], error.error)
    return [entries[number] for number in sorted(entries)], carry


def line_protocol_entries(
    lines: Iterable[bytes], window: TimeWindow, ids: ContentIds, *, precision: str
) -> Iterator[Entry]:
    """Read InfluxDB line protocol through `parse_lines`, LP_CHUNK_LINES lines at a time."""
    chunk: list[str] = []
    first = 1
    undecodable: list[Entry] = []

    def parse(last: bool) -> Generator[Entry, None, None]:
        nonlocal chunk, first
        entries, carry = _parse_chunk(
            chunk, first, precision=precision, window=window, ids=ids, last=last
        )
        entries.extend(undecodable)
        undecodable.clear()
        yield from sorted(entries, key=lambda entry: entry.line)
        first += len(chunk) - len(carry)
        chunk = carry

    for number, raw in enumerate(lines, start=1):
        try:
            chunk.append(raw.decode("utf-8").rstrip("\n"))
        except UnicodeDecodeError:
            chunk.append("")  # keeps the numbering; the line is reported below
            undecodable.append(Entry(number, [], "line: not valid UTF-8"))
        if len(chunk) >= LP_CHUNK_LINES:
            yield from parse(last=False)
    if chunk or undecodable:
        yield from parse(last=True)
