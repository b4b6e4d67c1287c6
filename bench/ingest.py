"""Ingest benchmark: HTTP events/s through gunicorn against raw binary COPY, same run.

    scripts/stack.sh exec python bench/ingest.py [--seconds 15] [--batch 5000] [--runs 3]

Serves the app with gunicorn on loopback, posts pre-encoded JSON batches from 2
concurrent client processes for a fixed time, then measures raw psycopg binary COPY of
as many rows into the same hypertable. Each round is repeated `--runs` times and the
medians are compared. The last line printed is one JSON object.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
from gunicorn_server import gunicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics.settings.local")
BENCH_PROJECT = "bench-ingest"
SERIES = 200
RUN_MARK = b"@@@@@@@@@@"


def setup_django_and_key() -> tuple[str, int]:
    import django

    django.setup()
    from django.core.management import call_command

    from analytics.services import create_api_key, ensure_project

    call_command("migrate", verbosity=0)
    project = ensure_project(slug=BENCH_PROJECT, name="Ingest benchmark")
    return create_api_key(project=project, name="bench", scopes=["write"]).secret, project.pk


def make_batches(count: int, size: int, with_ids: bool) -> list[bytes]:
    """Pre-encode `count` batches so clients spend their time sending, not building."""
    start = datetime.now(UTC) - timedelta(hours=12)
    batches = []
    for b in range(count):
        events = []
        for i in range(size):
            n = b * size + i
            event = {
                "metric": f"bench.metric_{n % 10}",
                "value": (n % 997) * 0.5,
                "time": (start + timedelta(microseconds=n * 7)).isoformat(),
                "tags": {"host": f"h{n % (SERIES // 10)}", "region": "eu" if n % 2 else "us"},
            }
            if with_ids:
                # The client stamps RUN_MARK with a per-request number, so every send
                # carries new ids and is stored, not deduplicated.
                event["id"] = f"{RUN_MARK.decode()}-{b}-{i}"
            events.append(event)
        batches.append(orjson.dumps(events))
    return batches


def client(
    port: int,
    key: str,
    batches: list[bytes],
    seconds: float,
    results: "multiprocessing.Queue[tuple[int, int]]",
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    accepted = errors = 0
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        body = batches[i % len(batches)]
        if RUN_MARK in body:
            body = body.replace(RUN_MARK, f"{os.getpid() % 100000:05d}{i:05d}".encode())
        connection.request("POST", "/api/v1/events", body=body, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status == 200:
            accepted += json.loads(body)["accepted"]
        else:
            errors += 1
        i += 1
    results.put((accepted, errors))


def http_round(port: int, key: str, batches: list[bytes], seconds: float) -> tuple[float, int]:
    results: multiprocessing.Queue[tuple[int, int]] = multiprocessing.Queue()
    clients = [
        multiprocessing.Process(target=client, args=(port, key, batches[c::2], seconds, results))
        for c in range(2)
    ]
    started = time.perf_counter()
    for process in clients:
        process.start()
    totals = [results.get() for _ in clients]
    for process in clients:
        process.join()
    elapsed = time.perf_counter() - started
    return sum(t[0] for t in totals) / elapsed, sum(t[1] for t in totals)


def copy_round(dsn: str, series_ids: list[int], rows: int) -> float:
    start = datetime.now(UTC) - timedelta(hours=6)
    data = [
        (
            start + timedelta(microseconds=n * 7),
            series_ids[n % len(series_ids)],
            (n % 997) * 0.5,
            None,
        )
        for n in range(rows)
    ]
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        started = time.perf_counter()
        with cursor.copy(
            "COPY points (time, series_id, value, event_id) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["timestamptz", "int8", "float8", "text"])
            for row in data:
                copy.write_row(row)
        connection.commit()
        return rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ids", action="store_true", help="send client event ids (dedup path)")
    args = parser.parse_args()

    key, project_id = setup_django_and_key()
    dsn = os.environ["DATABASE_URL"]
    print(
        f"building {40} batches of {args.batch} events ({'with' if args.ids else 'without'} ids)",
        flush=True,
    )
    batches = make_batches(40, args.batch, args.ids)
    with gunicorn() as port:
        http_round(port, key, batches[:2], 1)  # warm up: series created, caches filled
        with psycopg.connect(dsn) as connection:
            series_ids = [
                row[0]
                for row in connection.execute(
                    "SELECT id FROM analytics_series WHERE project_id = %s", [project_id]
                )
            ]
        http_rates, copy_rates, errors = [], [], 0
        for run in range(1, args.runs + 1):
            rate, failed = http_round(port, key, batches, args.seconds)
            errors += failed
            http_rates.append(rate)
            copy_rates.append(copy_round(dsn, series_ids, int(rate * 3) or 100_000))
            print(
                f"run {run}/{args.runs}: HTTP {rate:,.0f} events/s, raw COPY {copy_rates[-1]:,.0f} rows/s, "
                f"ratio {rate / copy_rates[-1]:.2f}",
                flush=True,
            )
    http_median, copy_median = statistics.median(http_rates), statistics.median(copy_rates)
    print(
        f"median: HTTP {http_median:,.0f} events/s, raw COPY {copy_median:,.0f} rows/s, errors {errors}"
    )
    print(
        json.dumps(
            {
                "http_events_per_s": round(http_median),
                "copy_rows_per_s": round(copy_median),
                "ratio": round(http_median / copy_median, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
