"""Soak: ingest at about 80% of the measured maximum while dashboards and searches are queried.

    scripts/stack.sh exec python bench/soak.py [--seconds 60] [--rate EVENTS_PER_S]
        [--warmup 10] [--burst 8] [--batch 1000] [--web-workers 4] [--ingest-clients 4]
        [--items 300] [--history-days 1] [--redis-db 14] [--keep]

Everything runs against a database of its own (`<DATABASE_URL's name>_bench_soak`,
created, migrated and dropped at the end) and Redis databases of its own (`--redis-db`
N for the broker and N+1 for the cache, flushed at the start and the end). It seeds a
day of demo metrics and the demo dashboards into a `soak` project, starts gunicorn
(`--web-workers`), a Celery worker (queues default and embeddings, as `make run`) and
beat as subprocesses, posts `--items` catalogue items through the API and waits for
their embeddings. Without `--rate` it first measures the maximum ingest rate with a
short unpaced burst (like bench/ingest.py) and then paces ingestion at 80% of it.

During `--warmup` + `--seconds`, `--ingest-clients` processes post batches at the
target rate (one request in flight each, on a connection kept open where the server
allows it: gunicorn's sync workers close each one), while a logged-in member opens a dashboard and
fetches all its panels every few seconds, a search client asks for similar items (by
item, by like/unlike, and by free text through a worker), and an API client reads
series. Every second the resident memory of each process kind is read from /proc:
gunicorn master and workers, Celery worker and its pool, beat, the PostgreSQL
connections to the soak database (their private and file-backed pages; shared buffers
are shared by all and left out) and the Redis server (shared with whatever else uses it).

Figures cover the measured window after the warmup: p95 latency per request kind,
errors (any non-2xx answer or exception, warmup included), events accepted, and the
memory growth of each process kind from the median of the window's first 10 s to the
median of its last 10 s (target: flat; PostgreSQL connections are reopened every
DATABASE_CONN_MAX_AGE seconds, so their total is a sawtooth that may end lower than it
began). Progress is printed every 5 s; the last line is one JSON object. Ctrl-C stops
the load and still cleans everything up.
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
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
os.environ["DEBUG"] = "0"  # no query log in any process of the soak
os.environ["LOG_LEVEL"] = "WARNING"

from gunicorn_server import free_port, gunicorn_command  # noqa: E402
from run import worker_command  # noqa: E402
from soak_load import (  # noqa: E402
    EventTemplate,
    Record,
    Target,
    dashboard_client,
    ingest_client,
    search_client,
    series_client,
)
from soak_watch import (  # noqa: E402
    PROGRESS_EVERY_S,
    MemorySampler,
    ServerProcess,
    Tally,
    progress,
    report,
    say,
)

from analytics.settings.redis_isolation import with_redis_db  # noqa: E402

PROJECT = "soak"
USERNAME = "soak-viewer"
TARGET_SHARE = 0.8
DASHBOARD_PERIOD_S = 3.0
SEARCH_PERIOD_S = 0.5
SERIES_PERIOD_S = 0.5
HISTORY_SERIES = 300
SERIES_READS = [
    ("http.requests", "sum", "region"),
    ("http.latency_ms", "avg", "endpoint"),
    ("host.cpu", "max", "host"),
    ("shop.product_views", "sum", "category"),
]


def bench_names(url: str) -> tuple[str, str, str]:
    """Return (URL of the soak database, its name, URL of the server's `postgres` database)."""
    base, _, rest = url.rpartition("/")
    name, mark, query = rest.partition("?")
    name += "_bench_soak"
    return f"{base}/{name}{mark}{query}", name, f"{base}/postgres{mark}{query}"


def admin_execute(url: str, statement: sql.Composed) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def redis_url(db: int) -> str:
    """Return the configured Redis server's URL with database `db`."""
    return with_redis_db(os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"), db)


def flush_redis(db: int) -> None:
    for number in (db, db + 1):
        with redis.Redis.from_url(redis_url(number), socket_timeout=5) as client:
            client.flushdb()


def prepare(args: argparse.Namespace) -> tuple[Target, list[EventTemplate], dict[str, list[int]]]:
    """Migrate, create the project, keys, a member, demo dashboards and a day of history."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from analytics.services import add_member, create_api_key, ensure_project
    from dashboards.demo import ensure_demo_dashboards
    from ingestion.demo import build_specs

    say("==> migrating")
    call_command("migrate", verbosity=0)
    project = ensure_project(slug=PROJECT, name="Soak")
    password = secrets.token_urlsafe(16)
    user = get_user_model().objects.create_user(USERNAME, password=password)
    add_member(project=project, user=user)
    dashboards = {
        dashboard.slug: list(dashboard.panels.values_list("pk", flat=True))
        for dashboard in ensure_demo_dashboards(project=project)
    }
    say(f"==> seeding {args.history_days} day(s) of demo metrics ({HISTORY_SERIES} series)")
    call_command(
        "seed_demo", project=PROJECT, days=args.history_days, series=HISTORY_SERIES, verbosity=0
    )
    templates = [
        EventTemplate(metric, dict(tags), item, max(spec.level, 1.0))
        for spec in build_specs(HISTORY_SERIES)
        for metric, tags, item in [spec.key]
    ]
    target = Target(
        port=free_port(),
        write_key=create_api_key(project=project, name="soak", scopes=["write"]).secret,
        read_key=create_api_key(project=project, name="soak", scopes=["read"]).secret,
        project=PROJECT,
        username=USERNAME,
        password=password,
    )
    return target, templates, dashboards


def catalogue(count: int) -> list[dict[str, Any]]:
    """Return `count` demo catalogue items as the items API takes them."""
    from embeddings.demo import CATALOGUE, catalogue_item

    categories = sorted(CATALOGUE)
    items = []
    for number in range(count):
        item = catalogue_item(f"sku-{number + 1:04d}", categories[number % len(categories)])
        items.append(
            {
                "external_id": item.external_id,
                "title": item.title,
                "text": item.text,
                "attributes": item.attributes,
            }
        )
    return items


def load_items(target: Target, count: int, timeout: float = 600) -> list[str]:
    """Post the catalogue through the API and wait until every item is embedded."""
    from django.db import connection
    from soak_load import Http

    from embeddings.services import pending_embeddings
    from embeddings.worker import model_name

    items = catalogue(count)
    client = Http(target.port)
    headers = {"Authorization": f"Bearer {target.write_key}", "Content-Type": "application/json"}
    for start in range(0, len(items), 100):
        status, body = client.call(
            "POST", "/api/v1/items", json.dumps(items[start : start + 100]).encode(), headers
        )
        if status != 200:
            raise SystemExit(f"POST /api/v1/items answered {status}: {body[:300]!r}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT array_agg(id) FROM embeddings_item")
        row = cursor.fetchone()
    ids = list(row[0]) if row and row[0] else []
    started = time.monotonic()
    while (left := pending_embeddings(model=model_name(), item_ids=ids)) > 0:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{left} of {len(ids)} items still not embedded after {timeout:g} s")
        time.sleep(0.5)
    say(f"==> {len(ids)} items embedded in {time.monotonic() - started:.1f} s")
    connection.close()
    return [item["external_id"] for item in items]


def servers(target: Target, workdir: Path, args: argparse.Namespace) -> list[ServerProcess]:
    """Return (unstarted) gunicorn, the Celery worker and beat, as `make run` runs them."""
    python = sys.executable
    return [
        ServerProcess(
            "web",
            gunicorn_command(port=target.port, workers=args.web_workers),
            workdir / "web.log",
        ),
        ServerProcess(
            "worker",
            # `make run`'s worker, its pool sized by the settings from the machine.
            [*worker_command(), "-n", f"soak-{os.getpid()}@%h"],
            workdir / "worker.log",
        ),
        ServerProcess(
            "beat",
            [
                *(python, "-m", "celery", "-A", "analytics", "beat", "--loglevel", "WARNING"),
                *("--schedule", str(workdir / "celerybeat-schedule")),
            ],
            workdir / "beat.log",
        ),
    ]


def start_clients(
    target: Target,
    templates: list[EventTemplate],
    dashboards: dict[str, list[int]],
    items: list[str] | None,
    rate: float | None,
    args: argparse.Namespace,
    seconds: float,
    stop: Any,
    records: "multiprocessing.Queue[Record]",
) -> list[multiprocessing.Process]:
    """Start the ingest clients (paced at `rate`, or unpaced) and, with `items`, the readers."""
    deadline = time.monotonic() + seconds
    share = rate / args.ingest_clients if rate else None
    plans: list[tuple[Any, tuple[Any, ...]]] = [
        (ingest_client, (target, templates, share, args.batch, deadline, stop, records, n))
        for n in range(args.ingest_clients)
    ]
    if items is not None:
        plans += [
            (dashboard_client, (target, dashboards, DASHBOARD_PERIOD_S, deadline, stop, records)),
            (search_client, (target, items, SEARCH_PERIOD_S, deadline, stop, records, 7)),
            (series_client, (target, SERIES_READS, SERIES_PERIOD_S, deadline, stop, records, 9)),
        ]
    processes = [multiprocessing.Process(target=run, args=plan, daemon=True) for run, plan in plans]
    for process in processes:
        process.start()
    return processes


def join(processes: list[multiprocessing.Process], tally: Tally, source: Any) -> None:
    for process in processes:
        while process.is_alive():
            tally.drain(source)
            process.join(0.2)
    tally.drain(source)


def measure_max(
    target: Target, templates: list[EventTemplate], args: argparse.Namespace, stop: Any
) -> float:
    """Return accepted events/s of unpaced ingest clients over a short burst."""
    source: multiprocessing.Queue[Record] = multiprocessing.Queue()
    tally = Tally()
    say(
        f"==> measuring the maximum ingest rate: {args.burst:g} s unpaced, {args.ingest_clients} clients"
    )
    started = time.monotonic()
    join(
        start_clients(target, templates, {}, None, None, args, args.burst, stop, source),
        tally,
        source,
    )
    elapsed = time.monotonic() - started
    failed = [record for record in tally.records if not record[3]]
    if failed:
        say(f"    {len(failed)} failed requests during the burst, first: {tally.error_notes[0]}")
    return sum(record[4] for record in tally.records) / elapsed


def run(args: argparse.Namespace, workdir: Path, started: list[ServerProcess]) -> dict[str, Any]:
    target, templates, dashboards = prepare(args)
    for server in servers(target, workdir, args):
        started.append(server)
        server.start()
    say(f"==> started gunicorn ({args.web_workers} workers), a Celery worker and beat")
    started[0].wait_http(target.port)
    started[1].wait_log(b" ready.")
    items = load_items(target, args.items)
    stop = multiprocessing.Event()
    maximum = 0.0
    rate = args.rate
    if rate is None:
        maximum = measure_max(target, templates, args, stop)
        rate = maximum * TARGET_SHARE
        say(f"==> maximum {maximum:,.0f} events/s: the soak ingests {rate:,.0f} events/s")
    source: multiprocessing.Queue[Record] = multiprocessing.Queue()
    tally = Tally()
    say(f"==> load for {args.warmup:g} s of warmup + {args.seconds:g} s measured")
    load_start = time.monotonic()
    warm_at = load_start + args.warmup
    end = warm_at + args.seconds
    processes = start_clients(
        target, templates, dashboards, items, rate, args, args.warmup + args.seconds, stop, source
    )
    next_progress = load_start + PROGRESS_EVERY_S
    memory: MemorySampler | None = None
    try:
        # Connected after the clients fork, so none of them inherits the connection.
        memory = MemorySampler(started, os.environ["DATABASE_URL"], redis_url(0))
        while time.monotonic() < end:
            memory.sample()
            tally.drain(source)
            for server in started:
                server.check()
            if time.monotonic() >= next_progress:
                progress(tally, memory, load_start, warm_at, rate)
                next_progress += PROGRESS_EVERY_S
            time.sleep(max(0.0, 1.0 - (time.monotonic() - load_start) % 1.0))
    finally:
        stop.set()
        join(processes, tally, source)
        if memory is not None:
            memory.close()
    return report(tally, memory, warm_at, end, rate, maximum)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="measured seconds")
    parser.add_argument("--rate", type=float, help="events/s (default: 80%% of a measured max)")
    parser.add_argument("--warmup", type=float, default=10, help="seconds of load before measuring")
    parser.add_argument("--burst", type=float, default=8, help="seconds of the max-rate burst")
    parser.add_argument("--batch", type=int, default=1000, help="events per ingest request")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument(
        "--ingest-clients",
        type=int,
        default=4,
        help="ingest processes (one request in flight each)",
    )
    parser.add_argument("--items", type=int, default=300, help="catalogue items to embed first")
    parser.add_argument("--history-days", type=int, default=1, help="days of seeded metrics")
    parser.add_argument(
        "--redis-db", type=int, default=14, help="broker db N, cache db N+1 (flushed)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    args = parser.parse_args()
    if args.seconds < 3 or args.warmup < 0 or args.batch < 1 or args.items < 3:
        parser.error("need --seconds >= 3, --warmup >= 0, --batch >= 1 and --items >= 3")
    if args.web_workers < 1 or args.ingest_clients < 1 or args.burst <= 0 or args.history_days < 1:
        parser.error(
            "need --web-workers >= 1, --ingest-clients >= 1, --burst > 0 and --history-days >= 1"
        )
    if not 0 <= args.redis_db <= 14 or (args.rate is not None and args.rate <= 0):
        parser.error("need 0 <= --redis-db <= 14 and --rate > 0")

    url, name, admin_url = bench_names(os.environ["DATABASE_URL"])
    os.environ.update(
        DATABASE_URL=url,
        CELERY_BROKER_URL=redis_url(args.redis_db),
        REDIS_URL=redis_url(args.redis_db + 1),
    )
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    started: list[ServerProcess] = []
    figures: dict[str, Any] | None = None
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    # Installed explicitly: a shell that starts us in the background hands us SIGINT
    # ignored, and Ctrl-C, SIGTERM and a closed terminal must all clean up.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        say(
            f"==> creating database {name}; Redis databases {args.redis_db} and {args.redis_db + 1}"
        )
        admin_execute(admin_url, drop)
        admin_execute(admin_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        flush_redis(args.redis_db)
        figures = run(args, workdir, started)
    except KeyboardInterrupt:
        say("==> interrupted: cleaning up")
    finally:
        # Ctrl-C again must not leave processes or the database behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for server in reversed(started):
            server.stop()
            if server.failed:
                say(f"==> {server.name} log tail:\n{server.log_tail()}")
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if args.keep:
            say(f"==> kept database {name} and logs in {workdir}")
        else:
            say(f"==> dropping database {name}")
            try:
                admin_execute(admin_url, drop)
                flush_redis(args.redis_db)
            except (psycopg.Error, redis.RedisError) as exc:
                say(f"==> cleanup failed: {exc}")
            shutil.rmtree(workdir, ignore_errors=True)
    if figures is not None:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
