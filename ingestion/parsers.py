"""Turn request bodies (JSON, NDJSON, line protocol) into parsed batches."""

from typing import Any

import orjson

from analytics.refusals import Refusal
from analytics.validation import Invalid
from ingestion.line_protocol import parse_lines
from ingestion.services import ParsedBatch
from ingestion.validation import TimeWindow, clean_event

JSON_TYPES = {"application/json"}
NDJSON_TYPES = {
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
}


def _too_many(count: int, max_events: int) -> Refusal:
    return Refusal(413, f"{count} events in one request, at most {max_events} allowed")


def _add_events(
    batch: ParsedBatch, events: list[tuple[dict[str, int], Any]], window: TimeWindow
) -> ParsedBatch:
    for source, event in events:
        try:
            batch.points.append(clean_event(event, window))
            batch.sources.append(source)
        except Invalid as exc:
            batch.errors.append({**source, "error": str(exc)})
    return batch


def parse_json(body: bytes, *, window: TimeWindow, max_events: int) -> ParsedBatch:
    """Parse a JSON array of events, or `{"events": [...]}`."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refusal(400, f"body is not valid JSON: {exc}") from exc
    if isinstance(document, dict) and set(document) == {"events"}:
        document = document["events"]
    if not isinstance(document, list):
        raise Refusal(400, 'body must be a JSON array of events or {"events": [...]}')
    if len(document) > max_events:
        raise _too_many(len(document), max_events)
    return _add_events(ParsedBatch(), [({"index": i}, e) for i, e in enumerate(document)], window)


def parse_ndjson(body: bytes, *, window: TimeWindow, max_events: int) -> ParsedBatch:
    """Parse one JSON event per line; blank lines are skipped, errors name the line."""
    batch = ParsedBatch()
    events: list[tuple[dict[str, int], Any]] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        source = {"index": len(events) + len(batch.errors), "line": number}
        try:
            events.append((source, orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            batch.errors.append({**source, "error": f"not valid JSON: {exc}"})
        if len(events) + len(batch.errors) > max_events:
            raise _too_many(len(events) + len(batch.errors), max_events)
    return _add_events(batch, events, window)


def parse_line_protocol(
    body: bytes, *, precision: str, window: TimeWindow, max_events: int
) -> ParsedBatch:
    """Parse InfluxDB line protocol; each error names its line number."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(400, f"body is not UTF-8: byte {exc.start} is invalid") from exc
    try:
        points, lines, errors = parse_lines(
            text, precision=precision, window=window, max_points=max_events
        )
    except Invalid as exc:
        raise Refusal(413, str(exc)) from exc
    return ParsedBatch(
        points=points,
        sources=[{"line": line} for line in lines],
        errors=[{"line": e.line, "error": e.error} for e in errors],
    )
