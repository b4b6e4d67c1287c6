"""Writes of dashboards: JSON export and import, and the demo project's dashboards.

An import validates the whole document (every panel through the models' own checks)
before it writes anything, and writes in one transaction: a bad panel leaves nothing
half-imported, and the error names the field at fault (`panels[2].filters`).
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from analytics.models import Project
from dashboards.models import Dashboard, Panel

EXPORT_VERSION = 1
DASHBOARD_FIELDS = (
    "title",
    "slug",
    "description",
    "default_from",
    "default_to",
    "refresh",
    "variables",
)
PANEL_FIELDS = (
    "title",
    "kind",
    "metric",
    "agg",
    "filters",
    "group_by",
    "limit",
    "bucket",
    "fill",
    "compare",
    "unit",
    "x",
    "y",
    "width",
    "height",
)


class DashboardImportError(ValueError):
    """A dashboard document was refused; `errors` maps a field path to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        summary = "; ".join(f"{path}: {' '.join(messages)}" for path, messages in errors.items())
        super().__init__(summary)


def export_dashboard(*, dashboard: Dashboard) -> dict[str, Any]:
    """Return `dashboard` and its panels as a JSON-ready document (no ids, no project)."""
    document: dict[str, Any] = {"version": EXPORT_VERSION}
    document.update({name: getattr(dashboard, name) for name in DASHBOARD_FIELDS})
    document["panels"] = [
        {name: getattr(panel, name) for name in PANEL_FIELDS} for panel in dashboard.panels.all()
    ]
    return document


def _errors(exc: ValidationError, prefix: str) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {
            f"{prefix}{name}" if name != "__all__" else prefix.rstrip(".") or "document": [
                message for error in errors for message in error.messages
            ]
            for name, errors in exc.error_dict.items()
        }
    return {prefix.rstrip(".") or "document": exc.messages}


def _unknown(data: dict[str, Any], allowed: tuple[str, ...], where: str) -> dict[str, list[str]]:
    extra = sorted(set(data) - set(allowed))
    return {where: [f"unknown keys {extra}; allowed: {list(allowed)}"]} if extra else {}


def import_dashboard(*, project: Project, document: Any, replace: bool = False) -> Dashboard:
    """Create (or with `replace`, overwrite) the dashboard `document` describes in `project`."""
    if not isinstance(document, dict):
        raise DashboardImportError({"document": ["must be a JSON object"]})
    if document.get("version", EXPORT_VERSION) != EXPORT_VERSION:
        raise DashboardImportError({"version": [f"must be {EXPORT_VERSION}"]})
    body = {key: value for key, value in document.items() if key not in ("version", "panels")}
    errors = _unknown(body, DASHBOARD_FIELDS, "document")
    panels_data = document.get("panels", [])
    if not isinstance(panels_data, list):
        errors["panels"] = ["must be a list of objects"]
        panels_data = []
    slug = body.get("slug")
    existing = (
        Dashboard.objects.filter(project=project, slug=slug).first()
        if isinstance(slug, str)
        else None
    )
    if existing is not None and not replace:
        errors["slug"] = [f"{slug!r} exists in project {project.slug!r}; import with replace"]
    dashboard = existing or Dashboard(project=project)
    for name, value in body.items():
        if name in DASHBOARD_FIELDS:
            setattr(dashboard, name, value)
    try:
        dashboard.full_clean(validate_unique=False)
    except ValidationError as exc:
        errors.update(_errors(exc, ""))
    panels: list[Panel] = []
    for index, data in enumerate(panels_data):
        where = f"panels[{index}]"
        if not isinstance(data, dict):
            errors[where] = ["must be an object"]
            continue
        extra = _unknown(data, PANEL_FIELDS, where)
        if extra:
            errors.update(extra)
            continue
        panel = Panel(dashboard=dashboard, **data)
        try:
            panel.full_clean(exclude=["dashboard"])
        except ValidationError as exc:
            errors.update(_errors(exc, f"{where}."))
        panels.append(panel)
    if errors:
        raise DashboardImportError(errors)
    with transaction.atomic():
        dashboard.save()
        if existing is not None:
            dashboard.panels.all().delete()
        for panel in panels:
            panel.dashboard = dashboard
        Panel.objects.bulk_create(panels)
    return dashboard


# --- The demo project's dashboards ---------------------------------------------------------

_DEMO_OVERVIEW: dict[str, Any] = {
    "title": "Shop overview",
    "slug": "shop-overview",
    "description": "Traffic, latency, hosts and sales of the demo shop (manage.py seed_demo).",
    "default_from": "now-24h",
    "default_to": "now",
    "refresh": "1m",
    "variables": [
        {
            "name": "region",
            "tag": "region",
            "metric": "http.requests",
            "multi": True,
            "default": [],
        },
        {
            "name": "endpoint",
            "tag": "endpoint",
            "metric": "http.requests",
            "multi": True,
            "default": [],
        },
    ],
    "panels": [
        {
            "title": "Requests",
            "kind": "single_stat",
            "metric": "http.requests",
            "agg": "sum",
            "filters": ["region:$region", "endpoint:$endpoint"],
            "x": 0,
            "y": 0,
            "width": 3,
            "height": 3,
        },
        {
            "title": "Server errors (500)",
            "kind": "single_stat",
            "metric": "http.requests",
            "agg": "sum",
            "filters": ["status:500", "region:$region", "endpoint:$endpoint"],
            "x": 3,
            "y": 0,
            "width": 3,
            "height": 3,
        },
        {
            "title": "Requests by region",
            "kind": "stacked_bar",
            "metric": "http.requests",
            "agg": "sum",
            "filters": ["region:$region", "endpoint:$endpoint"],
            "group_by": "region",
            "x": 6,
            "y": 0,
            "width": 6,
            "height": 4,
        },
        {
            "title": "Latency by endpoint",
            "kind": "line",
            "metric": "http.latency_ms",
            "agg": "avg",
            "filters": ["region:$region", "endpoint:$endpoint"],
            "group_by": "endpoint",
            "unit": "ms",
            "x": 0,
            "y": 3,
            "width": 6,
            "height": 4,
        },
        {
            "title": "Host CPU",
            "kind": "heatmap",
            "metric": "host.cpu",
            "agg": "avg",
            "group_by": "host",
            "limit": 20,
            "unit": "%",
            "x": 6,
            "y": 4,
            "width": 6,
            "height": 4,
        },
        {
            "title": "Host memory",
            "kind": "area",
            "metric": "host.memory",
            "agg": "max",
            "group_by": "host",
            "limit": 5,
            "unit": "%",
            "x": 0,
            "y": 7,
            "width": 6,
            "height": 4,
        },
        {
            "title": "Sales by category",
            "kind": "table",
            "metric": "shop.product_sales",
            "agg": "sum",
            "group_by": "category",
            "bucket": "1h",
            "x": 6,
            "y": 8,
            "width": 6,
            "height": 4,
        },
        {
            "title": "Product views by category",
            "kind": "line",
            "metric": "shop.product_views",
            "agg": "sum",
            "group_by": "category",
            "compare": True,
            "x": 0,
            "y": 11,
            "width": 6,
            "height": 4,
        },
    ],
}

_PLATFORM_HEALTH: dict[str, Any] = {
    "title": "Platform health",
    "slug": "platform-health",
    "description": "The platform's own metrics: ingestion, embeddings and API latency.",
    "default_from": "now-6h",
    "default_to": "now",
    "refresh": "1m",
    "variables": [
        {
            "name": "endpoint",
            "tag": "endpoint",
            "metric": "platform.request_ms",
            "multi": True,
            "default": [],
        },
    ],
    "panels": [
        {
            "title": "Events ingested per minute",
            "kind": "line",
            "metric": "platform.events_ingested",
            "agg": "sum",
            "bucket": "1m",
            "x": 0,
            "y": 0,
            "width": 6,
            "height": 4,
        },
        {
            "title": "Ingest errors by status",
            "kind": "stacked_bar",
            "metric": "platform.ingest_errors",
            "agg": "sum",
            "group_by": "status",
            "x": 6,
            "y": 0,
            "width": 6,
            "height": 4,
        },
        {
            "title": "Embedding backlog",
            "kind": "single_stat",
            "metric": "platform.embedding_backlog",
            "agg": "max",
            "unit": "items",
            "x": 0,
            "y": 4,
            "width": 3,
            "height": 3,
        },
        {
            "title": "Embeddings computed",
            "kind": "area",
            "metric": "platform.embeddings_computed",
            "agg": "sum",
            "x": 3,
            "y": 4,
            "width": 9,
            "height": 3,
        },
        {
            "title": "API latency by endpoint (avg)",
            "kind": "line",
            "metric": "platform.request_ms",
            "agg": "avg",
            "filters": ["endpoint:$endpoint"],
            "group_by": "endpoint",
            "unit": "ms",
            "x": 0,
            "y": 7,
            "width": 6,
            "height": 4,
        },
        {
            "title": "API latency by endpoint (max)",
            "kind": "heatmap",
            "metric": "platform.request_ms",
            "agg": "max",
            "filters": ["endpoint:$endpoint"],
            "group_by": "endpoint",
            "unit": "ms",
            "x": 6,
            "y": 7,
            "width": 6,
            "height": 4,
        },
    ],
}

DEMO_DASHBOARDS: tuple[dict[str, Any], ...] = (_DEMO_OVERVIEW, _PLATFORM_HEALTH)


def ensure_demo_dashboards(*, project: Project) -> list[Dashboard]:
    """Create the demo dashboards in `project` where missing; never overwrite user edits."""
    dashboards = []
    for document in DEMO_DASHBOARDS:
        existing = Dashboard.objects.filter(project=project, slug=document["slug"]).first()
        dashboards.append(existing or import_dashboard(project=project, document=document))
    return dashboards


def import_dashboards(*, project: Project, document: Any, replace: bool = False) -> list[Dashboard]:
    """Import one dashboard document or a list of them, all or none."""
    documents = document if isinstance(document, list) else [document]
    imported = []
    with transaction.atomic():
        for index, item in enumerate(documents):
            try:
                imported.append(import_dashboard(project=project, document=item, replace=replace))
            except DashboardImportError as exc:
                if not isinstance(document, list):
                    raise
                raise DashboardImportError(
                    {f"[{index}].{path}": messages for path, messages in exc.errors.items()}
                ) from exc
    return imported
