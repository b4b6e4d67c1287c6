"""Scope and project rules shared by every API view."""

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from analytics.authentication import ApiKeyUser
from analytics.models import ApiKey, Project
from analytics.platform_metrics import note_request_project
from analytics.refusals import invalid


class _RequireScope(BasePermission):
    """Allow API keys that carry `scope`; logged-in members may read, never write by session."""

    scope: str = ""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if isinstance(user, ApiKeyUser):
            if not user.api_key.has_scope(self.scope):
                raise exceptions.PermissionDenied(
                    f"this API key lacks the '{self.scope}' scope (it has: {', '.join(user.api_key.scopes)})"
                )
            return True
        if not user or not user.is_authenticated:
            raise exceptions.NotAuthenticated(
                "no API key: send the header 'Authorization: Bearer <key>'"
            )
        if self.scope != ApiKey.Scope.READ:
            raise exceptions.PermissionDenied(
                f"'{self.scope}' requests need an API key with the '{self.scope}' scope"
            )
        return True


class ReadScope(_RequireScope):
    scope = ApiKey.Scope.READ


class WriteScope(_RequireScope):
    scope = ApiKey.Scope.WRITE


def request_project(request: Request, slug: str | None = None) -> Project:
    """Return the project a request acts on, or raise 403/400 saying why.

    With an API key it is the key's project; a `slug` naming any other project is
    refused with 403 whether or not that project exists, so slugs cannot be probed.
    A logged-in user acts on `slug` (or `?project=`), which must be one of theirs.
    """
    user: Any = request.user
    if isinstance(user, ApiKeyUser):
        if slug is not None and slug != user.project.slug:
            raise exceptions.PermissionDenied(
                f"this API key belongs to another project, not '{slug}'"
            )
        return user.project
    slug = slug or request.query_params.get("project")
    projects = Project.objects.filter(memberships__user=user)
    if slug is None:
        mine = list(projects[:2])
        if len(mine) == 1:
            note_request_project(request, mine[0].id)
            return mine[0]
        raise invalid("project", "name the project with ?project=<slug>")
    # PostgreSQL text cannot hold NUL: no project has such a slug, and asking would fail.
    project = projects.filter(slug=slug).first() if "\x00" not in slug else None
    if project is None:
        raise exceptions.PermissionDenied(f"you are not a member of project '{slug}'")
    note_request_project(request, project.id)
    return project
