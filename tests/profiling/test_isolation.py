"""Silk stays out of production and the test suite, whatever the environment says; staging loads it only when asked.

Each case starts a fresh interpreter, so what one settings module imports cannot hide in another's.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-long-random-production-secret-" + "x" * 40

PROBE = """
import json, sys
import django
django.setup()
from django.conf import settings
from django.test import Client
from django.urls import Resolver404, resolve
try:
    resolve("/silk/")
    resolved = True
except Resolver404:
    resolved = False
status = Client(HTTP_X_FORWARDED_PROTO="https").get("/silk/").status_code
print(json.dumps({
    "modules": sorted(m for m in sys.modules if m.split(".")[0] == "silk" or m.startswith("analytics.profiling")),
    "settings_helper": "analytics.settings.profiling" in sys.modules,
    "apps": [app for app in settings.INSTALLED_APPS if "silk" in app or "profiling" in app],
    "middleware": [m for m in settings.MIDDLEWARE if "silk" in m.lower() or "profiling" in m],
    "beat": [name for name in settings.CELERY_BEAT_SCHEDULE if "silk" in name],
    "resolved": resolved,
    "status": status,
}))
"""


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DJANGO_SETTINGS_MODULE"} and not k.startswith("SILK_")
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**base, "ALLOWED_HOSTS": "testserver,analytics.example.com", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def probe(settings_module: str, **env: str) -> dict[str, Any]:
    result = run(["-c", PROBE], DJANGO_SETTINGS_MODULE=settings_module, **env)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


NOTHING = {
    "modules": [],
    "apps": [],
    "middleware": [],
    "beat": [],
    "resolved": False,
    "status": 404,
}
NEVER = ("analytics.settings.production", "analytics.settings.test")


@pytest.mark.parametrize(
    ("settings_module", "env"),
    [
        ("analytics.settings.production", {"SECRET_KEY": SECRET, "SILK_ENABLED": "1"}),
        ("analytics.settings.test", {"SILK_ENABLED": "1"}),
        ("analytics.settings.staging", {"SECRET_KEY": SECRET}),
        ("analytics.settings.local", {}),
    ],
)
def test_silk_is_not_loaded(settings_module, env):
    """Production and test settings (even with SILK_ENABLED=1), and staging or local without it, import no silk and serve no /silk/."""
    found = probe(settings_module, **env)
    # Production and test never even import the wiring; staging and local import it, switched off.
    assert found.pop("settings_helper") is (settings_module not in NEVER)
    assert found == NOTHING


def test_staging_loads_silk_when_enabled():
    """Staging with SILK_ENABLED=1 has silk's app, middleware, GC beat task, and a login-guarded /silk/."""
    found = probe("analytics.settings.staging", SECRET_KEY=SECRET, SILK_ENABLED="1")
    assert "silk" in found["modules"]
    assert found["apps"] == ["silk", "analytics.profiling"]
    assert found["middleware"] == [
        "analytics.profiling.middleware.ProfilingContextMiddleware",
        "silk.middleware.SilkyMiddleware",
        "analytics.profiling.middleware.SilkSQLMiddleware",
    ]
    assert found["beat"] == ["collect-silk-garbage"]
    assert found["resolved"] is True
    assert found["status"] == 302  # to the login page


def test_staging_requires_the_production_environment():
    """Staging refuses to start without SECRET_KEY, silk or not, naming it."""
    result = run(
        ["manage.py", "check"],
        DJANGO_SETTINGS_MODULE="analytics.settings.staging",
        SILK_ENABLED="1",
    )
    assert result.returncode != 0
    assert "the environment variable SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize(
    ("settings_module", "env"),
    [
        ("analytics.settings.production", {"SILK_ENABLED": "1"}),
        ("analytics.settings.staging", {"SILK_ENABLED": "1"}),
    ],
)
def test_check_deploy_reports_nothing(settings_module, env):
    """`manage.py check --deploy` reports no warnings for production, nor for staging with silk on."""
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        DJANGO_SETTINGS_MODULE=settings_module,
        SECRET_KEY=SECRET,
        **env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no issues" in result.stdout


def test_slow_queries_needs_silk():
    """slow_queries under settings without silk says how to get it, instead of failing on missing tables."""
    result = run(["manage.py", "slow_queries"], DJANGO_SETTINGS_MODULE="analytics.settings.test")
    assert result.returncode != 0
    assert "silk is not installed in these settings" in result.stderr
