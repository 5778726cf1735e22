"""`make bench`: the default recipe against the seed presets, on the same data, one after another.

Each model trains in a process of its own (so its peak memory is its own), with the test accuracy
recorded after every epoch against the training seconds spent so far (evaluation time excluded).
Prints a table (time to 98.5 / 99.0 / 99.5% test accuracy, best accuracy, parameters, seconds per
epoch, inference images/s at batch 1000 and 1, peak RSS) and writes it with a time-to-accuracy plot.

    python bench/bench.py                  # full: every model, full data -> metrics/bench.json, reports/bench*
    python bench/bench.py --quick          # smoke test: a data subset, 2 epochs -> bench/quick/
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout

from pipeline import paths, plots
from pipeline.files import atomic_write, save_json
from pipeline.params import AugmentParams, TrainParams, load_params

THRESHOLDS = (0.985, 0.99, 0.995)
SEEDS = ("tiny", "simple", "lenet5", "bn", "deep")


def seed_recipe(default: TrainParams, epochs: int) -> TrainParams:
    """The seed projects' training: Adam 1e-3, batch 64, plateau schedule, early stopping; no augmentation, no EMA."""
    return default.model_copy(
        update={
            "epochs": epochs,
            "batch_size": 64,
            "learning_rate": 1e-3,
            "lr_schedule": "plateau",
            "early_stopping_patience": 3,
            "ema_momentum": 0,
            "augment": AugmentParams(enabled=False, rotation_deg=0, shift=0, zoom=0),
        }
    )


def train_one(arch: str, quick: bool) -> dict:
    """Train `arch` with its recipe; its per-epoch test accuracy, speed and peak memory."""
    import keras

    from pipeline.params import ModelParams
    from pipeline.scoring import inference_speed
    from pipeline.stages import train

    params = load_params()
    recipe = params.train if arch == "default" else seed_recipe(params.train, params.train.epochs)
    if quick:
        recipe = recipe.model_copy(update={"epochs": 2})
    training, validation, (x_test, y_test) = (paths.load_split(s) for s in paths.SPLITS)
    if quick:
        training, x_test, y_test = (training[0][:5000], training[1][:5000]), x_test[:2000], y_test[:2000]

    class TestAccuracy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds, self.rows, self.started = 0.0, [], time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds += time.perf_counter() - self.started
            predicted = self.model.predict(x_test, batch_size=1000, verbose=0).argmax(axis=1)
            self.rows.append(
                {"epoch": epoch + 1, "seconds": self.seconds, "test_accuracy": float(np.mean(predicted == y_test))}
            )
            self.started = time.perf_counter()

    curve = TestAccuracy()
    model, _ = train.train(training, validation, ModelParams(arch=arch), recipe, [curve])
    batched = inference_speed(model.predict_on_batch, x_test, 1000, latency_runs=100)
    return {
        "arch": arch,
        "params": model.count_params(),
        "curve": curve.rows,
        "images_per_s_batch_1000": batched["throughput_images_per_s"],
        "images_per_s_batch_1": round(1000 / batched["latency_ms_p50"]),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def summarise(result: dict) -> dict:
    curve = pd.DataFrame(result["curve"])
    reached = {
        f"seconds_to_{100 * t:g}%": (
            round(float(curve.seconds[curve.test_accuracy >= t].iloc[0]), 1)
            if (curve.test_accuracy >= t).any()
            else None
        )
        for t in THRESHOLDS
    }
    return {
        "arch": result["arch"],
        "best_test_accuracy": float(curve.test_accuracy.max()),
        "seconds_to_best": round(float(curve.seconds[curve.test_accuracy.idxmax()]), 1),
        **reached,
        "epochs": len(curve),
        "seconds_per_epoch": round(float(curve.seconds.iloc[-1]) / len(curve), 1),
        **{k: result[k] for k in ("params", "images_per_s_batch_1000", "images_per_s_batch_1", "peak_rss_mib")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a data subset and 2 epochs: a smoke test of minutes")
    parser.add_argument("--archs", default=",".join(("default", *SEEDS)), help="comma-separated (default: all)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: train one model, print its JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(train_one(args.one, args.quick)))
        return
    results = []
    for arch in args.archs.split(","):
        command = [sys.executable, __file__, "--one", arch, *(["--quick"] if args.quick else [])]
        finished = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(finished.stdout.splitlines()[-1]))
        print(f"bench: {arch} done", file=sys.stderr, flush=True)
    report(results, quick=args.quick)


def report(results: list[dict], quick: bool) -> None:
    """Print the table; write it (JSON, Markdown) and the time-to-accuracy plot."""
    table = pd.DataFrame([summarise(r) for r in results]).set_index("arch")
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    metrics_dir, reports_dir = (Path("bench/quick"),) * 2 if quick else (Path("metrics"), Path("reports"))
    save_json(metrics_dir / "bench.json", {"summary": table.reset_index().to_dict("records"), "runs": results})
    plots.save(plots.time_to_accuracy(results, THRESHOLDS), reports_dir / "bench_time_to_accuracy.png")
    with atomic_write(reports_dir / "bench.md") as tmp:
        tmp.write_text(table.to_markdown(floatfmt="g", missingval="-") + "\n")


if __name__ == "__main__":
    main()
