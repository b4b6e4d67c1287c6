"""Who may do what with a project's dashboards: members read, editors and admins edit.

One query answers both "may this user see it" and "may they change it", so every edit
endpoint tells a stranger 404 (the dashboard is not theirs to know about) and a
viewer 403 (they know it, they may not change it).
"""

from dataclasses import dataclass
from typing import Any

from django.db.models import F

from analytics.models import Membership, Project
from dashboards.models import Dashboard

EDIT_ROLES = frozenset({Membership.Role.EDITOR, Membership.Role.ADMIN})


@dataclass(frozen=True)
class DashboardAccess:
    """A dashboard the user is a member of, and whether their role lets them edit it."""

    dashboard: Dashboard
    role: str

    @property
    def can_edit(self) -> bool:
        return self.role in EDIT_ROLES


@dataclass(frozen=True)
class ProjectAccess:
    """A project the user is a member of, with their role there."""

    project: Project
    role: str

    @property
    def can_edit(self) -> bool:
        return self.role in EDIT_ROLES


def dashboard_access(*, user: Any, project_slug: str, slug: str) -> DashboardAccess | None:
    """Return the dashboard and the user's role in its project, or None if not a member."""
    if "\x00" in project_slug or "\x00" in slug:
        return None
    dashboard = (
        Dashboard.objects.filter(
            project__slug=project_slug, slug=slug, project__memberships__user=user
        )
        # The annotation reuses the membership join of the filter: the user's own role.
        .annotate(member_role=F("project__memberships__role"))
        .select_related("project")
        .first()
    )
    if dashboard is None:
        return None
    return DashboardAccess(dashboard=dashboard, role=dashboard.member_role)


def project_access(*, user: Any, project_slug: str) -> ProjectAccess | None:
    """Return the project and the user's role there, or None if not a member."""
    if "\x00" in project_slug:
        return None
    membership = (
        Membership.objects.filter(project__slug=project_slug, user=user)
        .select_related("project")
        .first()
    )
    if membership is None:
        return None
    return ProjectAccess(project=membership.project, role=membership.role)


def editable_projects(*, user: Any) -> list[Project]:
    """Return the projects where the user may create dashboards (editor or admin)."""
    return list(
        Project.objects.filter(
            memberships__user=user, memberships__role__in=sorted(EDIT_ROLES)
        ).order_by("name")
    )


def editable_dashboards(*, user: Any, project: Project) -> list[Dashboard]:
    """Return the dashboards of `project` the user may add panels to (empty for viewers)."""
    return list(
        Dashboard.objects.filter(
            project=project,
            project__memberships__user=user,
            project__memberships__role__in=sorted(EDIT_ROLES),
        ).order_by("title")
    )
