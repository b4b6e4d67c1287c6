"""Trends of a metric per item (analytics.queries.item_trends) and beside search results."""

from datetime import UTC, datetime, timedelta

import pytest

from analytics.queries.item_trends import item_trends, trend_bucket
from analytics.queries.series import align_down, epoch_ms
from analytics.services.points import CleanPoint, ingest_points
from analytics.services.rollups import refresh_rollups
from tests.embeddings.helpers import get, post_json, set_embeddings, unit

pytestmark = pytest.mark.django_db
VIEWS = "shop.product_views"
NOW = datetime.now(UTC)
START, END = NOW - timedelta(days=7), NOW
WIDTH = trend_bucket(END - START)


def write(project, item, moments_values, tags=(("category", "books"),), metric=VIEWS):
    key = (metric, tags, item)
    points = [CleanPoint(key, moment, value, None) for moment, value in moments_values]
    ingest_points(project_id=project.pk, points=points, series_limit=1000)


@pytest.fixture
def events(project, other_project):
    """Views of two items (one over two series), and the same item ids in another project."""
    # An hour into a 6-hour bucket: the points of `day` share their bucket.
    day = align_down(NOW - timedelta(days=2), WIDTH) + timedelta(hours=1)
    write(
        project, "sku-1", [(day, 3), (day + timedelta(minutes=5), 4), (NOW - timedelta(hours=1), 1)]
    )
    write(project, "sku-1", [(day, 10)], tags=(("category", "sale"),))
    write(project, "sku-2", [(NOW - timedelta(days=6), 7)])
    write(project, "sku-1", [(day, 99)], metric="shop.product_sales")
    write(other_project, "sku-1", [(day, 1000)])
    return day


def expected(points):
    """Return {bucket start (epoch ms): sum} of (moment, value) points."""
    sums: dict[int, float] = {}
    for moment, value in points:
        bucket = epoch_ms(align_down(moment, WIDTH))
        sums[bucket] = sums.get(bucket, 0.0) + value
    return sums


def test_trends_sum_each_items_series(project, events):
    """Each item's trend sums its series per bucket; other metrics, projects and items stay out."""
    day = events
    trends = item_trends(
        project_id=project.pk,
        metric=VIEWS,
        items=["sku-1", "sku-2", "sku-9"],
        agg="sum",
        start=START,
        end=END,
    )
    assert trends.bucket == timedelta(hours=6)
    assert trends.times[0] == epoch_ms(align_down(START, WIDTH))
    assert len(trends.times) in (28, 29)
    assert set(trends.values) == {"sku-1", "sku-2"}
    one = expected([(day, 17), (NOW - timedelta(hours=1), 1)])
    assert dict(zip(trends.times, trends.values["sku-1"], strict=True)) == {
        moment: one.get(moment, 0.0) for moment in trends.times
    }
    assert sum(v or 0.0 for v in trends.values["sku-2"]) == 7.0


def test_trends_read_the_same_after_a_rollup_refresh(project, events):
    """Pending minutes (read live) and refreshed rollups give the same trend."""
    before = item_trends(
        project_id=project.pk, metric=VIEWS, items=["sku-1"], agg="avg", start=START, end=END
    )
    refresh_rollups()
    after = item_trends(
        project_id=project.pk, metric=VIEWS, items=["sku-1"], agg="avg", start=START, end=END
    )
    assert before == after
    values = [v for v in after.values["sku-1"] if v is not None]
    assert sorted(values) == [1.0, 17 / 3]  # avg is sum / count, gaps stay None


def test_similar_carries_trends_in_constant_queries(
    client, project, make_key, events, django_assert_num_queries
):
    """?trend=…&range=… adds one trend per result (null without data) in the same number of queries."""
    key = make_key(project).secret
    names = ["sku-0", "sku-1", "sku-2", "sku-3", "sku-4"]
    post_json(client, "/api/v1/items", key, [{"external_id": n, "title": n} for n in names])
    set_embeddings(project, {n: unit(1, i / 10) for i, n in enumerate(names)})
    params = {"trend": VIEWS, "range": "7d"}
    get(client, "/api/v1/items/sku-0/similar", key, k=1, **params)
    with django_assert_num_queries(10) as one:
        get(client, "/api/v1/items/sku-0/similar", key, k=1, **params)
    with django_assert_num_queries(len(one.captured_queries)):
        body = get(client, "/api/v1/items/sku-0/similar", key, k=4, **params).json()
    assert [r["external_id"] for r in body["results"]] == ["sku-1", "sku-2", "sku-3", "sku-4"]
    assert body["trend"]["metric"] == VIEWS
    assert (body["trend"]["agg"], body["trend"]["bucket"]) == ("sum", "6h")
    times = body["trend"]["times"]
    assert sum(body["results"][0]["trend"]) == 18.0  # not the other project's 1000
    assert len(body["results"][0]["trend"]) == len(times)
    assert body["results"][2]["trend"] is None
    search = {"like": ["sku-0"], "k": 2, "trend": VIEWS, "range": "24h", "agg": "count"}
    found = post_json(client, "/api/v1/search", key, search).json()
    assert found["trend"]["bucket"] == "1h"
    assert sum(found["results"][0]["trend"]) == 1.0  # one view of sku-1 in the last day
