"""Settings come from the environment in one place, and production refuses unsafe defaults."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analytics.settings import environment, machine

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


def test_usable_cores_follow_the_cgroup_quota(tmp_path, monkeypatch):
    """A CPU quota (docker --cpus) caps the cores; no quota leaves the CPU affinity."""
    affinity = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(machine, "CGROUP_CPU_MAX", quota)
    assert machine.usable_cores() == affinity  # no cgroup file
    quota.write_text("max 100000\n")
    assert machine.usable_cores() == affinity
    quota.write_text("150000 100000\n")
    assert machine.usable_cores() == 1
    quota.write_text(f"{(affinity + 4) * 100000} 100000\n")
    assert machine.usable_cores() == affinity  # a quota above the affinity gives no more


def test_gpu_presence_follows_the_device_and_the_driver(tmp_path, monkeypatch):
    """cuda devices are GPUs, cpu never; auto asks the NVIDIA driver's list of GPUs."""
    gpus = tmp_path / "gpus"
    monkeypatch.setattr(machine, "NVIDIA_GPUS", gpus)
    assert machine.gpu_present("cuda")
    assert machine.gpu_present("cuda:1")
    assert not machine.gpu_present("cpu")
    assert not machine.gpu_present("auto")  # no driver
    gpus.mkdir()
    assert not machine.gpu_present("auto")  # a driver without GPUs
    (gpus / "0000:00:1e.0").mkdir()
    assert machine.gpu_present("auto")
    assert not machine.gpu_present("cpu")


def sizing(**env: str) -> dict[str, int]:
    """Return the embedding worker sizing the settings compute in a fresh process under `env`."""
    names = [
        "EMBEDDINGS_WORKER_CONCURRENCY",
        "EMBEDDINGS_TORCH_THREADS",
        "EMBEDDINGS_BATCH_SIZE",
        "EMBEDDINGS_IDS_PER_TASK",
        "EMBEDDINGS_TOP_UP",
        "CELERY_WORKER_CONCURRENCY",
    ]
    script = (
        "import json; from analytics.settings import base;"
        f" print(json.dumps({{name: getattr(base, name) for name in {names!r}}}))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDINGS_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(result.stdout))


def test_worker_sizing_follows_the_machine_unless_set():
    """CPU: a process per core with one thread each; GPU: one process; variables override."""
    cores = machine.usable_cores()
    cpu = sizing(EMBEDDINGS_DEVICE="cpu")
    processes = min(cores, 8)
    assert cpu == {
        "EMBEDDINGS_WORKER_CONCURRENCY": processes,
        "EMBEDDINGS_TORCH_THREADS": cores // processes,
        "EMBEDDINGS_BATCH_SIZE": 256,
        "EMBEDDINGS_IDS_PER_TASK": 256,
        "EMBEDDINGS_TOP_UP": 64,
        "CELERY_WORKER_CONCURRENCY": processes,
    }
    gpu = sizing(EMBEDDINGS_DEVICE="cuda")
    assert gpu == {
        "EMBEDDINGS_WORKER_CONCURRENCY": 1,
        "EMBEDDINGS_TORCH_THREADS": cores,
        "EMBEDDINGS_BATCH_SIZE": 4096,
        "EMBEDDINGS_IDS_PER_TASK": 16384,
        "EMBEDDINGS_TOP_UP": 4096,
        "CELERY_WORKER_CONCURRENCY": 1,
    }
    one = sizing(EMBEDDINGS_DEVICE="cpu", EMBEDDINGS_WORKER_CONCURRENCY="1")
    assert (one["CELERY_WORKER_CONCURRENCY"], one["EMBEDDINGS_TORCH_THREADS"]) == (1, cores)
    assert (
        sizing(EMBEDDINGS_TORCH_THREADS="3", EMBEDDINGS_BATCH_SIZE="32")["EMBEDDINGS_TORCH_THREADS"]
        == 3
    )
