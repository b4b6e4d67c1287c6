"""Plain HTTP clients of the fault tests: batches with event ids, retried with the same key.

A client retries a batch on a connection error, 502, 503 or 429 with the very same body
and Idempotency-Key, as a well-behaved SDK would, and records which batches were
acknowledged (200) and every status it saw, so a test can check afterwards that each
acknowledged event is stored exactly once and that no answer was ever a 500.
"""

import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

RETRYABLE = frozenset({429, 502, 503})


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return orjson.loads(self.body)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Answer:
    """Send one request on a fresh connection; connection problems raise OSError/HTTPException."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return Answer(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            data,
            time.monotonic() - started,
        )
    finally:
        connection.close()


@dataclass(frozen=True)
class Batch:
    """One request's worth of events, each with its own id, and the batch's Idempotency-Key."""

    key: str
    event_ids: tuple[str, ...]
    body: bytes


def make_batches(name: str, *, count: int, size: int, now: datetime | None = None) -> list[Batch]:
    """Return `count` batches of `size` events with ids unique to `name`, in the last hour."""
    return list(batch_stream(name, count=count, size=size, now=now))


def batch_stream(
    name: str, *, count: int, size: int, now: datetime | None = None
) -> Iterator[Batch]:
    """Yield up to `count` batches as `make_batches` builds them, each only when asked for."""
    start = (now or datetime.now(UTC)) - timedelta(hours=1)
    for number in range(count):
        ids = tuple(f"{name}-{number}-{index}" for index in range(size))
        events = [
            {
                "metric": "faults.requests",
                "value": index,
                "time": (start + timedelta(milliseconds=number * size + index)).isoformat(),
                "tags": {"client": name},
                "id": event_id,
            }
            for index, event_id in enumerate(ids)
        ]
        yield Batch(f"{name}-batch-{number}", ids, orjson.dumps(events))


@dataclass
class ClientLog:
    """What one client saw: acknowledged receipts by batch key, statuses, connection errors."""

    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)
    replayed: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def attempts(self) -> int:
        return sum(self.statuses.values()) + len(self.connection_errors)


def send_until_acknowledged(
    port: int,
    secret: str,
    batch: Batch,
    log: ClientLog,
    *,
    deadline: float,
    timeout: float = 15,
) -> bool:
    """POST `batch` until it is acknowledged (200) or `deadline` passes; return whether it was.

    Any status other than 200 and the retryable ones is recorded as unexpected and ends
    the attempts: a 4xx would fail the same way again, and a 500 is a defect.
    """
    headers = {
        "Authorization": f"Bearer {secret}",
        "Content-Type": "application/json",
        "Idempotency-Key": batch.key,
    }
    pause = 0.05
    while time.monotonic() < deadline:
        try:
            answer = request(port, "POST", "/api/v1/events", batch.body, headers, timeout=timeout)
        except (OSError, http.client.HTTPException) as exc:
            with log.lock:
                log.connection_errors.append(f"{batch.key}: {type(exc).__name__}: {exc}")
        else:
            with log.lock:
                log.statuses[answer.status] += 1
            if answer.status == 200:
                with log.lock:
                    log.acknowledged[batch.key] = answer.json()
                    if answer.headers.get("idempotent-replayed") == "true":
                        log.replayed.add(batch.key)
                return True
            if answer.status not in RETRYABLE:
                with log.lock:
                    log.unexpected.append(f"{batch.key}: {answer.status} {answer.body[:300]!r}")
                return False
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
    return False


class IngestClient(threading.Thread):
    """Send batches one after another, each retried until acknowledged, until told to stop.

    `stop` ends the run between two batches: the one in flight is still retried to the end,
    so every batch in `started` is one the server must have stored exactly once.
    """

    def __init__(
        self, port: int, secret: str, batches: Iterable[Batch], log: ClientLog, *, deadline: float
    ) -> None:
        super().__init__(daemon=True)
        self.port, self.secret, self.batches, self.log = port, secret, batches, log
        self.deadline = deadline
        self.started: list[Batch] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        for batch in self.batches:
            if self.stopping.is_set():
                return
            self.started.append(batch)
            if not send_until_acknowledged(
                self.port, self.secret, batch, self.log, deadline=self.deadline
            ):
                return


def wait_until(predicate: Any, *, timeout: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@dataclass
class ClientRun:
    """Two retrying clients sending their own batches to one project, started together."""

    logs: list[ClientLog]
    clients: list[IngestClient]
    deadline: float

    def running(self) -> bool:
        return any(client.is_alive() for client in self.clients)

    def stop(self) -> None:
        """Let each client finish the batch in flight and send no more."""
        for client in self.clients:
            client.stopping.set()

    def join(self) -> None:
        for client in self.clients:
            client.join(timeout=max(self.deadline - time.monotonic(), 0) + 5)

    def sent(self) -> list[Batch]:
        """The batches the clients began to send (all of them, once the clients are done)."""
        return [batch for client in self.clients for batch in client.started]


def start_two_clients(
    port: int, secret: str, *, prefix: str, batches_per_client: int, size: int, deadline_s: float
) -> ClientRun:
    """Start two clients, each sending up to `batches_per_client` batches of `size` events."""
    logs = [ClientLog(), ClientLog()]
    deadline = time.monotonic() + deadline_s
    clients = [
        IngestClient(
            port,
            secret,
            batch_stream(f"{prefix}{n}", count=batches_per_client, size=size),
            logs[n],
            deadline=deadline,
        )
        for n in (0, 1)
    ]
    for client in clients:
        client.start()
    return ClientRun(logs, clients, deadline)


def assert_stored_exactly_once(run: ClientRun, counts: dict[str, int]) -> None:
    """Every batch acknowledged with its first receipt, no 500, each event stored once.

    `counts` is the number of stored rows per event id of the project.
    """
    for log in run.logs:
        assert not log.unexpected, log.unexpected[:5]
        assert 500 not in log.statuses
    sent = run.sent()
    receipts = {key: receipt for log in run.logs for key, receipt in log.acknowledged.items()}
    assert set(receipts) == {batch.key for batch in sent}, "some batches were never acknowledged"
    sizes = {batch.key: len(batch.event_ids) for batch in sent}
    for key, receipt in receipts.items():
        # A retry of a committed batch must get the first receipt back, not "duplicates".
        assert (receipt["accepted"], receipt["duplicates"]) == (sizes[key], 0), (key, receipt)
    assert {event_id for event_id, count in counts.items() if count != 1} == set()
    assert set(counts) == {event_id for batch in sent for event_id in batch.event_ids}
