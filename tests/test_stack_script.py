"""scripts/stack.sh: status of the running stack and a clear error for a taken port."""

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "scripts" / "stack.sh"


def run_stack(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STACK), *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def test_status_reports_both_services_running():
    """`status` prints one line per service; the suite runs on a started stack."""
    result = run_stack("status")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("postgres: running on 127.0.0.1:")
    assert lines[1].startswith("redis:    running on 127.0.0.1:")


def test_taken_port_is_a_one_line_error_and_creates_nothing(tmp_path):
    """Starting on a taken port fails with one line naming the port and the variable."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = run_stack("start", STACK_DIR=str(tmp_path / "stack"), STACK_PG_PORT=str(port))
    assert result.returncode == 1
    assert (
        result.stderr
        == f"stack: error: port {port} is taken by another process (set STACK_PG_PORT)\n"
    )
    assert not (tmp_path / "stack" / "postgres").exists()


def test_env_points_at_the_project_services():
    """`env` exports the URLs of the project's own PostgreSQL and Redis, never the system ones."""
    result = run_stack("env")
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines()
    )
    assert exports["DATABASE_URL"].startswith("postgres://analytics:")
    assert ":5432/" not in exports["DATABASE_URL"]
    assert exports["CELERY_BROKER_URL"].startswith("redis://127.0.0.1:")
    assert ":6379/" not in exports["CELERY_BROKER_URL"]
