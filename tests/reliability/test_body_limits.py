"""Oversized and gzip-bomb bodies: 413 with bounded memory, in process and through gunicorn.

The decompressor must stop at INGEST_MAX_DECOMPRESSED_BYTES instead of inflating the
bomb, and an oversized body must be refused without being buffered. Memory is measured
with tracemalloc around `read_body`, and as the peak RSS (VmHWM) of the gunicorn
workers of the private stack around a real request.
"""

import http.client
import time
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest
from django.test import RequestFactory

from analytics.refusals import Refusal
from analytics.request_body import read_body
from tests.reliability.clients import Answer, request
from tests.reliability.stack import (
    MAX_BODY_BYTES,
    MAX_DECOMPRESSED_BYTES,
    PrivateStack,
    peak_rss_kib,
    reset_peak_rss,
)

MIB = 1024 * 1024
# Memory a refused body may cost on top of its compressed size and the decompression cap:
# the inflater's unconsumed input and a copy or two of the capped output (traced), plus
# the allocator's and the worker's own noise (peak RSS). A decompressor that inflated the
# bomb would need a whole GiB.
TRACED_SLACK_BYTES = 8 * MIB
RSS_SLACK_BYTES = 48 * MIB


def gzip_bomb(inflated: int) -> bytes:
    """Return a gzip stream of `inflated` spaces (about 1000:1), built without holding them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * MIB
    parts = [compressor.compress(block) for _ in range(inflated // MIB)]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A 1 GiB gzip bomb, about 1 MiB on the wire."""
    return gzip_bomb(1024 * MIB)


def _refusal(body: bytes, headers: dict[str, str] | None = None) -> tuple[Refusal, int]:
    """Run read_body on `body`; return its refusal and the peak bytes traced meanwhile."""
    django_request = RequestFactory().generic(
        "POST", "/api/v1/events", body, content_type="application/json", headers=headers
    )
    tracemalloc.start()
    try:
        with pytest.raises(Refusal) as refused:
            read_body(django_request, max_bytes=8 * MIB, max_decompressed=MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return refused.value, peak


def test_gzip_bomb_stops_at_the_decompression_cap(bomb):
    """A 1 GiB bomb is refused with 413 after inflating at most the cap (traced memory)."""
    refused, peak = _refusal(bomb, {"Content-Encoding": "gzip"})
    assert refused.status == 413
    assert refused.error == f"decompressed body exceeds the limit of {MIB} bytes"
    assert peak < len(bomb) + MIB + TRACED_SLACK_BYTES


def test_declared_oversized_body_is_refused_unread():
    """A Content-Length over the limit is a 413 before a byte is read."""
    body = b" " * (9 * MIB)
    refused, peak = _refusal(body)
    assert refused.status == 413
    assert (
        refused.error == f"request body of {len(body)} bytes exceeds the limit of {8 * MIB} bytes"
    )
    assert peak < MIB


def _workers_peak_growth_kib(stack: PrivateStack, send) -> tuple[Answer, int]:
    """Reset the workers' peak RSS, run `send`, and return its answer and the largest growth."""
    workers = stack.web_workers()
    before = {}
    for pid in workers:
        reset_peak_rss(pid)
        before[pid] = peak_rss_kib(pid)
    answer = send()
    growth = max(peak_rss_kib(pid) - before[pid] for pid in workers)
    assert stack.web_workers() == workers, "a worker died on the request"
    return answer, growth


@pytest.mark.parametrize(
    ("path", "content_type", "auth"),
    [
        ("/api/v1/events", "application/json", "Bearer"),
        ("/api/v2/write", "text/plain", "Token"),
    ],
)
def test_gzip_bomb_through_gunicorn_is_413_with_bounded_memory(
    stack, bomb, path, content_type, auth
):
    """Over HTTP, a 1 GiB bomb is a 413 and no worker's peak RSS grows past the cap and slack."""
    tenant = stack.new_tenant()
    headers = {
        "Authorization": f"{auth} {tenant.secret}",
        "Content-Type": content_type,
        "Content-Encoding": "gzip",
    }
    # Warm both workers on this endpoint, so first-request imports are not counted.
    for _ in range(4):
        assert request(stack.web_port, "POST", path, gzip_bomb(MIB), headers).status in (204, 400)
    answer, growth_kib = _workers_peak_growth_kib(
        stack, lambda: request(stack.web_port, "POST", path, bomb, headers)
    )
    assert answer.status == 413
    assert answer.json()["error"] == (
        f"decompressed body exceeds the limit of {MAX_DECOMPRESSED_BYTES} bytes"
    )
    assert growth_kib * 1024 < len(bomb) + MAX_DECOMPRESSED_BYTES + RSS_SLACK_BYTES
    assert stack.event_id_counts(tenant) == {}


def _send_headers_only(port: int, headers: dict[str, str]) -> Answer:
    """Announce a body and send none: the server must answer from the headers alone."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.putrequest("POST", "/api/v1/events")
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read(), 0.0)
    finally:
        connection.close()


def test_declared_oversized_body_through_gunicorn_is_413_without_reading_it(stack):
    """Content-Length over the limit: 413 at once, though not one body byte was sent."""
    tenant = stack.new_tenant()
    answer = _send_headers_only(
        stack.web_port,
        {
            "Authorization": f"Bearer {tenant.secret}",
            "Content-Type": "application/json",
            "Content-Length": str(1024 * MIB),
        },
    )
    assert answer.status == 413
    assert answer.json()["error"] == (
        f"request body of {1024 * MIB} bytes exceeds the limit of {MAX_BODY_BYTES} bytes"
    )


def _chunked(port: int, path: str, headers: dict[str, str], chunks: Iterator[bytes]) -> Answer:
    """POST with Transfer-Encoding: chunked (no Content-Length), as streaming clients do."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read(), 0.0)
    finally:
        connection.close()


def test_chunked_body_is_read(stack):
    """A chunked body (Telegraf streams gzip this way) is read and stored, not taken as empty."""
    tenant = stack.new_tenant()
    headers = {"Authorization": f"Token {tenant.secret}", "Content-Type": "text/plain"}
    start = time.time_ns() - 60 * 10**9
    lines = (f"chunked,host=a v={n}i {start + n * 1000}\n".encode() for n in range(1000))
    answer = _chunked(stack.web_port, "/api/v2/write", headers, lines)
    assert answer.status == 204, answer.body
    ((count,),) = stack.sql(
        "SELECT count(*) FROM points p JOIN analytics_series s ON s.id = p.series_id"
        " WHERE s.project_id = %s",
        [tenant.project_id],
    )
    assert count == 1000


def _chunked_without_end(port: int, headers: dict[str, str], payload: int) -> Answer:
    """Send `payload` bytes as 1 MiB chunks, then wait for the answer without ending the body.

    The server stops reading once past its limit; waiting (rather than pushing the rest)
    leaves nothing unread in its socket, so it closes cleanly and the 413 arrives, where
    a client still sending would be reset mid-body (gunicorn does not drain bodies).
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("POST", "/api/v1/events")
        for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
            connection.putheader(name, value)
        connection.endheaders()
        block = b"[" + b" " * (MIB - 1)
        for _ in range(payload // MIB):
            connection.send(b"%x\r\n%s\r\n" % (len(block), block))
            block = b" " * MIB
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read(), 0.0)
    finally:
        connection.close()


def test_oversized_chunked_body_is_413_with_bounded_memory(stack):
    """A chunked body past the limit is a 413 as soon as the limit is passed, never buffered whole."""
    tenant = stack.new_tenant()
    headers = {"Authorization": f"Bearer {tenant.secret}", "Content-Type": "application/json"}
    answer, growth_kib = _workers_peak_growth_kib(
        stack, lambda: _chunked_without_end(stack.web_port, headers, MAX_BODY_BYTES + MIB)
    )
    assert answer.status == 413
    assert answer.json()["error"] == f"request body exceeds the limit of {MAX_BODY_BYTES} bytes"
    assert growth_kib * 1024 < MAX_BODY_BYTES + RSS_SLACK_BYTES
