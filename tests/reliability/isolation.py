"""The vocabulary of the isolation sweep: principals, requests, exact expectations, case builders.

A `Route` says, for one URL pattern, what every principal gets when it asks for the
owner's objects: nobody; the owner's read+write, read-only and write-only keys and
member; the intruder's (the other tenant's) keys and member. The table of routes is in
tests.reliability.isolation_routes.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from django.urls import URLPattern, URLResolver, get_resolver

from tests.reliability.tenants import Tenant

NO_KEY = "no API key: send the header 'Authorization: Bearer <key>'"
SESSION_WRITE = "'write' requests need an API key with the 'write' scope"
ADMIN_LOGIN = "/admin/login/"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def lacks(scope: str, has: str) -> str:
    return f"this API key lacks the '{scope}' scope (it has: {has})"


def another_project(slug: str) -> str:
    return f"this API key belongs to another project, not '{slug}'"


def not_member(slug: str) -> str:
    return f"you are not a member of project '{slug}'"


def no_item(external_id: str) -> str:
    return f"no item {external_id!r} in this project"


def no_metric(metric: str) -> str:
    return f"metric {metric!r} not found in this project"


def login_redirect(path: str, login: str = "/accounts/login/") -> str:
    """Return where login_required sends an anonymous request for `path` (query included)."""
    return f"{login}?next={quote(path, safe='/')}"


def url_patterns() -> Iterator[tuple[str, str]]:
    """Yield (route, view) for every pattern the resolver knows, walking every include."""

    def walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, str]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.lookup_str

    yield from walk(get_resolver().url_patterns, "")


# --- principals, requests and expectations --------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """Who asks: `kind` is anonymous, key, read_key, write_key or session, of `tenant`."""

    kind: str
    tenant: Tenant | None = None

    def __str__(self) -> str:
        return self.kind if self.tenant is None else f"{self.tenant.marker} {self.kind}"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes = b""
    content_type: str = "application/json"


@dataclass(frozen=True)
class Expect:
    """The answer a case must get.

    `error`: the exact `error` of a JSON refusal; `location`: the exact redirect; `like`:
    a path naming an object that does not exist, whose 404 page this one must equal byte
    for byte (so existence cannot be probed); `shows`: text a success must contain (the
    caller's own data: an empty answer would hide a broken filter); `body`: the exact
    JSON of a success.
    """

    status: int
    error: str | None = None
    location: str | None = None
    like: str | None = None
    shows: str | None = None
    body: Any = None


@dataclass(frozen=True)
class Case:
    who: Principal
    call: Call
    expect: Expect


@dataclass(frozen=True)
class World:
    """The owner of the objects asked for, and the other tenant, the intruder."""

    owner: Tenant
    intruder: Tenant

    def who(self, name: str) -> Principal:
        side, _, kind = name.partition(" ")
        tenant = self.owner if side == "owner" else self.intruder
        return Principal(kind.replace(" ", "_") or "key", tenant)

    def everyone(self) -> list[Principal]:
        return [Principal("anonymous")] + [
            Principal(kind, tenant)
            for tenant in (self.owner, self.intruder)
            for kind in ("key", "read_key", "write_key", "session")
        ]


Body = Callable[[Tenant], tuple[bytes, str]]


@dataclass(frozen=True)
class Reply:
    """An answer as the checks read it, from the test client or from a live server."""

    status: int
    location: str | None
    body: bytes


Send = Callable[[Principal, Call], Reply]


def other(world: World, tenant: Tenant) -> Tenant:
    return world.intruder if tenant is world.owner else world.owner


def leaks(world: World, who: Principal, body: bytes) -> str | None:
    """Return the marker of a tenant the principal must not see that `body` holds, if any."""
    foreign = [world.owner, world.intruder] if who.tenant is None else [other(world, who.tenant)]
    for tenant in foreign:
        if tenant.marker.encode() in body:
            return tenant.marker
    return None


def check(world: World, case: Case, reply: Reply, send: Send) -> list[str]:
    """Return what is wrong with `reply` to `case` (empty when it is exactly as expected)."""
    expect, body = case.expect, reply.body
    problems = []
    if reply.status != expect.status:
        problems.append(f"status {reply.status}, expected {expect.status}")
    if expect.error is not None:
        try:
            error = orjson.loads(body)
        except orjson.JSONDecodeError:
            error = None
        if not isinstance(error, dict) or error.get("error") != expect.error:
            problems.append(f"error {error!r}, expected {expect.error!r}")
        elif case.call.path.startswith("/api/v2/write") and error.get("message") != expect.error:
            problems.append(f"InfluxDB message {error.get('message')!r}, expected the error")
    if expect.location is not None and reply.location != expect.location:
        problems.append(f"Location {reply.location!r}, expected {expect.location!r}")
    if expect.like is not None:
        missing = send(case.who, Call("GET", expect.like))
        if (missing.status, missing.body) != (reply.status, body):
            problems.append(f"differs from the answer for {expect.like} ({missing.status})")
    if expect.shows is not None and expect.shows.encode() not in body:
        problems.append(f"does not show {expect.shows!r}")
    if expect.body is not None and orjson.loads(body) != expect.body:
        problems.append(f"body {body[:200]!r}, expected {expect.body!r}")
    if 200 <= reply.status < 300 and (marker := leaks(world, case.who, body)):
        problems.append(f"shows the other tenant's {marker!r}")
    return problems


@dataclass(frozen=True)
class Route:
    """An isolation entry.

    `cases` are the exact expectations; `path` and `body` are what the full sweep sends
    with every method and principal; `owned` says the path names the owner's objects or
    project, so the other tenant's member may get no success from it (a key always acts
    on its own project, so whatever it gets must simply hold none of the owner's rows).
    """

    kind: str  # api, page, admin or redirect
    cases: Callable[[World], list[Case]]
    path: Callable[[Tenant], str]
    body: Body | None = None
    owned: bool = True


def with_query(path: str, **params: Any) -> str:
    if not params:
        return path
    return f"{path}{'&' if '?' in path else '?'}{urlencode(params, doseq=True)}"


def combine(*makers: Callable[[World], list[Case]]) -> Callable[[World], list[Case]]:
    return lambda world: [case for make in makers for case in make(world)]


# --- API endpoints --------------------------------------------------------------------------------


def api_read(
    path: Callable[[Tenant], str],
    *,
    intruder: Callable[[World], Expect],
    shows: Callable[[Tenant], str],
    body: Body | None = None,
    method: str = "GET",
    slug_in_path: bool = False,
) -> Callable[[World], list[Case]]:
    """Cases of a read endpoint: a read key, or a member's session naming the project.

    `intruder` is what the other tenant's key gets for the owner's objects (a 404 naming
    them, or a success holding none of them).
    """

    def cases(world: World) -> list[Case]:
        owner = world.owner
        raw, content_type = body(owner) if body else (b"", "application/json")

        def call(target: str) -> Call:
            return Call(method, target, raw, content_type)

        own = path(owner)
        named = own if slug_in_path else with_query(own, project=owner.slug)
        result = [
            Case(Principal("anonymous"), call(own), Expect(401, NO_KEY)),
            Case(world.who("owner key"), call(own), Expect(200, shows=shows(owner))),
            Case(world.who("owner read key"), call(own), Expect(200, shows=shows(owner))),
            Case(world.who("owner write key"), call(own), Expect(403, lacks("read", "write"))),
            Case(world.who("owner session"), call(named), Expect(200, shows=shows(owner))),
            Case(world.who("intruder key"), call(own), intruder(world)),
            Case(world.who("intruder read key"), call(own), intruder(world)),
            Case(world.who("intruder write key"), call(own), Expect(403, lacks("read", "write"))),
            Case(world.who("intruder session"), call(named), Expect(403, not_member(owner.slug))),
        ]
        if not slug_in_path:
            # `?project=` names a member's project; a key always acts on its own, so the
            # owner's slug there changes nothing (README: tenants and API keys).
            result.append(Case(world.who("intruder key"), call(named), intruder(world)))
            # A member of one project who names none acts on that one project.
            result.append(Case(world.who("intruder session"), call(own), intruder(world)))
        return result

    return cases


def api_write(
    path: Callable[[Tenant], str],
    *,
    body: Body,
    success: int,
    method: str = "POST",
    intruder: Callable[[World], Expect] | None = None,
    session: Expect = Expect(403, SESSION_WRITE),
) -> Callable[[World], list[Case]]:
    """Cases of a write endpoint: write keys only, never a session or a read key.

    `session` is what a logged-in member gets: 403 naming the key it needs, or 401 where
    the endpoint (InfluxDB's) does not read sessions at all.
    """

    def cases(world: World) -> list[Case]:
        owner = world.owner
        raw, content_type = body(owner)
        own = path(owner)

        def call(target: str) -> Call:
            return Call(method, target, raw, content_type)

        # The intruder's own write, naming the owner's project: it lands in the intruder's
        # (a key acts on its own project); the owner's rows must not change.
        raw_own, _ = body(world.intruder)
        named = Call(
            method, with_query(path(world.intruder), project=owner.slug), raw_own, content_type
        )
        result = [
            Case(Principal("anonymous"), call(own), Expect(401, NO_KEY)),
            Case(world.who("owner read key"), call(own), Expect(403, lacks("write", "read"))),
            Case(world.who("owner session"), call(own), session),
            Case(world.who("intruder read key"), call(own), Expect(403, lacks("write", "read"))),
            Case(world.who("intruder session"), call(own), session),
            Case(world.who("owner key"), call(own), Expect(success)),
            Case(world.who("owner write key"), call(own), Expect(success)),
        ]
        if method != "DELETE":
            result.append(Case(world.who("intruder key"), named, Expect(success)))
        if intruder is not None:
            result.append(Case(world.who("intruder key"), call(own), intruder(world)))
        return result

    return cases


# --- pages ------------------------------------------------------------------------------------------


def page(
    path: Callable[[Tenant], str], *, missing: Callable[[Tenant], str] | None
) -> Callable[[World], list[Case]]:
    """Cases of a member's page: the login for anyone else; keys never open a page.

    `missing` is the same page for an object that does not exist; the intruder's member
    must get exactly that 404. Without it, the page names no object (the intruder sees
    their own).
    """

    def cases(world: World) -> list[Case]:
        owner, intruder = world.owner, world.intruder
        own = path(owner)
        login = Expect(302, location=login_redirect(own))
        result = [
            Case(Principal("anonymous"), Call("GET", own), login),
            Case(world.who("owner key"), Call("GET", own), login),
            Case(world.who("intruder key"), Call("GET", own), login),
            Case(world.who("owner session"), Call("GET", own), Expect(200, shows=owner.marker)),
        ]
        if missing is None:
            shows = Expect(200, shows=intruder.marker)
            result.append(Case(world.who("intruder session"), Call("GET", own), shows))
        else:
            hidden = Expect(404, like=missing(owner))
            result.append(Case(world.who("intruder session"), Call("GET", own), hidden))
        return result

    return cases


# --- the admin: staff only, whatever the tenant ----------------------------------------------------


def admin(path: Callable[[Tenant], str]) -> Callable[[World], list[Case]]:
    """Every principal here is a non-staff member or a key: all are sent to the admin's login.

    The admin is the operators' tool (staff see every tenant by design); tenants never
    reach it, with a key or a session.
    """

    def cases(world: World) -> list[Case]:
        own = path(world.owner)
        login = Expect(302, location=login_redirect(own, ADMIN_LOGIN))
        return [Case(who, Call("GET", own), login) for who in world.everyone()]

    return cases
