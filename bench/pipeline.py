"""Pipeline benchmark: items/s from the first upsert to the last vector, against the bare encoder.

    scripts/stack.sh exec python bench/pipeline.py [--items 20000] [--runs 1] [--post-batch 1000]
        [--trickle-rate 100] [--trickle-seconds 30] [--no-trickle | --trickle-only]
        [--redis-db 12] [--keep]

Everything runs against a database of its own (`<DATABASE_URL's name>_bench_pipeline`,
created, migrated and dropped at the end) and Redis databases of its own (`--redis-db` N
for the broker, N+1 for the cache). gunicorn, the Celery worker and beat are started with
the command lines of `make run` (`scripts/run.py`: same queues, the pool sized by the
settings from the machine unless EMBEDDINGS_WORKER_CONCURRENCY says otherwise), with this
process's environment, so `EMBEDDINGS_*` variables set for the benchmark reach the worker.

Texts are product descriptions of a few words up to past the model's 256-token limit
(word counts log-uniform between 0 and 297 after a short title; the token mean and the
share of truncated texts are printed). Each run:

- the pipeline: from just before the first `POST /api/v1/items` (through gunicorn, batches of
  `--post-batch`, one request at a time) to the moment a poll sees no item of the project
  without a current vector (polled every 0.2 s);
- the bare encoder: `load_encoder().encode(texts)` on the same texts in this process, one call,
  torch with its default threads (all cores), while the worker sits idle.

Runs alternate which of the two goes first, so a busy moment of a shared machine does not
always land on the same one; with `--runs` > 1 the figures are medians. Then the trickle
(unless `--no-trickle`): `--trickle-rate` items/s posted in requests of `--trickle-batch`
for `--trickle-seconds` (after 5 s of warm-up, not counted), each item's delay from the
moment its request was sent to the first poll (every 0.05 s) that sees its current vector.
After the last load (`--write-check` N, default 1000), N vectors are rewritten per write path
with the HNSW index present: as text through unnest (the old write), by binary COPY on one
connection, and on two at once. Progress goes to stderr; stdout gets one JSON object with
everything measured (each run with the CPU milliseconds per item of every part and the share
of the machine's CPU time the host stole meanwhile, the write check, the trickle's delays),
then, last, exactly
{"items", "pipeline_items_per_s", "bare_texts_per_s", "ratio", "workers", "threads_per_worker"}.
"""

import argparse
import contextlib
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics.settings.local")
os.environ["DEBUG"] = "0"  # no query log in any process of the benchmark

from encoder import sentence  # noqa: E402
from gunicorn_server import free_port  # noqa: E402
from run import beat_command, web_command, worker_command  # noqa: E402

from analytics.settings.redis_isolation import with_redis_db  # noqa: E402

PROJECT = "bench-pipeline"
TRICKLE_PROJECT = "bench-trickle"
SEED = 13
MAX_WORDS = 297  # with the title, the longest texts run past 256 tokens
POLL_S = 0.2
TRICKLE_POLL_S = 0.05
TRICKLE_WARMUP_S = 5.0
# After the last request, how long stragglers may take before the trickle is called not kept up.
TRICKLE_GRACE_S = 60.0
PROGRESS_EVERY_S = 2.0
HEADLINE = (
    "items",
    "pipeline_items_per_s",
    "bare_texts_per_s",
    "ratio",
    "workers",
    "threads_per_worker",
)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_items(
    count: int, *, prefix: str = "sku", seed: int = SEED, max_words: int = MAX_WORDS
) -> list[dict[str, Any]]:
    """Return `count` catalogue items whose texts run from a few words to past 256 tokens.

    Word counts are log-uniform between 0 and `max_words`, after a title of 3-6 words.
    """
    from embeddings.demo import BRANDS, CATALOGUE

    rng = random.Random(seed)
    categories = sorted(CATALOGUE)
    items = []
    for number in range(count):
        category = categories[number % len(categories)]
        products, adjectives, descriptions = CATALOGUE[category]
        product, adjective = rng.choice(products), rng.choice(adjectives)
        # Log-uniform: many short descriptions, a long tail of long ones.
        target = round(3 * (max_words / 3 + 1) ** rng.random()) - 3
        words: list[str] = []
        while len(words) < target:
            if rng.random() < 0.4:
                line = rng.choice(descriptions).format(product=product, adjective=adjective)
            else:
                line = sentence(rng)
            words.extend(line.split())
        items.append(
            {
                "external_id": f"{prefix}-{seed}-{number}",
                "title": f"{rng.choice(BRANDS)} {adjective} {product}",
                "text": " ".join(words[:target]),
                "attributes": {"category": category, "price": round(rng.uniform(4, 250), 2)},
            }
        )
    return items


def encoder_inputs(items: list[dict[str, Any]]) -> list[str]:
    from embeddings.validation import embedding_input

    return [embedding_input(item["title"], item["text"]) for item in items]


# --- the servers -----------------------------------------------------------------------


class Server:
    """One server of `make run` in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # `make run` starts `gunicorn` and `celery` from the virtualenv's PATH; this
        # interpreter's modules are the same programs.
        argv = [sys.executable, "-m", *self.argv]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def wait_for(self, pattern: str, *, count: int = 1, timeout: float = 180) -> list[str]:
        """Wait until the log holds `count` matches of `pattern`; return them."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            found = re.findall(pattern, self.log.read_text(errors="replace"))
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not log {pattern!r} x{count}:\n{self.tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class Stack:
    port: int
    servers: list[Server]
    workers: int = 0
    threads_per_worker: int = 0


def start_stack(workdir: Path) -> Stack:
    """Start gunicorn, the worker and beat as `make run` does; wait until every model is loaded."""
    port = free_port()
    web = Server("web", web_command(f"127.0.0.1:{port}"), workdir / "web.log")
    # Named, so the worker's log and the broker tell it apart from any other.
    worker = Server(
        "worker",
        [*worker_command(), "-n", f"bench-pipeline-{os.getpid()}@%h"],
        workdir / "worker.log",
    )
    beat = Server("beat", beat_command(workdir / "celerybeat-schedule"), workdir / "beat.log")
    stack = Stack(port, [web, worker, beat])
    for server in stack.servers:
        server.start()
    concurrency = int(worker.wait_for(r"concurrency: (\d+)")[0])
    # Each pool process loads the model as it starts: measure only once all have.
    loaded = worker.wait_for(r"encoder \S+ loaded[^\n]*", count=concurrency)
    threads = [int(match) for line in loaded for match in re.findall(r"(\d+) torch threads", line)]
    stack.workers = concurrency
    # Code that does not log its threads leaves torch's default: every core.
    stack.threads_per_worker = threads[0] if threads else (os.cpu_count() or 1)
    deadline = time.monotonic() + 60
    while not port_open(port):
        web.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn did not listen:\n{web.tail()}")
        time.sleep(0.2)
    say(
        f"==> gunicorn on :{port}; worker: {stack.workers} processes x {stack.threads_per_worker} torch threads; beat"
    )
    return stack


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- the measurements ------------------------------------------------------------------


TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu() -> dict[int, tuple[int, float]]:
    """Return pid -> (process group, CPU seconds used so far) of every process we can read."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces: the fields after it are fixed.
        fields = stat.rpartition(")")[2].split()
        found[int(entry)] = (int(fields[2]), (int(fields[11]) + int(fields[12])) / TICKS)
    return found


def cpu_snapshot(stack: "Stack", conn: psycopg.Connection[Any]) -> dict[str, float]:
    """Return CPU seconds used so far by each part: web, worker, beat, PostgreSQL, this process.

    Servers are counted by process group (each started in its own); PostgreSQL by the
    backends connected to the benchmark database (web and worker connections persist).
    """
    processes = _process_cpu()
    totals = {server.name: 0.0 for server in stack.servers}
    groups = {server.process.pid: server.name for server in stack.servers if server.process}
    for group, seconds in processes.values():
        if group in groups:
            totals[groups[group]] += seconds
    backends = [
        int(pid)
        for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchall()
    ]
    totals["postgres"] = sum(processes[pid][1] for pid in backends if pid in processes)
    times = os.times()
    totals["bench"] = times.user + times.system
    return totals


def machine_ticks() -> tuple[int, int]:
    """Return (all, stolen) CPU ticks of this machine so far, from /proc/stat.

    Stolen ticks are those the hypervisor gave to other guests while this one wanted the
    CPU: on a shared host they slow every figure here without showing in any process.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    # user nice system idle iowait irq softirq steal; guest time is already inside user.
    ticks = [int(field) for field in fields[:8]]
    return sum(ticks), ticks[7] if len(ticks) == 8 else 0


def steal_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Return the share of this machine's CPU time that the host took between two readings."""
    total = after[0] - before[0]
    return round(100 * (after[1] - before[1]) / total, 1) if total > 0 else 0.0


def cpu_per_item(before: dict[str, float], after: dict[str, float], items: int) -> dict[str, float]:
    """Return CPU milliseconds per item of each part between two snapshots."""
    return {name: round(1000 * (after[name] - before.get(name, 0.0)) / items, 2) for name in after}


def post_items(port: int, key: str, items: list[dict[str, Any]]) -> None:
    """POST items to the API; anything but 200 ends the benchmark."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(
            "POST",
            "/api/v1/items",
            json.dumps(items).encode(),
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"POST /api/v1/items answered {response.status}: {body[:300]!r}")


def count_pending(conn: psycopg.Connection[Any], project_id: int, model: str) -> tuple[int, int]:
    """Return (items of the project, those without a current vector)."""
    from embeddings.currency import needs_embedding_sql

    row = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {needs_embedding_sql(model='%s', state_only=True)})"
        " FROM embeddings_item WHERE project_id = %s",
        [model, project_id],
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def measure_pipeline(
    stack: Stack, key: str, project_id: int, items: list[dict[str, Any]], args: argparse.Namespace
) -> tuple[float, dict[str, float], float]:
    """Return items/s from the first POST to the poll that sees every item's vector, CPU ms
    per item, and the percentage of the machine's CPU time the host took meanwhile."""
    from embeddings.active_model import model_name

    model = model_name()
    posted = [0]
    failure: list[BaseException] = []

    def post_all() -> None:
        try:
            for start in range(0, len(items), args.post_batch):
                post_items(stack.port, key, items[start : start + args.post_batch])
                posted[0] = min(len(items), start + args.post_batch)
        except BaseException as error:  # reported by the main thread
            failure.append(error)

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        poster = threading.Thread(target=post_all, name="poster", daemon=True)
        cpu_before, ticks_before = cpu_snapshot(stack, conn), machine_ticks()
        started = time.monotonic()
        poster.start()
        next_progress = started + PROGRESS_EVERY_S
        while True:
            if failure:
                raise failure[0]
            for server in stack.servers:
                server.check()
            stored, pending = count_pending(conn, project_id, model)
            now = time.monotonic()
            if stored == len(items) and pending == 0:
                break
            if now >= next_progress:
                done = stored - pending
                say(
                    f"    {now - started:5.1f} s: posted {posted[0]:,}, stored {stored:,},"
                    f" embedded {done:,} ({done / (now - started):,.0f} items/s)"
                )
                next_progress += PROGRESS_EVERY_S
            if now - started > args.timeout:
                raise RuntimeError(f"{pending} items still without a vector after {args.timeout} s")
            time.sleep(POLL_S)
        elapsed = time.monotonic() - started
        poster.join()
        cpu = cpu_per_item(cpu_before, cpu_snapshot(stack, conn), len(items))
        steal = steal_percent(ticks_before, machine_ticks())
    rate = len(items) / elapsed
    say(f"==> pipeline: {len(items):,} items in {elapsed:.1f} s: {rate:,.1f} items/s")
    say(f"    CPU ms per item: {cpu}; stolen by the host: {steal} %")
    return rate, cpu, steal


def measure_bare(texts: list[str]) -> tuple[float, float, float]:
    """Return texts/s of the encoder in this process, all cores, one call (after a warm-up),
    the CPU milliseconds it used per text, and the percentage the host took meanwhile."""
    import torch

    from embeddings.encoder import load_encoder

    encoder = load_encoder()
    encoder.encode(texts[:256])
    cpu, ticks_before = os.times(), machine_ticks()
    started = time.perf_counter()
    encoder.encode(texts)
    elapsed = time.perf_counter() - started
    after = os.times()
    steal = steal_percent(ticks_before, machine_ticks())
    rate = len(texts) / elapsed
    used = 1000 * (after.user + after.system - cpu.user - cpu.system) / len(texts)
    say(
        f"==> bare encoder ({torch.get_num_threads()} torch threads): {rate:,.1f} texts/s,"
        f" {used:.2f} CPU ms per text; stolen by the host: {steal} %"
    )
    return rate, used, steal


def describe_texts(texts: list[str]) -> None:
    from embeddings.encoder import default_model_dir
    from embeddings.encoder.batches import load_tokenizer

    tokenizer, _ = load_tokenizer(default_model_dir() / "tokenizer.json", max_length=256)
    counts = [len(encoding.ids) for encoding in tokenizer.encode_batch(texts[:5000])]
    say(
        f"==> texts: {statistics.mean(len(text.split()) for text in texts):.0f} words on average;"
        f" tokens (first {len(counts):,}): mean {statistics.mean(counts):.0f},"
        f" median {statistics.median(counts):.0f}, {sum(c >= 256 for c in counts) / len(counts):.0%} cut at 256"
    )


@dataclass
class Trickle:
    sent: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)


def measure_trickle(
    stack: Stack, key: str, project_id: int, args: argparse.Namespace
) -> dict[str, float]:
    """Post `--trickle-rate` items/s; return the p50, p95 and max delay to a current vector."""
    from embeddings.active_model import model_name
    from embeddings.currency import needs_embedding_sql

    model = model_name()
    total_s = TRICKLE_WARMUP_S + args.trickle_seconds
    requests = math.ceil(total_s * args.trickle_rate / args.trickle_batch)
    items = make_items(
        requests * args.trickle_batch,
        prefix="trickle",
        seed=SEED + 1,
        max_words=args.trickle_max_words,
    )
    describe_texts(encoder_inputs(items))
    period = args.trickle_batch / args.trickle_rate
    state = Trickle()
    lock = threading.Lock()
    done = threading.Event()
    failure: list[BaseException] = []
    say(
        f"==> trickle: {args.trickle_rate:g} items/s in requests of {args.trickle_batch} for"
        f" {TRICKLE_WARMUP_S:g} s of warm-up + {args.trickle_seconds:g} s"
    )

    def post_all() -> None:
        try:
            started = time.monotonic()
            for number in range(requests):
                # Paced by the schedule, not by the answers: a slow answer is not made up for
                # with a burst, and never delays the next request more than itself.
                time.sleep(max(0.0, started + number * period - time.monotonic()))
                batch = items[number * args.trickle_batch : (number + 1) * args.trickle_batch]
                at = time.monotonic()
                with lock:
                    state.sent.update((item["external_id"], at) for item in batch)
                post_items(stack.port, key, batch)
        except BaseException as error:
            failure.append(error)
        finally:
            done.set()

    poster = threading.Thread(target=post_all, name="trickle", daemon=True)
    start = time.monotonic()
    poster.start()
    next_progress = start + PROGRESS_EVERY_S
    query = (
        "SELECT external_id FROM embeddings_item WHERE project_id = %s"
        f" AND external_id = ANY(%s) AND NOT {needs_embedding_sql(model='%s', state_only=True)}"
    )
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        cpu_before, ticks_before = cpu_snapshot(stack, conn), machine_ticks()
        while True:
            if failure:
                raise failure[0]
            with lock:
                waiting = [
                    external_id for external_id in state.sent if external_id not in state.seen
                ]
            if waiting:
                rows = conn.execute(query, [project_id, waiting, model]).fetchall()
                now = time.monotonic()
                state.seen.update((external_id, now) for (external_id,) in rows)
            elif done.is_set():
                break
            now = time.monotonic()
            if now >= next_progress:
                recent = [
                    state.seen[k] - state.sent[k]
                    for k in state.seen
                    if state.seen[k] > now - PROGRESS_EVERY_S
                ]
                p95 = statistics.quantiles(recent, n=20)[-1] if len(recent) > 1 else float("nan")
                say(
                    f"    {now - start:5.1f} s: sent {len(state.sent):,}, searchable {len(state.seen):,}, recent p95 {p95:.2f} s"
                )
                next_progress += PROGRESS_EVERY_S
            if now - start > total_s + TRICKLE_GRACE_S:
                break  # the pipeline did not keep up: the stragglers count as still waiting
            time.sleep(TRICKLE_POLL_S)
        cpu = cpu_per_item(cpu_before, cpu_snapshot(stack, conn), len(state.sent))
        steal = steal_percent(ticks_before, machine_ticks())
    end = time.monotonic()
    say(f"    CPU ms per item: {cpu}; stolen by the host: {steal} %")
    counted = [
        state.seen.get(external_id, end) - at
        for external_id, at in state.sent.items()
        if at >= start + TRICKLE_WARMUP_S
    ]
    cuts = statistics.quantiles(counted, n=100)
    unfinished = len(state.sent) - len(state.seen)
    figures = {
        "p50": round(cuts[49], 3),
        "p95": round(cuts[94], 3),
        "max": round(max(counted), 3),
        "unfinished": unfinished,
        "steal_pct": steal,
    }
    if unfinished:
        say(f"==> {unfinished} trickle items had no vector {TRICKLE_GRACE_S:g} s after the last")
    say(f"==> trickle delay upsert -> searchable over {len(counted):,} items: {figures}")
    return figures


# The write before binary COPY: vectors as text through unnest (da12102), for comparison.
_TEXT_WRITE = """
UPDATE embeddings_item AS i
SET embedding = v.embedding::vector, embedded_hash = v.content_hash,
    embedding_model = %(model)s, embedded_at = now()
FROM unnest(%(ids)s::bigint[], %(hashes)s::text[], %(vectors)s::text[])
     AS v(id, content_hash, embedding)
WHERE i.id = v.id AND i.content_hash = v.content_hash"""


def measure_writes(project_id: int, rows: int, batch: int) -> dict[str, float]:
    """Return vectors/s written into the loaded table, HNSW index present, by each write path.

    Rows of the project get new random unit vectors in transactions of `batch`: as text
    through unnest on one connection, by binary COPY (`services.write_vectors`) on one, and
    by binary COPY on two connections at once, each on its own rows.
    """
    import numpy as np
    from pgvector import Vector

    from embeddings.active_model import model_name
    from embeddings.services import write_vectors

    model = model_name()
    url = os.environ["DATABASE_URL"]
    with psycopg.connect(url) as conn:
        stored = conn.execute(
            "SELECT id, content_hash, embedding::text FROM embeddings_item"
            " WHERE project_id = %s ORDER BY id LIMIT %s",
            [project_id, 4 * rows],
        ).fetchall()
    if len(stored) < 4 * rows:
        say(f"==> no write check: it needs {4 * rows} items, the load has {len(stored)}")
        return {}
    # Each item's own vector, nudged: the index sees the load's real (clustered) geometry,
    # which random vectors would not have (they cost HNSW insertion about ten times more).
    rng = np.random.default_rng(SEED)
    found = [(item_id, content) for item_id, content, _ in stored]
    every = np.stack([Vector.from_text(text).to_numpy() for _, _, text in stored])
    every += rng.normal(0, 0.01, every.shape).astype(np.float32)
    every /= np.linalg.norm(every, axis=1, keepdims=True)
    vectors_of = {item_id: vector for (item_id, _), vector in zip(found, every, strict=True)}

    def write(part: list[tuple[int, str]], binary: bool) -> None:
        vectors = np.stack([vectors_of[item_id] for item_id, _ in part])
        with psycopg.connect(url) as conn:
            for start in range(0, len(part), batch):
                chunk, chunk_vectors = part[start : start + batch], vectors[start : start + batch]
                with conn.transaction(), conn.cursor() as cursor:
                    ids, hashes = [row[0] for row in chunk], [row[1] for row in chunk]
                    if binary:
                        write_vectors(
                            cursor, model=model, ids=ids, hashes=hashes, vectors=chunk_vectors
                        )
                    else:
                        texts = [Vector(vector).to_text() for vector in chunk_vectors]
                        cursor.execute(
                            _TEXT_WRITE,
                            {"model": model, "ids": ids, "hashes": hashes, "vectors": texts},
                        )

    figures = {}
    plans = {
        "text_1_connection": [(found[:rows], False)],
        "binary_1_connection": [(found[rows : 2 * rows], True)],
        "binary_2_connections": [(found[2 * rows : 3 * rows], True), (found[3 * rows :], True)],
    }
    for name, parts in plans.items():
        threads = [threading.Thread(target=write, args=part) for part in parts]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        written = sum(len(part[0]) for part in parts)
        figures[name] = round(written / (time.perf_counter() - started), 1)
    say(f"==> vectors/s written with the HNSW index present, {batch} per transaction: {figures}")
    return figures


# --- set-up and the report ---------------------------------------------------------------


def bench_names(url: str) -> tuple[str, str, str]:
    """Return (URL of the benchmark database, its name, URL of the server's `postgres` database)."""
    base, _, rest = url.rpartition("/")
    name, mark, query = rest.partition("?")
    name += "_bench_pipeline"
    return f"{base}/{name}{mark}{query}", name, f"{base}/postgres{mark}{query}"


def admin_execute(url: str, statement: sql.Composed) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def redis_url(db: int) -> str:
    return with_redis_db(os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"), db)


def flush_redis(db: int) -> None:
    for number in (db, db + 1):
        with redis.Redis.from_url(redis_url(number), socket_timeout=5) as client:
            client.flushdb()


def prepare() -> tuple[dict[str, int], dict[str, str]]:
    """Migrate; return the ids of the two projects and a write key of each."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from analytics.services import create_api_key, ensure_project

    say("==> migrating")
    call_command("migrate", verbosity=0)
    ids, keys = {}, {}
    for slug in (PROJECT, TRICKLE_PROJECT):
        project = ensure_project(slug=slug, name=slug)
        ids[slug] = project.pk
        keys[slug] = create_api_key(project=project, name="bench", scopes=["write"]).secret
    connection.close()
    return ids, keys


def empty_items() -> None:
    """Start a run with no items (and a fresh HNSW index), as a first import would."""
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("TRUNCATE embeddings_nextvector, embeddings_item")
        conn.execute("VACUUM ANALYZE embeddings_item")


def run(args: argparse.Namespace, workdir: Path, stack_holder: list[Stack]) -> dict[str, Any]:
    ids, keys = prepare()
    items = [] if args.trickle_only else make_items(args.items)
    texts = encoder_inputs(items)
    if texts:
        describe_texts(texts)
    stack = start_stack(workdir)
    stack_holder.append(stack)
    runs: list[dict[str, Any]] = []
    if not args.trickle_only:
        for number in range(1, args.runs + 1):
            say(f"==> run {number} of {args.runs}")
            empty_items()
            # Alternate the order, so a busy spell of a shared machine is shared out.
            if number % 2:
                bare, bare_cpu, bare_steal = measure_bare(texts)
                pipeline, cpu, steal = measure_pipeline(
                    stack, keys[PROJECT], ids[PROJECT], items, args
                )
            else:
                pipeline, cpu, steal = measure_pipeline(
                    stack, keys[PROJECT], ids[PROJECT], items, args
                )
                bare, bare_cpu, bare_steal = measure_bare(texts)
            runs.append(
                {
                    "pipeline": round(pipeline, 1),
                    "bare": round(bare, 1),
                    # CPU per text of the bare encoder over CPU per item of the whole pipeline:
                    # what the other sessions of a shared machine do not move as much.
                    "cpu_ratio": round(bare_cpu / sum(cpu.values()), 3),
                    "bare_cpu_ms_per_text": round(bare_cpu, 2),
                    "ratio": round(pipeline / bare, 3),
                    "cpu_ms_per_item": cpu,
                    # A run where the host took much more from one side than from the other
                    # measured the neighbours, not the code.
                    "steal_pct": {"pipeline": steal, "bare": bare_steal},
                }
            )
            say(f"==> run {number}: ratio {pipeline / bare:.3f}")
    figures: dict[str, Any] = {}
    if runs and args.write_check:
        figures["write_vectors_per_s"] = measure_writes(ids[PROJECT], args.write_check, 256)
    if runs:
        ratios = [run["ratio"] for run in runs]
        middle = sorted(runs, key=lambda run: run["ratio"])[len(runs) // 2]
        figures = {
            **figures,
            "items": args.items,
            "pipeline_items_per_s": middle["pipeline"],
            "bare_texts_per_s": middle["bare"],
            "ratio": round(statistics.median(ratios), 3),
            "workers": stack.workers,
            "threads_per_worker": stack.threads_per_worker,
            "runs": runs,
        }
    if not args.no_trickle:
        trickle = measure_trickle(stack, keys[TRICKLE_PROJECT], ids[TRICKLE_PROJECT], args)
        figures.update(
            {
                "workers": stack.workers,
                "threads_per_worker": stack.threads_per_worker,
                "trickle_items_per_s": args.trickle_rate,
                "trickle_max_words": args.trickle_max_words,
                "trickle_p50_s": trickle["p50"],
                "trickle_p95_s": trickle["p95"],
                "trickle_max_s": trickle["max"],
                "trickle_unfinished": trickle["unfinished"],
                "trickle_steal_pct": trickle["steal_pct"],
            }
        )
    return figures


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20_000, help="items of the bulk load")
    parser.add_argument("--runs", type=int, default=1, help="bulk loads (and bare runs); medians")
    parser.add_argument(
        "--post-batch", type=int, default=1000, help="items per POST of the bulk load"
    )
    parser.add_argument("--trickle-rate", type=float, default=100, help="items/s of the trickle")
    parser.add_argument("--trickle-seconds", type=float, default=30, help="measured seconds")
    parser.add_argument(
        "--trickle-batch", type=int, default=10, help="items per POST of the trickle"
    )
    parser.add_argument(
        "--trickle-max-words",
        type=int,
        default=MAX_WORDS,
        help=f"longest text of the trickle's items, in words (default {MAX_WORDS}, as the load)",
    )
    parser.add_argument(
        "--write-check",
        type=int,
        default=1000,
        help="after the load, rewrite this many vectors per write path (0: skip; needs 4x items)",
    )
    parser.add_argument("--no-trickle", action="store_true", help="only the bulk load")
    parser.add_argument("--trickle-only", action="store_true", help="only the trickle")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a bulk load may take")
    parser.add_argument(
        "--redis-db", type=int, default=12, help="broker db N, cache db N+1 (flushed)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    args = parser.parse_args()
    if min(args.items, args.runs, args.post_batch, args.trickle_batch, args.trickle_max_words) < 1:
        parser.error(
            "need --items, --runs, --post-batch, --trickle-batch, --trickle-max-words >= 1"
        )
    if args.no_trickle and args.trickle_only:
        parser.error("--no-trickle and --trickle-only exclude each other")
    if not 0 <= args.redis_db <= 14 or args.trickle_rate <= 0 or args.trickle_seconds <= 0:
        parser.error("need 0 <= --redis-db <= 14, --trickle-rate > 0 and --trickle-seconds > 0")

    url, name, admin_url = bench_names(os.environ["DATABASE_URL"])
    os.environ.update(
        DATABASE_URL=url,
        CELERY_BROKER_URL=redis_url(args.redis_db),
        REDIS_URL=redis_url(args.redis_db + 1),
        LOG_LEVEL="INFO",
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    stacks: list[Stack] = []
    figures: dict[str, Any] | None = None
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        say(
            f"==> creating database {name}; Redis databases {args.redis_db} and {args.redis_db + 1}"
        )
        admin_execute(admin_url, drop)
        admin_execute(admin_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        flush_redis(args.redis_db)
        figures = run(args, workdir, stacks)
    except KeyboardInterrupt:
        say("==> interrupted: cleaning up")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for stack in stacks:
            for server in reversed(stack.servers):
                server.stop()
        if args.keep:
            say(f"==> kept database {name} and logs in {workdir}")
        else:
            say(f"==> dropping database {name}")
            try:
                admin_execute(admin_url, drop)
                flush_redis(args.redis_db)
            except (psycopg.Error, redis.RedisError) as error:
                say(f"==> clean-up failed: {error}")
            shutil.rmtree(workdir, ignore_errors=True)
    if figures is not None:
        # Everything measured, then (last) exactly the figures the issue asks for.
        print(json.dumps(figures))
        if "ratio" in figures:
            print(json.dumps({key: figures[key] for key in HEADLINE}))


if __name__ == "__main__":
    main()
