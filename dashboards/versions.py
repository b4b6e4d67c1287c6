"""Reads of dashboard versions: the editor's document, the history list and diffs.

A version's document is the export document (`dashboards.services.export_dashboard`)
with each panel's id, so a diff can tell a moved panel from a removed and added one.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dashboards.models import Dashboard, DashboardVersion, Panel
from dashboards.services import DASHBOARD_FIELDS, PANEL_FIELDS

# The settings an editor changes (the slug stays: it is in every link to the dashboard).
EDITABLE_FIELDS = tuple(name for name in DASHBOARD_FIELDS if name != "slug")


def panel_document(panel: Panel) -> dict[str, Any]:
    """Return one panel as the editor and the versions hold it (its id plus every field)."""
    return {"id": panel.pk, **{name: getattr(panel, name) for name in PANEL_FIELDS}}


def dashboard_document(*, dashboard: Dashboard, panels: list[Panel]) -> dict[str, Any]:
    """Return the editable document of `dashboard` with `panels` (in grid order)."""
    document: dict[str, Any] = {name: getattr(dashboard, name) for name in EDITABLE_FIELDS}
    document["panels"] = [panel_document(panel) for panel in panels]
    return document


@dataclass(frozen=True)
class VersionInfo:
    """One entry of a dashboard's history."""

    number: int
    author: str
    created_at: datetime
    message: str
    panel_count: int


@dataclass(frozen=True)
class EditorState:
    """What the editor starts from: the document and the version it is based on."""

    document: dict[str, Any]
    version: int
    saved_by: str
    saved_at: datetime | None


def _author(version: DashboardVersion) -> str:
    return version.author.get_username() if version.author is not None else "(unknown)"


def latest_version(*, dashboard: Dashboard) -> DashboardVersion | None:
    """Return the newest saved version of `dashboard`, with its author, or None."""
    return (
        DashboardVersion.objects.filter(dashboard=dashboard)
        .select_related("author")
        .order_by("-number")
        .first()
    )


def editor_state(*, dashboard: Dashboard, panels: list[Panel]) -> EditorState:
    """Return the document an editor opens and the version number its save must name."""
    latest = latest_version(dashboard=dashboard)
    return EditorState(
        document=dashboard_document(dashboard=dashboard, panels=panels),
        version=latest.number if latest else 0,
        saved_by=_author(latest) if latest else "",
        saved_at=latest.created_at if latest else None,
    )


def version_history(*, dashboard: Dashboard) -> list[VersionInfo]:
    """Return every version of `dashboard`, newest first."""
    versions = (
        DashboardVersion.objects.filter(dashboard=dashboard)
        .select_related("author")
        .order_by("-number")
    )
    return [
        VersionInfo(
            number=version.number,
            author=_author(version),
            created_at=version.created_at,
            message=version.message,
            panel_count=len(version.document.get("panels", [])),
        )
        for version in versions
    ]


def version_document(*, dashboard: Dashboard, number: int) -> dict[str, Any] | None:
    """Return the document of version `number` of `dashboard`, or None if there is none."""
    version = DashboardVersion.objects.filter(dashboard=dashboard, number=number).first()
    return version.document if version is not None else None


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class PanelChange:
    """A panel present in both versions whose fields differ."""

    id: int
    title: str
    changes: list[FieldChange]


@dataclass(frozen=True)
class VersionDiff:
    """What changed from version `older` to version `newer`."""

    older: int
    newer: int
    dashboard: list[FieldChange] = field(default_factory=list)
    added: list[str] = field(default_factory=list)  # panel titles
    removed: list[str] = field(default_factory=list)
    changed: list[PanelChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.dashboard or self.added or self.removed or self.changed)


def _changes(
    before: dict[str, Any], after: dict[str, Any], names: tuple[str, ...]
) -> list[FieldChange]:
    return [
        FieldChange(name, before.get(name), after.get(name))
        for name in names
        if before.get(name) != after.get(name)
    ]


def diff_documents(
    *, older: dict[str, Any], newer: dict[str, Any], older_number: int, newer_number: int
) -> VersionDiff:
    """Return the dashboard fields and panels that differ between two documents."""
    before = {panel.get("id"): panel for panel in older.get("panels", [])}
    after = {panel.get("id"): panel for panel in newer.get("panels", [])}
    changed = []
    for panel_id, panel in after.items():
        if panel_id in before:
            changes = _changes(before[panel_id], panel, PANEL_FIELDS)
            if changes:
                changed.append(PanelChange(panel_id, str(panel.get("title")), changes))
    return VersionDiff(
        older=older_number,
        newer=newer_number,
        dashboard=_changes(older, newer, EDITABLE_FIELDS),
        added=[str(p.get("title")) for i, p in after.items() if i not in before],
        removed=[str(p.get("title")) for i, p in before.items() if i not in after],
        changed=changed,
    )


def version_diff(*, dashboard: Dashboard, older: int, newer: int) -> VersionDiff | None:
    """Return the difference between two versions of `dashboard` (None if one is missing)."""
    documents = dict(
        DashboardVersion.objects.filter(dashboard=dashboard, number__in=[older, newer]).values_list(
            "number", "document"
        )
    )
    if older not in documents or newer not in documents:
        return None
    return diff_documents(
        older=documents[older], newer=documents[newer], older_number=older, newer_number=newer
    )
