"""bench/bench.py in quick mode, for real, on generated data: it trains, times and reports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from pipeline import paths
from pipeline.files import save_npz
from tests.mnist_files import REPO, learnable_mnist

pytestmark = pytest.mark.slow


def test_quick_bench_reports_time_to_accuracy_speed_and_memory(tmp_path, repo_params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    for split, n in (("train", 600), ("val", 100), ("test", 200)):
        x, y = learnable_mnist(n, seed=len(split))
        save_npz(tmp_path / paths.split_file(split), {"x": x, "y": y})
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), "--quick", "--archs", "default,tiny"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "bench" / "quick" / "bench.json").read_text())
    summary = {row["arch"]: row for row in report["summary"]}
    assert set(summary) == {"default", "tiny"}
    assert summary["tiny"]["params"] == 2_864 and summary["tiny"]["epochs"] == 2
    for row in summary.values():
        assert 0 <= row["best_test_accuracy"] <= 1
        assert row["seconds_per_epoch"] > 0 and row["images_per_s_batch_1000"] > 0 and row["peak_rss_mib"] > 100
        reached = row["seconds_to_98.5%"]  # None when never reached; else no later than the best epoch
        assert (reached is None) == (row["best_test_accuracy"] < 0.985)
        assert reached is None or reached <= row["seconds_to_best"]
    assert [r["epoch"] for r in report["runs"][0]["curve"]] == [1, 2]
    assert (tmp_path / "bench" / "quick" / "bench_time_to_accuracy.png").stat().st_size > 10_000
    assert "seconds_to_99%" in result.stdout
