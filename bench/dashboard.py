"""Dashboard benchmark: server time to answer all 8 panels of a dashboard over 10M points.

    scripts/stack.sh exec python bench/dashboard.py [--points 10000000] [--series 500]
        [--runs 15] [--ranges 24h,7d,30d] [--reset]

Builds (or reuses) the data set of bench/query.py in the `bench-dashboard` project:
`--points` points over the 30 days ending now, 10 metrics x hosts x regions, rolled up.
Point DATABASE_URL at a database of its own (it runs migrate there). Then it defines a
dashboard of 8 panels of every chart kind, with a region variable and mixed buckets,
aggregates and groupings, and asks the panel data endpoint
(/p/<project>/dashboards/<slug>/panels/<id>/data) of every panel through Django's test
Client in this process, as a logged-in member, once per run and range.

Server time of one panel is the wall time of its whole request in-process (middleware,
session, ORM, series reads, figure building, JSON); a run's figure is the SUM of its 8
panels, i.e. all panel data answered one after the other by one worker, which is an
upper bound on what the browser waits for when it fetches them in parallel (the
critical path, the slowest panel, is printed too). The last line is one JSON object.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics.settings.local")
# Neither DEBUG's query log nor per-batch log lines belong in the figures.
os.environ["DEBUG"] = "0"
os.environ.setdefault("LOG_LEVEL", "WARNING")

# bench/query.py builds the data set; the same series, points and refresh are reused.
from query import fill, percentile, series_specs  # noqa: E402

BENCH_PROJECT = "bench-dashboard"
BENCH_USER = "bench-dashboard"
WARMUP = 2
TARGET_MS = 500.0
RANGES = {"1h": "now-1h", "24h": "now-24h", "7d": "now-7d", "30d": "now-30d"}

DOCUMENT: dict[str, Any] = {
    "title": "Benchmark: fleet",
    "slug": "bench-fleet",
    "default_from": "now-7d",
    "default_to": "now",
    "variables": [
        {"name": "region", "tag": "region", "metric": "cpu.usage_pct", "multi": True},
    ],
    "panels": [
        {
            "title": "CPU by host",
            "kind": "line",
            "metric": "cpu.usage_pct",
            "agg": "avg",
            "group_by": "host",
            "filters": ["region:$region"],
            "compare": True,
        },
        {
            "title": "Requests by region",
            "kind": "stacked_bar",
            "metric": "http.requests_per_s",
            "agg": "sum",
            "group_by": "region",
            "filters": ["region:$region"],
        },
        {
            "title": "Memory by region",
            "kind": "area",
            "metric": "mem.used_pct",
            "agg": "max",
            "group_by": "region",
        },
        {
            "title": "Latency",
            "kind": "single_stat",
            "metric": "http.latency_ms",
            "agg": "avg",
            "filters": ["region:$region"],
        },
        {"title": "Errors", "kind": "single_stat", "metric": "http.errors_per_s", "agg": "sum"},
        {
            "title": "Disk IO by host",
            "kind": "heatmap",
            "metric": "disk.io_ops",
            "agg": "avg",
            "group_by": "host",
            "limit": 20,
        },
        {
            "title": "Received per region, hourly",
            "kind": "table",
            "metric": "net.rx_mbps",
            "agg": "avg",
            "group_by": "region",
            "bucket": "1h",
        },
        {
            "title": "Queue depth (1m buckets where the range allows)",
            "kind": "line",
            "metric": "queue.depth",
            "agg": "max",
            "bucket": "1m",
        },
    ],
}


def setup_dashboard(project: Any) -> tuple[Any, Any]:
    """Create (or replace) the benchmark dashboard and a member; return (dashboard, user)."""
    from django.contrib.auth.models import User

    from analytics.models import Membership
    from dashboards.services import import_dashboard

    panels = DOCUMENT["panels"]
    for index, panel in enumerate(panels):
        panel.update(x=6 * (index % 2), y=4 * (index // 2), width=6, height=4)
    dashboard = import_dashboard(project=project, document=DOCUMENT, replace=True)
    user, _ = User.objects.get_or_create(username=BENCH_USER)
    Membership.objects.get_or_create(project=project, user=user)
    return dashboard, user


def run_once(
    client: Any, urls: list[str], params: dict[str, Any]
) -> list[tuple[float, dict[str, Any]]]:
    """Ask every panel once; return (request ms, body) per panel."""
    answers = []
    for url in urls:
        started = time.perf_counter()
        response = client.get(url, params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(
                f"GET {url} answered {response.status_code}: {response.content[:300]!r}"
            )
        answers.append((elapsed, response.json()))
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=10_000_000, help="points over 30 days")
    parser.add_argument("--series", type=int, default=500, help="series (10 metrics)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per range")
    parser.add_argument("--ranges", default="24h,7d,30d", help=f"among {','.join(RANGES)}")
    parser.add_argument("--reset", action="store_true", help="delete the project's data first")
    parser.add_argument(
        "--region", action="append", default=[], help="select region values (var-region)"
    )
    args = parser.parse_args()
    ranges = [name.strip() for name in args.ranges.split(",") if name.strip()]
    if not ranges or any(name not in RANGES for name in ranges) or args.runs < 1:
        parser.error(f"--ranges takes names among {','.join(RANGES)}; --runs >= 1")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from analytics.services import ensure_project

    call_command("migrate", verbosity=0)
    project = ensure_project(slug=BENCH_PROJECT, name="Dashboard benchmark")
    fill(project.pk, series_specs(args.series), args.points, args.reset)
    points = int(
        _scalar(
            connection,
            "SELECT count(*) FROM points WHERE series_id IN"
            " (SELECT id FROM analytics_series WHERE project_id = %s)",
            [project.pk],
        )
    )
    dashboard, user = setup_dashboard(project)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    panels = list(dashboard.panels.all())
    urls = [
        f"/p/{project.slug}/dashboards/{dashboard.slug}/panels/{panel.pk}/data" for panel in panels
    ]

    print(f"\n{len(panels)} panels over {points:,} points; server time per dashboard (ms):")
    print(f"{'range':<6}{'sum p50':>9}{'sum p95':>9}{'slowest p50':>13}{'series p50':>12}  tiers")
    sums_all: list[float] = []
    results: dict[str, dict[str, float]] = {}
    for name in ranges:
        params: dict[str, Any] = {"from": RANGES[name], "to": "now"}
        if args.region:
            params["var-region"] = args.region
        for _ in range(WARMUP):
            run_once(client, urls, params)
        sums, slowest, series = [], [], []
        tiers: set[str] = set()
        for _ in range(args.runs):
            answers = run_once(client, urls, params)
            sums.append(sum(ms for ms, _ in answers))
            slowest.append(max(ms for ms, _ in answers))
            series.append(sum(body["inspect"]["series_ms"] for _, body in answers))
            tiers |= {body["inspect"]["tier"] for _, body in answers}
        sums_all += sums
        results[name] = {"p50": statistics.median(sums), "p95": percentile(sums, 95)}
        print(
            f"{name:<6}{statistics.median(sums):>9.1f}{percentile(sums, 95):>9.1f}"
            f"{statistics.median(slowest):>13.1f}{statistics.median(series):>12.1f}"
            f"  {','.join(sorted(tiers))}",
            flush=True,
        )
    print("(sum: the 8 panel requests one after another in one process; slowest: one panel;")
    print(" series: time inside series_buckets, summed over the panels)")
    worst = max(results.values(), key=lambda figures: figures["p95"])
    print(
        f"target all panel data <= {TARGET_MS:g} ms (p95, every range): "
        f"{'PASS' if worst['p95'] <= TARGET_MS else 'FAIL'}"
    )
    print(
        json.dumps(
            {
                "panels": len(panels),
                "points": points,
                "server_ms_p50": round(statistics.median(sums_all), 1),
                "server_ms_p95": round(percentile(sums_all, 95), 1),
            }
        )
    )


def _scalar(connection: Any, statement: str, params: list[Any]) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()[0]


if __name__ == "__main__":
    main()
