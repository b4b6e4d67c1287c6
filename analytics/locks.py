"""Transaction-scoped PostgreSQL advisory locks named by any tuple of values."""

import hashlib
from typing import Any


def lock_id(*parts: object) -> int:
    """Return a signed 64-bit id for `parts` (PostgreSQL's bigint advisory lock key)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def advisory_xact_lock(cursor: Any, *parts: object) -> None:
    """Wait for, then hold until commit or rollback, the lock named by `parts`."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id(*parts)])
