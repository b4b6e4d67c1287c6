"""Profiling tests: staging settings with silk on (`pytest --ds=analytics.settings.staging_test tests/profiling`).

Under any other settings (the main suite's analytics.settings.test never loads silk) only
the settings-free test_isolation.py is collected; under staging_test it is the one left out.
"""

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from psycopg import sql

from tests.helpers import celery_worker_argv, running_celery_worker, worker_environment

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SETTINGS_FREE = {"test_isolation.py"}
SILK_ON = "silk" in settings.INSTALLED_APPS

if SILK_ON:
    collect_ignore = sorted(SETTINGS_FREE)
else:
    collect_ignore = sorted(p.name for p in HERE.glob("test_*.py") if p.name not in SETTINGS_FREE)

# Text columns of every silk table, for "no trace of the secret anywhere" checks.
SILK_TABLES = ("silk_request", "silk_response", "silk_sqlquery", "silk_profile")


def https_client(**defaults: Any) -> Client:
    """Return a client whose requests arrive as HTTPS through the proxy (staging redirects HTTP)."""
    return Client(HTTP_X_FORWARDED_PROTO="https", **defaults)


@pytest.fixture
def web() -> Client:
    return https_client()


@pytest.fixture
def staff_user(db: None) -> User:
    return User.objects.create_user("sam", password="pw-sam-123456", is_staff=True)


@pytest.fixture
def plain_user(db: None) -> User:
    return User.objects.create_user("pat", password="pw-pat-123456")


@pytest.fixture
def staff_web(staff_user: User) -> Client:
    client = https_client()
    client.force_login(staff_user)
    return client


def silk_text() -> str:
    """Return every row of every silk table as JSON text, joined."""
    with connection.cursor() as cursor:
        rows = []
        for table in SILK_TABLES:
            cursor.execute(
                sql.SQL(
                    "SELECT coalesce(string_agg(row_to_json(t)::text, ' '), '') FROM {} t"
                ).format(sql.Identifier(table))
            )
            rows.append(cursor.fetchone()[0])
    return "\n".join(rows)


@pytest.fixture
def silk_config() -> Iterator[Callable[[str, Any], None]]:
    """Return a setter for silk's live configuration, restored afterwards.

    Silk reads its settings once into a singleton, so override_settings does not reach it.
    """
    from silk.config import SilkyConfig  # type: ignore[import-untyped]

    attrs = SilkyConfig().attrs
    saved = dict(attrs)

    def set_value(name: str, value: Any) -> None:
        attrs[name] = value

    yield set_value
    attrs.clear()
    attrs.update(saved)


@pytest.fixture
def staging_worker(
    django_db_setup: None,
    django_db_blocker: Any,
    tmp_path: Path,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a real Celery worker with the staging test settings on the test database and Redis."""
    log = tmp_path / "worker.log"
    with django_db_blocker.unblock():
        env = worker_environment()
    env.update(
        DJANGO_SETTINGS_MODULE="analytics.settings.staging_test",
        SILK_MAX_RECORDED_REQUESTS="10",
    )
    with running_celery_worker(
        argv=celery_worker_argv("default", extra=("--pool", "solo")), env=env, log=log
    ) as process:
        yield process
