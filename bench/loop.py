"""The experiment loop's budgets (docs/performance.md, "Time outside training"), timed on a fresh clone: `make bench-loop`.

(a) `dvc repro` on a fresh clone of the checkout (its committed files plus uncommitted edits and
untracked ones, no DVC cache, no MLflow store), against the CNN's training seconds;
(b) then `dvc exp run -S train.epochs=1`: the seconds an experiment spends outside training.
Each is timed per stage by bench/stages.py (the clone's own copy). The two budgets: (a) at most
1.5x training, (b) at most 45 s outside training.

    python bench/loop.py                          # the checkout as it is -> bench/loop.json
    python bench/loop.py --ref a9896b4 --out x.json   # an earlier commit, for a before/after pair
    python bench/loop.py --table bench/loop-before.json bench/loop.json   # docs/performance.md's table
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]  # run from anywhere in the checkout

from bench_results import machine  # bench/bench_results.py

from pipeline.infra.checkout import copy_checkout

REPRO_BUDGET = 1.5  # the default repro's seconds / the CNN's training seconds
EXPERIMENT_BUDGET_S = 45  # a 1-epoch experiment's seconds outside training
EXPERIMENT = ["dvc", "exp", "run", "-S", "train.epochs=1"]


def clone(ref: str | None, into: Path) -> None:
    """A fresh clone of this repository at `ref`, or of the checkout as it is (edits and new files kept)."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(into)], check=True)
    if ref:
        subprocess.run(["git", "checkout", "--quiet", ref], cwd=into, check=True)
        return
    copy_checkout(ROOT, into)
    subprocess.run(["git", "add", "--all"], cwd=into, check=True)
    subprocess.run(
        ["git", "commit", "--quiet", "--allow-empty", "-m", "bench-loop: the checkout"],
        cwd=into,
        check=True,
        env=os.environ
        | {
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@localhost",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@localhost",
        },
    )


def _checkout_name() -> str:
    """The checkout's commit, marked when files differ from it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True).stdout
    dirty = subprocess.run([*git, "status", "--porcelain"], check=True, capture_output=True, text=True).stdout
    return head.strip() + ("+changes" if dirty.strip() else "")


def timed(repo: Path, command: list[str]) -> dict:
    """bench/stages.py's timing of `command` in `repo`."""
    out = repo / "stages.json"
    subprocess.run(
        [sys.executable, "bench/stages.py", "--out", str(out), "--", *command],
        cwd=repo,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads(out.read_text())


def measure(ref: str | None) -> dict:
    """Both timings on a fresh clone of `ref` (None: the checkout), and the budgets' verdicts."""
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as folder:
        repo = Path(folder) / "repo"
        clone(ref, repo)
        repro = timed(repo, ["dvc", "repro"])
        experiment = timed(repo, EXPERIMENT)
    commit = ref or _checkout_name()
    return {
        "ref": ref or "checkout",
        "commit": commit,
        "date": date.today().isoformat(),
        "machine": machine(),
        "repro": repro,
        "experiment": experiment,
        "repro_vs_training": repro["total_vs_training"],
        "repro_budget": REPRO_BUDGET,
        "experiment_outside_training_seconds": experiment["outside_training_seconds"],
        "experiment_budget_seconds": EXPERIMENT_BUDGET_S,
        "within_budgets": repro["total_vs_training"] <= REPRO_BUDGET
        and experiment["outside_training_seconds"] <= EXPERIMENT_BUDGET_S,
    }


def table(before: dict, after: dict) -> str:
    """docs/performance.md's per-stage table (markdown) of two `measure` results: (a) and (b), before and after."""
    runs = [before["repro"], after["repro"], before["experiment"], after["experiment"]]
    stages = list(dict.fromkeys(name for run in (runs[1], runs[3], runs[0], runs[2]) for name in run["stages"]))

    def row(label: str, values: list) -> str:
        return "| " + " | ".join([label, *("" if v is None else f"{v:g}" for v in values)]) + " |"

    lines = [
        f"| seconds | (a) before `{before['commit']}` | (a) after `{after['commit']}` | (b) before | (b) after |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(row(name, [run["stages"].get(name) for run in runs]) for name in stages),
        row("**whole command**", [run["total_seconds"] for run in runs]),
        row("training (in train)", [run["train_seconds"] for run in runs]),
        row("**outside training**", [run["outside_training_seconds"] for run in runs]),
        row("**whole command / training**", [run["total_vs_training"] for run in runs]),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", help="a commit to clone instead of the checkout")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/loop.json")
    parser.add_argument(
        "--table", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="print docs/performance.md's table"
    )
    args = parser.parse_args()
    if args.table:
        print(table(*(json.loads(path.read_text()) for path in args.table)))
        return
    result = measure(args.ref)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("repro", "experiment")}, indent=2))


if __name__ == "__main__":
    main()
