"""What a bench run writes: each preset's summary over its seeds, the ratios the targets are stated in,
and the report: metrics/bench.json, reports/bench.md and reports/bench.png for MNIST, bench-<dataset>.*
beside them for another dataset, or all in a folder of its own."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd
from bench_presets import named  # bench/bench_presets.py
from matplotlib import ticker
from matplotlib.figure import Figure

from pipeline.infra import paths
from pipeline.infra.cpus import usable_cpus
from pipeline.infra.files import atomic_write, save_json
from pipeline.report import plots

THROUGHPUT_PRESET = "default"  # its first model's int8 ONNX export against its fp32 one


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


def destination(quick: bool, seeds: dict[str, list[int]], presets: dict) -> Path | None:
    """Where a run writes: None (metrics/ and reports/) for a full run only; a quick or partial run
    (fewer presets or seeds) its own folder, so it never replaces the committed full run."""
    if quick:
        return Path("bench/quick")
    full = seeds == {name: preset["seeds"] for name, preset in presets.items()}
    return None if full else Path("bench/partial")


def machine() -> dict:
    """The CPU the figures were measured on (they hold on that kind of machine only)."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = {line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")}
    return {"cpu": ", ".join(sorted(models)), "cores": usable_cpus()}


def report(summary: dict, ratios: dict, runs: dict, baseline: dict, dataset: str, folder: Path | None) -> None:
    """Print the table; write metrics/bench.json, reports/bench.md and reports/bench.png (or all to
    `folder`); for a dataset other than MNIST, bench-<dataset>.json and so on."""
    table = pd.DataFrame(summary).T[["test_accuracy_mean", "test_accuracy_sd", "train_seconds_median", "params"]]
    print(table.to_string(), "\n", json.dumps(ratios), "\nbaseline: ", json.dumps(baseline), sep="")
    metrics_dir, reports_dir = (folder, folder) if folder else (paths.METRICS_DIR, Path("reports"))
    name = named("bench", dataset)
    results = {"dataset": dataset, "presets": summary, "baseline": baseline, "ratios": ratios, "runs": runs}
    save_json(metrics_dir / f"{name}.json", results | {"machine": machine()})
    plots.save(accuracy_against_time(summary, baseline), reports_dir / f"{name}.png")
    with atomic_write(reports_dir / f"{name}.md") as tmp:
        tmp.write_text(table.to_markdown(floatfmt="g", missingval="-") + "\n")


def accuracy_against_time(summary: dict[str, dict], baseline: dict | None = None) -> Figure:
    """Each preset's test accuracy (mean and sd over its seeds) against its median training seconds, and
    the `baseline`'s logistic regression where given, named in a legend below (labels beside the points
    collide where presets are close); at least a decade of seconds shown, so close times stay apart."""
    figure = Figure(figsize=(8, 4.8), layout="constrained")
    axes = figure.add_subplot()
    for name, preset in summary.items():
        accuracy, sd = 100 * preset["test_accuracy_mean"], 100 * (preset["test_accuracy_sd"] or 0)
        axes.errorbar(preset["train_seconds_median"], accuracy, yerr=sd, marker="o", capsize=3, label=name)
    seconds = [preset["train_seconds_median"] for preset in summary.values()]
    if baseline and baseline["train_seconds"] > 0:  # (on a few images, it fits in less than the 0.1 s it is rounded to)
        axes.plot(baseline["train_seconds"], 100 * baseline["test_accuracy"], "kx", label="logistic regression")
        seconds.append(baseline["train_seconds"])
    middle = (min(seconds) * max(seconds)) ** 0.5
    axes.set(
        xlabel="median training seconds (this machine)",
        ylabel="test accuracy (%), mean ± sd over seeds",
        xscale="log",
        xlim=(min(min(seconds) / 1.5, middle / 3.2), max(max(seconds) * 1.5, middle * 3.2)),
        title="Accuracy against training time",
    )
    axes.xaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))  # 10, 20, 50, 100, ... seconds
    axes.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    axes.xaxis.set_minor_formatter(ticker.NullFormatter())
    figure.legend(loc="outside lower center", ncols=min(len(seconds), 5), frameon=False)
    return figure
