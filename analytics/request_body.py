"""Read a request body within limits, gunzipping it when it says so (no gzip bombs).

The ingest endpoints and the items and search API read their bodies here, so every
body obeys the same size, encoding and JSON rules and is refused the same way.
"""

import zlib
from typing import Any

import orjson
from django.http import HttpRequest

from analytics.refusals import Refusal

_READ_CHUNK = 1 << 20


def read_body(request: HttpRequest, *, max_bytes: int, max_decompressed: int) -> bytes:
    """Return the body, decompressed, or raise 413/415/400 naming the limit or encoding."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > max_bytes:
        raise Refusal(
            413, f"request body of {declared} bytes exceeds the limit of {max_bytes} bytes"
        )
    raw = _read_limited(request, max_bytes)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding != "gzip":
        raise Refusal(415, f"Content-Encoding {encoding!r} is not supported (use gzip or none)")
    return _gunzip(raw, max_decompressed)


def _body_stream(request: HttpRequest) -> Any:
    """Return what to read the body from.

    Django reads exactly Content-Length bytes, so a chunked body (no Content-Length, as
    clients that stream a body of unknown length send) would read as empty and its
    events be lost. A server that
    de-chunks the body and ends the stream itself says so with `wsgi.input_terminated`
    (gunicorn does); then the WSGI input is read directly, within the same limit.
    """
    if not request.META.get("CONTENT_LENGTH") and request.META.get("wsgi.input_terminated"):
        return request.META["wsgi.input"]
    return request


def _read_limited(request: HttpRequest, max_bytes: int) -> bytes:
    stream = _body_stream(request)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise Refusal(413, f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)


def _gunzip(raw: bytes, max_decompressed: int) -> bytes:
    """Decompress at most `max_decompressed` bytes; the rest is never inflated."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, max_decompressed + 1)
    except zlib.error as exc:
        raise Refusal(400, f"body is not valid gzip: {exc}") from exc
    if len(data) > max_decompressed or inflater.unconsumed_tail:
        raise Refusal(413, f"decompressed body exceeds the limit of {max_decompressed} bytes")
    if not inflater.eof:
        raise Refusal(400, "body is not valid gzip: the stream is truncated")
    return data


def media_type(request: HttpRequest) -> str:
    """Return the request's media type, lower case, without parameters."""
    return (request.content_type or "").split(";")[0].strip().lower()


def read_json_body(request: HttpRequest, *, max_bytes: int) -> Any:
    """Return the parsed JSON body, or raise a Refusal (413/415/400) saying why.

    A gzip body may inflate to five times the limit: JSON compresses well, and the
    cap still bounds the memory a request can cost.
    """
    kind = media_type(request)
    if kind != "application/json":
        raise Refusal(
            415, f"Content-Type {kind or '(none)'!r} is not supported; use application/json"
        )
    body = read_body(request, max_bytes=max_bytes, max_decompressed=max_bytes * 5)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refusal(400, f"body is not valid JSON: {exc}") from exc
