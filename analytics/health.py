"""Health of the platform's parts, for /healthz, and the Celery worker heartbeat."""

import time
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from analytics.db.replicas import replica_report
from analytics.queries.rollups import rollup_status
from analytics.redis_client import redis_client
from analytics.timescale import timescaledb_edition

HEARTBEAT_KEY = "celery:worker-heartbeat"
REQUIRED_EXTENSIONS = ("timescaledb", "vector")


@dataclass
class Check:
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthReport:
    ok: bool
    failing: list[str]
    checks: dict[str, Check]

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "fail",
            "failing": self.failing,
            "checks": {name: {"ok": c.ok, **c.detail} for name, c in self.checks.items()},
        }


def record_worker_heartbeat(*, hostname: str) -> dict[str, Any]:
    """Store the time a Celery worker last answered; return what was stored."""
    beat = {"hostname": hostname, "at": time.time()}
    cache.set(HEARTBEAT_KEY, beat, timeout=None)
    return beat


def _check_postgres() -> tuple[Check, Check]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            row = cursor.fetchone()
            cursor.execute(
                "SELECT extname, extversion FROM pg_extension WHERE extname = ANY(%s)",
                [list(REQUIRED_EXTENSIONS)],
            )
            versions = dict(cursor.fetchall())
        edition = timescaledb_edition()
    except Exception as exc:  # any driver error means the database is unusable
        connection.close()
        return Check(False, {"error": str(exc).strip()}), Check(
            False, {"error": "database unreachable"}
        )
    missing = [name for name in REQUIRED_EXTENSIONS if name not in versions]
    extensions = Check(
        not missing,
        {
            "timescaledb": versions.get("timescaledb"),
            "timescaledb_edition": edition,
            "vector": versions.get("vector"),
            **({"error": f"missing extension(s): {', '.join(missing)}"} if missing else {}),
        },
    )
    return Check(True, {"version": row[0] if row else None}), extensions


def _check_redis() -> Check:
    client = redis_client()
    try:
        client.ping()
        return Check(True, {"version": client.info("server").get("redis_version")})
    except redis.RedisError as exc:
        return Check(False, {"error": str(exc)})


def _check_celery(redis_ok: bool) -> Check:
    if not redis_ok:
        return Check(False, {"error": "unknown: Redis is unreachable"})
    beat = cache.get(HEARTBEAT_KEY)
    if not beat:
        return Check(False, {"error": "no Celery worker has answered yet", "last_seen": None})
    age = time.time() - float(beat["at"])
    detail = {"last_seen_seconds_ago": round(age, 1), "hostname": beat["hostname"]}
    if age > settings.CELERY_WORKER_STALE_AFTER:
        detail["error"] = f"no Celery worker has answered for {age:.0f} s"
        return Check(False, detail)
    return Check(True, detail)


def _check_rollups(edition: str | None) -> Check:
    """Report the rollups; only missing ones fail (a backlog is slow, not wrong)."""
    if edition is None:
        return Check(False, {"error": "database unreachable"})
    try:
        status = rollup_status(server_edition=edition)
    except Exception as exc:  # missing tables after a failed migration, say
        connection.close()
        return Check(False, {"error": f"rollups unavailable: {str(exc).strip()}"})
    detail: dict[str, Any] = {
        "installed": status.installed,
        "watermarks": {t: m.isoformat() if m else None for t, m in status.watermarks.items()},
        "pending_minutes": status.pending_minutes,
        "oldest_pending": status.oldest_pending.isoformat() if status.oldest_pending else None,
    }
    if status.installed != status.server_edition:
        detail["warning"] = (
            f"rollups are the {status.installed} kind on a {status.server_edition} server;"
            " run manage.py rebuild_rollups"
        )
    return Check(True, detail)


def _check_replicas() -> Check:
    """Report each replica's lag and whether it serves reads; never fails (the primary answers)."""
    return Check(True, {"replicas": replica_report()})


def platform_health() -> HealthReport:
    """Check PostgreSQL, its extensions, Redis, the Celery workers, and any read replicas."""
    postgres, extensions = _check_postgres()
    redis_check = _check_redis()
    checks = {
        "postgres": postgres,
        "extensions": extensions,
        "rollups": _check_rollups(extensions.detail.get("timescaledb_edition")),
        "redis": redis_check,
        "celery": _check_celery(redis_check.ok),
    }
    if settings.DATABASE_REPLICA_URLS:
        checks["replicas"] = _check_replicas()
    failing = [name for name, check in checks.items() if not check.ok]
    return HealthReport(ok=not failing, failing=failing, checks=checks)
