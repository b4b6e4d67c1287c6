"""What bench/soak.py watches: its server processes, their memory, the requests, the report.

Each server runs in a process group of its own, so stopping it (SIGTERM, then SIGKILL
of the group) also ends its workers and pool processes, and Ctrl-C in the terminal
reaches the soak alone, which stops them in order. Memory is read from /proc once a
second; request records come from the clients' queue (bench/soak_load.py).
"""

import contextlib
import multiprocessing
import os
import queue as queue_module
import signal
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from soak_load import Record

ROOT = Path(__file__).resolve().parent.parent
PROGRESS_EVERY_S = 5.0
EDGE_WINDOW_S = 10.0
KINDS = (
    "gunicorn_master",
    "gunicorn_workers",
    "celery_worker",
    "celery_pool",
    "beat",
    "postgres",
    "redis",
)


def say(message: str) -> None:
    print(message, flush=True)


class ServerProcess:
    """One server (gunicorn, Celery worker, beat) started with the soak's environment."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.process: subprocess.Popen[bytes] | None = None
        self.failed = False

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def check(self) -> None:
        """Raise when the server has exited."""
        if self.process is not None and self.process.poll() is not None:
            self.failed = True
            raise RuntimeError(f"{self.name} exited with status {self.process.returncode}")

    def wait_http(self, port: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            if time.monotonic() > deadline:
                self.failed = True
                raise RuntimeError(f"{self.name} did not listen on port {port} in {timeout:g} s")
            time.sleep(0.2)

    def wait_log(self, marker: bytes, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.log.read_bytes():
            self.check()
            if time.monotonic() > deadline:
                self.failed = True
                raise RuntimeError(f"{self.name} did not log {marker!r} in {timeout:g} s")
            time.sleep(0.2)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the group (graceful), SIGKILL it after `timeout` seconds."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.failed = True
        # Orphaned children (a pool process, a gunicorn worker) go with the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""


def children(pid: int) -> list[int]:
    """Return the pids of `pid`'s children."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                found += [
                    int(child)
                    for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                ]
    return found


def memory_kib(pid: int, *, private: bool = False) -> int:
    """Return the resident KiB of `pid` (0 when it is gone or unreadable).

    `private` counts anonymous and file-backed pages only: a PostgreSQL backend's
    share of the shared buffers is the same memory in every backend.
    """
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile"):
                fields[name] = int(value.split()[0])
    except (OSError, ValueError):
        return 0
    if private:
        return fields.get("RssAnon", 0) + fields.get("RssFile", 0)
    return fields.get("VmRSS", 0)


class MemorySampler:
    """Resident memory of every process kind of the soak, sampled on demand (each second)."""

    def __init__(self, servers: list["ServerProcess"], database_url: str, redis_url: str) -> None:
        by_name = {server.name: server for server in servers}
        self.web, self.worker, self.beat = by_name["web"], by_name["worker"], by_name["beat"]
        self.connection = psycopg.connect(database_url, autocommit=True)
        with redis.Redis.from_url(redis_url, socket_timeout=5) as client:
            self.redis_pid = int(client.info("server")["process_id"])
        # (monotonic time, KiB per kind, processes per kind, KiB of its largest process)
        self.samples: list[tuple[float, dict[str, int], dict[str, int], dict[str, int]]] = []

    def _pids(self) -> dict[str, list[int]]:
        backends = [
            int(row[0])
            for row in self.connection.execute(
                # Connections only: autovacuum and parallel workers come and go.
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
        ]
        return {
            "gunicorn_master": [self.web.pid],
            "gunicorn_workers": children(self.web.pid),
            "celery_worker": [self.worker.pid],
            "celery_pool": children(self.worker.pid),
            "beat": [self.beat.pid],
            "postgres": backends,
            "redis": [self.redis_pid],
        }

    def sample(self) -> None:
        kib: dict[str, int] = {}
        counts: dict[str, int] = {}
        largest: dict[str, int] = {}
        for kind, pids in self._pids().items():
            each = [memory_kib(pid, private=kind == "postgres") for pid in pids]
            kib[kind], counts[kind], largest[kind] = sum(each), len(each), max(each, default=0)
        self.samples.append((time.monotonic(), kib, counts, largest))

    def latest(self) -> dict[str, int]:
        return dict(self.samples[-1][1]) if self.samples else {}

    def growth(self, start: float, end: float, window: float) -> dict[str, dict[str, float]]:
        """Per kind: medians of the first and last `window` seconds, peak, growth in %."""
        inside = [sample for sample in self.samples if start <= sample[0] <= end + 1]
        first = [sample for sample in inside if sample[0] < start + window]
        last = [sample for sample in inside if sample[0] >= end - window]
        figures: dict[str, dict[str, float]] = {}
        for kind in KINDS:
            if not first or not last:
                break
            before = statistics.median(sample[1][kind] for sample in first)
            after = statistics.median(sample[1][kind] for sample in last)
            if before <= 0:
                continue  # not readable here (say, a database on another machine)
            figures[kind] = {
                "processes": max(sample[2][kind] for sample in inside),
                "first": before,
                "last": after,
                "peak": max(sample[1][kind] for sample in inside),
                "largest": max(sample[3][kind] for sample in inside),
                "pct": (after - before) / before * 100,
            }
        return figures

    def close(self) -> None:
        self.connection.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


@dataclass
class Tally:
    """Every request record of the load, and the errors among them."""

    records: list[Record] = field(default_factory=list)
    error_notes: list[str] = field(default_factory=list)

    def drain(self, source: "multiprocessing.Queue[Record]") -> None:
        while True:
            try:
                record = source.get_nowait()
            except queue_module.Empty:
                return
            self.records.append(record)
            if not record[3] and len(self.error_notes) < 10:
                self.error_notes.append(f"{record[0]}: {record[5]}")

    def since(self, start: float, end: float = float("inf")) -> list[Record]:
        return [record for record in self.records if start <= record[1] < end]


def summary(records: list[Record], kind: str) -> tuple[int, float, float]:
    times = [record[2] for record in records if record[0] == kind]
    return len(times), percentile(times, 50), percentile(times, 95)


def progress(
    tally: Tally, memory: MemorySampler, load_start: float, warm_at: float, target: float
) -> None:
    now = time.monotonic()
    recent = tally.since(now - PROGRESS_EVERY_S)
    events = sum(record[4] for record in recent) / PROGRESS_EVERY_S
    errors = sum(1 for record in tally.records if not record[3])
    kinds = sorted({record[0] for record in recent})
    p95 = " ".join(f"{kind} {summary(recent, kind)[2]:.0f}" for kind in kinds)
    rss = " ".join(f"{kind} {kib / 1024:.0f}" for kind, kib in memory.latest().items())
    phase = "warmup" if now < warm_at else "measure"
    say(
        f"[{now - load_start:5.0f} s {phase}] ingest {events:,.0f} ev/s (target {target:,.0f}),"
        f" errors {errors} | p95 ms: {p95} | RSS MiB: {rss}"
    )


def report(
    tally: Tally, memory: MemorySampler, warm_at: float, end: float, rate: float, maximum: float
) -> dict[str, Any]:
    measured = tally.since(warm_at, end + 60)
    seconds = max(end - warm_at, 1e-9)
    events = sum(record[4] for record in measured)
    errors = sum(1 for record in tally.records if not record[3])
    say("")
    say(f"{'request':<12}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}")
    p95: dict[str, float] = {}
    for kind in sorted({record[0] for record in measured}):
        count, p50, p95[kind] = summary(measured, kind)
        failed = sum(1 for record in measured if record[0] == kind and not record[3])
        say(f"{kind:<12}{count:>7}{p50:>9.1f}{p95[kind]:>9.1f}{failed:>8}")
    window = min(EDGE_WINDOW_S, seconds / 3)
    growth = memory.growth(warm_at, end, window)
    say("")
    say(
        f"{'process':<17}{'procs':>6}{'first MiB':>11}{'last MiB':>10}{'peak MiB':>10}"
        f"{'largest MiB':>13}{'growth':>9}"
    )
    for kind, figures in growth.items():
        say(
            f"{kind:<17}{figures['processes']:>6.0f}{figures['first'] / 1024:>11.1f}"
            f"{figures['last'] / 1024:>10.1f}{figures['peak'] / 1024:>10.1f}"
            f"{figures['largest'] / 1024:>13.1f}{figures['pct']:>8.1f}%"
        )
    say(
        f"(all processes of a kind together; first/last: medians of the first and last"
        f" {window:.0f} s of the {seconds:.0f} s measured; largest: its biggest single process)"
    )
    say("")
    say(
        f"events accepted {events:,} in {seconds:.0f} s = {events / seconds:,.0f}/s"
        f" (target {rate:,.0f}/s{f', max {maximum:,.0f}/s' if maximum else ''}); errors {errors}"
    )
    if events / seconds < 0.95 * rate:
        say("  (below the target: the server, or the clients sharing its cores, fell behind)")
    for note in tally.error_notes:
        say(f"  error: {note}")
    return {
        "errors": errors,
        "events": events,
        "p95_ms": {kind: round(value, 1) for kind, value in p95.items()},
        "rss_growth_pct": {kind: round(figures["pct"], 1) for kind, figures in growth.items()},
        "events_per_s": round(events / seconds),
        "target_events_per_s": round(rate),
        "max_events_per_s": round(maximum) if maximum else None,
        "peak_rss_mib": {
            kind: round(figures["peak"] / 1024, 1) for kind, figures in growth.items()
        },
    }
