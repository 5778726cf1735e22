"""pipeline.infra.cpus: the workers to start follow the container's CPU quota, not only the affinity."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pipeline.infra.cpus import cpu_quota, usable_cpus

AFFINITY = len(os.sched_getaffinity(0))
PERIOD = 100_000
quotas = st.lists(st.one_of(st.none(), st.integers(1, 64 * PERIOD)), min_size=1, max_size=4)  # root first


def write_tree(root: Path, version: int, levels: list[int | None]) -> str:
    """A cgroup tree with a quota (None: none) per level, root first; /proc/self/cgroup's line for its leaf."""
    names = [f"level{depth}" for depth in range(1, len(levels))]
    base = root if version == 2 else root / "cpu,cpuacct"
    for depth, quota in enumerate(levels):
        folder = base.joinpath(*names[:depth])
        folder.mkdir(parents=True, exist_ok=True)
        if version == 2:
            (folder / "cpu.max").write_text(f"{quota if quota else 'max'} {PERIOD}\n")
        else:
            (folder / "cpu.cfs_quota_us").write_text(f"{quota or -1}\n")
            (folder / "cpu.cfs_period_us").write_text(f"{PERIOD}\n")
    controllers = "" if version == 2 else "cpu,cpuacct"
    return f"5:memory:/elsewhere\n{3 if version == 1 else 0}:{controllers}:/{'/'.join(names)}\n"


@given(version=st.sampled_from([1, 2]), levels=quotas)
def test_the_tightest_quota_on_the_way_to_the_root_caps_the_affinity(version, levels):
    with tempfile.TemporaryDirectory() as folder:
        own = write_tree(Path(folder), version, levels)
        set_quotas = [quota / PERIOD for quota in levels if quota]
        assert cpu_quota(Path(folder), own) == (min(set_quotas) if set_quotas else None)
        expected = max(1, min(AFFINITY, math.ceil(min(set_quotas)))) if set_quotas else AFFINITY
        assert usable_cpus(Path(folder), own) == expected


def test_without_cgroup_files_the_affinity_counts(tmp_path):
    assert usable_cpus(tmp_path, "0::/\n") == AFFINITY


def test_on_this_machine_between_one_and_the_affinity():
    assert 1 <= usable_cpus() <= AFFINITY
