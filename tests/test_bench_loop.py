"""bench/loop.py: the experiment loop's table, as the README shows it, from the committed measurements."""

from __future__ import annotations

import importlib.util
import json

from tests.mnist_files import REPO

_SPEC = importlib.util.spec_from_file_location("loop", REPO / "bench" / "loop.py")  # a script, not a package
loop = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(loop)


def _run(stages: dict, training: float) -> dict:
    total = round(sum(stages.values()) + 1.0, 1)
    return {
        "stages": stages,
        "total_seconds": total,
        "train_seconds": training,
        "outside_training_seconds": round(total - training, 1),
        "total_vs_training": round(total / training, 2),
    }


def test_the_table_has_a_row_per_stage_of_either_run_and_blanks_where_a_stage_did_not_run():
    before = {"commit": "aaaaaaa", "repro": _run({"train": 10, "numbers": 5}, 8), "experiment": _run({"train": 4}, 2)}
    after = {"commit": "bbbbbbb", "repro": _run({"train": 10, "compose": 2}, 8), "experiment": _run({"train": 3}, 2)}
    lines = loop.table(before, after).splitlines()
    assert lines[0].startswith("| seconds | (a) before `aaaaaaa` | (a) after `bbbbbbb` |")
    assert "| numbers | 5 |  |  |  |" in lines and "| compose |  | 2 |  |  |" in lines
    assert "| **whole command** | 16 | 13 | 5 | 4 |" in lines
    assert "| **outside training** | 8 | 5 | 3 | 2 |" in lines


def test_the_performance_page_s_loop_table_is_the_committed_measurements():
    before, after = (json.loads((REPO / "bench" / name).read_text()) for name in ("loop-before.json", "loop.json"))
    assert loop.table(before, after) in (REPO / "docs/performance.md").read_text()
    assert after["within_budgets"] == (
        after["repro_vs_training"] <= loop.REPRO_BUDGET
        and after["experiment_outside_training_seconds"] <= loop.EXPERIMENT_BUDGET_S
    )
