"""Writes of tenants and credentials: projects, memberships and API keys."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from analytics.models import ApiKey, Membership, Project

KEY_PREFIX_MARK = "ak"
# last_used_at is written at most this often per key, so the ingest hot path does not
# turn every request into an UPDATE.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key: `secret` is shown once and never stored."""

    api_key: ApiKey
    secret: str


def hash_secret(secret: str) -> str:
    """Return the stored form of a key's secret.

    Keys carry 256 random bits, so a fast hash is as safe as a slow one and keeps
    authentication off the ingest profile.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(*, project: Project, name: str, scopes: list[str]) -> IssuedKey:
    """Create a key for `project` with `scopes` and return it with its one-time secret."""
    valid = set(ApiKey.Scope.values)
    unknown = [scope for scope in scopes if scope not in valid]
    if not scopes or unknown:
        raise ValueError(f"scopes must be a non-empty subset of {sorted(valid)}, got {scopes!r}")
    prefix = secrets.token_hex(4)
    secret = f"{KEY_PREFIX_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        project=project,
        name=name,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        scopes=sorted(set(scopes)),
    )
    return IssuedKey(api_key=api_key, secret=secret)


def revoke_api_key(*, api_key: ApiKey) -> None:
    """Revoke `api_key` at once; requests that carry it get 401 from then on."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def touch_api_key(*, api_key: ApiKey) -> None:
    """Record that `api_key` was used, at most once per LAST_USED_RESOLUTION."""
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


@transaction.atomic
def ensure_project(*, slug: str, name: str) -> Project:
    """Return the project `slug`, creating it with `name` when it does not exist."""
    project, _ = Project.objects.get_or_create(slug=slug, defaults={"name": name})
    return project


def add_member(*, project: Project, user: User, role: str = Membership.Role.VIEWER) -> Membership:
    """Give `user` access to `project` with `role` (idempotent; updates the role)."""
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership
