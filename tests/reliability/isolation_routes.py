"""The isolation table: every URL pattern of the resolver, and who gets what from it.

`ROUTES` maps each pattern (as `isolation.url_patterns()` spells it) to a `Route`;
`EXEMPT` names the patterns that hold no tenant data, and why. The sweep fails for a
pattern in neither, so a new endpoint cannot be added without its isolation case.
"""

from collections.abc import Callable

import orjson
from django.urls import reverse

from tests.reliability.isolation import (
    NO_KEY,
    Call,
    Case,
    Expect,
    Principal,
    Route,
    World,
    admin,
    another_project,
    api_read,
    api_write,
    combine,
    login_redirect,
    no_item,
    no_metric,
    page,
    with_query,
)
from tests.reliability.tenants import Tenant


def _events(tenant: Tenant) -> tuple[bytes, str]:
    events = [{"metric": tenant.metric, "value": 1, "tags": {tenant.tag_key: "swept"}}]
    return orjson.dumps(events), "application/json"


def _lines(tenant: Tenant) -> tuple[bytes, str]:
    return f"{tenant.marker}_swept,{tenant.tag_key}=swept value=1".encode(), "text/plain"


def _items(tenant: Tenant) -> tuple[bytes, str]:
    item = {"external_id": f"{tenant.marker}-swept", "title": f"{tenant.marker} swept"}
    return orjson.dumps({"items": [item]}), "application/json"


def _search(tenant: Tenant) -> tuple[bytes, str]:
    return orjson.dumps({"like": [tenant.items[0]], "k": 10}), "application/json"


def _item(tenant: Tenant) -> str:
    return f"/api/v1/items/{tenant.items[0]}"


def _no_owner_item(world: World) -> Expect:
    return Expect(404, no_item(world.owner.items[0]))


def _no_owner_metric(world: World) -> Expect:
    return Expect(404, no_metric(world.owner.metric))


def _series(tenant: Tenant) -> str:
    return with_query("/api/v1/series", metric=tenant.metric, group_by=tenant.tag_key)


def _tag_values(tenant: Tenant) -> str:
    return with_query("/api/v1/catalog/tag-values", metric=tenant.metric, key=tenant.tag_key)


API: dict[str, Route] = {
    "api/v1/project": Route(
        "api",
        api_read(
            lambda t: "/api/v1/project",
            # The intruder's own project: a key (or a one-project member) names its project.
            intruder=lambda w: Expect(200, shows=w.intruder.slug),
            shows=lambda t: t.slug,
        ),
        lambda t: with_query("/api/v1/project", project=t.slug),
    ),
    "api/v1/projects/<slug:slug>": Route(
        "api",
        api_read(
            lambda t: f"/api/v1/projects/{t.slug}",
            intruder=lambda w: Expect(403, another_project(w.owner.slug)),
            shows=lambda t: t.slug,
            slug_in_path=True,
        ),
        lambda t: f"/api/v1/projects/{t.slug}",
    ),
    "api/v1/series": Route(
        "api",
        api_read(_series, intruder=_no_owner_metric, shows=lambda t: t.tag_value),
        lambda t: with_query(_series(t), project=t.slug),
    ),
    "api/v1/catalog/metrics": Route(
        "api",
        api_read(
            lambda t: with_query("/api/v1/catalog/metrics", search=t.marker),
            intruder=lambda w: Expect(200, body={"metrics": []}),
            shows=lambda t: t.metric,
        ),
        lambda t: with_query("/api/v1/catalog/metrics", project=t.slug),
    ),
    "api/v1/catalog/tag-keys": Route(
        "api",
        api_read(
            lambda t: with_query("/api/v1/catalog/tag-keys", metric=t.metric),
            intruder=_no_owner_metric,
            shows=lambda t: t.tag_key,
        ),
        lambda t: with_query("/api/v1/catalog/tag-keys", metric=t.metric, project=t.slug),
    ),
    "api/v1/catalog/tag-values": Route(
        "api",
        api_read(_tag_values, intruder=_no_owner_metric, shows=lambda t: t.tag_value),
        lambda t: with_query(_tag_values(t), project=t.slug),
    ),
    "api/v1/events": Route(
        "api",
        api_write(lambda t: "/api/v1/events", body=_events, success=200),
        lambda t: with_query("/api/v1/events", project=t.slug),
        _events,
    ),
    "api/v2/write": Route(
        "api",
        # InfluxDB clients send keys only: a session is not even read there (401).
        api_write(lambda t: "/api/v2/write", body=_lines, success=204, session=Expect(401, NO_KEY)),
        lambda t: with_query("/api/v2/write", project=t.slug),
        _lines,
    ),
    "api/v1/items": Route(
        "api",
        combine(
            api_read(
                lambda t: with_query("/api/v1/items", q=t.marker),
                # The intruder searching for the owner's words finds nothing at all.
                intruder=lambda w: Expect(200, body={"items": []}),
                shows=lambda t: t.items[0],
            ),
            api_write(lambda t: "/api/v1/items", body=_items, success=200),
        ),
        lambda t: with_query("/api/v1/items", project=t.slug),
        _items,
    ),
    "api/v1/items/<path:external_id>/similar": Route(
        "api",
        api_read(
            lambda t: f"{_item(t)}/similar", intruder=_no_owner_item, shows=lambda t: t.items[1]
        ),
        lambda t: with_query(f"{_item(t)}/similar", project=t.slug),
    ),
    "api/v1/items/<path:external_id>": Route(
        "api",
        combine(
            api_read(_item, intruder=_no_owner_item, shows=lambda t: t.items[0]),
            api_write(
                _item,
                body=lambda t: (b"", "application/json"),
                success=204,
                method="DELETE",
                intruder=_no_owner_item,
            ),
        ),
        lambda t: with_query(_item(t), project=t.slug),
    ),
    "api/v1/search": Route(
        "api",
        api_read(
            lambda t: "/api/v1/search",
            method="POST",
            body=_search,
            intruder=lambda w: Expect(422, f"like[0]: {no_item(w.owner.items[0])}"),
            shows=lambda t: t.items[1],
        ),
        lambda t: with_query("/api/v1/search", project=t.slug),
        _search,
    ),
}


def _panel(tenant: Tenant, suffix: str = "data", *, panel_id: int | None = None) -> str:
    return reverse(
        f"dashboards:panel-{'csv' if suffix == 'data.csv' else 'data'}",
        kwargs={
            "project_slug": tenant.slug,
            "slug": tenant.dashboard_slug,
            "panel_id": tenant.panel_id if panel_id is None else panel_id,
        },
    )


def panel(suffix: str) -> Callable[[World], list[Case]]:
    """Page cases of a panel's data, plus the owner's panel id under the intruder's dashboard."""
    base = page(
        lambda t: _panel(t, suffix), missing=lambda t: _panel(t, suffix, panel_id=2**31 - 1)
    )

    def cases(world: World) -> list[Case]:
        owner, intruder = world.owner, world.intruder
        # The intruder's own project and dashboard in the URL, the owner's panel id.
        crossed = _panel(intruder, suffix, panel_id=owner.panel_id)
        missing = _panel(intruder, suffix, panel_id=2**31 - 1)
        probe = Case(world.who("intruder session"), Call("GET", crossed), Expect(404, like=missing))
        return [*base(world), probe]

    return cases


def _dashboard(tenant: Tenant, slug: str | None = None) -> str:
    return reverse(
        "dashboards:view",
        kwargs={"project_slug": tenant.slug, "slug": slug or tenant.dashboard_slug},
    )


def _similar(tenant: Tenant, slug: str | None = None) -> str:
    return reverse("dashboards:similar", kwargs={"project_slug": slug or tenant.slug})


PAGES: dict[str, Route] = {
    "dashboards/": Route(
        "page", page(lambda t: "/dashboards/", missing=None), lambda t: "/dashboards/", owned=False
    ),
    "p/<slug:project_slug>/dashboards/<slug:slug>/": Route(
        "page",
        page(_dashboard, missing=lambda t: _dashboard(t, "no-such-board")),
        _dashboard,
    ),
    "p/<slug:project_slug>/dashboards/<slug:slug>/panels/<int:panel_id>/data": Route(
        "page", panel("data"), _panel
    ),
    "p/<slug:project_slug>/dashboards/<slug:slug>/panels/<int:panel_id>/data.csv": Route(
        "page", panel("data.csv"), lambda t: _panel(t, "data.csv")
    ),
    "p/<slug:project_slug>/similar/": Route(
        "page", page(_similar, missing=lambda t: _similar(t, "no-such-project")), _similar
    ),
}


def _admin_route(path: Callable[[Tenant], str]) -> Route:
    return Route("admin", admin(path), path)


def _admin_model(app_model: str, object_id: Callable[[Tenant], int]) -> dict[str, Route]:
    """The six routes Django's ModelAdmin adds for `app_label/model_name`."""
    base = f"admin/{app_model}/"

    def change(suffix: str) -> Callable[[Tenant], str]:
        return lambda t: f"/{base}{object_id(t)}/{suffix}"

    return {
        base: _admin_route(lambda t: f"/{base}"),
        f"{base}add/": _admin_route(lambda t: f"/{base}add/"),
        f"{base}<path:object_id>/history/": _admin_route(change("history/")),
        f"{base}<path:object_id>/delete/": _admin_route(change("delete/")),
        f"{base}<path:object_id>/change/": _admin_route(change("change/")),
        # Only a redirect to `change/`, but behind the admin's login like the rest.
        f"{base}<path:object_id>/": _admin_route(change("")),
    }


ADMIN: dict[str, Route] = {
    "admin/": _admin_route(lambda t: "/admin/"),
    "admin/password_change/": _admin_route(lambda t: "/admin/password_change/"),
    "admin/password_change/done/": _admin_route(lambda t: "/admin/password_change/done/"),
    "admin/autocomplete/": _admin_route(lambda t: "/admin/autocomplete/"),
    "admin/jsi18n/": _admin_route(lambda t: "/admin/jsi18n/"),
    "admin/r/<path:content_type_id>/<path:object_id>/": _admin_route(
        lambda t: f"/admin/r/1/{t.project_id}/"
    ),
    **_admin_model("auth/group", lambda t: 1),
    **_admin_model("auth/user", lambda t: t.user_id),
    "admin/auth/user/<id>/password/": _admin_route(
        lambda t: f"/admin/auth/user/{t.user_id}/password/"
    ),
    **_admin_model("analytics/project", lambda t: t.project_id),
    **_admin_model("analytics/apikey", lambda t: t.api_key_id),
    **_admin_model("embeddings/item", lambda t: t.item_pk),
    "admin/dashboards/dashboard/import/": _admin_route(
        lambda t: "/admin/dashboards/dashboard/import/"
    ),
    **_admin_model("dashboards/dashboard", lambda t: t.dashboard_id),
    "admin/^(?P<app_label>auth|analytics|embeddings|dashboards)/$": _admin_route(
        lambda t: "/admin/analytics/"
    ),
    "admin/(?P<url>.*)$": _admin_route(lambda t: "/admin/no-such-page/"),
}

HOME: dict[str, Route] = {
    "": Route(
        "redirect",
        lambda world: [
            Case(who, Call("GET", "/"), Expect(302, location="/dashboards/"))
            for who in world.everyone()
        ],
        lambda t: "/",
        owned=False,
    ),
}

# --- the dashboard editor, history and Explore (issue 15) ---------------------------------------


def _board_url(name: str, extra: dict[str, object] | None = None) -> Callable[..., str]:
    def path(tenant: Tenant, slug: str | None = None) -> str:
        kwargs = {"project_slug": tenant.slug, "slug": slug or tenant.dashboard_slug}
        return reverse(f"dashboards:{name}", kwargs={**kwargs, **(extra or {})})

    return path


def _project_url(name: str, query: str = "") -> Callable[..., str]:
    def path(tenant: Tenant, slug: str | None = None) -> str:
        return reverse(f"dashboards:{name}", kwargs={"project_slug": slug or tenant.slug}) + query

    return path


def edit(
    path: Callable[..., str], method: str, *, missing: Callable[[Tenant], str]
) -> Callable[[World], list[Case]]:
    """Cases of an edit endpoint: the login for anyone not logged in, 403 for the owner's
    member (a viewer), and for the other tenant's member the 404 of a missing object."""

    def cases(world: World) -> list[Case]:
        own = path(world.owner)
        login = Expect(302, location=login_redirect(own))
        return [
            Case(Principal("anonymous"), Call(method, own), login),
            Case(world.who("owner key"), Call(method, own), login),
            Case(world.who("intruder key"), Call(method, own), login),
            Case(world.who("owner session"), Call(method, own), Expect(403)),
            Case(
                world.who("intruder session"),
                Call(method, own),
                # `like` is fetched with GET, which a POST-only endpoint answers 405.
                Expect(404, like=missing(world.owner) if method == "GET" else None),
            ),
        ]

    return cases


def _edit_route(name: str, method: str, extra: dict[str, object] | None = None) -> Route:
    path = _board_url(name, extra)
    return Route("page", edit(path, method, missing=lambda t: path(t, "no-such-board")), path)


def _explore_data(world: World) -> list[Case]:
    path = _project_url("explore-data", "")
    own = with_query(path(world.owner), metric=world.owner.metric)
    missing = with_query(path(world.owner, "no-such-project"), metric=world.owner.metric)
    login = Expect(302, location=login_redirect(own))
    return [
        Case(Principal("anonymous"), Call("GET", own), login),
        Case(world.who("owner key"), Call("GET", own), login),
        Case(world.who("intruder key"), Call("GET", own), login),
        Case(world.who("owner session"), Call("GET", own), Expect(200, shows=world.owner.marker)),
        Case(world.who("intruder session"), Call("GET", own), Expect(404, like=missing)),
    ]


_history = _board_url("history")
_explore = _project_url("explore")
_new = _project_url("create")
_add = _project_url("explore-add")
EDITOR: dict[str, Route] = {
    "p/<slug:project_slug>/dashboards/<slug:slug>/edit/": _edit_route("edit", "GET"),
    "p/<slug:project_slug>/dashboards/<slug:slug>/save": _edit_route("save", "POST"),
    "p/<slug:project_slug>/dashboards/<slug:slug>/preview": _edit_route("preview", "POST"),
    "p/<slug:project_slug>/dashboards/<slug:slug>/duplicate": _edit_route("duplicate", "POST"),
    "p/<slug:project_slug>/dashboards/<slug:slug>/delete": _edit_route("delete", "POST"),
    "p/<slug:project_slug>/dashboards/<slug:slug>/history/<int:number>/restore": _edit_route(
        "restore", "POST", {"number": 1}
    ),
    "p/<slug:project_slug>/dashboards/<slug:slug>/history/": Route(
        "page", page(_history, missing=lambda t: _history(t, "no-such-board")), _history
    ),
    "p/<slug:project_slug>/dashboards/new": Route(
        "page", edit(_new, "POST", missing=lambda t: _new(t, "no-such-project")), _new
    ),
    "p/<slug:project_slug>/explore/": Route(
        "page", page(_explore, missing=lambda t: _explore(t, "no-such-project")), _explore
    ),
    "p/<slug:project_slug>/explore/data": Route(
        "page",
        _explore_data,
        lambda t: with_query(_project_url("explore-data")(t), metric=t.metric),
    ),
    "p/<slug:project_slug>/explore/add": Route(
        "page", edit(_add, "POST", missing=lambda t: _add(t, "no-such-project")), _add
    ),
}


ROUTES: dict[str, Route] = {**API, **PAGES, **EDITOR, **ADMIN, **HOME}

# Patterns that hold no tenant data. Silk's /silk/ pages are absent here on purpose: test
# settings never install silk (tests/profiling covers its staff-only access), so a silk
# pattern showing up in this resolver is itself a failure. Static files are served by
# WhiteNoise's middleware, not by a URL pattern.
EXEMPT: dict[str, str] = {
    "healthz": "health of PostgreSQL, Redis and workers: public by design, no tenant data",
    "api/schema/": "the OpenAPI document: public, describes endpoints, holds no data",
    "api/docs/": "Swagger UI page for the schema, served from the app's own static files",
    "accounts/login/": "the members' login form",
    "accounts/logout/": "ends the caller's own session",
    "admin/login/": "the admin's login form",
    "admin/logout/": "ends the caller's own session",
}
