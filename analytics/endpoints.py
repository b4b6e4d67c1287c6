"""Names a view declares for itself: its latency metric's endpoint tag and its profiling label.

The core's middleware (platform metrics, silk labels) reads them from the resolved view,
so the core never lists the routes of the apps built on it. A class-based view sets
`endpoint_names = EndpointNames(...)`; a function view is decorated with `@named_endpoint`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.urls import ResolverMatch

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class EndpointNames:
    """What the platform's own instrumentation calls a view.

    `metric`: the `endpoint` tag of its request latency (None: not timed).
    `ingest`: its 4xx/5xx answers count as ingest errors.
    `profile`: its silk label (`search`, `search:similar`).
    `panel_profile`: a panel endpoint, labelled `<this>:<dashboard>/<panel id>` from its URL.
    """

    metric: str | None = None
    ingest: bool = False
    profile: str | None = None
    panel_profile: str | None = None


UNNAMED = EndpointNames()


def named_endpoint(**names: Any) -> Callable[[View], View]:
    """Declare the EndpointNames of a function view (innermost or outermost decorator)."""

    def declare(view: View) -> View:
        view.endpoint_names = EndpointNames(**names)  # type: ignore[attr-defined]
        return view

    return declare


def endpoint_names(match: ResolverMatch | None) -> EndpointNames:
    """Return the names the resolved view declares, or UNNAMED."""
    if match is None:
        return UNNAMED
    func = match.func
    names = getattr(func, "endpoint_names", None)
    if names is None:
        # Django's and DRF's as_view() keep the class on the function they return.
        view_class = getattr(func, "view_class", None) or getattr(func, "cls", None)
        names = getattr(view_class, "endpoint_names", None)
    return names if isinstance(names, EndpointNames) else UNNAMED
