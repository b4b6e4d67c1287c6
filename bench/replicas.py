"""Replica benchmark: series reads/s against the primary alone, then primary plus replicas.

    STACK_REPLICAS=1 scripts/stack.sh up
    STACK_REPLICAS=1 scripts/stack.sh exec python bench/replicas.py [--points 500000]
        [--series 100] [--seconds 20] [--clients 4]

Fills the `bench-query` project (bench/query.py's data, reused when already there),
waits until the replicas have replayed it, then runs the same gunicorn (2 workers)
twice: without DATABASE_REPLICA_URLS (every read on the primary) and with it. A load
generator in its own process keeps `--clients` connections busy with dashboard-panel
series reads (24 h, grouped by host) for `--seconds` and counts the answers. The
transactions each replica committed during the second run show that it served reads.
The last line printed is one JSON object.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from gunicorn_server import gunicorn
from query import BENCH_PROJECT, METRICS, fill, panel_params, series_specs


def _client(port: int, key: str, until: float, answers: list[float]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {key}"}
    number = 0
    while time.monotonic() < until:
        params = panel_params(METRICS[number % len(METRICS)].name, timedelta(hours=24))
        number += 1
        started = time.perf_counter()
        connection.request("GET", f"/api/v1/series?{urlencode(params)}", headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"GET /api/v1/series answered {response.status}")
        answers.append((time.perf_counter() - started) * 1000)


def load(port: int, key: str, seconds: float, clients: int, out: Any) -> None:
    """Run `clients` reader threads for `seconds` (in this separate process); send the latencies."""
    until = time.monotonic() + seconds
    answers: list[float] = []
    threads = [
        threading.Thread(target=_client, args=(port, key, until, answers)) for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(answers)


def measure(port: int, key: str, seconds: float, clients: int) -> tuple[float, float]:
    """Return (reads/s, p50 ms) of one run of the load generator process."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    # Warm the workers' connections and caches first.
    warm = context.Process(target=load, args=(port, key, 2.0, clients, out))
    warm.start()
    out.get()
    warm.join()
    process = context.Process(target=load, args=(port, key, seconds, clients, out))
    process.start()
    answers: list[float] = out.get()
    process.join()
    return len(answers) / seconds, statistics.median(answers)


def replica_commits() -> dict[str, int]:
    """Return the transactions committed so far in the analytics database of each replica."""
    from django.db import connections

    from analytics.db.replicas import replica_aliases

    commits = {}
    for alias in replica_aliases():
        with connections[alias].cursor() as cursor:
            cursor.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
            commits[alias] = int(cursor.fetchone()[0])
        connections[alias].close()
    return commits


def wait_caught_up() -> None:
    from django.db import connection, connections

    from analytics.db.replicas import replica_aliases

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        target = cursor.fetchone()[0]
    for alias in replica_aliases():
        while True:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])
                if cursor.fetchone()[0]:
                    break
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=500_000, help="points over 30 days")
    parser.add_argument("--series", type=int, default=100, help="series (10 metrics)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each timed run")
    parser.add_argument("--clients", type=int, default=4, help="concurrent reader connections")
    args = parser.parse_args()
    replica_urls = os.environ.get("DATABASE_REPLICA_URLS", "")
    if not replica_urls:
        parser.error("no replicas: run with STACK_REPLICAS=1 (scripts/stack.sh sets the URLs)")

    import django

    django.setup()
    from django.core.management import call_command

    from analytics.services import create_api_key, ensure_project

    call_command("migrate", verbosity=0)
    project = ensure_project(slug=BENCH_PROJECT, name="Query benchmark")
    key = create_api_key(project=project, name="bench-replicas", scopes=["read"]).secret
    fill(project.pk, series_specs(args.series), args.points, reset=False)
    wait_caught_up()

    os.environ["DATABASE_REPLICA_URLS"] = ""
    with gunicorn() as port:
        primary_rate, primary_p50 = measure(port, key, args.seconds, args.clients)
    print(f"primary alone: {primary_rate:.1f} reads/s (p50 {primary_p50:.1f} ms)", flush=True)

    os.environ["DATABASE_REPLICA_URLS"] = replica_urls
    before = replica_commits()
    with gunicorn() as port:
        replica_rate, replica_p50 = measure(port, key, args.seconds, args.clients)
    served = {alias: count - before[alias] for alias, count in replica_commits().items()}
    print(
        f"primary + {len(served)} replica(s): {replica_rate:.1f} reads/s (p50 {replica_p50:.1f} ms);"
        f" transactions committed on the replicas meanwhile: {served}",
        flush=True,
    )
    print(
        json.dumps(
            {
                "primary_reads_per_s": round(primary_rate, 1),
                "with_replicas_reads_per_s": round(replica_rate, 1),
                "ratio": round(replica_rate / primary_rate, 2),
                "replica_transactions": served,
                "clients": args.clients,
                "seconds": args.seconds,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
