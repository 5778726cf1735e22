"""How the settings of pipeline/images/segmentation.py were chosen: on numbers composed of *training* digits.

Each setting is tried on the same numbers, composed, photographed and read back exactly as the numbers
stage does it, but from the preprocessed training split (never the test set, which only the stage
reads), with the exported model and touching-digits detector of the last `dvc repro`.

    python bench/segmentation.py                                   # the committed settings
    python bench/segmentation.py SPLIT_GAIN=1.2,1.5 SPLIT_WIDTH=1.15,1.3 --count 300
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout

from pipeline.images import segmentation
from pipeline.infra import paths
from pipeline.infra.params import load_params
from pipeline.stages import compose, numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", nargs="*", metavar="NAME=V1,V2", help="a constant of the segmentation and values")
    parser.add_argument("--count", type=int, default=300, help="numbers per setting (default 300)")
    options = parser.parse_args()
    names = [item.split("=")[0] for item in options.grid]
    values = [[float(v) for v in item.split("=")[1].split(",")] for item in options.grid]
    params = load_params().numbers.model_copy(update={"count": options.count})
    composed = compose.compose_all(*paths.load_split("train"), params)  # photographed once, read per setting
    print("setting\tsequence\tdigits\tcount\ttouching")
    for setting in itertools.product(*values):
        for name, value in zip(names, setting, strict=True):
            setattr(
                segmentation, name, type(getattr(segmentation, name))(value)
            )  # read at call time; forked workers inherit it
        table = numbers.read_all(composed, (paths.ONNX_MODEL, paths.TOUCHING_MODEL))
        metrics = numbers.number_metrics(table)
        label = " ".join(f"{n}={v}" for n, v in zip(names, setting, strict=True)) or "committed"
        print(
            f"{label}\t{metrics['sequence_accuracy']:.3f}\t{metrics['digit_accuracy']:.3f}"
            f"\t{metrics['count_accuracy']:.3f}\t{metrics.get('touching_sequence_accuracy', float('nan')):.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
