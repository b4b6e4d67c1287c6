"""Serve the app with gunicorn on a free loopback port for the duration of a benchmark."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, process: "subprocess.Popen[bytes]") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def gunicorn_command(*, port: int, workers: int) -> list[str]:
    """Return the command line of a benchmark gunicorn on loopback `port` (gunicorn.conf.py)."""
    config = str(ROOT / "gunicorn.conf.py")
    server = ("--bind", f"127.0.0.1:{port}", "--workers", str(workers))
    return [sys.executable, "-m", "gunicorn", "--config", config, *server, "--log-level", "warning"]


@contextmanager
def gunicorn(workers: int = 2) -> Iterator[int]:
    """Run gunicorn (DEBUG off, warnings only) and yield its port; stop it afterwards."""
    port = free_port()
    env = {**os.environ, "DEBUG": "0", "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(gunicorn_command(port=port, workers=workers), cwd=ROOT, env=env)
    try:
        _wait_for(port, server)
        yield port
    finally:
        server.terminate()
        server.wait()
