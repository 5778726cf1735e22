"""bench/bench.py in quick mode, for real, on generated data; and its presets through the params loader."""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys

import numpy as np
import pytest
import yaml

from tests.mnist_files import REPO, repo_mnist, sha256, url_source, write_npz

_SPEC = importlib.util.spec_from_file_location("bench", REPO / "bench" / "bench.py")  # a script, not a package
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)
presets = importlib.import_module("bench_presets")  # on the path bench.py sets
results = importlib.import_module("bench_results")

PRESETS = yaml.safe_load(presets.PRESETS_FILE.read_text())["presets"]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_is_valid_params(name, monkeypatch):
    monkeypatch.chdir(REPO)
    params = presets.preset_params(PRESETS[name]["params"], seed=7)
    assert params.train.seed == 7
    assert len(PRESETS[name]["seeds"]) >= {"default": 3, "fast": 5, "deep": 1}.get(name, 2)


def test_every_fashion_preset_is_valid_params_on_fashion_mnist_its_own_over_three_seeds(monkeypatch):
    """Fashion-MNIST's own recipes over 3 seeds at least; the seed projects' as they are on MNIST."""
    monkeypatch.chdir(REPO)
    fashion = presets.load_presets("fashion_mnist")
    own = yaml.safe_load(presets.presets_file("fashion_mnist").read_text())["presets"]
    assert {name: fashion[name] for name in fashion if name not in own} == {
        name: PRESETS[name] for name in ("tiny", "simple", "lenet5", "bn")
    }
    for name, preset in fashion.items():
        params = presets.preset_params(preset["params"], seed=7, dataset="fashion_mnist")
        assert params.data.dataset == "fashion_mnist" and params.train.seed == 7, name
        assert len(preset["seeds"]) >= (3 if name in own else 2), name


@pytest.mark.parametrize("borrowed", [["tiny", "nonexistent"], ["default"]])
def test_a_preset_taken_from_mnist_must_be_one_of_mnist_s_and_not_one_of_its_own(borrowed, tmp_path):
    fashion = yaml.safe_load(presets.presets_file("fashion_mnist").read_text()) | {"as_on_mnist": borrowed}
    file = tmp_path / "presets.yaml"
    file.write_text(yaml.safe_dump(fashion))
    with pytest.raises(SystemExit) as refused:
        presets.read_presets(file)
    assert str(refused.value).startswith(f"bench: {file}: as_on_mnist names {borrowed[-1]}: each must be a preset of ")


def test_the_fast_preset_is_the_documented_one():
    """docs/performance.md's `dvc exp run` line for `fast` sets exactly the preset's overrides."""
    line = next(line for line in (REPO / "docs/performance.md").read_text().splitlines() if "model.arch=fast" in line)
    documented = dict(arg.split("=", 1) for arg in line.split() if "=" in arg and not arg.startswith("-"))
    assert documented == {key: str(value).lower() for key, value in PRESETS["fast"]["params"].items()}


FASHION = yaml.safe_load(presets.presets_file("fashion_mnist").read_text())["presets"]


@pytest.mark.e2e
def test_quick_bench_scores_each_seed_once_and_measures_ratios(tmp_path, repo_params, http_server):
    """Fashion-MNIST's presets file (a local server holding generated images as its source), through
    the download and preprocess stages' own split: two presets, in the order asked for, `default` (its
    fp32 and int8 exports timed) and `mnist_recipe` (not timed), and the logistic regression.
    The ratios' arithmetic over MNIST's presets:
    test_ratios_divide_this_run_s_medians_and_leave_an_absent_preset_s_none."""
    root, url, _ = http_server
    served = write_npz(root, repo_mnist())
    repo_params["data"]["datasets"]["fashion_mnist"]["sources"] = [
        url_source("local", "npz", url, {served.name: sha256(served)})
    ]
    repo_params["data"]["cache_dir"] = "cache"
    repo_params["evaluate"]["latency_runs"] = 5  # single-image timings: the code path, not the figure
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), "--dataset", "fashion_mnist", "--quick"]
        + ["--presets", "default,mnist_recipe"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "bench" / "quick" / "bench-fashion_mnist.json").read_text())
    assert report["dataset"] == "fashion_mnist" and list(report["presets"]) == ["default", "mnist_recipe"]
    for name, preset in report["presets"].items():
        assert preset["seeds"] == FASHION[name]["seeds"][:1] and len(preset["test_accuracy"]) == 1
        assert preset["test_accuracy_mean"] == round(preset["test_accuracy"][0], 5) and preset["epochs_run"] == [1]
        assert preset["train_seconds_median"] == preset["train_seconds"][0] > 0
    assert report["presets"]["default"]["params"] == 241_546  # the model's own count (test_models: the presets')
    (default,) = report["runs"]["default"]
    assert len(default["int8_onnx_throughput_images_per_s"]) == bench.THROUGHPUT_REPEATS
    int8, fp32 = (statistics.median(default[f"{m}_onnx_throughput_images_per_s"]) for m in ("int8", "fp32"))
    assert report["ratios"]["int8_vs_fp32_onnx_throughput"] == round(int8 / fp32, 3)
    assert report["ratios"]["best_train_time_vs_deep"] is None  # deep did not run
    (reference,) = report["runs"]["mnist_recipe"]
    assert not any("onnx" in key for key in reference)  # only `default`'s exports are timed
    assert 0.3 < report["baseline"]["test_accuracy"] <= 1 and report["baseline"]["train_seconds"] >= 0  # 0.0: < 0.05 s
    assert (tmp_path / "bench" / "quick" / "bench-fashion_mnist.png").stat().st_size > 10_000
    assert not (tmp_path / "data").exists(), "the workspace's split is left alone"


@pytest.mark.parametrize("key", ["preprocess.val_fraction", "data.dataset"])
def test_a_preset_that_changes_the_split_is_refused(key, tmp_path):
    fashion = yaml.safe_load(presets.presets_file("fashion_mnist").read_text())
    fashion["presets"]["default"]["params"][key] = "anything"
    file = tmp_path / "presets.yaml"
    file.write_text(yaml.safe_dump(fashion))
    with pytest.raises(SystemExit) as refused:
        presets.read_presets(file)
    assert str(refused.value) == f"bench: {file}: preset default sets {key}: presets share one split"


def test_only_a_full_run_writes_the_committed_bench():
    """Every preset on every seed writes metrics/bench.json; fewer presets or seeds write bench/partial/."""
    every = {name: preset["seeds"] for name, preset in PRESETS.items()}
    assert results.destination(False, every, PRESETS) is None
    assert results.destination(False, dict(reversed(every.items())), PRESETS) is None  # the order is the user's
    assert results.destination(False, {"best": every["best"], "deep": every["deep"]}, PRESETS).name == "partial"
    assert results.destination(False, {name: seeds[:1] for name, seeds in every.items()}, PRESETS).name == "partial"
    assert results.destination(True, {name: seeds[:1] for name, seeds in every.items()}, PRESETS).name == "quick"


def _synthetic_run(seed: int, seconds: float, accuracy: float) -> dict:
    return {
        "seed": seed,
        "test_accuracy": accuracy,
        "val_accuracy": accuracy,
        "train_seconds": seconds,
        "epochs_run": 1,
        "params": 10,
    }


def test_ratios_divide_this_run_s_medians_and_leave_an_absent_preset_s_none():
    """bench.py's arithmetic on synthetic runs: medians of seconds, ratios of medians, None for an absent preset."""
    runs = {
        "default": [_synthetic_run(42, 30.0, 0.99), _synthetic_run(43, 10.0, 0.98), _synthetic_run(44, 20.0, 0.97)],
        "bn": [_synthetic_run(42, 8.0, 0.99), _synthetic_run(43, 12.0, 0.99)],
        "fast": [_synthetic_run(42, 3.0, 0.98)],
        "tiny": [_synthetic_run(42, 2.0, 0.9), _synthetic_run(43, 6.0, 0.9)],
    }
    runs["default"][0] |= {
        "int8_onnx_throughput_images_per_s": [90, 100, 80],
        "fp32_onnx_throughput_images_per_s": [50, 40, 60],
    }
    summary = {name: results.summarise(preset_runs) for name, preset_runs in runs.items()}
    assert summary["default"]["train_seconds_median"] == 20.0 and summary["tiny"]["train_seconds_median"] == 4.0
    assert summary["default"]["test_accuracy_mean"] == 0.98 and summary["default"]["test_accuracy_sd"] == 0.01
    assert summary["fast"]["test_accuracy_sd"] is None  # one seed: no spread to report
    assert results.ratios(summary, runs) == {
        "default_train_time_vs_bn": 2.0,  # 20 / 10
        "fast_train_time_vs_tiny": 0.75,  # 3 / 4
        "best_train_time_vs_deep": None,
        "int8_vs_fp32_onnx_throughput": 1.8,  # 90 / 50
    }


_STAGES_SPEC = importlib.util.spec_from_file_location("stages", REPO / "bench" / "stages.py")
stages = importlib.util.module_from_spec(_STAGES_SPEC)
_STAGES_SPEC.loader.exec_module(stages)


def test_stage_times_run_from_each_stage_line_to_the_next_and_take_training_from_its_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics" / "speed").mkdir(parents=True)
    (tmp_path / "metrics" / "speed" / "train.json").write_text('{"train_seconds": 0.5}')
    lines = ["Running stage 'train':", "> python -m pipeline train", "Running stage 'record':"]
    result = stages.time_stages([sys.executable, "-c", f"print({chr(10).join(lines)!r})"])
    assert list(result["stages"]) == ["train", "record"]
    assert sum(result["stages"].values()) <= result["total_seconds"] + 0.1  # each rounded to 0.1 s
    assert result["train_seconds"] == 0.5
    assert result["outside_training_seconds"] == round(result["total_seconds"] - 0.5, 1)


def test_a_failing_command_stops_the_timing_with_its_exit_code():
    with pytest.raises(SystemExit, match="exited 3"):
        stages.time_stages([sys.executable, "-c", "raise SystemExit(3)"])


_ENSEMBLES_SPEC = importlib.util.spec_from_file_location("ensembles", REPO / "bench" / "ensembles.py")
ensembles = importlib.util.module_from_spec(_ENSEMBLES_SPEC)
_ENSEMBLES_SPEC.loader.exec_module(ensembles)


def _member(right: list[bool], confidence: float, seconds: float) -> dict:
    """Probabilities on validation images of digit 0: `confidence` on 0 where `right`, else on 1."""
    probabilities = np.full((len(right), 10), (1 - confidence) / 9)
    probabilities[np.arange(len(right)), [0 if r else 1 for r in right]] = confidence
    return {"probabilities": probabilities, "seconds": np.float64(seconds)}


def test_a_pool_is_ensembled_in_disjoint_groups_in_seed_order():
    labels = np.zeros(4, dtype=int)
    pool = [
        _member([True, True, False, False], 0.9, 10),
        _member([True, False, True, False], 0.6, 20),
        _member([True, True, True, False], 0.7, 30),
        _member([False, False, False, False], 0.8, 50),
    ]
    scores = ensembles.scores(pool, labels, range(1, 5))
    assert scores[1]["val_accuracy"] == [0.5, 0.5, 0.75, 0.0] and scores[1]["groups"] == 4
    assert scores[2]["val_accuracy"] == [0.5, 0.0]  # averaged probabilities: the surer member wins a split vote
    assert scores[2]["val_accuracy_mean"] == 0.25 and scores[2]["val_accuracy_sd"] == 0.35355
    assert scores[2]["train_seconds_median"] == 55.0  # the median of 10 + 20 and 30 + 50
    assert scores[3] == {  # one group of three, the fourth member left out of it (not of every subset's mean)
        "groups": 1,
        "val_accuracy": [0.75],
        "val_accuracy_mean": 0.75,
        "val_accuracy_sd": None,
        "val_accuracy_every_subset_mean": 0.5,  # (0.75 + 0.25 + 0.5 + 0.5) / 4
        "train_seconds_median": 60.0,
    }
    assert scores[4]["val_accuracy"] == [0.5]
    assert ensembles.pool_folder("default", {"train.epochs": 7}).name == "default,train.epochs=7"


def test_mixed_pairs_join_each_member_to_the_partner_of_its_seed():
    labels = np.zeros(4, dtype=int)
    members = [
        _member([True, True, False, False], 0.9, 10),
        _member([True, False, True, False], 0.6, 20),
        _member([True, True, True, False], 0.7, 30),
    ]
    undecided = {"probabilities": np.full((4, 10), 0.1), "seconds": np.float64(3)}  # the member's vote decides
    partners = [_member([False] * 4, 0.95, 1), _member([True] * 4, 0.95, 2), undecided]  # the surer vote decides
    assert ensembles.pair_scores(members, partners, labels) == {
        "pairs": 3,
        "val_accuracy": [0.0, 1.0, 0.75],
        "val_accuracy_mean": 0.58333,
        "val_accuracy_sd": 0.52042,
        "val_accuracy_every_pairing_mean": 0.52778,  # (0 + 0 + 0 + 1 + 1 + 1 + 0.5 + 0.5 + 0.75) / 9
        "train_seconds_median": 22.0,  # the median of 10 + 1, 20 + 2 and 30 + 3
    }
