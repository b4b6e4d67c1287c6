"""The bulk commands: `import_events` (CSV, NDJSON, line protocol) and `seed_demo`."""

import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from analytics.models import Project, Series
from ingestion.management import readers
from tests.ingestion.helpers import stored_points

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
T0, T1, T2 = (NOW - timedelta(hours=h) for h in (3, 2, 1))

# The same three events in each format; line protocol has no items.
CSV_TEXT = (
    "metric,value,time,item,region,host\n"
    f"http.requests,3,{T0.isoformat()},,eu,web-1\n"
    f"http.requests,5.5,{int(T1.timestamp())},,us,\n"
    f"shop.views,1,{T2.isoformat()},sku-0001,,\n"
)
NDJSON_TEXT = "".join(
    json.dumps(event) + "\n"
    for event in [
        {
            "metric": "http.requests",
            "value": 3,
            "time": T0.isoformat(),
            "tags": {"region": "eu", "host": "web-1"},
        },
        {"metric": "http.requests", "value": 5.5, "time": T1.timestamp(), "tags": {"region": "us"}},
        {"metric": "shop.views", "time": T2.isoformat(), "item": "sku-0001"},
    ]
)
LP_TEXT = (
    "# written by hand\n"
    f"http,region=eu,host=web-1 requests=3i {int(T0.timestamp()) * 10**9}\n"
    f"http,region=us requests=5.5 {int(T1.timestamp()) * 10**9}\n"
    "\n"
    f"shop views=1 {int(T2.timestamp()) * 10**9}\n"
)
EXPECTED = [
    ("http.requests", {"host": "web-1", "region": "eu"}, None, T0, 3.0),
    ("http.requests", {"region": "us"}, None, T1, 5.5),
    ("shop.views", {}, "sku-0001", T2, 1.0),
]
EXPECTED_LP = [*EXPECTED[:2], ("shop.views", {}, None, T2, 1.0)]
SAMPLES = {
    "csv": (CSV_TEXT, EXPECTED),
    "ndjson": (NDJSON_TEXT, EXPECTED),
    "lp": (LP_TEXT, EXPECTED_LP),
}


def stored(project: Project) -> list[tuple[str, dict[str, str], str | None, datetime, float]]:
    """Return the project's points as (metric, tags, item, time, value), oldest first."""
    return [(p.metric, p.tags, p.item, p.time, p.value) for p in stored_points(project)]


def write(path: Path, text: str, *, compress: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def run(*args: Any, **options: Any) -> tuple[str, str]:
    """Call a command; return its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, verbosity=0, **options)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("file_format", ["csv", "ndjson", "lp"])
def test_import_stores_each_format(project, tmp_path, file_format, compress):
    """Each format, plain or gzipped, is stored as the points and series it describes."""
    text, expected = SAMPLES[file_format]
    suffix = f".{file_format}.gz" if compress else f".{file_format}"
    path = write(tmp_path / f"events{suffix}", text, compress=compress)
    out, _ = run("import_events", str(path), project="acme")
    assert stored(project) == expected
    assert out.startswith("3 rows read, 3 accepted, 0 duplicates, 0 rejected in ")


def test_gzip_is_told_by_its_magic_bytes_not_the_extension(project, tmp_path):
    """A gzipped file named .csv is decompressed; a plain one named .csv.gz is read as is."""
    write(tmp_path / "a.csv", CSV_TEXT, compress=True)
    write(tmp_path / "b.csv.gz", CSV_TEXT.replace("3,", "4,", 1))
    run("import_events", str(tmp_path / "a.csv"), project="acme")
    out, _ = run("import_events", str(tmp_path / "b.csv.gz"), project="acme")
    # Only the changed row is new: the other two were stored from the gzipped file.
    assert out.startswith("3 rows read, 1 accepted, 2 duplicates")
    assert sorted(point[4] for point in stored(project)) == [1.0, 3.0, 4.0, 5.5]


def test_format_option_overrides_the_extension(project, tmp_path):
    """--format reads a file whose extension says nothing; without it the command refuses."""
    path = write(tmp_path / "export.data", NDJSON_TEXT)
    with pytest.raises(CommandError, match=r"cannot tell the format .* --format"):
        run("import_events", str(path), project="acme")
    run("import_events", str(path), project="acme", format="ndjson")
    assert stored(project) == EXPECTED


@pytest.mark.parametrize("file_format", ["csv", "ndjson", "lp"])
def test_rerun_imports_nothing_new(project, tmp_path, file_format):
    """Importing the same file again stores nothing and counts every row as a duplicate."""
    path = write(tmp_path / f"events.{file_format}", SAMPLES[file_format][0])
    run("import_events", str(path), project="acme")
    out, _ = run("import_events", str(path), project="acme", batch_size=2)
    assert out.startswith("3 rows read, 0 accepted, 3 duplicates, 0 rejected")
    assert len(stored(project)) == 3


def test_identical_rows_stay_two_events_but_dedup_on_rerun(project, tmp_path):
    """Two identical rows without ids are two events; a re-run adds neither again."""
    row = f"cart.adds,1,{T0.isoformat()}\n"
    path = write(tmp_path / "adds.csv", "metric,value,time\n" + row + row)
    first, _ = run("import_events", str(path), project="acme")
    second, _ = run("import_events", str(path), project="acme")
    assert first.startswith("2 rows read, 2 accepted, 0 duplicates")
    assert second.startswith("2 rows read, 0 accepted, 2 duplicates")
    ids = [point.event_id or "" for point in stored_points(project)]
    assert len(ids) == 2
    assert ids[0] != ids[1]
    assert all(event_id.startswith("h:") and len(event_id) == 34 for event_id in ids)


def test_same_event_gets_the_same_id_in_csv_and_ndjson(project, tmp_path):
    """The derived id comes from the validated content, so a CSV row and its NDJSON twin dedup."""
    csv_path = write(tmp_path / "a.csv", f"metric,time,host\ncpu,{T0.isoformat()},h1\n")
    ndjson_path = write(
        tmp_path / "a.ndjson",
        json.dumps({"metric": "cpu", "value": 1.0, "time": T0.timestamp(), "tags": {"host": "h1"}}),
    )
    run("import_events", str(csv_path), project="acme")
    out, _ = run("import_events", str(ndjson_path), project="acme")
    assert out.startswith("1 rows read, 0 accepted, 1 duplicates")


def test_csv_tag_columns_become_tags(project, tmp_path):
    """Columns other than metric/value/time/id/item are tags; an empty cell leaves the tag out."""
    path = write(
        tmp_path / "tags.csv",
        " metric , value,time,region,dc,id\n"
        f"cpu,0.5,{T0.isoformat()},eu,fra,\n"
        f"cpu,0.7,{T1.isoformat()},,,e-1\n",
    )
    run("import_events", str(path), project="acme")
    assert [(metric, tags) for metric, tags, *_ in stored(project)] == [
        ("cpu", {"region": "eu", "dc": "fra"}),
        ("cpu", {}),
    ]
    assert stored_points(project)[1].event_id == "e-1"


INVALID = {
    "csv": (
        "metric,value,time\n"
        + "".join(f"m,{i},{T0.timestamp() + i}\n" for i in range(3))
        + f"m,abc,{T0.timestamp()}\n"
        + f"m,9,{T1.timestamp()}\n",
        "line 5: value: 'abc' is not a number",
    ),
    "ndjson": (
        "".join(
            json.dumps({"metric": "m", "value": i, "time": T0.timestamp() + i}) + "\n"
            for i in range(3)
        )
        + '{"metric": "m", "value": \n'
        + json.dumps({"metric": "m", "value": 9, "time": T1.timestamp()})
        + "\n",
        "line 4: not valid JSON",
    ),
    "lp": (
        "".join(f"m value={i} {int(T0.timestamp()) + i}\n" for i in range(3))
        + f"m value=oops {int(T0.timestamp())}\n"
        + f"m value=9 {int(T1.timestamp())}\n",
        "line 4: field 'value': 'oops' is not a number",
    ),
}


@pytest.mark.parametrize("file_format", ["csv", "ndjson", "lp"])
def test_invalid_row_stops_the_import_with_its_line(project, tmp_path, file_format):
    """The first invalid row stops the import, naming its line; earlier batches stay stored."""
    text, message = INVALID[file_format]
    path = write(tmp_path / f"bad.{file_format}", text)
    options = {"precision": "s"} if file_format == "lp" else {}
    with pytest.raises(CommandError, match=message) as raised:
        run("import_events", str(path), project="acme", batch_size=2, **options)
    # Batch size 2: the first two rows are stored, the third shares the bad row's batch.
    assert [point[4] for point in stored(project)] == [0.0, 1.0]
    assert "re-run" in str(raised.value)


@pytest.mark.parametrize("file_format", ["csv", "ndjson", "lp"])
def test_skip_invalid_reports_and_continues(project, tmp_path, file_format):
    """--skip-invalid stores every valid row and lists the invalid ones with their lines."""
    text, message = INVALID[file_format]
    path = write(tmp_path / f"bad.{file_format}", text)
    options = {"precision": "s"} if file_format == "lp" else {}
    out, err = run(
        "import_events", str(path), project="acme", batch_size=2, skip_invalid=True, **options
    )
    assert [point[4] for point in stored(project)] == [0.0, 1.0, 2.0, 9.0]
    assert out.startswith("5 rows read, 4 accepted, 0 duplicates, 1 rejected")
    assert "1 invalid row(s) skipped" in err
    assert message in err


def test_skip_invalid_shows_the_first_twenty(project, tmp_path):
    """Only the first 20 invalid rows are listed, then how many more there were."""
    path = write(tmp_path / "bad.csv", "metric,value,time\n" + "m,x,1\n" * 25)
    _, err = run("import_events", str(path), project="acme", skip_invalid=True)
    assert err.count("is not a number") == 20
    assert "line 21: value" in err
    assert "line 22: value" not in err
    assert "... and 5 more" in err


@pytest.mark.parametrize(
    ("file_format", "text", "line"),
    [
        ("csv", b"metric,time\nm,%d\nm\xff,%d\n", 3),
        ("ndjson", b'{"metric": "m", "time": %d}\n{"metric": "m\xff", "time": %d}\n', 2),
        ("lp", b"m value=1 %d\nm\xff value=2 %d\n", 2),
    ],
)
def test_rows_that_are_not_utf8_are_invalid(project, tmp_path, file_format, text, line):
    """A row that is not UTF-8 is an invalid row with its line, not a crash of the import."""
    t = int(T0.timestamp())
    path = tmp_path / f"bytes.{file_format}"
    path.write_bytes(text % (t, t))
    options = {"precision": "s"} if file_format == "lp" else {}
    _, err = run("import_events", str(path), project="acme", skip_invalid=True, **options)
    assert f"line {line}: " in err
    assert [point[0] for point in stored(project)] == ["m"]


def test_rows_without_time_are_refused(project, tmp_path):
    """A row without a time is refused: a re-run would stamp it anew and store it twice."""
    path = write(tmp_path / "t.ndjson", '{"metric": "m", "value": 1}\n')
    with pytest.raises(CommandError, match="line 1: time: required"):
        run("import_events", str(path), project="acme")
    lp_path = write(tmp_path / "t.lp", "m value=1\n")
    with pytest.raises(CommandError, match="line 1: timestamp: required"):
        run("import_events", str(lp_path), project="acme")


def test_rows_outside_the_window_are_refused_as_over_http(project, tmp_path):
    """The retention horizon and the future limit of HTTP ingestion apply to imports."""
    old = (NOW - timedelta(days=400)).isoformat()
    path = write(tmp_path / "old.csv", f"metric,time\nm,{old}\n")
    with pytest.raises(CommandError, match=r"line 2: time: .* before the retention horizon"):
        run("import_events", str(path), project="acme")


def test_bad_csv_header_is_refused(project, tmp_path):
    """A header without a metric column, or with a column that cannot be a tag, stops at once."""
    path = write(tmp_path / "h.csv", "name,value\nm,1\n")
    with pytest.raises(CommandError, match="line 1: the header needs a 'metric' column"):
        run("import_events", str(path), project="acme", skip_invalid=True)
    path = write(tmp_path / "h.csv", "metric,a:b\nm,1\n")
    with pytest.raises(CommandError, match="column 'a:b' cannot be a tag"):
        run("import_events", str(path), project="acme", skip_invalid=True)


def test_line_protocol_string_value_may_span_chunks(project, tmp_path, monkeypatch):
    """A string field holding a newline is one record even where a parsed chunk ends inside it."""
    monkeypatch.setattr(readers, "LP_CHUNK_LINES", 2)
    t = int(T0.timestamp())
    text = f'm value=1 {t}\nlog msg="two\nlines",value=2 {t + 1}\nm value=3 {t + 2}\n'
    path = write(tmp_path / "s.lp", text)
    out, _ = run("import_events", str(path), project="acme", precision="s")
    assert [point[4] for point in stored(project)] == [1.0, 2.0, 3.0]
    assert out.startswith("3 rows read, 3 accepted")


def test_line_protocol_stray_quote_fails_only_its_own_line(project, tmp_path, monkeypatch):
    """A string never closed is reported at its line; the lines after it still import."""
    monkeypatch.setattr(readers, "LP_CHUNK_LINES", 4)
    monkeypatch.setattr(readers, "MAX_CARRIED_LINES", 2)
    t = int(T0.timestamp())
    lines = [f'log msg="oops {t}'] + [f"m value={i} {t + i}" for i in range(1, 6)]
    path = write(tmp_path / "q.lp", "\n".join(lines) + "\n")
    out, err = run("import_events", str(path), project="acme", precision="s", skip_invalid=True)
    assert "line 1: field set: unterminated string value" in err
    assert [point[4] for point in stored(project)] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert out.startswith("6 rows read, 5 accepted, 0 duplicates, 1 rejected")


def test_unknown_project_and_missing_file_are_errors(project, tmp_path):
    """An unknown project slug and a missing file are named in the error."""
    path = write(tmp_path / "a.csv", CSV_TEXT)
    with pytest.raises(CommandError, match="unknown project 'nope'"):
        run("import_events", str(path), project="nope")
    with pytest.raises(CommandError, match=r"missing\.csv: no such file"):
        run("import_events", str(tmp_path / "missing.csv"), project="acme")


SEED_OPTIONS = {"days": 2, "step": 3600, "series": 60}


def seeded_points(slug: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM points p JOIN analytics_series s ON s.id = p.series_id"
            " JOIN analytics_project pr ON pr.id = s.project_id WHERE pr.slug = %s",
            [slug],
        )
        return int(cursor.fetchone()[0])


def test_seed_demo_creates_series_with_tags_and_items(db):
    """seed_demo creates the project and series for HTTP, hosts and products, every step filled."""
    out, _ = run("seed_demo", project="demo-test", **SEED_OPTIONS)
    series = Series.objects.filter(project__slug="demo-test")
    metrics = set(series.values_list("metric", flat=True))
    assert metrics == {
        "http.requests",
        "http.latency_ms",
        "host.cpu",
        "host.memory",
        "shop.product_views",
        "shop.product_sales",
    }
    requests = series.filter(metric="http.requests").first()
    assert requests is not None
    assert set(requests.tags) == {"endpoint", "region", "status"}
    items = set(series.filter(metric="shop.product_sales").values_list("item", flat=True))
    assert "sku-0001" in items
    assert all(item and item.startswith("sku-") for item in items)
    count = series.count()
    assert 50 <= count <= 70
    assert seeded_points("demo-test") == 48 * count
    assert f"{count} series, {48 * count} points" in out


def test_seed_demo_is_idempotent(db, monkeypatch):
    """A second run writes nothing and says so; --force finds every point already stored."""
    # The points end at now rounded to the step: keep now still so no step passes meanwhile.
    frozen = datetime.now(UTC)
    monkeypatch.setattr("django.utils.timezone.now", lambda: frozen)
    run("seed_demo", project="demo-test", **SEED_OPTIONS)
    before = seeded_points("demo-test")
    out, _ = run("seed_demo", project="demo-test", **SEED_OPTIONS)
    assert out.startswith("demo data already present in project 'demo-test'")
    forced, _ = run("seed_demo", project="demo-test", force=True, **SEED_OPTIONS)
    assert f", 0 points, {before} already present" in forced
    assert seeded_points("demo-test") == before


def test_seed_demo_has_daily_seasonality(db):
    """Request counts follow the time of day: the busiest hour has several times the quietest."""
    run("seed_demo", project="demo-test", **SEED_OPTIONS)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extract(hour FROM p.time), sum(p.value) FROM points p"
            " JOIN analytics_series s ON s.id = p.series_id"
            " WHERE s.metric = 'http.requests' AND s.tags->>'region' = 'eu-west'"
            " GROUP BY 1"
        )
        by_hour = dict(cursor.fetchall())
    assert len(by_hour) == 24
    assert max(by_hour.values()) > 3 * min(by_hour.values())


def test_seed_demo_writes_some_points_out_of_order(db):
    """Some points are stored after points of later times of the same series (late writes)."""
    out, _ = run("seed_demo", project="demo-test", **SEED_OPTIONS)
    # Within a chunk, a fresh heap keeps rows in insertion order (ctid).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM ("
            "  SELECT p.time < max(p.time) OVER (PARTITION BY p.tableoid, p.series_id ORDER BY"
            "    p.ctid ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS late"
            "  FROM points p JOIN analytics_series s ON s.id = p.series_id"
            "  JOIN analytics_project pr ON pr.id = s.project_id WHERE pr.slug = 'demo-test'"
            ") x WHERE late"
        )
        late = int(cursor.fetchone()[0])
    assert late > 0
    assert "written out of order" in out
