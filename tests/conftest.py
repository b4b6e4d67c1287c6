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


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """With replicas configured (STACK_REPLICAS), in-process tests still use one database.

    Each replica alias shares the primary's settings, so it names the test database and
    the routing code sees a test mirror and reads from the primary; replicas themselves
    are tested over HTTP (tests/reliability/test_replicas.py).
    """
    from django.db import connections

    from analytics.db.replicas import replica_aliases

    for alias in replica_aliases():
        connections[alias].settings_dict = connections["default"].settings_dict


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
