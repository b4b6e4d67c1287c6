"""Settings come from the environment in one place, and production refuses unsafe defaults."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analytics.settings import environment

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DJANGO_SETTINGS_MODULE"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_undeclared_variable_cannot_be_read():
    """Reading a variable missing from VARIABLES is a programming error, caught at once."""
    with pytest.raises(KeyError, match="NOT_A_SETTING is not declared"):
        environment.env_str("NOT_A_SETTING")


def test_bad_integer_names_the_variable(monkeypatch):
    """A non-integer value names the variable at fault."""
    monkeypatch.setenv("REDIS_TIMEOUT", "soon")
    with pytest.raises(RuntimeError, match="REDIS_TIMEOUT must be an integer, not 'soon'"):
        environment.env_int("REDIS_TIMEOUT", 2)


def test_production_requires_secret_key():
    """Production settings refuse to start without SECRET_KEY, naming it."""
    result = run_manage("check", DJANGO_SETTINGS_MODULE="analytics.settings.production")
    assert result.returncode != 0
    assert "the environment variable SECRET_KEY must be set" in result.stderr


def test_production_passes_check_deploy():
    """`manage.py check --deploy` with production settings reports no warnings."""
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="analytics.settings.production",
        SECRET_KEY="a-long-random-production-secret-" + "x" * 40,
        ALLOWED_HOSTS="analytics.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
