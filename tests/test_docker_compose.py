"""docker-compose.yml cannot start here, so its structure is checked instead."""

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
    """The stack has db (timescaledb-ha), redis, web, worker, beat and a gpu-worker."""
    services = compose["services"]
    assert set(services) == {"db", "redis", "web", "worker", "beat", "gpu-worker"}
    assert services["db"]["image"].startswith("timescale/timescaledb-ha:")
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
        assert "@db:5432/analytics" in env["DATABASE_URL"]
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
