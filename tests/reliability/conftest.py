"""Fixtures of the fault tests: a private PostgreSQL, Redis and gunicorn, killed at will.

The shared stack (PostgreSQL on 54329, Redis on 63799) serves every other test and
engineer, so nothing here ever touches it: the session builds its own cluster, Redis and
web server (see `tests.reliability.stack`) and removes all of it afterwards, even when a
test fails half-way through an outage.
"""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.stack import PrivateStack


@pytest.fixture(scope="session")
def private_stack() -> Iterator[PrivateStack]:
    """Build the private stack once per session; stop every process and remove it afterwards."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (scripts/stack.sh setup installs it)")
    stack = PrivateStack(Path(tempfile.mkdtemp(prefix="analytics-faults-")))
    try:
        stack.build()
        yield stack
    finally:
        stack.destroy()


@pytest.fixture
def stack(private_stack: PrivateStack) -> Iterator[PrivateStack]:
    """The private stack with every part running, whatever the previous test stopped."""
    private_stack.ensure_running()
    yield private_stack
    private_stack.ensure_running()
