"""The series API over HTTP: aggregates, tiers, filters, groups, fill, compare, errors, access."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.db import connection

from analytics.models import Membership, Project, Series
from analytics.queries.series import align_down
from analytics.services import add_member
from analytics.services.rollups import refresh_rollups
from tests.analytics.helpers_series import (
    BASE,
    DAY,
    HOUR,
    MINUTE,
    get_series,
    invalid,
    iso,
    ms,
    write,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(project, make_key):
    return make_key(project, scopes=("read",))


def write_cpu(project: Project) -> None:
    """Two series of `cpu`: three points in the first hour, one in the second, none after."""
    write(
        project,
        "cpu",
        {"host": "a", "region": "eu"},
        [(10 * MINUTE, 1.0), (20 * MINUTE, 3.0), (65 * MINUTE, 6.0)],
    )
    write(project, "cpu", {"host": "b", "region": "us"}, [(30 * MINUTE, 10.0)])


def day_range(**params: Any) -> dict[str, Any]:
    return {"start": iso(BASE), "end": iso(BASE + DAY), **params}


def only_values(response: Any) -> list[Any]:
    assert response.status_code == 200, response.json()
    series = response.json()["series"]
    assert len(series) == 1, series
    values: list[Any] = series[0]["values"]
    return values


def test_avg_response_is_compact_and_complete(api_client, project, reader):
    """One bucketed series: times once in epoch ms, a values array, the tier and range read."""
    write_cpu(project)
    response = get_series(
        api_client,
        reader,
        metric="cpu",
        agg="avg",
        start=iso(BASE),
        end=iso(BASE + 3 * HOUR),
        bucket="1h",
    )
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body.pop("server_ms"), float)
    assert body == {
        "metric": "cpu",
        "agg": "avg",
        "bucket": "1h",
        "source": "rollup_1h",
        "start": iso(BASE),
        "end": iso(BASE + 3 * HOUR),
        "times": [ms(BASE), ms(BASE + HOUR)],
        "series": [{"name": "cpu", "group": {}, "values": [14 / 3, 6.0]}],
        "partial": {"first": False, "last": False},
        "matched_series": 2,
    }


@pytest.mark.parametrize(
    ("agg", "expected"),
    [
        ("avg", [14 / 3, 6.0]),
        ("sum", [14.0, 6.0]),
        ("count", [3.0, 1.0]),
        ("min", [1.0, 6.0]),
        ("max", [10.0, 6.0]),
    ],
)
def test_every_agg_merges_series_per_bucket(api_client, project, reader, agg, expected):
    """Each aggregate is computed over all points of all matching series in a bucket."""
    write_cpu(project)
    response = get_series(
        api_client,
        reader,
        metric="cpu",
        agg=agg,
        start=iso(BASE),
        end=iso(BASE + 3 * HOUR),
        bucket="1h",
    )
    assert only_values(response) == expected
    assert response.json()["times"] == [ms(BASE), ms(BASE + HOUR)]


@pytest.mark.parametrize(
    ("bucket", "label", "source"),
    [
        ("1m", "1m", "rollup_1m"),
        ("5m", "5m", "rollup_1m"),
        ("90m", "90m", "rollup_1m"),
        ("1h", "1h", "rollup_1h"),
        ("120m", "2h", "rollup_1h"),
        ("6h", "6h", "rollup_1h"),
        ("1d", "1d", "rollup_1d"),
        ("1440m", "1d", "rollup_1d"),
        ("7d", "1w", "rollup_1d"),
    ],
)
def test_coarsest_dividing_tier_is_read(api_client, project, reader, bucket, label, source):
    """An explicit bucket reads the coarsest tier that divides it and says which."""
    write_cpu(project)
    response = get_series(api_client, reader, **day_range(metric="cpu", agg="count", bucket=bucket))
    assert response.status_code == 200
    body = response.json()
    assert (body["bucket"], body["source"]) == (label, source)
    assert sum(only_values(response)) == 4.0
    assert len(body["times"]) == len(body["series"][0]["values"])


def test_explicit_buckets_split_points_exactly(api_client, project, reader):
    """90m buckets hold [0, 90m) and [90m, 180m); 5m buckets hold one point each."""
    write_cpu(project)
    wide = get_series(api_client, reader, **day_range(metric="cpu", agg="sum", bucket="90m"))
    assert wide.json()["times"] == [ms(BASE)]
    assert only_values(wide) == [20.0]
    narrow = get_series(api_client, reader, **day_range(metric="cpu", agg="sum", bucket="5m"))
    assert narrow.json()["times"] == [ms(BASE + m * MINUTE) for m in (10, 20, 30, 65)]
    assert only_values(narrow) == [1.0, 3.0, 10.0, 6.0]


@pytest.mark.parametrize(
    ("start", "end", "label", "source", "times", "counts"),
    [
        (BASE, BASE + DAY, "5m", "rollup_1m", [10, 20, 30, 65], [1.0, 1.0, 1.0, 1.0]),
        (BASE - 6 * DAY, BASE + DAY, "1h", "rollup_1h", [0, 60], [3.0, 1.0]),
        (BASE - 27 * DAY, BASE + 3 * DAY, "3h", "rollup_1h", [0], [4.0]),
    ],
)
def test_auto_bucket_picks_a_natural_width(
    api_client, project, reader, start, end, label, source, times, counts
):
    """bucket=auto gives about 300 points rounded up to a natural width, and reports it."""
    write_cpu(project)
    response = get_series(
        api_client, reader, metric="cpu", agg="count", start=iso(start), end=iso(end)
    )
    body = response.json()
    assert (body["bucket"], body["source"]) == (label, source)
    assert body["times"] == [ms(BASE + m * MINUTE) for m in times]
    assert only_values(response) == counts


def test_auto_bucket_over_a_year_reads_days(api_client, project, reader):
    """A year of range gives 2-day buckets from the daily tier (365 d / 300 is 29.2 h)."""
    write_cpu(project)
    response = get_series(
        api_client,
        reader,
        metric="cpu",
        agg="count",
        start=iso(BASE - 364 * DAY),
        end=iso(BASE + DAY),
    )
    body = response.json()
    assert (body["bucket"], body["source"]) == ("2d", "rollup_1d")
    assert only_values(response) == [4.0]


def test_defaults_are_the_last_24_hours_in_auto_buckets(api_client, project, reader):
    """Without start, end, bucket and agg: avg over now-24h..now in 5m buckets, last partial."""
    write(project, "recent", {}, [(datetime.now(UTC) - BASE - HOUR, 2.0)])
    write(project, "recent", {}, [(datetime.now(UTC) - BASE - 2 * DAY, 9.0)])
    response = get_series(api_client, reader, metric="recent")
    body = response.json()
    assert (body["agg"], body["bucket"], body["source"]) == ("avg", "5m", "rollup_1m")
    assert body["partial"]["last"] is True
    assert only_values(response) == [2.0]


@pytest.mark.parametrize(
    "start",
    [
        BASE.replace(tzinfo=None).isoformat(),
        BASE.strftime("%Y-%m-%dT%H:%M:%SZ"),
        BASE.astimezone(timezone(timedelta(hours=2))).isoformat(),
    ],
)
def test_iso_times_are_utc_unless_they_say_otherwise(api_client, project, reader, start):
    """A naive time is UTC; 'Z' and offsets are honoured (02:00+02:00 is 00:00 UTC)."""
    write_cpu(project)
    response = get_series(
        api_client, reader, metric="cpu", agg="count", bucket="1h", start=start, end=iso(BASE + DAY)
    )
    body = response.json()
    assert (body["start"], body["partial"]["first"]) == (iso(BASE), False)
    assert only_values(response) == [3.0, 1.0]


def write_requests(project: Project) -> None:
    """Four series whose values are powers of two, so a sum names the series it holds."""
    write(project, "req", {"host": "a", "region": "eu"}, [(5 * MINUTE, 1.0)])
    write(project, "req", {"host": "b", "region": "eu"}, [(5 * MINUTE, 2.0)])
    write(project, "req", {"host": "c", "region": "us"}, [(5 * MINUTE, 4.0)])
    write(project, "req", {"region": "us"}, [(5 * MINUTE, 8.0)])


@pytest.mark.parametrize(
    ("where", "total", "matched"),
    [
        (["region:eu"], 3.0, 2),
        (["region!=eu"], 12.0, 2),
        (["host:in(a,c)"], 5.0, 2),
        (["host:in(a, c, zz)"], 5.0, 2),
        (["region!=in(eu,mars)"], 12.0, 2),
        (["region:eu", "host!=a"], 2.0, 1),
        (["region:us", "host:in(c,d)"], 4.0, 1),
        (["region:us", "region:eu"], None, 0),
        (["region:mars"], None, 0),
    ],
)
def test_where_filters_select_series(api_client, project, reader, where, total, matched):
    """Equality, !=, in(...) and several filters together keep exactly the matching series."""
    write_requests(project)
    response = get_series(
        api_client, reader, **day_range(metric="req", agg="sum", bucket="1d", where=where)
    )
    body = response.json()
    assert body["matched_series"] == matched
    if total is None:
        assert body["times"] == []
        assert only_values(response) == []
    else:
        assert body["times"] == [ms(BASE)]
        assert only_values(response) == [total]


def test_not_equal_keeps_series_without_the_tag(api_client, project, reader):
    """host!=a keeps series that have no host tag at all, as Prometheus and InfluxDB do."""
    write_requests(project)
    response = get_series(
        api_client, reader, **day_range(metric="req", agg="sum", bucket="1d", where="host!=a")
    )
    assert response.json()["matched_series"] == 3
    assert only_values(response) == [14.0]
    negated_list = get_series(
        api_client, reader, **day_range(metric="req", agg="sum", bucket="1d", where="host!=in(a,b)")
    )
    assert only_values(negated_list) == [12.0]


def test_where_on_a_tag_key_with_double_underscore(api_client, project, reader):
    """A tag key containing '__' (accepted at ingestion) is filtered as one key, not a path."""
    write(project, "pods", {"k8s__pod": "p1"}, [(MINUTE, 1.0)])
    write(project, "pods", {"k8s__pod": "p2"}, [(MINUTE, 2.0)])
    response = get_series(
        api_client, reader, **day_range(metric="pods", agg="sum", bucket="1d", where="k8s__pod:p1")
    )
    assert response.json()["matched_series"] == 1
    assert only_values(response) == [1.0]


def write_latency(project: Project) -> None:
    """Five series of `lat`: hosts a-d and one without a host tag."""
    write(project, "lat", {"host": "a"}, [(1 * MINUTE, 100.0)])
    write(project, "lat", {"host": "b"}, [(2 * MINUTE, 50.0)])
    write(
        project, "lat", {"host": "c"}, [(3 * MINUTE, 10.0), (4 * MINUTE, 20.0), (5 * MINUTE, 30.0)]
    )
    write(project, "lat", {"host": "d"}, [(6 * MINUTE, 1.0)])
    write(project, "lat", {"dc": "x"}, [(7 * MINUTE, 40.0)])


def named(body: dict[str, Any]) -> list[tuple[Any, dict[str, Any], list[Any]]]:
    return [(s["name"], s["group"], s["values"]) for s in body["series"]]


@pytest.mark.parametrize(
    ("agg", "limit", "expected"),
    [
        # Other is c, d and the host-less series: (60 + 1 + 40) / 5 points, not (20 + 1 + 40) / 3.
        ("avg", 2, [("a", 100.0), ("b", 50.0), ("other", 101 / 5)]),
        ("sum", 2, [("a", 100.0), ("c", 60.0), ("other", 91.0)]),
        ("count", 2, [("c", 3.0), ("a", 1.0), ("other", 3.0)]),
        ("max", 1, [("a", 100.0), ("other", 50.0)]),
        ("min", 3, [("a", 100.0), ("b", 50.0), (None, 40.0), ("other", 1.0)]),
    ],
)
def test_group_by_keeps_top_groups_and_merges_the_rest(
    api_client, project, reader, agg, limit, expected
):
    """group_by ranks groups by the aggregate and merges the rest into 'other' from raw parts."""
    write_latency(project)
    response = get_series(
        api_client,
        reader,
        **day_range(metric="lat", agg=agg, bucket="1d", group_by="host", limit=limit),
    )
    assert response.status_code == 200
    assert response.json()["times"] == [ms(BASE)]
    assert named(response.json()) == [
        (name, {} if name == "other" else {"host": name}, [value]) for name, value in expected
    ]


def test_group_by_without_other_when_all_groups_fit(api_client, project, reader):
    """With room for every group there is no 'other'; the host-less series is its own group."""
    write_latency(project)
    response = get_series(
        api_client, reader, **day_range(metric="lat", agg="avg", bucket="1d", group_by="host")
    )
    assert [(s["name"], s["group"]) for s in response.json()["series"]] == [
        ("a", {"host": "a"}),
        ("b", {"host": "b"}),
        (None, {"host": None}),
        ("c", {"host": "c"}),
        ("d", {"host": "d"}),
    ]


def test_group_by_other_is_merged_per_bucket(api_client, project, reader):
    """In each bucket 'other' holds the remaining groups' points there, and gaps stay null."""
    write_latency(project)
    response = get_series(
        api_client,
        reader,
        metric="lat",
        agg="avg",
        start=iso(BASE),
        end=iso(BASE + HOUR),
        bucket="1m",
        group_by="host",
        limit=2,
    )
    body = response.json()
    assert body["times"] == [ms(BASE + m * MINUTE) for m in range(1, 8)]
    nothing = [None] * 5
    assert named(body) == [
        ("a", {"host": "a"}, [100.0, None, *nothing]),
        ("b", {"host": "b"}, [None, 50.0, *nothing]),
        ("other", {}, [None, None, 10.0, 20.0, 30.0, 1.0, 40.0]),
    ]


def write_gappy(project: Project) -> None:
    """One value in hours 0 and 2 of BASE, nothing in hours 1 and 3."""
    write(project, "gap", {"host": "a"}, [(10 * MINUTE, 5.0), (2 * HOUR + 10 * MINUTE, 7.0)])


@pytest.mark.parametrize(
    ("fill", "hours", "values"),
    [
        (None, [0, 2], [5.0, 7.0]),
        ("none", [0, 2], [5.0, 7.0]),
        ("null", [0, 1, 2, 3], [5.0, None, 7.0, None]),
        ("zero", [0, 1, 2, 3], [5.0, 0.0, 7.0, 0.0]),
        ("previous", [0, 1, 2, 3], [5.0, 5.0, 7.0, 7.0]),
    ],
)
def test_fill_around_a_gap(api_client, project, reader, fill, hours, values):
    """A gap stays absent (none), or is null, zero or the previous value when asked."""
    write_gappy(project)
    params = {"metric": "gap", "agg": "sum", "bucket": "1h"}
    if fill is not None:
        params["fill"] = fill
    response = get_series(api_client, reader, start=iso(BASE), end=iso(BASE + 4 * HOUR), **params)
    assert response.json()["times"] == [ms(BASE + h * HOUR) for h in hours]
    assert only_values(response) == values


def test_fill_previous_leaves_a_leading_gap_null(api_client, project, reader):
    """Before the first value there is nothing to carry: the bucket stays null."""
    write_gappy(project)
    response = get_series(
        api_client,
        reader,
        metric="gap",
        agg="max",
        bucket="1h",
        fill="previous",
        start=iso(BASE - HOUR),
        end=iso(BASE + 3 * HOUR),
    )
    assert response.json()["times"] == [ms(BASE + h * HOUR) for h in range(-1, 3)]
    assert only_values(response) == [None, 5.0, 5.0, 7.0]


def test_gap_of_one_group_stays_null_without_fill(api_client, project, reader):
    """With fill=none the times are those where any group has data; the others are null there."""
    write(project, "split", {"host": "a"}, [(5 * MINUTE, 1.0)])
    write(project, "split", {"host": "b"}, [(HOUR + 5 * MINUTE, 2.0)])
    response = get_series(
        api_client,
        reader,
        metric="split",
        agg="sum",
        bucket="1h",
        group_by="host",
        start=iso(BASE),
        end=iso(BASE + 3 * HOUR),
    )
    body = response.json()
    assert body["times"] == [ms(BASE), ms(BASE + HOUR)]
    assert named(body) == [("b", {"host": "b"}, [None, 2.0]), ("a", {"host": "a"}, [1.0, None])]


def write_comparable(project: Project) -> None:
    """Two values in the 4 hours from BASE + 1 day, two in the 4 hours before it."""
    write(
        project,
        "cmp",
        {"host": "a"},
        [(DAY, 10.0), (DAY + HOUR, 20.0), (DAY - 4 * HOUR, 1.0), (DAY - 2 * HOUR, 3.0)],
    )


def test_compare_previous_period_is_aligned_to_current_times(api_client, project, reader):
    """compare=previous_period returns the previous range's values on the current times."""
    write_comparable(project)
    response = get_series(
        api_client,
        reader,
        metric="cmp",
        agg="sum",
        bucket="1h",
        fill="null",
        compare="previous_period",
        start=iso(BASE + DAY),
        end=iso(BASE + DAY + 4 * HOUR),
    )
    body = response.json()
    assert body["times"] == [ms(BASE + DAY + h * HOUR) for h in range(4)]
    assert only_values(response) == [10.0, 20.0, None, None]
    assert body["compare"] == {
        "shift_seconds": 4 * 3600,
        "series": [{"name": "cmp", "group": {}, "values": [1.0, None, 3.0, None]}],
    }


def test_compare_follows_the_current_times_without_fill(api_client, project, reader):
    """Without fill, compare values exist only at the current series' times."""
    write_comparable(project)
    response = get_series(
        api_client,
        reader,
        metric="cmp",
        agg="sum",
        bucket="1h",
        compare="previous_period",
        start=iso(BASE + DAY),
        end=iso(BASE + DAY + 4 * HOUR),
    )
    body = response.json()
    assert body["times"] == [ms(BASE + DAY), ms(BASE + DAY + HOUR)]
    assert body["compare"]["series"][0]["values"] == [1.0, None]
    without = get_series(
        api_client,
        reader,
        metric="cmp",
        bucket="1h",
        start=iso(BASE + DAY),
        end=iso(BASE + DAY + 4 * HOUR),
    )
    assert "compare" not in without.json()


@pytest.mark.parametrize(
    ("start", "end", "first", "last", "range_start"),
    [
        (BASE, BASE + 3 * HOUR, False, False, BASE),
        (BASE + 30 * MINUTE, BASE + 3 * HOUR, True, False, BASE),
        (BASE, BASE + 2 * HOUR + 30 * MINUTE, False, True, BASE),
        (BASE + 59 * MINUTE, BASE + 2 * HOUR + MINUTE, True, True, BASE),
    ],
)
def test_partial_buckets_are_marked(
    api_client, project, reader, start, end, first, last, range_start
):
    """A start or end inside a bucket marks the first or last bucket partial."""
    write_cpu(project)
    response = get_series(
        api_client, reader, metric="cpu", bucket="1h", start=iso(start), end=iso(end)
    )
    body = response.json()
    assert body["partial"] == {"first": first, "last": last}
    assert body["start"] == iso(range_start)


def test_bucket_reaching_into_the_future_is_partial(api_client, project, reader):
    """A last bucket that has not ended yet is partial, even when the end is aligned."""
    write_cpu(project)
    end = align_down(datetime.now(UTC), HOUR) + 2 * HOUR
    aligned = get_series(
        api_client, reader, metric="cpu", bucket="1h", start=iso(end - 5 * HOUR), end=iso(end)
    )
    assert aligned.json()["partial"] == {"first": False, "last": True}
    relative = get_series(api_client, reader, metric="cpu", bucket="1h", start="now-3h", end="now")
    assert relative.json()["partial"]["last"] is True


def rollup_1h_count(series_id: int, bucket: datetime) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count FROM rollup_1h WHERE series_id = %s AND bucket = %s", [series_id, bucket]
        )
        row = cursor.fetchone()
    return int(row[0]) if row else None


@pytest.mark.rollups
@pytest.mark.django_db(transaction=True)  # CALL refresh_continuous_aggregate needs autocommit
def test_late_point_in_a_refreshed_bucket_is_visible_at_once(api_client, project, reader):
    """A point older than refreshed buckets shows in every tier at once and after a refresh."""
    write(project, "late", {"host": "a"}, [(10 * MINUTE, 1.0), (2 * HOUR, 5.0)])
    refresh_rollups()
    series_id = Series.objects.get(project=project, metric="late").pk
    assert rollup_1h_count(series_id, BASE) == 1

    def read(bucket: str) -> tuple[list[int], list[Any]]:
        response = get_series(
            api_client, reader, **day_range(metric="late", agg="sum", bucket=bucket)
        )
        return response.json()["times"], only_values(response)

    assert read("1h") == ([ms(BASE), ms(BASE + 2 * HOUR)], [1.0, 5.0])
    write(project, "late", {"host": "a"}, [(20 * MINUTE, 2.0)])
    expected = {
        "1m": ([ms(BASE + m * MINUTE) for m in (10, 20, 120)], [1.0, 2.0, 5.0]),
        "1h": ([ms(BASE), ms(BASE + 2 * HOUR)], [3.0, 5.0]),
        "1d": ([ms(BASE)], [8.0]),
    }
    assert {bucket: read(bucket) for bucket in expected} == expected
    refresh_rollups()
    assert rollup_1h_count(series_id, BASE) == 2
    assert {bucket: read(bucket) for bucket in expected} == expected


def bad(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = day_range(metric="cpu", bucket="1h")
    params.update(overrides)
    return {key: value for key, value in params.items() if value is not None}


@pytest.mark.parametrize(
    ("params", "field", "error"),
    [
        (bad(metric=None), "metric", "required"),
        (bad(metric=""), "metric", "required"),
        (bad(metric="cp\x01u"), "metric", "must be 1 to 200 printable characters"),
        (bad(metric="m" * 201), "metric", "must be 1 to 200 printable characters"),
        (bad(agg="median"), "agg", "'median' is not one of avg, sum, count, min, max"),
        (bad(fill="linear"), "fill", "'linear' is not one of none, null, zero, previous"),
        (
            bad(bucket="30s"),
            "bucket",
            "30s is not a multiple of a rollup tier (1m, 1h, 1d); use e.g. 1m, 5m, 1h",
        ),
        (
            bad(bucket="90s"),
            "bucket",
            "90s is not a multiple of a rollup tier (1m, 1h, 1d); use e.g. 1m, 5m, 1h",
        ),
        (
            bad(bucket="0m"),
            "bucket",
            "0m is not a multiple of a rollup tier (1m, 1h, 1d); use e.g. 1m, 5m, 1h",
        ),
        (
            bad(bucket="abc"),
            "bucket",
            "'abc' must be 'auto' or <n><m|h|d|w> such as 5m, 6h, 7d",
        ),
        (
            bad(bucket="1.5h"),
            "bucket",
            "'1.5h' must be 'auto' or <n><m|h|d|w> such as 5m, 6h, 7d",
        ),
        (bad(bucket="53w"), "bucket", "53w is longer than a year"),
        (bad(end=iso(BASE - HOUR)), "end", "must be after start"),
        (bad(end=iso(BASE)), "end", "must be after start"),
        (bad(start="yesterday"), "start", "'yesterday' is not ISO 8601 or now-<n><s|m|h|d|w>"),
        (bad(start="2024-13-01"), "start", "'2024-13-01' is not ISO 8601 or now-<n><s|m|h|d|w>"),
        (bad(end="now-3x"), "end", "'now-3x' is not ISO 8601 or now-<n><s|m|h|d|w>"),
        (
            bad(start=iso(BASE - 30 * DAY), end=iso(BASE), bucket="1m"),
            "bucket",
            "1m over this range gives 43200 points, more than the limit of 2000; "
            "use a wider bucket or 'auto'",
        ),
        (bad(compare="last_week"), "compare", "'last_week' is not 'previous_period'"),
        (bad(limit="0"), "limit", "must be an integer from 1 to 50"),
        (bad(limit="51"), "limit", "must be an integer from 1 to 50"),
        (bad(limit="ten"), "limit", "must be an integer from 1 to 50"),
        (bad(limit="-1"), "limit", "must be an integer from 1 to 50"),
        (
            bad(where="region=eu"),
            "where",
            "'region=eu' must be key:value, key!=value or key:in(a,b)",
        ),
        (bad(where=":eu"), "where", "':eu' has no tag key"),
        (bad(agg=["sum", "max"]), "agg", "given 2 times; it takes one value"),
        (bad(where="host:in()"), "where", "'host:in()' lists no values"),
        (
            bad(where=["region:eu", "nonsense"]),
            "where",
            "'nonsense' must be key:value, key!=value or key:in(a,b)",
        ),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    api_client, project, reader, params, field, error
):
    """Each bad parameter is refused with 400 naming it and what is allowed."""
    write_cpu(project)
    response = get_series(api_client, reader, **params)
    assert response.status_code == 400
    assert response.json() == invalid(field, error)


def test_limit_with_non_ascii_digit_is_400(api_client, project, reader):
    """A limit that str.isdigit() accepts but int() does not ('²') is a 400, not a crash."""
    write_cpu(project)
    response = get_series(api_client, reader, **bad(limit="²"))
    assert response.status_code == 400
    assert response.json() == invalid("limit", "must be an integer from 1 to 50")


def test_relative_time_before_year_one_is_400(api_client, project, reader):
    """start=now-1000000w lies before year 1: a 400 naming start, not a crash."""
    write_cpu(project)
    response = get_series(api_client, reader, **bad(start="now-1000000w", end="now"))
    assert response.status_code == 400
    assert response.json()["detail"][0]["field"] == "start"


def test_point_limit_counts_the_aligned_buckets(api_client, project, reader, settings):
    """A range of exactly the limit that starts mid-bucket spans one bucket more: refused."""
    settings.SERIES_MAX_POINTS = 10
    write_cpu(project)
    start = BASE + 30 * MINUTE
    within = get_series(
        api_client,
        reader,
        metric="cpu",
        bucket="1h",
        fill="null",
        start=iso(BASE),
        end=iso(BASE + 10 * HOUR),
    )
    assert len(within.json()["times"]) == 10
    response = get_series(
        api_client,
        reader,
        metric="cpu",
        bucket="1h",
        fill="null",
        start=iso(start),
        end=iso(start + 10 * HOUR),
    )
    assert response.status_code == 400, f"{len(response.json()['times'])} buckets returned"
    assert response.json()["detail"][0]["field"] == "bucket"


def test_unknown_and_other_projects_metric_are_the_same_404(
    api_client, project, other_project, reader
):
    """A metric only another project has answers exactly like one nobody has."""
    write(other_project, "secret", {"host": "a"}, [(MINUTE, 42.0)])
    write_cpu(project)
    for metric in ("secret", "never_written"):
        response = get_series(api_client, reader, **day_range(metric=metric))
        assert response.status_code == 404
        assert response.json() == {
            "error": f"metric {metric!r} not found in this project",
            "detail": [],
        }


def test_same_metric_and_tags_in_two_projects_stay_apart(
    api_client, project, other_project, make_key
):
    """Each project's key reads only its own points of an identically named series."""
    write(project, "cpu", {"host": "a"}, [(MINUTE, 1.0)])
    write(other_project, "cpu", {"host": "a"}, [(MINUTE, 100.0), (2 * MINUTE, 200.0)])
    for owner, expected in ((project, [1.0]), (other_project, [300.0])):
        issued = make_key(owner, scopes=("read",))
        response = get_series(
            api_client, issued, **day_range(metric="cpu", agg="sum", bucket="1d", group_by="host")
        )
        assert response.json()["matched_series"] == 1
        assert named(response.json()) == [("a", {"host": "a"}, expected)]
    # `?project=` names the project of a session; a key always reads its own.
    mine = get_series(
        api_client,
        make_key(project, scopes=("read",)),
        **day_range(metric="cpu", agg="sum", bucket="1d", project=other_project.slug),
    )
    assert only_values(mine) == [1.0]


def test_write_only_key_is_403(api_client, project, make_key):
    """A key without the read scope cannot read series."""
    write_cpu(project)
    response = get_series(
        api_client, make_key(project, scopes=("write",)), **day_range(metric="cpu")
    )
    assert response.status_code == 403
    assert response.json() == {
        "error": "this API key lacks the 'read' scope (it has: write)",
        "detail": [],
    }


def test_no_key_is_401(api_client, project):
    """A request without credentials is refused with 401."""
    write_cpu(project)
    response = get_series(api_client, None, **day_range(metric="cpu"))
    assert response.status_code == 401
    assert response.json()["error"] == "no API key: send the header 'Authorization: Bearer <key>'"


def test_logged_in_member_reads_series(api_client, project, django_user_model):
    """A logged-in member of the project reads its series by naming it with ?project=."""
    write_cpu(project)
    user = django_user_model.objects.create_user("alice", password="pw-alice-123")
    add_member(project=project, user=user, role=Membership.Role.VIEWER)
    api_client.force_login(user)
    response = get_series(
        api_client, None, **day_range(metric="cpu", agg="count", bucket="1d", project="acme")
    )
    assert only_values(response) == [4.0]


def test_logged_in_non_member_is_403(api_client, project, other_project, django_user_model):
    """A logged-in user cannot read a project they are not a member of."""
    write(other_project, "cpu", {"host": "a"}, [(MINUTE, 1.0)])
    user = django_user_model.objects.create_user("bob", password="pw-bob-123")
    add_member(project=project, user=user, role=Membership.Role.VIEWER)
    api_client.force_login(user)
    response = get_series(api_client, None, **day_range(metric="cpu", project="globex"))
    assert response.status_code == 403
    assert response.json() == {"error": "you are not a member of project 'globex'", "detail": []}
