"""Seconds per stage of one DVC command (`dvc repro`, `dvc exp run ...`), and its cost outside training.

Streams the command's output and stamps each "Running stage '<name>'" line: a stage's seconds run
from its line to the next one (or the command's end), so DVC's own work between stages counts
with the stage before it.  Training's own seconds come from the train stage's metrics, when it ran.

    python bench/stages.py -- dvc repro                        # -> a JSON line on stdout
    python bench/stages.py --out times.json -- dvc exp run -S train.epochs=1
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout

from pipeline.infra.paths import TRAIN_SPEED

STAGE_LINE = re.compile(r"^Running stage '([\w-]+)'")


def time_stages(command: list[str]) -> dict:
    """Run `command`, echoing its output; return its total seconds, each stage's and training's."""
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            sys.stderr.write(line)
            if match := STAGE_LINE.match(line):
                marks.append((match[1], time.perf_counter()))
    end = time.perf_counter()
    if process.returncode != 0:
        sys.exit(f"stages: {' '.join(command)} exited {process.returncode}")
    ends = [at for _, at in marks[1:]] + [end]
    stages = {name: round(stop - at, 1) for (name, at), stop in zip(marks, ends, strict=True)}
    result = {"command": " ".join(command), "total_seconds": round(end - start, 1), "stages": stages}
    if "train" in stages:
        training = json.loads(TRAIN_SPEED.read_text())["train_seconds"]
        result |= {
            "train_seconds": training,
            "outside_training_seconds": round(result["total_seconds"] - training, 1),
            "total_vs_training": round(result["total_seconds"] / training, 2),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the DVC command")
    args = parser.parse_args()
    result = time_stages([part for part in args.command if part != "--"] or ["dvc", "repro"])
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
