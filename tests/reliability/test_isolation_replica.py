"""The isolation sweep with replicas on: a gunicorn reading through a real streaming replica.

The private cluster gets a streaming replica (pg_basebackup -R) and two tenants with
look-alike data, built by the app's own services in a process of their own; a gunicorn
with `DATABASE_REPLICA_URLS` then answers the cases of the isolation table
(tests.reliability.isolation_routes) over HTTP, checked exactly as the in-process sweep
checks them, and none may change what either tenant owns.

Two differences from the in-process sweep: no case is rolled back here, so the cases
whose success writes (ingestion, item upserts and deletes) are left to that sweep (they
run on the primary with or without replicas, and here a delete would outlive its case);
and the replica must really have served reads, which its own table statistics show.
"""

import json
import secrets
import string
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from django.conf import settings
from django.urls import resolve

from analytics.db.middleware import READ_VIEWS
from tests.reliability.clients import request, wait_until
from tests.reliability.isolation import Call, Case, Principal, Reply, Send, World, check
from tests.reliability.isolation_routes import ROUTES
from tests.reliability.stack import ROOT, PrivateStack, Replica, serving
from tests.reliability.tenants import Tenant, tenant_rows

# Builds the two tenants in the database of DATABASE_URL and logs their members in;
# prints the tenants and the members' session keys as JSON.
_BUILD_TENANTS = """
import dataclasses, json
import django
django.setup()
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from tests.reliability.tenants import build_tenant
tenants = [
    build_tenant("alpha", shared_value=1.0, offset=0.0),
    build_tenant("beta", shared_value=1000.0, offset=0.01),
]
sessions = {}
for tenant in tenants:
    member = Client()
    member.force_login(User.objects.get(pk=tenant.user_id))
    sessions[tenant.marker] = member.cookies[settings.SESSION_COOKIE_NAME].value
print(json.dumps({"tenants": [dataclasses.asdict(t) for t in tenants], "sessions": sessions}))
"""
# Tables the read views read; the status query the router sends the replica reads none.
_READ_TABLES = (
    "analytics_project",
    "analytics_membership",
    "analytics_series",
    "embeddings_item",
    "dashboards_dashboard",
    "dashboards_panel",
)


@pytest.fixture(scope="module")
def replica(private_stack: PrivateStack) -> Iterator[Replica]:
    """A streaming replica of the private cluster, removed after the module."""
    private_stack.ensure_running()
    replica = private_stack.add_replica()
    try:
        yield replica
    finally:
        private_stack.remove_replica(replica)


@pytest.fixture(scope="module")
def stocked(private_stack: PrivateStack) -> tuple[tuple[Tenant, Tenant], dict[str, str]]:
    """Two tenants committed in the private database, and their members' session keys."""
    built = subprocess.run(
        [sys.executable, "-c", _BUILD_TENANTS],
        cwd=ROOT,
        env=private_stack.app_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    data = json.loads(built.stdout.strip().splitlines()[-1])
    alpha, beta = (Tenant(**{**raw, "items": tuple(raw["items"])}) for raw in data["tenants"])
    return (alpha, beta), data["sessions"]


@pytest.fixture(scope="module")
def web(private_stack: PrivateStack, replica: Replica, stocked: Any) -> Iterator[int]:
    """The port of a gunicorn that reads from the replica."""
    private_stack.wait_replicas_caught_up()
    env = private_stack.app_env(DATABASE_REPLICA_URLS=replica.database_url)
    with serving(private_stack, env, "isolation-replica-web") as port:
        yield port


def _http_send(port: int, sessions: dict[str, str]) -> Send:
    """Send a call as a principal over HTTP: a key's header, or a member's session cookie.

    Every call carries a matching CSRF cookie and header, as the test client of the
    in-process sweep skips the CSRF check: the table's expectations are about tenants.
    """
    # Any 32 letters and digits are a valid CSRF secret.
    csrf = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))

    def send(who: Principal, call: Call) -> Reply:
        cookies = [f"{settings.CSRF_COOKIE_NAME}={csrf}"]
        headers = {"Content-Type": call.content_type, "X-CSRFToken": csrf}
        if who.tenant is not None and who.kind == "session":
            cookies.append(f"{settings.SESSION_COOKIE_NAME}={sessions[who.tenant.marker]}")
        elif who.tenant is not None:
            secret = getattr(who.tenant, "rw_key" if who.kind == "key" else who.kind)
            headers["Authorization"] = f"Bearer {secret}"
        headers["Cookie"] = "; ".join(cookies)
        answer = request(port, call.method, call.path, call.body, headers)
        return Reply(answer.status, answer.headers.get("location"), answer.body)

    return send


def _reads(case: Case) -> bool:
    """Whether `case` asks a read view, whose reads may go to a replica."""
    view = resolve(urlsplit(case.call.path).path).view_name
    return case.call.method in READ_VIEWS.get(view, frozenset())


def _writes(case: Case) -> bool:
    """Whether `case` is a success of a view that writes (left to the in-process sweep)."""
    return case.call.method not in ("GET", "HEAD") and case.expect.status < 300 and not _reads(case)


def _replica_reads(replica: Replica) -> int:
    """Return how many scans the replica ran on the tables of the read views."""
    ((scans,),) = replica.sql(
        "SELECT coalesce(sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0)), 0)"
        " FROM pg_stat_user_tables WHERE relname = ANY(%s)",
        [list(_READ_TABLES)],
    )
    return int(scans)


def test_isolation_sweep_passes_with_the_app_reading_through_a_replica(
    private_stack: PrivateStack, replica: Replica, stocked: Any, web: int
):
    """Every non-writing case of the isolation table answers exactly while reads use a replica."""
    (alpha, beta), sessions = stocked
    send = _http_send(web, sessions)
    health = request(web, "GET", "/healthz").json()["checks"]["replicas"]["replicas"]
    assert [entry["in_use"] for entry in health.values()] == [True], health
    reads_before = _replica_reads(replica)

    failures, served = [], 0
    with psycopg.connect(private_stack.direct_url, autocommit=True) as primary:
        cursor = primary.cursor()
        for world in (World(owner=alpha, intruder=beta), World(owner=beta, intruder=alpha)):
            for route in sorted(ROUTES):
                for case in ROUTES[route].cases(world):
                    if _writes(case):
                        continue
                    before = [tenant_rows(t, cursor=cursor) for t in (alpha, beta)]
                    problems = check(world, case, send(case.who, case.call), send)
                    if [tenant_rows(t, cursor=cursor) for t in (alpha, beta)] != before:
                        problems.append("wrote into a project")
                    served += _reads(case) and case.expect.status == 200
                    failures += [
                        f"{case.who} {case.call.method} {case.call.path}: {problem}"
                        for problem in problems
                    ]
    assert not failures, "\n".join(failures)
    assert served > 50, "the table has lost its read cases: the test proves little"
    # Reads that name no project (the dashboard list) stay on the primary, and a
    # backend's statistics reach the views when it goes idle: wait for at least one
    # scan on the replica per two successful reads.
    assert wait_until(lambda: _replica_reads(replica) - reads_before >= served // 2, timeout=20), (
        f"the replica ran {_replica_reads(replica) - reads_before} scans for {served} reads"
    )
