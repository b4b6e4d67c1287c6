"""Read replicas: pick one caught up for the caller, else the primary; remember writes' WAL positions.

The rules, after GitLab's database load balancing and two of its bugs:

- A project's acknowledged write records the primary's WAL insert position in Redis
  (a per-project maximum, kept `DATABASE_REPLICA_STICKY_S`). A read for that project
  may use a replica only when that very replica has replayed past it, checked on the
  replica when it is chosen. Another replica having caught up says nothing about this
  one (gitlab#413203), so the check is never shared between replicas.
- The replicas are the fixed list of the settings, and one request uses the one chosen
  at its first read for all of its reads: no host appears or disappears mid-request
  (gitlab!49294), and a page never mixes two replicas' views of the data.
- A replica further behind than `DATABASE_REPLICA_MAX_LAG_S`, or that does not answer,
  is skipped without an error reaching the caller; a down one is asked again after
  `RETRY_DOWN_S`, so it comes back on its own when it recovers.
- When anything is in doubt (Redis unreachable, no project known yet, a transaction
  open on the primary) the read goes to the primary: slower, never stale.
"""

import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from analytics.platform_metrics import request_project_id
from analytics.redis_client import redis_client

logger = logging.getLogger(__name__)

PRIMARY = DEFAULT_DB_ALIAS
# A replica that failed to answer is left alone this long before it is asked again.
RETRY_DOWN_S = 5.0
_LSN_KEY = "analytics:replica-lsn:{}"
# Keep the larger of the stored and the new position: two requests of one project may
# record in either order, and a smaller value must never hide the larger write.
_RECORD_MAX = """
local current = redis.call('GET', KEYS[1])
if (not current) or current < ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
    redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""
# Lag is 0 while the replica has replayed all it received (an idle primary sends
# nothing, and the replica is then fully caught up), else the age of the last
# transaction it replayed.
_STATUS_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END"
)


def replica_aliases() -> list[str]:
    """Return the database aliases of the configured replicas (none by default)."""
    return [alias for alias in settings.DATABASES if alias.startswith("replica")]


def lsn_to_int(lsn: str) -> int:
    """Return a PostgreSQL LSN ('16/B374D848') as one comparable integer."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def int_to_lsn(value: int) -> str:
    """Return the PostgreSQL spelling of an LSN held as an integer."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def _lsn_key(value: int) -> str:
    # Fixed-width hex compares as text in Redis's Lua exactly as the numbers compare.
    return f"{value:016x}"


@dataclass(frozen=True)
class ReplicaStatus:
    """What one replica said when asked, or why it did not answer."""

    alias: str
    replay_lsn: int | None
    lag_seconds: float | None
    error: str | None = None

    @property
    def usable(self) -> bool:
        """Whether it may serve reads that need no particular write (lag within the limit)."""
        return (
            self.error is None
            and self.replay_lsn is not None
            and self.lag_seconds is not None
            and self.lag_seconds <= settings.DATABASE_REPLICA_MAX_LAG_S
        )

    def has_replayed(self, lsn: int | None) -> bool:
        """Whether it is usable and has replayed past `lsn` (None: no write to wait for)."""
        return self.usable and (lsn is None or (self.replay_lsn or 0) >= lsn)


# Process-local memory of replicas that did not answer: a cache, never shared state.
_down_until: dict[str, float] = {}


def replica_status(alias: str, *, fresh: bool = False) -> ReplicaStatus:
    """Ask the replica `alias` how far it has replayed and how far behind it is.

    A replica that did not answer within `RETRY_DOWN_S` is not asked again (so a dead
    host costs a request nothing) unless `fresh`.
    """
    if not fresh and _down_until.get(alias, 0.0) > time.monotonic():
        return ReplicaStatus(alias, None, None, "did not answer recently")
    database: BaseDatabaseWrapper = connections[alias]
    if database.settings_dict is connections[PRIMARY].settings_dict:
        # Django's test runner made it a mirror of the primary (TEST["MIRROR"]).
        return ReplicaStatus(alias, None, None, "a test mirror of the primary")
    try:
        with database.cursor() as cursor:
            cursor.execute(_STATUS_SQL)
            in_recovery, replay_lsn, lag = cursor.fetchone()
    except (DatabaseError, InterfaceError) as exc:
        # A dead or restarting replica is an expected event here, not an error for the
        # caller: the read goes elsewhere, and the replica is asked again later.
        database.close()
        _down_until[alias] = time.monotonic() + RETRY_DOWN_S
        logger.warning("replica %s skipped: %s", alias, str(exc).strip())
        return ReplicaStatus(alias, None, None, str(exc).strip() or type(exc).__name__)
    _down_until.pop(alias, None)
    if not in_recovery:
        return ReplicaStatus(alias, None, None, "not a replica (not in recovery)")
    return ReplicaStatus(
        alias,
        lsn_to_int(replay_lsn) if replay_lsn else None,
        float(lag) if lag is not None else None,
    )


def replica_report() -> dict[str, dict[str, Any]]:
    """Return, per replica, where it is, how far behind, and whether reads use it now."""
    report: dict[str, dict[str, Any]] = {}
    for alias in replica_aliases():
        database = settings.DATABASES[alias]
        status = replica_status(alias, fresh=True)
        report[alias] = {
            "host": f"{database.get('HOST')}:{database.get('PORT')}",
            "lag_seconds": None if status.lag_seconds is None else round(status.lag_seconds, 3),
            "replay_lsn": None if status.replay_lsn is None else int_to_lsn(status.replay_lsn),
            "in_use": status.usable,
            **({"error": status.error} if status.error else {}),
        }
    return report


# --- read-your-writes ------------------------------------------------------------------


def record_project_write(*, project_id: int) -> int | None:
    """Record the primary's WAL position after `project_id`'s write; return it.

    Call after the write committed and before it is acknowledged. Does nothing (and
    returns None) without replicas: one server reads its own writes anyway.
    """
    if not replica_aliases():
        return None
    with connections[PRIMARY].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        (lsn,) = cursor.fetchone()
    position = lsn_to_int(lsn)
    try:
        redis_client().eval(
            _RECORD_MAX,
            1,
            _LSN_KEY.format(project_id),
            _lsn_key(position),
            settings.DATABASE_REPLICA_STICKY_S,
        )
    except redis.RedisError:
        # The write is committed and must be acknowledged; its project may read from a
        # replica that has not replayed it until the replicas catch up (bounded by the
        # lag limit). Logged with its traceback so an outage is seen.
        logger.exception("could not record project %s's write position in Redis", project_id)
    return position


class _Unknown(Exception):
    """The project's last write position could not be read."""


def _project_write_lsn(project_id: int) -> int | None:
    try:
        raw = redis_client().get(_LSN_KEY.format(project_id))
    except redis.RedisError as exc:
        raise _Unknown(str(exc)) from exc
    if raw is None:
        return None
    return int(raw.decode() if isinstance(raw, bytes) else str(raw), 16)


def choose_database(*, project_id: int) -> str:
    """Return a replica caught up for `project_id`'s own writes and within the lag limit, else the primary."""
    aliases = replica_aliases()
    if not aliases:
        return PRIMARY
    try:
        needed = _project_write_lsn(project_id)
    except _Unknown as exc:
        logger.warning("reads of project %s use the primary: Redis: %s", project_id, exc)
        return PRIMARY
    # Random order spreads the load; each candidate is judged on its own replay position.
    for alias in random.sample(aliases, len(aliases)):
        if replica_status(alias).has_replayed(needed):
            return alias
    return PRIMARY


# --- the request's read scope ---------------------------------------------------------


@dataclass
class ReadScope:
    """A request, whether its reads may go to a replica, and the database chosen for it."""

    request: Any
    enabled: bool = False
    alias: str | None = None


_scope: contextvars.ContextVar[ReadScope | None] = contextvars.ContextVar(
    "analytics_read_scope", default=None
)


@contextlib.contextmanager
def read_scope(request: Any) -> Iterator[ReadScope]:
    """Hold `request`'s read scope (disabled until `enable` says its view only reads)."""
    scope = ReadScope(request)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def read_alias() -> str:
    """Return the database the current read should use.

    Outside an enabled read scope, before the project is known, or inside a transaction
    on the primary (which may have written), that is the primary; otherwise the
    database chosen at the request's first read, kept for the rest of it.
    """
    scope = _scope.get()
    if scope is None or not scope.enabled or connections[PRIMARY].in_atomic_block:
        return PRIMARY
    if scope.alias is None:
        project_id = request_project_id(scope.request)
        if project_id is None:
            return PRIMARY
        scope.alias = choose_database(project_id=project_id)
    return scope.alias


def read_connection() -> BaseDatabaseWrapper:
    """Return the connection the current read should use (see `read_alias`)."""
    return connections[read_alias()]


def current_scope() -> ReadScope | None:
    """Return the read scope of the request being served, if any."""
    return _scope.get()
