"""Query benchmark: series API p50/p95 against a raw time_bucket GROUP BY, same run.

    scripts/stack.sh exec python bench/query.py [--points 10000000] [--series 500] [--runs 30]
        [--new-points 1000000] [--new-hours 1] [--reset]

Fills the `bench-query` project with `--points` points over the 30 days ending now
(10 metrics, each with series tagged host x region), written through `ingest_points`
and then rolled up; a project that already holds that many points is reused and only
topped up to now. Then, for ranges of 1h, 24h, 7d and 30d ending now, it times
GET /api/v1/series (gunicorn on loopback, DEBUG=0) the way a dashboard panel asks:
one metric, bucket=auto, avg grouped by host (top 10 + other), rotating among the
metrics; each run is paired with the same answer computed in-process by
`series_buckets(query, raw=True)`, and once per range and aggregate both answers are
compared. Last, it ingests `--new-points` points of the last `--new-hours` hours in
5000-point batches and times the rollup refresh they need against their ingest. The
last line printed is one JSON object.
"""

import argparse
import http.client
import itertools
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from gunicorn_server import gunicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics.settings.local")
# The in-process raw side must not pay for DEBUG's query log, and the per-batch lines
# of `ingest_points` would drown the progress bar.
os.environ["DEBUG"] = "0"
os.environ.setdefault("LOG_LEVEL", "WARNING")

BENCH_PROJECT = "bench-query"
SEED = 20_261_125
DAYS = 30
BATCH = 50_000
NEW_BATCH = 5_000
WARMUP = 3
MIN_RAW_RUNS = 10
# Raw runs of one range stop early (after MIN_RAW_RUNS) once they have taken this long.
RAW_BUDGET_S = 90.0
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=DAYS),
}
AGGS = ("avg", "sum", "count", "min", "max")
# name, hours ahead of UTC (the region's day drives its daily cycle)
REGIONS: tuple[tuple[str, float], ...] = (
    ("eu-west", 1.0),
    ("eu-central", 2.0),
    ("us-east", -5.0),
    ("us-west", -8.0),
    ("ap-south", 5.5),
)
TARGET_P95_MS = 50.0
TARGET_SPEEDUP = 20.0
TARGET_REFRESH_RATIO = 0.20


@dataclass(frozen=True)
class Metric:
    """How a metric's values move: level, daily swing and noise."""

    name: str
    level: float
    swing: float
    noise: float


METRICS = (
    Metric("cpu.usage_pct", 35.0, 20.0, 4.0),
    Metric("mem.used_pct", 60.0, 8.0, 2.0),
    Metric("http.requests_per_s", 120.0, 80.0, 15.0),
    Metric("http.latency_ms", 80.0, 30.0, 12.0),
    Metric("http.errors_per_s", 0.8, 0.5, 0.3),
    Metric("disk.io_ops", 400.0, 250.0, 60.0),
    Metric("net.rx_mbps", 50.0, 35.0, 8.0),
    Metric("net.tx_mbps", 30.0, 20.0, 6.0),
    Metric("queue.depth", 12.0, 10.0, 4.0),
    Metric("db.connections", 40.0, 15.0, 5.0),
)


@dataclass(frozen=True)
class SeriesSpec:
    """One series to write: its key and what shapes its values."""

    key: Any  # analytics.services.points.SeriesKey (imported after django.setup)
    metric: Metric
    scale: float  # each host carries a different load, so top-N ranks are clear
    phase: float  # the region's local day, as a fraction of a day


def series_specs(count: int) -> list[SeriesSpec]:
    """Return `count` series: metric i % 10, then hosts h00.. x the 5 regions."""
    specs = []
    for i in range(count):
        metric, combo = METRICS[i % len(METRICS)], i // len(METRICS)
        host, (region, offset) = combo // len(REGIONS), REGIONS[combo % len(REGIONS)]
        tags = (("host", f"h{host:02d}"), ("region", region))
        specs.append(SeriesSpec((metric.name, tags, None), metric, 0.8 + 0.05 * host, offset / 24))
    return specs


def make_points(
    specs: Sequence[SeriesSpec], *, start: float, end: float, per_series: int, rng: random.Random
) -> Iterator[Any]:
    """Yield `per_series` points per series in [start, end) epochs, in time order.

    Each series has one point per step, jittered by up to 30 % of a step, with a daily
    cycle (peak mid-afternoon in its region) and Gaussian noise.
    """
    from analytics.services.points import CleanPoint

    step = (end - start) / per_series
    for k in range(per_series):
        base = start + (k + 0.5) * step
        for spec in specs:
            moment = base + rng.uniform(-0.3, 0.3) * step
            metric = spec.metric
            day = math.sin(2 * math.pi * (moment / 86400 + spec.phase - 0.375))
            value = spec.scale * (metric.level + metric.swing * day) + rng.gauss(0, metric.noise)
            yield CleanPoint(
                spec.key, datetime.fromtimestamp(moment, UTC), round(max(value, 0.0), 3), None
            )


def ingest(
    project_id: int, points: Iterator[Any], *, total: int, batch: int, desc: str
) -> tuple[int, float]:
    """Store `points` through `ingest_points` in batches; return (stored, seconds)."""
    from django.conf import settings

    from analytics.progress import progress_bar
    from analytics.services.points import ingest_points

    stored, seconds = 0, 0.0
    with progress_bar(total=total, unit="pt", desc=desc, verbosity=1) as bar:
        while chunk := list(itertools.islice(points, batch)):
            started = time.perf_counter()
            result = ingest_points(
                project_id=project_id,
                points=chunk,
                series_limit=settings.INGEST_MAX_SERIES_PER_PROJECT,
            )
            seconds += time.perf_counter() - started
            if result.accepted != len(chunk):
                raise SystemExit(f"ingest_points stored {result.accepted} of {len(chunk)} points")
            stored += len(chunk)
            bar.update(len(chunk))
    return stored, seconds


def scalar(statement: str, params: Sequence[Any] = ()) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    return row[0] if row else None


def project_series_ids(project_id: int) -> list[int]:
    from analytics.models import Series

    return list(Series.objects.filter(project_id=project_id).values_list("id", flat=True))


def backlog() -> int:
    """Return the (series, minute) pairs waiting for a refresh (0 without a log)."""
    if scalar("SELECT to_regclass('rollup_invalidation') IS NULL"):
        return 0
    return int(
        scalar(
            "SELECT (SELECT count(*) FROM rollup_invalidation)"
            " + (SELECT count(*) FROM rollup_refreshing)"
        )
    )


def refresh() -> Any:
    """Run one `refresh_rollups` that does the work, waiting out one already running."""
    from analytics.services.rollups import refresh_rollups

    while not (result := refresh_rollups()).ran:
        time.sleep(0.5)  # another refresh (a beat task) holds the lock
    return result


def delete_project_data(project_id: int) -> None:
    """Delete the project's points (a day per statement), then its series."""
    from analytics.models import Series
    from analytics.services.points import series_cache

    ids = project_series_ids(project_id)
    if ids:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT min(time), max(time) FROM points WHERE series_id = ANY(%s)", [ids]
            )
            low, high = cursor.fetchone()
            started, deleted = time.perf_counter(), 0
            while low is not None and low <= high:
                cursor.execute(
                    "DELETE FROM points WHERE series_id = ANY(%s) AND time >= %s AND time < %s",
                    [ids, low, low + timedelta(days=1)],
                )
                deleted += cursor.rowcount
                low += timedelta(days=1)
        print(f"reset: deleted {deleted:,} points in {time.perf_counter() - started:.1f} s")
    Series.objects.filter(project_id=project_id).delete()
    # Ids of deleted series must not be reused by the next ingest.
    series_cache.clear()


def fill(project_id: int, specs: list[SeriesSpec], points: int, reset: bool) -> None:
    """Make the project hold `points` points over the 30 days ending now, rolled up."""
    from django.db import connection

    now = time.time()
    per_series = points // len(specs)
    step = DAYS * 86400 / per_series
    ids = project_series_ids(project_id)
    stored = int(scalar("SELECT count(*) FROM points WHERE series_id = ANY(%s)", [ids]))
    rng = random.Random(SEED)
    if not reset and len(ids) == len(specs) and stored >= per_series * len(specs):
        last = scalar("SELECT max(time) FROM points WHERE series_id = ANY(%s)", [ids])
        gap = int((now - last.timestamp()) / step)
        print(f"reusing {stored:,} points of {len(ids)} series (newest {last:%Y-%m-%d %H:%M} UTC)")
        if gap:
            # Keep the recent ranges as dense as the rest: the same pattern up to now.
            ingest(
                project_id,
                make_points(specs, start=last.timestamp(), end=now, per_series=gap, rng=rng),
                total=gap * len(specs),
                batch=BATCH,
                desc="topping up to now",
            )
    else:
        if ids:
            print(f"regenerating: the project holds {stored:,} points of {len(ids)} series")
            delete_project_data(project_id)
        total = per_series * len(specs)
        print(
            f"generating {total:,} points: {len(specs)} series x {per_series:,}"
            f" (one every {step:.0f} s) over the {DAYS} days ending now"
        )
        count, seconds = ingest(
            project_id,
            make_points(specs, start=now - DAYS * 86400, end=now, per_series=per_series, rng=rng),
            total=total,
            batch=BATCH,
            desc="ingesting",
        )
        print(f"ingested {count:,} points in {seconds:.1f} s ({count / seconds:,.0f} points/s)")
    pending = backlog()
    started = time.perf_counter()
    result = refresh()
    print(
        f"rollup refresh ({result.edition}): {pending:,} pending pairs, {result.pairs:,}"
        f" recomputed in {time.perf_counter() - started:.1f} s"
    )
    # What autovacuum does soon after a bulk load: fresh statistics for the planner, and
    # the visibility map that lets series reads be index-only scans. (Django runs in
    # autocommit here, which VACUUM needs.)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE points, rollup_1m, rollup_1h, rollup_1d")
    print(f"vacuumed and analyzed points and rollups in {time.perf_counter() - started:.1f} s")


def panel_params(metric: str, span: timedelta, agg: str = "avg") -> dict[str, str]:
    """The parameters a dashboard panel sends for `metric` over the last `span`."""
    end = datetime.now(UTC)
    return {
        "metric": metric,
        "start": (end - span).isoformat(),
        "end": end.isoformat(),
        "bucket": "auto",
        "agg": agg,
        "group_by": "host",
        "limit": "10",
    }


class Api:
    """GET /api/v1/series over one keep-alive-if-possible HTTP connection."""

    def __init__(self, port: int, key: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Bearer {key}"}

    def series(self, params: dict[str, str]) -> tuple[float, dict[str, Any]]:
        """Return (milliseconds, decoded body) of one request."""
        started = time.perf_counter()
        self.connection.request("GET", f"/api/v1/series?{urlencode(params)}", headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise SystemExit(f"GET /api/v1/series answered {response.status}: {body[:500]!r}")
        return elapsed, json.loads(body)


def raw_answer(project_id: int, params: dict[str, str]) -> tuple[float, Any]:
    """Return (milliseconds, SeriesResult) of the raw GROUP BY for the same parameters."""
    from django.http import QueryDict

    from analytics.queries.series import series_buckets
    from analytics.series_params import parse_series_query

    query = parse_series_query(
        QueryDict(urlencode(params)), project_id=project_id, now=datetime.now(UTC)
    )
    started = time.perf_counter()
    result = series_buckets(query, raw=True)
    return (time.perf_counter() - started) * 1000, result


def same_answer(body: dict[str, Any], raw: Any, agg: str) -> str | None:
    """Return None when the API body equals the raw answer, else what differs."""
    raw_times = raw.times
    if body["times"] != raw_times:
        return f"{agg}: bucket times differ ({len(body['times'])} vs {len(raw_times)})"
    if [s["name"] for s in body["series"]] != [s.name for s in raw.series]:
        return f"{agg}: groups differ"
    for mine, theirs in zip(body["series"], raw.series, strict=True):
        for a, b in zip(mine["values"], theirs.values, strict=True):
            if agg in ("count", "min", "max"):
                equal = a == b
            else:
                equal = (a is None) == (b is None) and (
                    a is None or math.isclose(a, b, rel_tol=1e-9)
                )
            if not equal:
                return f"{agg}: {mine['name']} {a!r} != {b!r}"
    return None


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass
class RangeFigures:
    name: str
    bucket: str
    source: str
    api_ms: list[float]
    server_ms: list[float]
    raw_ms: list[float]
    mismatch: str | None


def measure_range(
    api: Api, project_id: int, name: str, span: timedelta, metrics: list[str], runs: int
) -> RangeFigures:
    """Time `runs` API requests and as many raw answers (fewer if slow) for one range."""
    mismatches = []
    for agg in AGGS:
        params = panel_params(metrics[0], span, agg)
        _, body = api.series(params)
        _, raw = raw_answer(project_id, params)
        if (problem := same_answer(body, raw, agg)) is not None:
            mismatches.append(problem)
    rotation = itertools.cycle(metrics)
    for _ in range(WARMUP):
        params = panel_params(next(rotation), span)
        api.series(params)
        raw_answer(project_id, params)
    api_ms: list[float] = []
    server_ms: list[float] = []
    raw_ms: list[float] = []
    for _ in range(runs):
        params = panel_params(next(rotation), span)
        elapsed, body = api.series(params)
        api_ms.append(elapsed)
        server_ms.append(float(body["server_ms"]))
        if len(raw_ms) < MIN_RAW_RUNS or sum(raw_ms) < RAW_BUDGET_S * 1000:
            raw_ms.append(raw_answer(project_id, params)[0])
    return RangeFigures(
        name=name,
        bucket=body["bucket"],
        source=body["source"],
        api_ms=api_ms,
        server_ms=server_ms,
        raw_ms=raw_ms,
        mismatch="; ".join(mismatches) or None,
    )


def refresh_cost(
    project_id: int, specs: list[SeriesSpec], new_points: int, hours: float
) -> tuple[int, float, float, int]:
    """Ingest `new_points` of the last `hours` and refresh; return (points, ingest s,
    refresh s, pairs)."""
    from analytics.services.points import CleanPoint

    if backlog():
        refresh()
    now = time.time()
    per_series = max(new_points // len(specs), 1)
    rng = random.Random(SEED + int(now))
    points: list[CleanPoint] = list(
        make_points(specs, start=now - hours * 3600, end=now, per_series=per_series, rng=rng)
    )
    stored, ingest_s = ingest(
        project_id, iter(points), total=len(points), batch=NEW_BATCH, desc="new points"
    )
    pending = backlog()
    started = time.perf_counter()
    result = refresh()
    refresh_s = time.perf_counter() - started
    return stored, ingest_s, refresh_s, result.pairs or pending


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=10_000_000, help="points over 30 days")
    parser.add_argument("--series", type=int, default=500, help="series (10 metrics)")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per range")
    parser.add_argument(
        "--new-points",
        type=int,
        default=None,
        help="points for the refresh cost (default 1,000,000, or points/10 if fewer)",
    )
    parser.add_argument("--new-hours", type=float, default=1.0, help="span of the new points")
    parser.add_argument("--reset", action="store_true", help="delete the project's data first")
    args = parser.parse_args()
    if args.series < len(METRICS) or args.points < args.series or args.runs < 1:
        parser.error(f"need --series >= {len(METRICS)}, --points >= --series and --runs >= 1")
    if not 0 < args.new_hours <= 24:
        parser.error("--new-hours must be in (0, 24]: the new points are recent ones")
    new_points = args.new_points or min(1_000_000, args.points // 10)

    import django

    django.setup()
    from django.core.management import call_command

    from analytics.services import create_api_key, ensure_project

    call_command("migrate", verbosity=0)
    project = ensure_project(slug=BENCH_PROJECT, name="Query benchmark")
    key = create_api_key(project=project, name="bench", scopes=["read"]).secret
    specs = series_specs(args.series)
    fill(project.pk, specs, args.points, args.reset)
    metrics = [metric.name for metric in METRICS]

    figures: list[RangeFigures] = []
    with gunicorn() as port:
        api = Api(port, key)
        for name, span in RANGES.items():
            figures.append(measure_range(api, project.pk, name, span, metrics, args.runs))
            f = figures[-1]
            print(
                f"{name}: API p50 {statistics.median(f.api_ms):.1f} ms, raw p50"
                f" {statistics.median(f.raw_ms):.1f} ms ({len(f.raw_ms)} raw runs),"
                f" {'answers match' if f.mismatch is None else 'MISMATCH ' + f.mismatch}",
                flush=True,
            )

    stored, ingest_s, refresh_s, pairs = refresh_cost(project.pk, specs, new_points, args.new_hours)
    per_million = 1_000_000 / stored

    print()
    print(
        f"{'range':<6}{'bucket':>7}  {'source':<10}{'API p50':>9}{'API p95':>9}{'server p50':>12}"
        f"{'raw p50':>9}{'raw p95':>9}{'runs':>8}{'speedup':>9}  match"
    )
    p95: dict[str, float] = {}
    raw_p95: dict[str, float] = {}
    for f in figures:
        p95[f.name] = percentile(f.api_ms, 95)
        raw_p95[f.name] = percentile(f.raw_ms, 95)
        print(
            f"{f.name:<6}{f.bucket:>7}  {f.source:<10}{statistics.median(f.api_ms):>9.1f}"
            f"{p95[f.name]:>9.1f}{statistics.median(f.server_ms):>12.1f}"
            f"{statistics.median(f.raw_ms):>9.1f}{raw_p95[f.name]:>9.1f}"
            f"{f'{len(f.api_ms)}/{len(f.raw_ms)}':>8}{raw_p95[f.name] / p95[f.name]:>8.1f}x"
            f"  {'yes' if f.mismatch is None else 'NO: ' + f.mismatch}"
        )
    print("(ms; speedup = raw p95 / API p95; API timed over HTTP, raw in-process)")
    ratio = refresh_s / ingest_s
    print(
        f"refresh cost: {stored:,} new points over the last {args.new_hours:g} h:"
        f" ingest {ingest_s * per_million:.2f} s per million points,"
        f" refresh {refresh_s * per_million:.2f} s per million points ({pairs:,} pairs),"
        f" refresh/ingest {ratio:.3f}"
    )
    speedup = raw_p95["30d"] / p95["30d"]
    checks = [
        (f"p95 <= {TARGET_P95_MS:g} ms for every range", max(p95.values()) <= TARGET_P95_MS),
        (f">= {TARGET_SPEEDUP:g}x faster than raw at 30 days", speedup >= TARGET_SPEEDUP),
        (f"refresh <= {TARGET_REFRESH_RATIO:.0%} of ingest", ratio <= TARGET_REFRESH_RATIO),
        ("API answers equal the raw ones", all(f.mismatch is None for f in figures)),
    ]
    for label, passed in checks:
        print(f"target {label}: {'PASS' if passed else 'FAIL'}")
    print(
        json.dumps(
            {
                "p95_ms": {name: round(value, 1) for name, value in p95.items()},
                "raw_p95_ms": {name: round(value, 1) for name, value in raw_p95.items()},
                "speedup_30d": round(speedup, 1),
                "refresh_over_ingest": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
