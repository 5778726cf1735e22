"""How the settings of pipeline/images/segmentation.py and its detector were chosen: never on the test set.

Each setting (and each touching-digits detector given with --touching) reads the same photos the numbers
stage reads, made the same way but of other digits: numbers composed of the preprocessed *training*
split (as the detector's examples are), and the held-out material (`pipeline.images.other_hands`:
numbers and single digits written and photographed another way) of the *validation* split and of UCI's
digits.  The test set is read by the stage only.  The digit model is the export of the last `dvc repro`.

    python bench/segmentation.py                                   # the committed settings
    python bench/segmentation.py SPLIT_WIDTH=1.15,1.3 --count 300
    python bench/segmentation.py --touching models/touching.onnx other.onnx --outside-numbers 1000
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
from pipeline.reading import photographed
from pipeline.stages import compose, numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", nargs="*", metavar="NAME=V1,V2", help="a constant of the segmentation and values")
    parser.add_argument("--count", type=int, default=300, help="composed numbers (default 300)")
    parser.add_argument("--outside-numbers", type=int, default=500, help="held-out numbers (default 500)")
    parser.add_argument("--outside-digits", type=int, default=1000, help="held-out single digits (default 1000)")
    parser.add_argument("--touching", nargs="+", type=Path, default=[paths.TOUCHING_MODEL], help="detectors to compare")
    options = parser.parse_args()
    names = [item.split("=")[0] for item in options.grid]
    values = [[float(v) for v in item.split("=")[1].split(",")] for item in options.grid]
    params = load_params().numbers.model_copy(
        update={
            "count": options.count,
            "outside_numbers": options.outside_numbers,
            "outside_digits": options.outside_digits,
        }
    )
    composed = compose.compose_all(*paths.load_split("train"), params)  # photographed once, read per setting
    outside = compose.outside_all(*paths.load_split("val"), params)
    print("detector\tsetting\tsequence\tdigits\tcount\ttouching\toutside whole\toutside digits read\tas several")
    for touching, setting in itertools.product(options.touching, itertools.product(*values)):
        for name, value in zip(names, setting, strict=True):
            setattr(
                segmentation, name, type(getattr(segmentation, name))(value)
            )  # read at call time; forked workers inherit it
        cut = photographed.cut_all(photographed.every_photo(composed, outside), touching)
        table = numbers.read_all(composed, outside, cut, (paths.ONNX_MODEL, touching))
        metrics = numbers.number_metrics(table[table.material == "composed"]) | numbers.outside_metrics(table)
        label = " ".join(f"{n}={v}" for n, v in zip(names, setting, strict=True)) or "committed"
        print(
            f"{touching}\t{label}\t{metrics['sequence_accuracy']:.3f}\t{metrics['digit_accuracy']:.3f}"
            f"\t{metrics['count_accuracy']:.3f}\t{metrics.get('touching_sequence_accuracy', float('nan')):.3f}"
            f"\t{metrics.get('outside_sequence_accuracy', float('nan')):.3f}"
            f"\t{metrics.get('outside_digits_read', float('nan')):.3f}\t{metrics.get('outside_digits_as_several', 0)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
