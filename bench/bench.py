"""`make bench`: every preset of a dataset's presets file trained on each of its seeds, scored once at the end.

A dataset's presets are bench/presets.yaml for MNIST and bench/presets-<dataset>.yaml for another.  A
preset is a set of params.yaml overrides (what `dvc exp run -S key=value` sets), validated by the
pipeline's own loader; beside them, the baseline stage's logistic regression, once.  Each training runs
in a process of its own, on the split the download and preprocess stages make of the dataset with
params.yaml's `preprocess` (the pipeline's own split, made here so the workspace is left alone): the
validation split steers it (early stopping, the kept epoch), the test set is scored once, after it.
Seeds are interleaved across presets (every preset's first seed, then every second one), so a
machine that slows down mid-run slows all of them alike; ratios compare medians from this one run.

    python bench/bench.py                  # every preset -> metrics/bench.json, reports/bench.{md,png}
    python bench/bench.py --dataset fashion_mnist   # the same, written as bench-fashion_mnist.{json,md,png}
    python bench/bench.py --presets best,deep,fast,tiny   # those presets only (their ratios; the others None)
    python bench/bench.py --presets tiny,fast --max-seeds 2   # tiny and fast, 2 seeds at most
    python bench/bench.py --quick          # smoke test: 2,000 images, 1 epoch, 1 seed each -> bench/quick/

Only a full run (every preset, every seed) writes metrics/bench.json and reports/: a partial one
writes bench/partial/, and never replaces the committed full run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).parent)]  # from anywhere in the checkout

# bench/bench_presets.py and bench/bench_results.py
from bench_presets import load_presets, load_splits, make_splits, preset_params, presets_file
from bench_results import THROUGHPUT_PRESET, destination, ratios, report, summarise

from pipeline.infra.params import Params, load_params

THROUGHPUT_REPEATS = 5  # ONNX throughputs, measured alternately


def train_one(overrides: dict, seed: int, splits: Path, dataset: str, quick: bool, throughputs: bool) -> dict:
    """Train one preset on one seed, as the train stage does; its validation and test accuracy (the
    test set scored once), training seconds and, if `throughputs`, the throughput of its fp32 and int8
    ONNX exports as the export stage writes them."""
    from pipeline.ml import training

    params = preset_params(overrides | ({"train.epochs": 1} if quick else {}), seed, dataset)
    (x, y), validation, (x_test, y_test) = load_splits(splits, quick)
    trained = training.train(params, (x, y), validation)
    result = scores(trained.model, validation, (x_test, y_test), params) | {
        "train_seconds": round(trained.seconds, 1),
        "epochs_run": trained.metrics["epochs_run"],
        "params": trained.metrics["params"],
    }
    if throughputs:
        result |= onnx_throughputs(trained.model, x, x_test, params)
    return result


def scores(model, validation: tuple, test: tuple, params: Params) -> dict:
    """Validation accuracy, and test accuracy: the test set scored once, reported only."""
    from pipeline.ml import training

    (x_test, y_test), batch_size = test, params.evaluate.batch_size
    predicted = model.predict(x_test, batch_size=batch_size, verbose=0).argmax(axis=1)
    return {
        "test_accuracy": float(np.mean(predicted == y_test)),
        "val_accuracy": training.validation_metrics(model, validation, batch_size)["accuracy"],
    }


def onnx_throughputs(model, calibration: np.ndarray, images: np.ndarray, params: Params) -> dict:
    """Images/s and one image's latency of the model's fp32 and int8 ONNX exports (`fp32_onnx_...`,
    `int8_onnx_...`) at `evaluate.batch_size`, measured alternately, THROUGHPUT_REPEATS times."""
    from pipeline.ml import onnx_export
    from pipeline.ml.predictors import onnx_predictor
    from pipeline.ml.scoring import timed_predictions

    with tempfile.TemporaryDirectory() as folder:
        files = {name: Path(folder, f"{name}.onnx") for name in ("fp32", "int8")}
        onnx_export.export(model, files["fp32"], files["int8"], calibration, params)
        predictors = {name: onnx_predictor(file) for name, file in files.items()}
        speeds = {name: [] for name in predictors}
        for _ in range(THROUGHPUT_REPEATS):
            for name, predictor in predictors.items():
                _, speed = timed_predictions(
                    predictor, images, params.evaluate.batch_size, params.evaluate.latency_runs
                )
                speeds[name].append(speed)
    return {
        f"{name}_onnx_{key}": [speed[key] for speed in runs]
        for name, runs in speeds.items()
        for key in ("throughput_images_per_s", "latency_ms_p50")
    }


def baseline_scores(splits: Path, dataset: str, quick: bool) -> dict:
    """The baseline stage's logistic regression, fitted on the training split as the stage fits it:
    its validation and test accuracy (the test set scored once) and fitting seconds."""
    from pipeline.stages import baseline

    params = preset_params({}, 0, dataset).baseline
    (x, y), (x_val, y_val), (x_test, y_test) = load_splits(splits, quick)
    start = time.perf_counter()
    model, converged = baseline.fit(x, y, params)
    seconds = time.perf_counter() - start
    accuracy = {
        name: float(np.mean(model.predict(xs) == ys))
        for name, xs, ys in (("val", x_val, y_val), ("test", x_test, y_test))
    }
    return {
        "test_accuracy": accuracy["test"],
        "val_accuracy": accuracy["val"],
        "train_seconds": round(seconds, 1),
        "converged": converged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", help="a key of params.yaml's data.datasets (default: params.yaml's data.dataset)")
    parser.add_argument("--quick", action="store_true", help="2,000 images, 1 epoch, the first seed of each preset")
    parser.add_argument("--presets", help="comma-separated names, run in this order (default: every preset)")
    parser.add_argument("--max-seeds", type=int, help="at most this many seeds per preset (a shorter, weaker bench)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: train one preset on one seed, print JSON
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--splits", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--throughputs", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    dataset = args.dataset or load_params().data.dataset
    preset_params({}, 0, dataset)  # an unknown dataset is refused here, in one line
    presets = load_presets(dataset)
    if args.one:
        overrides = presets[args.one]["params"]
        print(json.dumps(train_one(overrides, args.seed, args.splits, dataset, args.quick, args.throughputs)))
        return
    chosen = args.presets.split(",") if args.presets else list(presets)
    if unknown := sorted(set(chosen) - set(presets)):
        file = presets_file(dataset)
        sys.exit(f"bench: --presets: no preset {', '.join(unknown)} in {file} (it has {', '.join(presets)})")
    seeds = {name: presets[name]["seeds"][: 1 if args.quick else args.max_seeds] for name in chosen}
    runs = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory() as splits:
        make_splits(dataset, Path(splits))
        for round_ in range(max(map(len, seeds.values()))):
            for name in chosen:
                if round_ < len(seeds[name]):
                    seed = seeds[name][round_]
                    throughputs = name == THROUGHPUT_PRESET and round_ == 0
                    trained = _train_in_process(name, seed, Path(splits), dataset, args.quick, throughputs)
                    runs[name].append({"seed": seed} | trained)
                    print(f"bench: {name} seed {seed}: {trained['test_accuracy']:.4f}", file=sys.stderr, flush=True)
        baseline = baseline_scores(Path(splits), dataset, args.quick)
    summary = {name: summarise(preset_runs) for name, preset_runs in runs.items()}
    report(summary, ratios(summary, runs), runs, baseline, dataset, destination(args.quick, seeds, presets))


def _train_in_process(name: str, seed: int, splits: Path, dataset: str, quick: bool, throughputs: bool) -> dict:
    """train_one in a fresh process: its memory and threads are its own, and nothing carries over."""
    command = [sys.executable, __file__, "--one", name, "--seed", str(seed), "--splits", str(splits)]
    command += ["--dataset", dataset]
    command += ["--quick"] * quick + ["--throughputs"] * throughputs
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        sys.exit(f"bench: {name} seed {seed} failed:\n{finished.stderr[-3000:]}")
    return json.loads(finished.stdout.splitlines()[-1])


if __name__ == "__main__":
    main()
