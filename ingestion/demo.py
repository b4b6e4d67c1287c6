"""The demo metrics: realistic, deterministic series that `seed_demo`, tests and benchmarks share.

Web traffic, latency, hosts and a shop's products, with daily and weekly seasonality,
noise, a few incidents and some points written late (`seed_demo` stores them through
the same `ingest_points` service as real events). Every value is a function of its series and
its timestamp only (one seeded `random.Random` per time step), so a later run writes
the same points for the same times, and the unique index skips them.
"""

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from analytics.services.points import CleanPoint, SeriesKey, Tags

SEED = 20_240_601
# The points' identity is their series and time, as for line protocol; a constant id
# marks them as seed data and lets the unique index refuse them on a re-run.
SEED_EVENT_ID = "demo-seed"
LATE_FRACTION = 0.01
LATE_MAX_SECONDS = 3 * 3600
INCIDENTS_PER_DAY = 0.2

# name, requests per minute at the daily peak, latency in ms at rest
ENDPOINTS = [
    ("/", 60.0, 35.0),
    ("/api/products", 45.0, 60.0),
    ("/api/products/:id", 80.0, 40.0),
    ("/api/search", 30.0, 140.0),
    ("/api/cart", 20.0, 55.0),
    ("/api/login", 10.0, 90.0),
    ("/api/orders", 8.0, 110.0),
    ("/api/checkout", 5.0, 240.0),
]
# name, hours ahead of UTC (their users' day), share of traffic
REGIONS = [("eu-west", 1.0, 0.45), ("us-east", -5.0, 0.40), ("ap-south", 5.5, 0.15)]
STATUSES = [("200", 0.93), ("304", 0.04), ("404", 0.025), ("500", 0.005)]
HOST_ROLES = ["web", "web", "web", "worker", "db", "web", "worker", "cache"]
CATEGORIES = ["books", "games", "garden", "kitchen", "toys", "music"]

REQUESTS, LATENCY, CPU, MEMORY, VIEWS, SALES = range(6)


class Spec(NamedTuple):
    """How one series' values are made: a model (`kind`), its level, and whose day it follows."""

    key: SeriesKey
    kind: int
    zone: int  # index into the load of each region
    level: float
    extra: float = 0.0


@dataclass(frozen=True)
class Incident:
    """From `start` to `end` (epochs), some series' values are multiplied."""

    start: int
    end: int
    factors: dict[int, float]  # spec index -> multiplier


def _daily(hour: float) -> float:
    """Return the load at a local hour: a trough at night, a peak after lunch and in the evening."""
    afternoon = math.exp(-(((hour - 14.0) / 4.0) ** 2))
    evening = 0.5 * math.exp(-(((hour - 20.5) / 1.8) ** 2))
    return 0.12 + 0.88 * min(1.0, afternoon + evening)


def _load(epoch: int, offset_hours: float) -> float:
    local = epoch / 3600 + offset_hours
    weekday = int(local // 24 + 3) % 7  # 1970-01-01 was a Thursday (3, Monday being 0)
    weekly = 0.7 if weekday >= 5 else 1.0
    return _daily(local % 24) * weekly


def build_specs(series: int) -> list[Spec]:
    """Return about `series` series: HTTP requests and latency, hosts, products."""
    regions = min(len(REGIONS), max(1, round(series * 0.08)))
    endpoints = max(1, round(series * 0.08 / regions))
    hosts = max(1, round(series * 0.04))
    products = max(1, (series - 5 * endpoints * regions - 2 * hosts) // 2)
    specs: list[Spec] = []
    for e in range(endpoints):
        name, per_minute, latency = ENDPOINTS[e % len(ENDPOINTS)]
        if e >= len(ENDPOINTS):
            name = f"{name.rstrip('/')}/v{e // len(ENDPOINTS) + 1}"
        for r in range(regions):
            region, _, share = REGIONS[r]
            for status, status_share in STATUSES:
                tags: Tags = (("endpoint", name), ("region", region), ("status", status))
                specs.append(
                    Spec(
                        ("http.requests", tags, None),
                        REQUESTS,
                        r,
                        per_minute * share * status_share,
                    )
                )
            latency_tags: Tags = (("endpoint", name), ("region", region))
            specs.append(Spec(("http.latency_ms", latency_tags, None), LATENCY, r, latency))
    for h in range(hosts):
        role = HOST_ROLES[h % len(HOST_ROLES)]
        host = f"{role}-{h + 1}"
        busy = {"web": 55.0, "worker": 35.0, "db": 40.0, "cache": 15.0}[role]
        memory = {"web": 45.0, "worker": 30.0, "db": 72.0, "cache": 60.0}[role]
        specs.append(
            Spec(
                ("host.cpu", (("host", host),), None),
                CPU,
                0,
                busy,
                1.0 if role == "worker" else 0.0,
            )
        )
        specs.append(
            Spec(
                ("host.memory", (("host", host),), None),
                MEMORY,
                0,
                memory,
                1.0 if role == "worker" else 0.0,
            )
        )
    rng = random.Random(SEED)
    for p in range(products):
        sku = f"sku-{p + 1:04d}"
        product_tags: Tags = (("category", CATEGORIES[rng.randrange(len(CATEGORIES))]),)
        views = 40.0 / (p + 1) ** 0.8  # a few products take most of the views
        conversion = rng.uniform(0.01, 0.05)
        specs.append(Spec(("shop.product_views", product_tags, sku), VIEWS, 0, views))
        specs.append(Spec(("shop.product_sales", product_tags, sku), SALES, 0, views * conversion))
    return specs


def build_incidents(specs: list[Spec], first: int, last: int) -> list[Incident]:
    """Return the incidents between two epochs: latency spikes, error bursts, busy hosts.

    They are drawn per calendar day (UTC) from a seed of that day, so they do not move
    when the window does.
    """
    by_kind: dict[int, list[int]] = {}
    for index, spec in enumerate(specs):
        by_kind.setdefault(spec.kind, []).append(index)
    errors = [i for i in by_kind[REQUESTS] if dict(specs[i].key[1])["status"] == "500"]
    incidents = []
    for day in range(first // 86400, last // 86400 + 1):
        rng = random.Random(SEED * 7919 + day)
        if rng.random() >= INCIDENTS_PER_DAY:
            continue
        start = day * 86400 + rng.randrange(86400)
        end = start + rng.randrange(15, 91) * 60
        kind = rng.choice(["latency", "errors", "cpu"])
        if kind == "latency":
            factors = {rng.choice(by_kind[LATENCY]): rng.uniform(4.0, 9.0)}
        elif kind == "errors":
            factors = {rng.choice(errors): rng.uniform(30.0, 80.0)}
        else:
            factors = {rng.choice(by_kind[CPU]): 3.0}
        incidents.append(Incident(start, end, factors))
    return incidents


def _value(
    spec: Spec,
    load: float,
    minutes: float,
    epoch: int,
    boost: float,
    gauss: Callable[[float, float], float],
) -> float:
    kind = spec.kind
    if kind in (REQUESTS, VIEWS, SALES):
        mean = spec.level * load * minutes * boost
        return float(max(0, round(mean + gauss(0.0, 1.0) * math.sqrt(mean))))
    if kind == LATENCY:
        return round(spec.level * (0.8 + 0.5 * load) * boost * math.exp(gauss(0.0, 0.12)), 2)
    if kind == CPU:
        nightly_job = 35.0 if spec.extra and epoch % 86400 < 3600 else 0.0
        cpu = (5.0 + spec.level * load + nightly_job + gauss(0.0, 2.5)) * boost
        return round(min(100.0, max(0.5, cpu)), 2)
    # Workers leak memory and are restarted every six hours: a sawtooth.
    leak = 40.0 * (epoch % 21600) / 21600 if spec.extra else 0.0
    return round(min(100.0, max(1.0, spec.level + 8.0 * load + leak + gauss(0.0, 0.8))), 2)


def generate(specs: list[Spec], *, first: int, steps: int, step: int) -> Iterator[CleanPoint]:
    """Yield every point from `first` on, `steps` steps of `step` seconds.

    A small share is held back for a few steps and yielded after later points: the late
    and out-of-order writes that real agents produce (buffering, retries, clock skew).
    """
    last = first + (steps - 1) * step
    incidents = build_incidents(specs, first, last)
    offsets = [offset for _, offset, _ in REGIONS]
    minutes = step / 60
    late_steps = max(1, LATE_MAX_SECONDS // step)
    held: dict[int, list[CleanPoint]] = {}
    for k in range(steps):
        epoch = first + k * step
        rng = random.Random(SEED * 1_000_003 + epoch)
        gauss, chance = rng.gauss, rng.random
        when = datetime.fromtimestamp(epoch, UTC)
        loads = [_load(epoch, offset) for offset in offsets]
        boosts: dict[int, float] = {}
        for incident in incidents:
            if incident.start <= epoch < incident.end:
                boosts.update(incident.factors)
        for index, spec in enumerate(specs):
            value = _value(spec, loads[spec.zone], minutes, epoch, boosts.get(index, 1.0), gauss)
            point = CleanPoint(spec.key, when, value, SEED_EVENT_ID)
            if chance() < LATE_FRACTION:
                held.setdefault(k + 1 + int(chance() * late_steps), []).append(point)
            else:
                yield point
        # After this step's points: so they follow later points of their own series.
        yield from held.pop(k, ())
    for k in sorted(held):
        yield from held[k]
