"""The data the browser tests look at: a member, the demo dashboards with points, embedded items.

It is committed (the server is another process) and removed again by `remove_site`.
Every value is chosen so that what the tests assert is unambiguous: region `eu` has
several times the traffic of `us`, and each item's nearest neighbour is obvious.
"""

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection

from analytics.models import Project, Series
from analytics.services.points import CleanPoint, Tags, ingest_points
from analytics.services.rollups import refresh_rollups
from analytics.services.tenants import add_member, ensure_project
from dashboards.demo import ensure_demo_dashboards
from embeddings.services import pending_embeddings, upsert_items
from embeddings.validation import ItemInput

PROJECT_SLUG = "browser-shop"
USERNAME = "browser-member"
PASSWORD = "browser-pass-8213"
DASHBOARD_SLUG = "shop-overview"
TREND_METRIC = "shop.product_views"
STEP = timedelta(minutes=1)
# A day and a bit: the 24 h default range is full, and its previous period is not empty.
HISTORY = timedelta(hours=26)
EMBED_TIMEOUT_S = 120

# external id -> (title, text, category). Two clear clusters per query the tests run.
ITEMS: dict[str, tuple[str, str, str]] = {
    "book-python": (
        "Learning Python programming",
        "A beginner's guide to writing Python code: functions, classes, modules and tests.",
        "books",
    ),
    "book-django": (
        "Web development with Django and Python",
        "Build web applications in Python with the Django framework: models, views, templates.",
        "books",
    ),
    "book-bread": (
        "The sourdough bread handbook",
        "Baking bread at home: sourdough starters, kneading, proofing and baking loaves.",
        "books",
    ),
    "book-cakes": (
        "Cakes and pastries",
        "Recipes for cakes, tarts, cookies and pastries with butter, sugar and chocolate.",
        "books",
    ),
    "music-jazz": (
        "Jazz piano classics",
        "Recordings of jazz piano trios: swing, bebop standards and slow ballads.",
        "music",
    ),
    "music-guitar": (
        "Acoustic guitar songs",
        "Folk songs played on acoustic guitar with vocals and harmonica.",
        "music",
    ),
    "tool-hammer": (
        "Steel claw hammer",
        "A heavy steel hammer for carpentry: driving and pulling nails in wood.",
        "tools",
    ),
    "garden-hose": (
        "Garden hose, 20 metres",
        "A flexible rubber hose for watering the lawn, flowers and vegetable beds.",
        "garden",
    ),
}


@dataclass(frozen=True)
class BrowserSite:
    project_id: int
    project_slug: str
    username: str
    password: str
    dashboard_slug: str
    panel_count: int
    items: dict[str, str]  # external id -> title


def _tags(**tags: str) -> Tags:
    return tuple(sorted(tags.items()))


def _series_values(
    now: datetime,
) -> dict[tuple[str, Tags, str | None], list[tuple[datetime, float]]]:
    """Return every series of the Shop overview dashboard with its points."""
    start = (now - HISTORY).replace(second=0, microsecond=0)
    moments = []
    moment = start
    while moment < now - timedelta(minutes=2):
        moments.append(moment)
        moment += STEP

    def wave(index: int, base: float, swing: float) -> float:
        return round(base + swing * math.sin(index / 9), 3)

    series: dict[tuple[str, Tags, str | None], list[tuple[datetime, float]]] = {}
    for region, traffic in (("eu", 40.0), ("us", 6.0)):
        for endpoint, share in (("/api/items", 1.0), ("/checkout", 0.5)):
            series[
                ("http.requests", _tags(region=region, endpoint=endpoint, status="200"), None)
            ] = [(m, wave(i, traffic * share, 2)) for i, m in enumerate(moments)]
            series[
                ("http.requests", _tags(region=region, endpoint=endpoint, status="500"), None)
            ] = [(m, wave(i, traffic * share / 10, 0.5)) for i, m in enumerate(moments)]
            latency = 40.0 if region == "eu" else 140.0
            series[("http.latency_ms", _tags(region=region, endpoint=endpoint), None)] = [
                (m, wave(i, latency * share, 10)) for i, m in enumerate(moments)
            ]
    for host, load in (("web-1", 35.0), ("web-2", 70.0)):
        series[("host.cpu", _tags(host=host), None)] = [
            (m, wave(i, load, 15)) for i, m in enumerate(moments)
        ]
        series[("host.memory", _tags(host=host), None)] = [
            (m, wave(i, load - 5, 5)) for i, m in enumerate(moments)
        ]
    for position, (external_id, (_, _, category)) in enumerate(ITEMS.items()):
        series[("shop.product_sales", _tags(category=category), external_id)] = [
            (m, wave(i + position, 5 + position, 3)) for i, m in enumerate(moments)
        ]
        series[(TREND_METRIC, _tags(category=category), external_id)] = [
            (m, wave(i + 3 * position, 20 + 4 * position, 10)) for i, m in enumerate(moments)
        ]
    return series


def _remove_leftovers() -> None:
    """Drop what an interrupted run left behind (the test database may be reused)."""
    project = Project.objects.filter(slug=PROJECT_SLUG).first()
    if project is not None:
        _delete_project(project.pk)
    User.objects.filter(username=USERNAME).delete()


def _delete_project(project_id: int) -> None:
    # Points are not a Django model, so the ORM's cascade does not reach them.
    ids = list(Series.objects.filter(project_id=project_id).values_list("id", flat=True))
    if ids:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM points WHERE series_id = ANY(%s)", [ids])
    Project.objects.filter(pk=project_id).delete()


def _wait_for_embeddings(item_ids: list[int]) -> None:
    """Wait until the real Celery worker has embedded `item_ids` with the current model."""
    deadline = time.monotonic() + EMBED_TIMEOUT_S
    while pending := pending_embeddings(model=settings.EMBEDDINGS_MODEL_NAME, item_ids=item_ids):
        if time.monotonic() > deadline:
            raise AssertionError(f"{pending} items still not embedded after {EMBED_TIMEOUT_S} s")
        time.sleep(0.3)


def build_site() -> BrowserSite:
    """Create and commit the browser tests' project, member, dashboards, points and items."""
    _remove_leftovers()
    project = ensure_project(slug=PROJECT_SLUG, name="Browser shop")
    # A plain viewer: no staff flag, no admin permissions.
    user = User.objects.create_user(USERNAME, password=PASSWORD)
    add_member(project=project, user=user)
    dashboards = ensure_demo_dashboards(project=project)
    overview = next(d for d in dashboards if d.slug == DASHBOARD_SLUG)
    now = datetime.now(UTC)
    points = [
        CleanPoint(series=key, time=moment, value=value, event_id=None)
        for key, values in _series_values(now).items()
        for moment, value in values
    ]
    ingest_points(project_id=project.pk, points=points, series_limit=10_000)
    # What beat does in production: panels then read materialized buckets, not raw minutes.
    refresh_rollups()
    upserted = upsert_items(
        project_id=project.pk,
        items=[
            ItemInput(
                external_id=external_id, title=title, text=text, attributes={"category": category}
            )
            for external_id, (title, text, category) in ITEMS.items()
        ],
        model=settings.EMBEDDINGS_MODEL_NAME,
    )
    _wait_for_embeddings(upserted.queued)
    return BrowserSite(
        project_id=project.pk,
        project_slug=PROJECT_SLUG,
        username=USERNAME,
        password=PASSWORD,
        dashboard_slug=DASHBOARD_SLUG,
        panel_count=overview.panels.count(),
        items={external_id: title for external_id, (title, _, _) in ITEMS.items()},
    )


def remove_site(site: BrowserSite) -> None:
    """Delete everything `build_site` committed, rollup rows of its points included."""
    _delete_project(site.project_id)
    User.objects.filter(username=site.username).delete()
    # The deletes were logged as invalidations: refreshing now removes the buckets, so
    # later tests find neither stale rollup rows nor pending work of ours.
    refresh_rollups()
