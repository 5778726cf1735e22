"""`make bench`: every preset of bench/presets.yaml trained on each of its seeds, scored once at the end.

A preset is a set of params.yaml overrides (what `dvc exp run -S key=value` sets), validated by the
pipeline's own loader.  Each training runs in a process of its own, on the preprocessed split: the
validation split steers it (early stopping, the kept epoch), the test set is scored once, after it.
Seeds are interleaved across presets (every preset's first seed, then every second one), so a
machine that slows down mid-run slows all of them alike; ratios compare medians from this one run.

    python bench/bench.py                  # every preset -> metrics/bench.json, reports/bench.{md,png}
    python bench/bench.py --presets best,deep,fast,tiny   # those presets only (their ratios; the others None)
    python bench/bench.py --presets tiny,fast --max-seeds 2   # tiny and fast, 2 seeds at most
    python bench/bench.py --quick          # smoke test: 2,000 images, 1 epoch, 1 seed each -> bench/quick/

Only a full run (every preset, every seed) writes metrics/bench.json and reports/: a partial one
writes bench/partial/, and never replaces the committed full run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from matplotlib import ticker
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout

from pipeline.infra import paths
from pipeline.infra.cpus import usable_cpus
from pipeline.infra.files import atomic_write, save_json
from pipeline.infra.overrides import with_overrides
from pipeline.infra.params import Params, load_params
from pipeline.report import plots

PRESETS_FILE = Path(__file__).with_name("presets.yaml")
THROUGHPUT_REPEATS = 5  # ONNX throughputs, measured alternately
THROUGHPUT_PRESET = "default"  # its first model's int8 ONNX export against its fp32 one


def preset_params(overrides: dict, seed: int) -> Params:
    """params.yaml with a preset's overrides and `train.seed`, through the pipeline's validation."""
    return with_overrides(load_params(), {**overrides, "train.seed": seed}, origin=str(PRESETS_FILE))


def train_one(overrides: dict, seed: int, quick: bool, throughputs: bool) -> dict:
    """Train one preset on one seed, as the train stage does; its validation and test accuracy (the
    test set scored once), training seconds and, if `throughputs`, the throughput of its fp32 and int8
    ONNX exports as the export stage writes them."""
    from pipeline.ml import training

    params = preset_params(overrides | ({"train.epochs": 1} if quick else {}), seed)
    (x, y), validation, (x_test, y_test) = (paths.load_split(split) for split in paths.SPLITS)
    if quick:
        x, y = x[:2000], y[:2000]
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


def summarise(runs: list[dict]) -> dict:
    """One preset's seeds: test accuracy as a list, mean and sd; training seconds as a list and median."""
    accuracies, seconds = [r["test_accuracy"] for r in runs], [r["train_seconds"] for r in runs]
    return {
        "seeds": [r["seed"] for r in runs],
        "test_accuracy": accuracies,
        "test_accuracy_mean": round(statistics.mean(accuracies), 5),
        "test_accuracy_sd": round(statistics.stdev(accuracies), 5) if len(runs) > 1 else None,
        "val_accuracy_mean": round(statistics.mean(r["val_accuracy"] for r in runs), 5),
        "train_seconds": seconds,
        "train_seconds_median": round(statistics.median(seconds), 2),  # of seconds to 0.1: a median of two to 0.05
        "epochs_run": [r["epochs_run"] for r in runs],
        "params": runs[0]["params"],
    }


def ratios(summary: dict, runs: dict[str, list[dict]]) -> dict:
    """The ratios the targets are stated in, each from this run's medians (None where a preset is absent)."""
    median = {name: preset["train_seconds_median"] for name, preset in summary.items()}
    found = {
        "default_train_time_vs_bn": ("default", "bn"),
        "fast_train_time_vs_tiny": ("fast", "tiny"),
        "best_train_time_vs_deep": ("best", "deep"),
    }
    result = {
        ratio: round(median[a] / median[b], 3) if {a, b} <= set(median) else None for ratio, (a, b) in found.items()
    }
    result["int8_vs_fp32_onnx_throughput"] = None
    if timed := [r for r in runs.get(THROUGHPUT_PRESET, []) if "fp32_onnx_throughput_images_per_s" in r]:
        int8, fp32 = (statistics.median(timed[0][f"{m}_onnx_throughput_images_per_s"]) for m in ("int8", "fp32"))
        result["int8_vs_fp32_onnx_throughput"] = round(int8 / fp32, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 images, 1 epoch, the first seed of each preset")
    parser.add_argument("--presets", help="comma-separated names, run in this order (default: every preset)")
    parser.add_argument("--max-seeds", type=int, help="at most this many seeds per preset (a shorter, weaker bench)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: train one preset on one seed, print JSON
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--throughputs", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    presets = yaml.safe_load(PRESETS_FILE.read_text())["presets"]
    if args.one:
        print(json.dumps(train_one(presets[args.one]["params"], args.seed, args.quick, args.throughputs)))
        return
    chosen = args.presets.split(",") if args.presets else list(presets)
    if unknown := sorted(set(chosen) - set(presets)):
        sys.exit(f"bench: --presets: no preset {', '.join(unknown)} in {PRESETS_FILE} (it has {', '.join(presets)})")
    seeds = {name: presets[name]["seeds"][: 1 if args.quick else args.max_seeds] for name in chosen}
    runs = {name: [] for name in chosen}
    for round_ in range(max(map(len, seeds.values()))):
        for name in chosen:
            if round_ < len(seeds[name]):
                seed = seeds[name][round_]
                throughputs = name == THROUGHPUT_PRESET and round_ == 0
                runs[name].append({"seed": seed} | _train_in_process(name, seed, args.quick, throughputs))
                print(f"bench: {name} seed {seed}: {runs[name][-1]['test_accuracy']:.4f}", file=sys.stderr, flush=True)
    summary = {name: summarise(preset_runs) for name, preset_runs in runs.items()}
    report(summary, ratios(summary, runs), runs, destination(args.quick, seeds, presets))


def destination(quick: bool, seeds: dict[str, list[int]], presets: dict) -> Path | None:
    """Where a run writes: None (metrics/ and reports/) for a full run only; a quick or partial run
    (fewer presets or seeds) its own folder, so it never replaces the committed full run."""
    if quick:
        return Path("bench/quick")
    full = seeds == {name: preset["seeds"] for name, preset in presets.items()}
    return None if full else Path("bench/partial")


def _train_in_process(name: str, seed: int, quick: bool, throughputs: bool) -> dict:
    """train_one in a fresh process: its memory and threads are its own, and nothing carries over."""
    command = [sys.executable, __file__, "--one", name, "--seed", str(seed)]
    command += ["--quick"] * quick + ["--throughputs"] * throughputs
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        sys.exit(f"bench: {name} seed {seed} failed:\n{finished.stderr[-3000:]}")
    return json.loads(finished.stdout.splitlines()[-1])


def machine() -> dict:
    """The CPU the figures were measured on (they hold on that kind of machine only)."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = {line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")}
    return {"cpu": ", ".join(sorted(models)), "cores": usable_cpus()}


def report(summary: dict, ratios: dict, runs: dict, folder: Path | None) -> None:
    """Print the table; write metrics/bench.json, reports/bench.md and reports/bench.png (or all to `folder`)."""
    table = pd.DataFrame(summary).T[["test_accuracy_mean", "test_accuracy_sd", "train_seconds_median", "params"]]
    print(table.to_string(), "\n", json.dumps(ratios), sep="")
    metrics_dir, reports_dir = (folder, folder) if folder else (paths.METRICS_DIR, Path("reports"))
    save_json(metrics_dir / "bench.json", {"presets": summary, "ratios": ratios, "runs": runs, "machine": machine()})
    plots.save(accuracy_against_time(summary), reports_dir / "bench.png")
    with atomic_write(reports_dir / "bench.md") as tmp:
        tmp.write_text(table.to_markdown(floatfmt="g", missingval="-") + "\n")


def accuracy_against_time(summary: dict[str, dict]) -> Figure:
    """Each preset's test accuracy (mean and sd over its seeds) against its median training seconds,
    named in a legend (labels beside the points collide where presets are close)."""
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for name, preset in summary.items():
        accuracy, sd = 100 * preset["test_accuracy_mean"], 100 * (preset["test_accuracy_sd"] or 0)
        axes.errorbar(preset["train_seconds_median"], accuracy, yerr=sd, marker="o", capsize=3, label=name)
    axes.set(
        xlabel="median training seconds (this machine)",
        ylabel="test accuracy (%), mean ± sd over seeds",
        xscale="log",
        title="Accuracy against training time",
    )
    axes.xaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))  # 10, 20, 50, 100, ... seconds
    axes.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    axes.xaxis.set_minor_formatter(ticker.NullFormatter())
    axes.legend(loc="lower right")
    return figure


if __name__ == "__main__":
    main()
