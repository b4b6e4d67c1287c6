"""What the machine offers a worker, read without torch: usable cores and whether a GPU is there.

Settings size the embedding workers from these facts (`base`); importing torch to ask it
would load CUDA in every process that reads settings, the web tier included.
"""

import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def usable_cores() -> int:
    """Return the cores this process may run on: its CPU affinity, capped by a cgroup quota.

    A container limited with `--cpus 2` on a 64-core host still sees 64 cores in
    os.cpu_count(); the quota in cpu.max ("200000 100000") is what it gets.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return cores
    if quota == "max":
        return cores
    try:
        return max(1, min(cores, int(int(quota) // int(period))))
    except ValueError:
        return cores


def gpu_present(device: str) -> bool:
    """Return whether the encoder of EMBEDDINGS_DEVICE `device` runs on a GPU.

    `auto` means CUDA when the NVIDIA driver shows a GPU to this machine (or container).
    """
    if device.startswith("cuda"):
        return True
    if device != "auto":
        return False
    try:
        return any(NVIDIA_GPUS.iterdir())
    except OSError:
        return False
