"""How many worker processes this process should start: the CPUs it may run on, within its container's quota.

`os.sched_getaffinity` counts the CPUs the scheduler lets a process use, and ignores a CPU quota: a
container limited to 2 CPUs on a 64-core host sees 64, and 64 workers would share 2 CPUs' time.
The quota is the cgroup's: `cpu.max` (cgroup v2: "<quota> <period>" or "max <period>") or
`cpu.cfs_quota_us` / `cpu.cfs_period_us` (v1: -1 for none), read for the process's own cgroup and
every cgroup above it, the tightest winning.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(root: Path = CGROUP_ROOT, own_cgroups: str | None = None) -> int:
    """The number of CPUs to plan work for: affinity, capped by the CPU quota (rounded up), at least 1."""
    affinity = len(os.sched_getaffinity(0))
    quota = cpu_quota(root, own_cgroups if own_cgroups is not None else _read(Path("/proc/self/cgroup")) or "")
    return max(1, min(affinity, math.ceil(quota))) if quota is not None else affinity


def cpu_quota(root: Path, own_cgroups: str) -> float | None:
    """The tightest CPU quota, in CPUs, over the cgroups listed in `own_cgroups` (/proc/self/cgroup's
    lines) and those above them, under `root`; None when there is none."""
    quotas = []
    for line in own_cgroups.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            folders, read = _ancestors(root, path), _v2_quota
        elif "cpu" in controllers.split(","):
            folders, read = _ancestors(root / controllers, path) + _ancestors(root / "cpu", path), _v1_quota
        else:
            continue
        quotas += [quota for folder in folders if (quota := read(folder)) is not None]
    return min(quotas, default=None)


def _ancestors(base: Path, path: str) -> list[Path]:
    """`base`/`path` and every folder above it up to `base`."""
    parts = [part for part in path.split("/") if part]
    return [base.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _v2_quota(folder: Path) -> float | None:
    text = _read(folder / "cpu.max")
    if not text or text.split()[0] == "max":
        return None
    quota, period = text.split()
    return int(quota) / int(period)


def _v1_quota(folder: Path) -> float | None:
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    if not quota or not period or int(quota) <= 0:
        return None
    return int(quota) / int(period)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
