"""docker-compose.yml cannot start here, so its structure is checked instead."""

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from analytics.settings.environment import VARIABLES

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "beat", "gpu-worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_services_and_images(compose):
    """The stack has db and db-replica (timescaledb-ha), pgbouncer, redis, web, worker, beat, gpu-worker."""
    services = compose["services"]
    assert set(services) == {
        "db",
        "db-replica",
        "pgbouncer",
        "redis",
        "web",
        "worker",
        "beat",
        "gpu-worker",
    }
    assert services["db"]["image"].startswith("timescale/timescaledb-ha:")
    assert services["db-replica"]["image"] == services["db"]["image"]
    assert services["pgbouncer"]["image"].startswith("edoburu/pgbouncer:")
    assert services["redis"]["image"].startswith("redis:")
    for name in APP_SERVICES:
        assert services[name]["image"] == "analytics-platform:latest"
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy"
    assert (ROOT / "Dockerfile").exists()


def test_commands(compose):
    """web runs gunicorn after migrating; workers and beat run the project's Celery app."""
    services = compose["services"]
    assert "manage.py migrate" in services["web"]["command"]
    assert "gunicorn analytics.wsgi" in services["web"]["command"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "analytics", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "analytics", "beat"]
    gpu = services["gpu-worker"]["command"]
    assert gpu[gpu.index("-Q") + 1] == "embeddings"
    # Without a GPU the plain worker embeds, or items would never be searchable.
    worker = services["worker"]["command"]
    assert worker[worker.index("-Q") + 1] == "${WORKER_QUEUES:-default,embeddings}"


def test_workers_are_sized_by_the_settings_as_make_run_starts_them(compose):
    """Compose's workers pass no --concurrency, like `make run`: the settings size the pool."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from run import worker_command
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    local = worker_command()
    assert "--concurrency" not in local
    services = compose["services"]
    for name in ("worker", "gpu-worker"):
        command = services[name]["command"]
        assert "--concurrency" not in command, name
        # The same program and options as `make run`, bar the queues each one serves.
        queues = command.index("-Q")
        assert command[:queues] + command[queues + 2 :] == [
            part for index, part in enumerate(local) if index not in (queues, queues + 1)
        ]
    assert services["gpu-worker"]["environment"]["EMBEDDINGS_DEVICE"] == "cuda"


def test_gpu_worker_reserves_an_nvidia_device_under_a_profile(compose):
    """The GPU worker starts only with --profile gpu and reserves an NVIDIA GPU."""
    gpu = compose["services"]["gpu-worker"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]


def test_every_variable_set_is_one_the_settings_read(compose):
    """Each environment variable compose gives the app is declared in the settings."""
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        unknown = set(env) - set(VARIABLES)
        assert not unknown, f"{name} sets variables the settings never read: {unknown}"
        assert env["DJANGO_SETTINGS_MODULE"] == "analytics.settings.production"
        assert env["DATABASE_URL"].startswith("postgres://analytics:")
        assert "@pgbouncer:5432/analytics" in env["DATABASE_URL"]
        assert env["DATABASE_PGBOUNCER"] == "1"
        assert "@db-replica:5432/analytics" in env["DATABASE_REPLICA_URLS"]
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")


def test_replica_streams_from_db_and_pgbouncer_pools_transactions(compose):
    """db-replica is a pg_basebackup -R clone of db; PgBouncer pools db in transaction mode."""
    services = compose["services"]
    replica = services["db-replica"]
    script = replica["command"][0]
    assert "pg_basebackup -h db" in script
    assert " -R " in script
    assert "hot_standby=on" in script
    assert replica["depends_on"]["db"]["condition"] == "service_healthy"
    allow = compose["configs"]["allow-replication"]["content"]
    assert "host replication" in allow
    bouncer = services["pgbouncer"]["environment"]
    assert bouncer["POOL_MODE"] == "transaction"
    assert bouncer["DB_HOST"] == "db"
    # Startup options do not pass PgBouncer: the servers turn JIT off themselves.
    assert "jit=off" in services["db"]["command"]
    assert "jit=off" in script


def test_migrations_connect_directly_to_db(compose):
    """web migrates over a direct connection to db, not through PgBouncer."""
    command = compose["services"]["web"]["command"]
    migrate = command[: command.index("manage.py migrate")]
    assert "@db:5432/analytics" in migrate
    assert "DATABASE_PGBOUNCER=0" in migrate
