"""/healthz: 200 when PostgreSQL, the extensions, Redis and a worker are well; 503 naming the failure."""

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import override_settings

from analytics.health import record_worker_heartbeat
from tests.helpers import free_port, port_open


@pytest.fixture
def private_redis(tmp_path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of this test's own, so stopping it harms no other test."""
    port = free_port()
    process = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not port_open(port):
        assert time.monotonic() < deadline, "private Redis did not start"
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", process
    process.kill()
    process.wait()


def redis_settings(url: str) -> dict[str, object]:
    return {
        "REDIS_URL": url,
        "CACHES": {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
            }
        },
    }


@pytest.mark.django_db
def test_healthy_platform_is_200_with_versions(client, celery_worker):
    """With the real stack and a running worker, /healthz is 200 and reports versions and edition."""
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["failing"] == []
    checks = body["checks"]
    assert checks["postgres"]["version"].startswith("15")
    assert checks["extensions"]["timescaledb"]
    assert checks["extensions"]["vector"]
    assert checks["extensions"]["timescaledb_edition"] in {"apache", "timescale"}
    assert checks["redis"]["version"]
    assert checks["rollups"]["installed"] == checks["extensions"]["timescaledb_edition"]
    assert set(checks["rollups"]["watermarks"]) == {"1m", "1h", "1d"}
    assert checks["celery"]["last_seen_seconds_ago"] < 120


@pytest.mark.django_db
def test_stopped_redis_is_503_naming_redis(client, private_redis):
    """Stopping Redis turns /healthz into a 503 that names Redis (and the worker it hides)."""
    url, process = private_redis
    with override_settings(**redis_settings(url)):
        record_worker_heartbeat(hostname="test-worker")
        assert client.get("/healthz").status_code == 200
        process.kill()
        process.wait()
        response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["failing"] == ["redis", "celery"]
    assert "Connection refused" in body["checks"]["redis"]["error"]
    assert body["checks"]["postgres"]["ok"] is True


@pytest.mark.django_db
def test_silent_worker_is_503_naming_celery(client, private_redis):
    """No heartbeat, or one older than the limit, fails the celery check."""
    url, _ = private_redis
    with override_settings(**redis_settings(url), CELERY_WORKER_STALE_AFTER=60):
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["failing"] == ["celery"]
        assert response.json()["checks"]["celery"]["error"] == "no Celery worker has answered yet"
        record_worker_heartbeat(hostname="old")
        with override_settings(CELERY_WORKER_STALE_AFTER=-1):
            stale = client.get("/healthz").json()
    assert stale["failing"] == ["celery"]
    assert stale["checks"]["celery"]["error"].startswith("no Celery worker has answered for")


@pytest.mark.django_db(transaction=True)
def test_unreachable_database_is_503_naming_postgres(client, private_redis):
    """When PostgreSQL cannot be reached, /healthz answers 503 naming it, quickly."""
    url, _ = private_redis
    original_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())
    try:
        with override_settings(**redis_settings(url)):
            record_worker_heartbeat(hostname="w")
            started = time.monotonic()
            response = client.get("/healthz")
            elapsed = time.monotonic() - started
    finally:
        connection.close()
        connection.settings_dict["PORT"] = original_port
    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == ["postgres", "extensions", "rollups"]
    assert "Connection refused" in body["checks"]["postgres"]["error"]
    assert elapsed < 10
