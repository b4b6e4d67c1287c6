"""The database router: ORM reads follow `replicas.read_alias`, everything else the primary."""

from typing import Any

from analytics.db.replicas import PRIMARY, read_alias


class ReplicaRouter:
    """Send ORM reads of a read scope to a caught-up replica, writes and migrations to the primary.

    Every alias is the same database (streamed copies), so relations between objects
    read from different aliases are allowed.
    """

    def db_for_read(self, model: type[Any], **hints: Any) -> str:
        return read_alias()

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        return PRIMARY

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == PRIMARY
