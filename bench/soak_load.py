"""Load clients of bench/soak.py: paced ingestion, dashboard panels, searches and series reads.

Each client runs in a process of its own (so no client waits on another's GIL) until
`stop` is set or its deadline passes, and puts one `Record` per request on a queue:
(kind, finished at (monotonic), milliseconds, ok, events accepted, note). Anything but
a 2xx answer, or an exception, is a record with ok=False and the reason as its note.
Nothing here imports Django: the clients speak HTTP only.
"""

import http.client
import itertools
import random
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import orjson

Record = tuple[str, float, float, bool, int, str]
WORDS = [
    *("wooden", "chess", "set", "espresso", "machine", "garden", "hose", "cookbook", "jazz"),
    *("vinyl", "kite", "puzzle", "skillet", "headphones", "ukulele", "compost", "novel"),
    *("strategy", "guitar", "watering", "teddy", "bread", "coffee", "travel"),
]


@dataclass(frozen=True)
class Target:
    """Where and as whom the clients talk."""

    port: int
    write_key: str
    read_key: str
    project: str
    username: str
    password: str


@dataclass(frozen=True)
class EventTemplate:
    """One series of the soak project: what an event of it carries besides value and time."""

    metric: str
    tags: dict[str, str]
    item: str | None
    level: float


class Http:
    """One HTTP/1.1 connection that is reopened whenever the server closes it."""

    def __init__(self, port: int, timeout: float = 60) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.cookies: dict[str, str] = {}

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        try:
            self.connection.request(method, path, body=body, headers=sent)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()  # the next request opens a fresh one
            raise
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                cookie = value.split(";", 1)[0]
                key, _, content = cookie.partition("=")
                self.cookies[key.strip()] = content.strip()
        return response.status, data


def _timed(
    queue: "Queue[Record]",
    kind: str,
    client: Http,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Send one request and record it; a failure is recorded, never raised."""
    started = time.perf_counter()
    try:
        status, answer = client.call(method, path, body, headers)
    except Exception as exc:  # every failure is counted, and the soak goes on
        queue.put((kind, time.monotonic(), _ms(started), False, 0, f"{type(exc).__name__}: {exc}"))
        return
    ok = 200 <= status < 300
    note = "" if ok else f"{status}: {answer[:200]!r}"
    accepted = int(orjson.loads(answer).get("accepted", 0)) if ok and kind == "ingest" else 0
    queue.put((kind, time.monotonic(), _ms(started), ok, accepted, note))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _running(stop: Event, deadline: float) -> bool:
    return not stop.is_set() and time.monotonic() < deadline


def _pause(stop: Event, until: float) -> None:
    """Sleep until `until` (monotonic), waking early when the soak stops."""
    delay = until - time.monotonic()
    if delay > 0:
        stop.wait(delay)


def _every(period: float, deadline: float, stop: Event, step: Callable[[], None]) -> None:
    """Call `step` every `period` seconds until the deadline or the stop; Ctrl-C ends quietly
    (the parent process cleans up)."""
    try:
        while _running(stop, deadline):
            started = time.monotonic()
            step()
            _pause(stop, started + period)
    except KeyboardInterrupt:
        pass


def ingest_client(
    target: Target,
    templates: list[EventTemplate],
    rate: float | None,
    batch: int,
    deadline: float,
    stop: Event,
    queue: "Queue[Record]",
    seed: int,
) -> None:
    """POST batches of `batch` events at `rate` events/s (None: as fast as answers come)."""
    rng = random.Random(seed)
    client = Http(target.port)
    headers = {"Authorization": f"Bearer {target.write_key}", "Content-Type": "application/json"}
    interval = batch / rate if rate else 0.0
    next_at = time.monotonic()
    offset = rng.randrange(len(templates))
    try:
        while _running(stop, deadline):
            if interval:
                _pause(stop, next_at)
                # A client that fell behind (a slow answer) does not burst to catch up.
                next_at = max(next_at + interval, time.monotonic() - interval)
                if not _running(stop, deadline):
                    break
            now_ms = int(time.time() * 1000)
            events: list[dict[str, Any]] = []
            for index in range(offset, offset + batch):
                template = templates[index % len(templates)]
                event: dict[str, Any] = {
                    "metric": template.metric,
                    "tags": template.tags,
                    "value": round(template.level * rng.uniform(0.5, 1.5), 2),
                    "time": now_ms - rng.randrange(5000),
                }
                if template.item:
                    event["item"] = template.item
                events.append(event)
            offset += batch
            body = orjson.dumps(events)
            _timed(queue, "ingest", client, "POST", "/api/v1/events", body, headers)
    except KeyboardInterrupt:
        pass


def _login(client: Http, target: Target) -> None:
    """Log in through the members' form, as a browser does; raise when it does not take."""
    status, page = client.call("GET", "/accounts/login/")
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if status != 200 or match is None:
        raise RuntimeError(f"login page answered {status} without a CSRF token")
    form = urllib.parse.urlencode(
        {
            "username": target.username,
            "password": target.password,
            "csrfmiddlewaretoken": match.group(1).decode(),
        }
    ).encode()
    status, _ = client.call(
        "POST",
        "/accounts/login/",
        form,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    if status != 302 or "sessionid" not in client.cookies:
        raise RuntimeError(f"login answered {status} without a session")


def dashboard_client(
    target: Target,
    dashboards: dict[str, list[int]],
    period: float,
    deadline: float,
    stop: Event,
    queue: "Queue[Record]",
) -> None:
    """Every `period` seconds open the next dashboard and fetch each of its panels' data."""
    client = Http(target.port)
    try:
        _login(client, target)
    except Exception as exc:  # recorded; the panels then answer 302 and count as errors
        queue.put(("login", time.monotonic(), 0.0, False, 0, f"{type(exc).__name__}: {exc}"))
    slugs = itertools.cycle(sorted(dashboards))

    def open_next_dashboard() -> None:
        slug = next(slugs)
        base = f"/p/{target.project}/dashboards/{slug}/"
        _timed(queue, "dashboard", client, "GET", base)
        for panel_id in dashboards[slug]:
            _timed(queue, "panel", client, "GET", f"{base}panels/{panel_id}/data")

    _every(period, deadline, stop, open_next_dashboard)


def search_client(
    target: Target,
    items: list[str],
    period: float,
    deadline: float,
    stop: Event,
    queue: "Queue[Record]",
    seed: int,
) -> None:
    """Search by example: similar items of one item, like/unlike ids, sometimes free text."""
    rng = random.Random(seed)
    client = Http(target.port)
    auth = {"Authorization": f"Bearer {target.read_key}"}
    post = {**auth, "Content-Type": "application/json"}

    def search_once() -> None:
        roll = rng.random()
        if roll < 0.6:
            path = f"/api/v1/items/{rng.choice(items)}/similar?k=10"
            _timed(queue, "similar", client, "GET", path, None, auth)
        elif roll < 0.85:
            first, second, unlike = rng.sample(items, 3)  # distinct: the API refuses overlap
            body = orjson.dumps({"like": [first, second], "unlike": [unlike], "k": 10})
            _timed(queue, "search", client, "POST", "/api/v1/search", body, post)
        else:
            # Fresh words each time, so the query vector is not in the cache.
            text = " ".join(rng.sample(WORDS, 4))
            body = orjson.dumps({"like": [{"text": text}], "k": 10})
            _timed(queue, "search_text", client, "POST", "/api/v1/search", body, post)

    _every(period, deadline, stop, search_once)


def series_client(
    target: Target,
    metrics: list[tuple[str, str, str]],
    period: float,
    deadline: float,
    stop: Event,
    queue: "Queue[Record]",
    seed: int,
) -> None:
    """Read series as an API user does: a metric, an aggregate, a range, a grouping."""
    rng = random.Random(seed)
    client = Http(target.port)
    auth = {"Authorization": f"Bearer {target.read_key}"}

    def read_series() -> None:
        metric, agg, group_by = rng.choice(metrics)
        params = {
            "metric": metric,
            "agg": agg,
            "start": rng.choice(["now-15m", "now-1h", "now-6h", "now-24h"]),
            "group_by": group_by,
            "limit": "10",
        }
        path = f"/api/v1/series?{urllib.parse.urlencode(params)}"
        _timed(queue, "series", client, "GET", path, None, auth)

    _every(period, deadline, stop, read_series)
