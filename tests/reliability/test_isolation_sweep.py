"""Isolation sweep: every URL pattern, asked by every kind of outsider, refuses exactly.

Two tenants (tests.reliability.tenants) own look-alike data; for each pattern of the
resolver, the table in tests.reliability.isolation_routes says what nobody, the owner's keys of
each scope and member, and the other tenant's keys and member get, to the status and
error text. Whatever succeeds must hold none of the other tenant's names, and a refused
request must write nothing. `make test` runs the table in both directions; the slow
variant (`make test-full`) also sends every HTTP method as every principal.
"""

import itertools
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpResponseBase, StreamingHttpResponse
from django.test import Client

from analytics.services.rollups import refresh_rollups
from tests.reliability.isolation import (
    METHODS,
    Call,
    Case,
    Principal,
    Reply,
    Send,
    World,
    check,
    leaks,
    url_patterns,
)
from tests.reliability.isolation_routes import EXEMPT, ROUTES
from tests.reliability.tenants import (
    POINTS_PER_SERIES,
    SHARED_ITEM,
    SHARED_METRIC,
    Tenant,
    build_tenant,
    remove_tenant,
    tenant_rows,
)


@pytest.fixture(scope="module")
def tenants(django_db_setup: None, django_db_blocker: Any) -> Iterator[tuple[Tenant, Tenant]]:
    """Two committed tenants with look-alike data: alpha (values 1) and beta (values 1000)."""
    with django_db_blocker.unblock():
        alpha = build_tenant("alpha", shared_value=1.0, offset=0.0)
        beta = build_tenant("beta", shared_value=1000.0, offset=0.01)
    yield alpha, beta
    with django_db_blocker.unblock():
        remove_tenant(alpha)
        remove_tenant(beta)
        # The deletes were logged as invalidations; refresh so no later test inherits them.
        refresh_rollups()


@pytest.fixture
def send(db: None, tenants: tuple[Tenant, Tenant]) -> Send:
    """Send a call as a principal: a client per principal, members logged in beforehand.

    The logins happen here, outside the savepoints that each case is rolled back in,
    so the sessions outlive every case.
    """
    clients: dict[Principal, Client] = {}
    for tenant in tenants:
        member = Client()
        member.force_login(User.objects.get(pk=tenant.user_id))
        clients[Principal("session", tenant)] = member

    def client_for(who: Principal) -> Client:
        return clients.setdefault(who, Client())

    def send(who: Principal, call: Call) -> Reply:
        headers = {}
        if who.tenant is not None and who.kind != "session":
            secret = getattr(who.tenant, "rw_key" if who.kind == "key" else who.kind)
            headers["Authorization"] = f"Bearer {secret}"
        response = client_for(who).generic(
            call.method, call.path, call.body, content_type=call.content_type, headers=headers
        )
        return Reply(response.status_code, response.get("Location"), content(response))

    return send


def content(response: HttpResponseBase) -> bytes:
    if isinstance(response, StreamingHttpResponse):
        return b"".join(response.streaming_content)  # type: ignore[arg-type]
    return bytes(response.content)  # type: ignore[attr-defined]


def run_case(world: World, case: Case, send: Send) -> list[str]:
    """Send `case` in a savepoint rolled back afterwards; a refusal must have written nothing."""
    before = {tenant.marker: tenant_rows(tenant) for tenant in (world.owner, world.intruder)}
    with transaction.atomic():
        problems = check(world, case, send(case.who, case.call), send)
        if case.expect.status >= 300 or case.who.tenant is world.intruder:
            for tenant in (world.owner, world.intruder):
                if case.expect.status < 300 and tenant is world.intruder:
                    continue  # the intruder may write into its own project
                if tenant_rows(tenant) != before[tenant.marker]:
                    problems.append(f"wrote into {tenant.marker}'s project")
        transaction.set_rollback(True)
    return problems


def worlds(tenants: tuple[Tenant, Tenant]) -> list[World]:
    alpha, beta = tenants
    return [World(owner=alpha, intruder=beta), World(owner=beta, intruder=alpha)]


def test_every_url_pattern_has_an_isolation_case():
    """Each pattern of the resolver is in the isolation table or exempt with a reason; none is stale."""
    patterns = {route for route, _ in url_patterns()}
    assert not set(ROUTES) & set(EXEMPT)
    assert sorted(patterns - set(ROUTES) - set(EXEMPT)) == [], "patterns without an isolation case"
    assert sorted((set(ROUTES) | set(EXEMPT)) - patterns) == [], "table entries without a pattern"


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_route_refuses_outsiders_exactly(route, tenants, send):
    """Nobody, the wrong scope and the other tenant get the exact refusal; successes show no foreign row."""
    failures = []
    for world in worlds(tenants):
        for case in ROUTES[route].cases(world):
            for problem in run_case(world, case, send):
                failures.append(f"{case.who} {case.call.method} {case.call.path}: {problem}")
    assert not failures, "\n".join(failures)


# Logout pages are left out: they only end the caller's session and answer a redirect.
@pytest.mark.parametrize("route", sorted(route for route in EXEMPT if "logout" not in route))
def test_exempt_patterns_hold_no_tenant_data(route, tenants, send):
    """The exempt pages answer every principal without a name of the other tenant."""
    world = worlds(tenants)[0]
    for who in world.everyone():
        reply = send(who, Call("GET", "/" + route))
        # 503: /healthz of an unhealthy platform (no beat refreshes the worker heartbeat here).
        assert reply.status in (200, 302, 503), (str(who), reply.status)
        assert leaks(world, who, reply.body) is None, str(who)


def _values(answer: Any, key: str) -> list[float]:
    return [value for entry in answer[key] for value in entry["values"] if value is not None]


def test_shared_metric_and_item_names_answer_only_own_values(tenants, send):
    """Where both tenants use the same metric name and item id, each sees only its own values."""
    for tenant in tenants:
        who = Principal("key", tenant)
        for agg in ("min", "max"):
            series = send(who, Call("GET", f"/api/v1/series?metric={SHARED_METRIC}&agg={agg}"))
            assert series.status == 200, series.body
            values = _values(orjson.loads(series.body), "series")
            assert values, "the shared metric has no points in range"
            assert set(values) == {tenant.shared_value}
        similar = send(
            who, Call("GET", f"/api/v1/items/{tenant.items[0]}/similar?trend={SHARED_METRIC}")
        )
        assert similar.status == 200, similar.body
        results = orjson.loads(similar.body)["results"]
        assert {result["external_id"] for result in results} == set(tenant.items[1:])
        (shared,) = [result for result in results if result["external_id"] == SHARED_ITEM]
        sums = [value for value in shared["trend"] if value]
        # Each bucket sums only this tenant's points: whole multiples of its value, few of them.
        assert sums
        assert all(value % tenant.shared_value == 0 for value in sums), sums
        assert sum(sums) == POINTS_PER_SERIES * tenant.shared_value


@pytest.mark.slow
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_method_and_principal_stays_inside_its_tenant(route, tenants, send):
    """Every HTTP method from every principal: no 5xx, no foreign success, no foreign row, JSON API errors."""
    entry = ROUTES[route]
    failures = []
    for world in worlds(tenants):
        path = entry.path(world.owner)
        for method, who in itertools.product(METHODS, world.everyone()):
            # A body names its sender's own things, so an echo of it is never a leak.
            writer = who.tenant or world.owner
            body, content_type = (b"", "application/json")
            if entry.body and method in ("POST", "PUT", "PATCH"):
                body, content_type = entry.body(writer)
            call = Call(method, path, body, content_type)
            for problem in _invariants(world, entry.kind, entry.owned, who, call, send):
                failures.append(f"{who} {method} {path}: {problem}")
    assert not failures, "\n".join(failures)


def _invariants(
    world: World, kind: str, owned: bool, who: Principal, call: Call, send: Send
) -> list[str]:
    """Check one answer against what holds for any method and principal on a route of `kind`."""
    before = {tenant.marker: tenant_rows(tenant) for tenant in (world.owner, world.intruder)}
    problems = []
    with transaction.atomic():
        reply = send(who, call)
        status, body = reply.status, reply.body
        outsider = who.tenant is not world.owner
        if status >= 500:
            problems.append(f"status {status}")
        if 200 <= status < 300:
            if marker := leaks(world, who, body):
                problems.append(f"shows the other tenant's {marker!r}")
            # DRF answers OPTIONS with the endpoint's description, which names no tenant.
            described = call.method == "OPTIONS" and not leaks(world, Principal("anonymous"), body)
            # A key always acts on its own project (leaks() above checks what it got); a
            # member naming the owner's project or objects must be refused.
            if outsider and owned and who.kind == "session" and not described:
                problems.append(f"the other tenant's member got {status} on the owner's objects")
        # A HEAD answer has no body to check.
        if kind == "api" and status >= 400 and call.method != "HEAD":
            error = orjson.loads(body) if body else None
            if not isinstance(error, dict) or not isinstance(error.get("error"), str):
                problems.append(f"{status} without a JSON error: {body[:120]!r}")
        if kind == "api" and who.kind == "anonymous" and status != 401:
            problems.append(f"anonymous got {status}, not 401")
        if kind in ("page", "admin") and who.kind != "session" and status != 302:
            problems.append(f"{who.kind} got {status} from a page, not the login redirect")
        if kind == "admin" and status != 302:
            problems.append(f"non-staff got {status} from the admin")
        if status >= 300 or outsider:
            for tenant in (world.owner, world.intruder):
                if tenant is world.intruder and status < 300:
                    continue
                if tenant_rows(tenant) != before[tenant.marker]:
                    problems.append(f"wrote into {tenant.marker}'s project")
        transaction.set_rollback(True)
    return problems
