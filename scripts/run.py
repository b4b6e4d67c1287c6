"""`make run`: migrate, create and seed the demo project, then serve web, worker and beat.

Ctrl-C (or SIGTERM) stops every process started here. Runs inside the environment that
`scripts/stack.sh exec` provides (DATABASE_URL, CELERY_BROKER_URL, PATH with .venv).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = os.environ.get("RUN_HOST", "127.0.0.1")
PORT = int(os.environ.get("RUN_PORT", "8000"))
STACK = ROOT / ".stack"
PASSWORD_FILE = STACK / "secrets" / "admin-password"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics.settings.local")


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def manage(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        check=True,
        text=True,
        stdout=subprocess.PIPE,
    )
    return result.stdout.strip()


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) == 0


def wait_healthy(deadline_s: float) -> dict[str, object]:
    """Poll /healthz until it answers 200 or the deadline passes; return its last body."""
    body: dict[str, object] = {}
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{PORT}/healthz", timeout=5) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as exc:
            body = dict(json.load(exc))
        except OSError:
            pass
        time.sleep(0.5)
    return body


def web_command(bind: str) -> list[str]:
    """Return the gunicorn command line of `make run` (its settings are in gunicorn.conf.py)."""
    config = str(ROOT / "gunicorn.conf.py")
    return [
        "gunicorn",
        "--config",
        config,
        "--bind",
        bind,
        "--workers",
        "2",
        "--access-logfile",
        "-",
    ]


def worker_command() -> list[str]:
    """Return the Celery worker command line of `make run` (bench/pipeline.py starts the same).

    No --concurrency: the settings size the pool from the machine (one process per core
    on a CPU, each with one torch thread; one process on a GPU), or from
    EMBEDDINGS_WORKER_CONCURRENCY when set (analytics/settings/base.py).
    """
    return ["celery", "-A", "analytics", "worker", "-Q", "default,embeddings", "--loglevel", "INFO"]


def beat_command(schedule: Path) -> list[str]:
    """Return the Celery beat command line of `make run`."""
    return ["celery", "-A", "analytics", "beat", "--schedule", str(schedule), "--loglevel", "INFO"]


def _interrupt(signum: int, frame: object) -> None:
    """Turn a stop signal into KeyboardInterrupt so the same cleanup runs."""
    raise KeyboardInterrupt


def main() -> int:
    if port_taken(PORT):
        print(f"run: error: port {PORT} is taken (set RUN_PORT)", file=sys.stderr)
        return 1
    step("applying migrations")
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input"], cwd=ROOT, check=True)
    step("creating the demo project")
    login = manage("setup_demo", "--password-file", str(PASSWORD_FILE))
    step("seeding demo metrics (skipped when the demo project has data)")
    # Not captured: on a first run its progress bar shows the half minute it takes.
    subprocess.run([sys.executable, "manage.py", "seed_demo"], cwd=ROOT, check=True)
    step("seeding the demo catalogue (its embeddings follow in the worker)")
    print(manage("seed_demo_items"), flush=True)

    commands = {
        "web": web_command(f"{HOST}:{PORT}"),
        "worker": worker_command(),
        "beat": beat_command(STACK / "celerybeat-schedule"),
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def stop_all(*_: object) -> None:
        for name, process in processes.items():
            if process.poll() is None:
                print(f"==> stopping {name}", flush=True)
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    # Installed explicitly: a shell that starts us in the background hands us SIGINT
    # ignored, and Ctrl-C, SIGTERM and a closed terminal must all stop everything.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        for name, command in commands.items():
            step(f"starting {name}: {' '.join(command)}")
            # Each in its own process group, so Ctrl-C reaches them through us alone.
            processes[name] = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
        step("waiting for /healthz")
        health = wait_healthy(90)
        if health.get("status") != "ok":
            print(f"run: /healthz is not ok: {json.dumps(health)}", file=sys.stderr)
        print(
            f"\n  Login:   {login.split('login ')[-1]}\n"
            f"  Pages:   http://{HOST}:{PORT}/dashboards/   (similar items: /p/demo/similar/)\n"
            f"  Admin:   http://{HOST}:{PORT}/admin/\n"
            f"  API:     http://{HOST}:{PORT}/api/docs/\n"
            f"  Health:  http://{HOST}:{PORT}/healthz\n"
            "  Stop:    Ctrl-C\n",
            flush=True,
        )
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
        dead = [name for name, process in processes.items() if process.poll() is not None]
        print(f"run: {', '.join(dead)} exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
