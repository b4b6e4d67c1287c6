"""`manage.py slow_queries`: fingerprints, ranking, sources, and EXPLAIN of plain SELECTs only."""

import io
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection

from analytics.models import Membership, Project
from analytics.profiling.statements import explain, explain_refusal, fingerprint
from dashboards.services import import_dashboard
from tests.dashboards.conftest import RANGE, dashboard_document, panel_url, write_traffic
from tests.helpers import bearer

pytestmark = pytest.mark.django_db


def slow_queries(*args: str) -> str:
    out = io.StringIO()
    call_command("slow_queries", *args, stdout=out)
    return out.getvalue()


def probe_sequence_value() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value FROM silk_probe_seq")
        return int(cursor.fetchone()[0])


@pytest.fixture
def recorded(web: Any, project: Project, make_key: Any) -> str:
    """Record a dashboard panel, a series read with a key, and one deliberately slow request."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE SEQUENCE silk_probe_seq")
    write_traffic(project)
    dashboard = import_dashboard(project=project, document=dashboard_document())
    user = User.objects.create_user("dana")
    Membership.objects.create(project=project, user=user)
    member = type(web)(HTTP_X_FORWARDED_PROTO="https")
    member.force_login(user)
    for index in (0, 1):
        assert member.get(panel_url(dashboard, index), RANGE).status_code == 200
    assert web.get("/api/v1/catalog/metrics", **bearer(make_key(project))).status_code == 200
    assert web.get("/slow-probe").status_code == 200
    assert probe_sequence_value() == 1
    return dashboard.slug


@pytest.mark.urls("tests.profiling.urls")
def test_slow_query_is_listed_first_with_its_plan(recorded):
    """The deliberately slow SELECT ranks first by total time, with its source and an EXPLAIN plan."""
    report = slow_queries()
    first = report.split("\n#2 ")[0]
    assert "#1 " in first
    assert "sql:  SELECT pg_sleep(?), nextval(?)" in first
    assert "from: slow-probe (1)" in first
    assert "plan of the slowest run" in first
    assert "Result  (cost=" in first
    assert f"panel:{recorded}/" in report  # panel statements are listed with their panel
    assert probe_sequence_value() == 1  # EXPLAIN never ran the statement


@pytest.mark.urls("tests.profiling.urls")
def test_json_report_for_machines(recorded):
    """--json gives counts, times, sources, the slowest text and the plan; non-SELECTs are not explained."""
    report = json.loads(slow_queries("--json", "--limit", "100", "--explain", "100"))
    first = report["statements"][0]
    assert first["fingerprint"] == "SELECT pg_sleep(?), nextval(?)"
    assert first["count"] == 1
    assert first["max_ms"] >= 300
    assert first["total_ms"] == first["mean_ms"] == first["max_ms"]
    assert first["sources"] == [{"name": "slow-probe", "count": 1}]
    assert first["slowest"] == "SELECT pg_sleep(0.3), nextval('silk_probe_seq')"
    assert "Result" in first["plan"]
    assert report["recorded_requests"] == 4
    totals = [entry["total_ms"] for entry in report["statements"]]
    assert totals == sorted(totals, reverse=True)
    writes = [e for e in report["statements"] if e["fingerprint"].startswith(("UPDATE", "INSERT"))]
    assert writes, "the key's last-used UPDATE and the session INSERT were recorded"
    for entry in writes:
        assert entry["plan"] is None
        assert entry["plan_note"] == "not explained: it is not a SELECT"
    panels = [s["name"] for e in report["statements"] for s in e["sources"]]
    assert any(name.startswith(f"panel:{recorded}/") for name in panels)
    assert probe_sequence_value() == 1


@pytest.mark.urls("tests.profiling.urls")
def test_ranking_limit_and_window(recorded):
    """--by count ranks by executions, --limit cuts, and a window after the requests is empty."""
    by_count = json.loads(slow_queries("--json", "--by", "count", "--explain", "0"))
    counts = [entry["count"] for entry in by_count["statements"]]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > 1
    assert all(entry["plan"] is None for entry in by_count["statements"])
    assert len(json.loads(slow_queries("--json", "--limit", "2"))["statements"]) == 2
    later = json.loads(slow_queries("--json", "--since", "2999-01-01T00:00:00Z"))
    assert later["statements"] == []
    assert later["recorded_requests"] == 0
    recent = json.loads(slow_queries("--json", "--since", "1h"))
    assert recent["recorded_requests"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "median"], "invalid choice: 'median'"),
        (["--limit", "0"], "must be an integer >= 1, not '0'"),
        (
            ["--since", "yesterday"],
            "--since must be a duration (30m, 24h, 7d, 2w) or an ISO 8601 time",
        ),
    ],
)
def test_bad_options_are_named(args, message):
    """A bad option is refused with a message naming it."""
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        slow_queries(*args)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT * FROM t WHERE id = 42 AND name = 'x''y'",
            "SELECT * FROM t WHERE id = ? AND name = ?",
        ),
        ("select a from t where id in (1, 2, 3)", "SELECT a FROM t WHERE id IN (?)"),
        (
            "SELECT 1 FROM t WHERE s = ANY(ARRAY[1,2,3]) AND ts > '2024-01-01'::timestamptz",
            "SELECT ? FROM t WHERE s = ANY(ARRAY[?]) AND ts > ?::timestamptz",
        ),
        ('SELECT "t"."id" FROM "t" -- comment\n LIMIT 21', 'SELECT "t"."id" FROM "t" LIMIT ?'),
        ("INSERT INTO t VALUES (1, 'a'), (2, 'b')", "INSERT INTO t VALUES (?)"),
        ("SELECT $$x;y$$, E'z'", "SELECT ?, ?"),
    ],
)
def test_fingerprint_removes_literals(sql, expected):
    """Numbers, strings, IN-lists, arrays, VALUES rows and comments are removed or collapsed."""
    assert fingerprint(sql) == expected


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("SELECT 1", None),
        ("WITH x AS (SELECT 1) SELECT * FROM x", None),
        ("SELECT replace(name, 'a', 'b') FROM t", None),
        ("SELECT 1; SELECT 2", "it contains ';'"),
        ("SELECT 1;", "it contains ';'"),
        ("UPDATE t SET a = 1", "it is not a SELECT"),
        ("EXPLAIN ANALYZE SELECT 1", "it is not a SELECT"),
        ("WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone", "it has DELETE"),
        ("SELECT * INTO archive FROM t", "it has INTO"),
        ("SELECT * FROM t FOR UPDATE", "it has UPDATE"),
    ],
)
def test_only_single_plain_selects_are_explained(sql, refusal):
    """EXPLAIN is refused for anything but one SELECT without data-modifying parts or locks."""
    found = explain_refusal(sql)
    if refusal is None:
        assert found is None
    else:
        assert found is not None
        assert refusal in found


def test_explain_never_runs_the_statement_and_leaves_no_read_only_state(project):
    """EXPLAIN of a side-effecting SELECT does not run it; refused writes change nothing; writes work after."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE SEQUENCE silk_probe_seq")
    plan = explain("SELECT nextval('silk_probe_seq'), pg_sleep(10)")
    assert plan.text is not None
    assert "Result" in plan.text
    assert probe_sequence_value() == 1  # never advanced: is_called is false, last_value untouched
    with connection.cursor() as cursor:
        cursor.execute("SELECT is_called FROM silk_probe_seq")
        assert cursor.fetchone()[0] is False
    refused = explain(f"UPDATE analytics_project SET name = 'gone' WHERE id = {project.pk}")
    assert refused.text is None
    assert refused.note == "not explained: it is not a SELECT"
    project.refresh_from_db()
    assert project.name == "Acme"
    failed = explain("SELECT * FROM no_such_table")
    assert failed.text is None
    assert failed.note is not None
    assert 'relation "no_such_table" does not exist' in failed.note
    project.name = "Acme 2"
    project.save()  # the read-only EXPLAIN transactions were rolled back, not left behind
