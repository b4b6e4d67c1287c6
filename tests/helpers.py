"""Small helpers for tests: auth headers, and real gunicorn and Celery subprocesses."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from analytics.services import IssuedKey

ROOT = Path(__file__).resolve().parent.parent


def bearer(issued: IssuedKey) -> dict[str, str]:
    """Return the header that authenticates with `issued`."""
    return {"HTTP_AUTHORIZATION": f"Bearer {issued.secret}"}


def worker_environment() -> dict[str, str]:
    """Return the environment of a subprocess that must see the test database and Redis."""
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="analytics.settings.test",
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        PYTHONUNBUFFERED="1",
    )
    return env


def free_port() -> int:
    """Return a loopback port nothing listens on (at the time of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """Return whether something accepts connections on loopback `port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def celery_worker_argv(
    queues: str,
    *,
    concurrency: int = 1,
    name: str | None = None,
    loglevel: str = "INFO",
    extra: tuple[str, ...] = (),
) -> list[str]:
    """Return the command line of a real Celery worker of the project on `queues` ("a,b")."""
    argv = [sys.executable, "-m", "celery", "-A", "analytics", "worker", "-Q", queues]
    argv += ["--concurrency", str(concurrency), "--loglevel", loglevel]
    argv += ["--without-gossip", "--without-mingle", *extra]
    if name is not None:
        argv += ["-n", f"{name}@%h"]
    return argv


def gunicorn_command(*, port: int, workers: int, threads: int = 1) -> list[str]:
    """Return the command line of a test gunicorn on loopback `port` (gunicorn.conf.py's settings)."""
    command = [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py")]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    return [*command, "--threads", str(threads), "--log-level", "warning"]


@contextmanager
def running_gunicorn(
    *, env: dict[str, str], log: Path, workers: int = 1, threads: int = 1
) -> Iterator[str]:
    """Serve the app with gunicorn on a free loopback port; yield its base URL, stop it after."""
    port = free_port()
    command = gunicorn_command(port=port, workers=workers, threads=threads)
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def running_celery_worker(
    *, argv: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a Celery worker, wait for its first heartbeat in the cache, stop it after."""
    from django.core.cache import cache

    cache.delete("celery:worker-heartbeat")
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while cache.get("celery:worker-heartbeat") is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
