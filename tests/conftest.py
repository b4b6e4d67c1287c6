"""Fixtures shared by every test: projects, API keys, clients and a real Celery worker."""

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from analytics.models import Project
from analytics.services import IssuedKey, create_api_key
from analytics.services.points import series_cache
from tests.helpers import celery_worker_argv, running_celery_worker, worker_environment

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_series_cache() -> None:
    """Start every test with an empty series cache: ids of flushed tables must not leak."""
    series_cache.clear()


@pytest.fixture
def project(db: None) -> Project:
    return Project.objects.create(slug="acme", name="Acme")


@pytest.fixture
def other_project(db: None) -> Project:
    return Project.objects.create(slug="globex", name="Globex")


@pytest.fixture
def make_key() -> Callable[..., IssuedKey]:
    def make(project: Project, scopes: tuple[str, ...] = ("read", "write")) -> IssuedKey:
        return create_api_key(project=project, name="test key", scopes=list(scopes))

    return make


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None,
    django_db_blocker: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a real Celery worker on the test database and Redis; stop it afterwards."""
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        env = worker_environment()
    with running_celery_worker(
        argv=celery_worker_argv("default,embeddings", concurrency=2), env=env, log=log
    ) as process:
        yield process


def pytest_report_header() -> str:
    return (
        f"database: {settings.DATABASES['default']['HOST']}:{settings.DATABASES['default']['PORT']}"
    )
