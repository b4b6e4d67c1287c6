"""Writes of the dashboard editor: create, save (with a version), restore, duplicate, delete.

Every save validates the whole document with the models' own checks before it writes
anything, locks the dashboard row, and refuses (SaveConflict) when someone else saved
since the version the editor started from: the second of two concurrent saves never
overwrites the first. Panels keep their ids across saves, so links and the panel data
endpoint stay valid.
"""

import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from analytics.models import Project
from analytics.refusals import Refusal
from dashboards.models import Dashboard, DashboardVersion, Panel
from dashboards.services import PANEL_FIELDS
from dashboards.versions import EDITABLE_FIELDS, dashboard_document, latest_version

logger = logging.getLogger(__name__)

MAX_PANELS = 100
MESSAGE_MAX = 200


class EditRefused(Refusal):
    """A document or panel was refused (400); `errors` is a list of (field path, message)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        self.summary = "; ".join(f"{path}: {message}" for path, message in errors)
        super().__init__(
            400,
            f"invalid input: {self.summary}",
            [{"field": path, "error": message} for path, message in errors],
        )

    def __str__(self) -> str:
        return self.summary


class SaveConflict(Refusal):
    """Someone saved the dashboard after the version the editor started from (409)."""

    def __init__(self, version: DashboardVersion) -> None:
        self.version = version
        self.author = version.author.get_username() if version.author else "(unknown)"
        message = (
            f"{self.author} saved version {version.number} at "
            f"{version.created_at:%Y-%m-%d %H:%M:%S} UTC while you were editing"
        )
        super().__init__(
            409,
            message,
            [{"field": "base_version", "error": message}],
            extra={
                "conflict": {
                    "version": version.number,
                    "author": self.author,
                    "saved_at": version.created_at.isoformat(),
                }
            },
        )


@dataclass(frozen=True)
class SavedDashboard:
    """The outcome of a save: the dashboard, its new version number and its document."""

    dashboard: Dashboard
    version: int
    document: dict[str, Any]


def _validation_errors(exc: ValidationError, prefix: str) -> list[tuple[str, str]]:
    if hasattr(exc, "error_dict"):
        return [
            (prefix + name if name != "__all__" else prefix.rstrip(".") or "document", message)
            for name, errors in exc.error_dict.items()
            for error in errors
            for message in error.messages
        ]
    return [(prefix.rstrip(".") or "document", message) for message in exc.messages]


def build_panel(*, dashboard: Dashboard, data: Any, where: str = "panel") -> Panel:
    """Return an unsaved panel of `dashboard` from `data`, checked by the model, or refuse."""
    if not isinstance(data, dict):
        raise EditRefused([(where, "must be an object")])
    fields = {key: value for key, value in data.items() if key != "id"}
    unknown = sorted(set(fields) - set(PANEL_FIELDS))
    if unknown:
        raise EditRefused([(where, f"unknown keys {unknown}; allowed: {list(PANEL_FIELDS)}")])
    panel = Panel(dashboard=dashboard, **fields)
    try:
        panel.full_clean(exclude=["dashboard"])
    except ValidationError as exc:
        raise EditRefused(_validation_errors(exc, f"{where}.")) from exc
    return panel


def _apply_settings(dashboard: Dashboard, document: dict[str, Any]) -> list[tuple[str, str]]:
    unknown = sorted(set(document) - set(EDITABLE_FIELDS) - {"panels"})
    if unknown:
        return [("document", f"unknown keys {unknown}; allowed: {[*EDITABLE_FIELDS, 'panels']}")]
    for name in EDITABLE_FIELDS:
        if name in document:
            setattr(dashboard, name, document[name])
    try:
        # The slug is not edited here (create_dashboard picks a free one after the checks).
        dashboard.full_clean(validate_unique=False, exclude=["project", "slug"])
    except ValidationError as exc:
        return _validation_errors(exc, "")
    return []


def validate_document(*, dashboard: Dashboard, document: Any) -> list[Panel]:
    """Apply `document` to `dashboard` in memory and return its panels, or refuse naming
    every field at fault (`title`, `variables`, `panels[2].filters`)."""
    if not isinstance(document, dict):
        raise EditRefused([("document", "must be a JSON object")])
    errors = _apply_settings(dashboard, document)
    panels_data = document.get("panels", [])
    if not isinstance(panels_data, list) or len(panels_data) > MAX_PANELS:
        errors.append(("panels", f"must be a list of at most {MAX_PANELS} objects"))
        panels_data = []
    panels: list[Panel] = []
    for index, data in enumerate(panels_data):
        try:
            panel = build_panel(dashboard=dashboard, data=data, where=f"panels[{index}]")
        except EditRefused as refused:
            errors.extend(refused.errors)
            continue
        panel_id = data.get("id")
        panel.pk = (
            panel_id if isinstance(panel_id, int) and not isinstance(panel_id, bool) else None
        )
        panels.append(panel)
    if errors:
        raise EditRefused(errors)
    return panels


def _write_panels(dashboard: Dashboard, panels: list[Panel]) -> list[Panel]:
    """Update panels that keep their id, create the new ones, delete the ones left out."""
    existing = set(dashboard.panels.values_list("pk", flat=True))
    kept = [panel for panel in panels if panel.pk in existing]
    created = [panel for panel in panels if panel.pk not in existing]
    for panel in created:
        panel.pk = None
    dashboard.panels.exclude(pk__in=[panel.pk for panel in kept]).delete()
    if kept:
        Panel.objects.bulk_update(kept, list(PANEL_FIELDS))
    if created:
        Panel.objects.bulk_create(created)
    # Grid order, as the pages list them, with the ids the rows now have.
    return sorted(panels, key=lambda panel: (panel.y, panel.x, panel.pk or 0))


def _record_version(
    *, dashboard: Dashboard, panels: list[Panel], author: Any, message: str, number: int
) -> SavedDashboard:
    document = dashboard_document(dashboard=dashboard, panels=panels)
    DashboardVersion.objects.create(
        dashboard=dashboard,
        number=number,
        author=author if getattr(author, "is_authenticated", False) else None,
        message=message[:MESSAGE_MAX],
        document=document,
    )
    return SavedDashboard(dashboard=dashboard, version=number, document=document)


def save_dashboard(
    *, dashboard: Dashboard, document: Any, base_version: int, author: Any, message: str = ""
) -> SavedDashboard:
    """Save `document` over `dashboard` as a new version, or refuse with EditRefused (bad
    input, nothing written) or SaveConflict (saved by someone else since `base_version`)."""
    with transaction.atomic():
        # The row lock serialises saves of one dashboard: the second waits, then sees
        # the first one's version and is refused.
        locked = Dashboard.objects.select_for_update().get(pk=dashboard.pk)
        latest = latest_version(dashboard=locked)
        current = latest.number if latest else 0
        if base_version != current and latest is not None:
            raise SaveConflict(latest)
        panels = validate_document(dashboard=locked, document=document)
        if latest is None:
            # A dashboard made before versions existed (admin, import): keep its state
            # as version 1 so the history can restore it.
            _record_version(
                dashboard=locked,
                panels=list(locked.panels.all()),
                author=None,
                message="state before the first save in the editor",
                number=1,
            )
            current = 1
        locked.save()
        saved = _write_panels(locked, panels)
        result = _record_version(
            dashboard=locked, panels=saved, author=author, message=message, number=current + 1
        )
    logger.info(
        "dashboard %s saved as version %d with %d panels", locked.pk, result.version, len(saved)
    )
    return result


def _free_slug(project: Project, title: str) -> str:
    base = (slugify(title) or "dashboard")[:56]
    taken = set(
        Dashboard.objects.filter(project=project, slug__startswith=base).values_list(
            "slug", flat=True
        )
    )
    if base not in taken:
        return base
    return next(f"{base}-{n}" for n in range(2, len(taken) + 3) if f"{base}-{n}" not in taken)


def create_dashboard(
    *, project: Project, title: Any, author: Any, document: Any = None, message: str = "created"
) -> SavedDashboard:
    """Create a dashboard titled `title` (from `document` when given: a copy) as version 1."""
    body = dict(document) if isinstance(document, dict) else {}
    if document is not None and not isinstance(document, dict):
        raise EditRefused([("document", "must be a JSON object")])
    body["title"] = title
    if isinstance(body.get("panels"), list):
        # A copy's panels are new panels of the new dashboard.
        body["panels"] = [
            {key: value for key, value in panel.items() if key != "id"}
            if isinstance(panel, dict)
            else panel
            for panel in body["panels"]
        ]
    dashboard = Dashboard(project=project)
    panels = validate_document(dashboard=dashboard, document=body)
    with transaction.atomic():
        dashboard.slug = _free_slug(project, dashboard.title)
        dashboard.save()
        saved = _write_panels(dashboard, panels)
        result = _record_version(
            dashboard=dashboard, panels=saved, author=author, message=message, number=1
        )
    logger.info("dashboard %s created in project %s", dashboard.pk, project.pk)
    return result


def duplicate_dashboard(*, dashboard: Dashboard, author: Any) -> SavedDashboard:
    """Create a copy of `dashboard` (settings and panels) titled "<title> (copy)"."""
    document = dashboard_document(dashboard=dashboard, panels=list(dashboard.panels.all()))
    title = f"{dashboard.title} (copy)"[:200]
    return create_dashboard(
        project=dashboard.project,
        title=title,
        author=author,
        document=document,
        message=f"copy of {dashboard.title}",
    )


def restore_version(
    *, dashboard: Dashboard, number: int, base_version: int, author: Any
) -> SavedDashboard:
    """Save the document of version `number` as a new version (history is never rewritten)."""
    version = DashboardVersion.objects.filter(dashboard=dashboard, number=number).first()
    if version is None:
        raise EditRefused([("version", f"version {number} does not exist")])
    return save_dashboard(
        dashboard=dashboard,
        document=version.document,
        base_version=base_version,
        author=author,
        message=f"restored version {number}",
    )


def add_panel(*, dashboard: Dashboard, panel: Any, author: Any, message: str) -> SavedDashboard:
    """Append `panel` below the dashboard's panels and save that as a new version."""
    panels = list(dashboard.panels.all())
    document = dashboard_document(dashboard=dashboard, panels=panels)
    if not isinstance(panel, dict):
        raise EditRefused([("panel", "must be an object")])
    bottom = max((p.y + p.height for p in panels), default=0)
    document["panels"].append({**panel, "x": 0, "y": bottom})
    latest = latest_version(dashboard=dashboard)
    return save_dashboard(
        dashboard=dashboard,
        document=document,
        base_version=latest.number if latest else 0,
        author=author,
        message=message,
    )


def delete_dashboard(*, dashboard: Dashboard) -> None:
    """Delete `dashboard` with its panels and versions."""
    dashboard_id = dashboard.pk
    dashboard.delete()
    logger.info("dashboard %s deleted", dashboard_id)
