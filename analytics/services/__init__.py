"""Writes of the core domain, split by sub-domain: tenants (projects, keys) and points."""

from analytics.services.tenants import (
    KEY_PREFIX_MARK,
    IssuedKey,
    add_member,
    create_api_key,
    ensure_project,
    hash_secret,
    revoke_api_key,
    touch_api_key,
)

__all__ = [
    "KEY_PREFIX_MARK",
    "IssuedKey",
    "add_member",
    "create_api_key",
    "ensure_project",
    "hash_secret",
    "revoke_api_key",
    "touch_api_key",
]
