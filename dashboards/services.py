"""Writes of dashboards: JSON export and import.

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
