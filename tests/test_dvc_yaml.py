"""dvc.yaml agrees with the code: declared paths are the ones stages write, declared params exist."""

from __future__ import annotations

import yaml

from pipeline import evaluate, paths
from pipeline.__main__ import STAGES
from tests.mnist_files import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())


def _outs(stage: dict) -> set[str]:
    return {next(iter(out)) if isinstance(out, dict) else out for out in stage.get("outs", [])}


def test_every_stage_is_a_cli_command_run_the_same_way():
    assert set(DVC["stages"]) <= set(STAGES)
    for name, stage in DVC["stages"].items():
        assert stage["cmd"] == f"python -m pipeline {name}"
        assert f"pipeline/{name}.py" in stage["deps"]


def test_declared_outputs_match_the_code():
    assert _outs(DVC["stages"]["train"]) == {
        str(p) for p in (paths.CNN_MODEL, paths.CNN_RUN, paths.HISTORY, paths.TRAIN_METRICS, paths.TRAIN_SPEED)
    }
    evaluate_outs = (paths.TEST_METRICS, paths.INFERENCE_SPEED, paths.CNN_PREDICTIONS, paths.CLASSIFICATION_REPORT)
    assert _outs(DVC["stages"]["evaluate"]) == {str(p) for p in (*evaluate_outs, *evaluate.FIGURES)}
    assert _outs(DVC["stages"]["baseline"]) == {
        str(p)
        for p in (
            paths.BASELINE_MODEL,
            paths.BASELINE_RUN,
            paths.BASELINE_METRICS,
            paths.BASELINE_SPEED,
            paths.BASELINE_PREDICTIONS,
        )
    }
    assert _outs(DVC["stages"]["compare"]) == {
        str(p) for p in (paths.COMPARE_METRICS, paths.COMPARISON_REPORT, paths.COMPARISON_PLOT)
    }
    assert _outs(DVC["stages"]["export"]) == {
        str(paths.ONNX_MODEL),
        str(paths.EXPORT_METRICS),
        str(paths.EXPORT_SPEED),
    }
    assert _outs(DVC["stages"]["photos"]) == {str(paths.PHOTOS_METRICS), str(paths.PHOTOS_PLOT)}
    assert _outs(DVC["stages"]["download"]) == {str(paths.RAW_DATA), str(paths.RAW_MANIFEST)}
    assert _outs(DVC["stages"]["preprocess"]) == {str(paths.split_file(s)) for s in paths.SPLITS} | {
        str(paths.DATA_METRICS),
        str(paths.CLASS_DISTRIBUTION_PLOT),
    }


SECTION_OF_STAGE = {
    "download": "data",
    "preprocess": "preprocess",
    "train": "train",
    "evaluate": "evaluate",
    "export": "export",
    "photos": "photos",
}


def test_each_stage_declares_exactly_the_keys_of_its_section():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for stage, section in SECTION_OF_STAGE.items():
        declared = set(DVC["stages"][stage]["params"])
        keys = {f"{section}.{key}" for key in params[section]}
        assert section in declared or keys <= declared, f"{stage} does not declare all of {section}"


def _plot_files(entry: str | dict) -> set[str]:
    if isinstance(entry, str):
        return {entry}
    (definition,) = entry.values()
    y = definition["y"]
    return set(y) if isinstance(y, dict) else {y}


def test_committed_metrics_and_plots_are_declared_at_top_level():
    uncached = {
        next(iter(out))
        for stage in DVC["stages"].values()
        for out in stage.get("outs", [])
        if isinstance(out, dict) and out[next(iter(out))].get("cache") is False
    }
    declared = set(DVC["metrics"]) | {file for entry in DVC["plots"] for file in _plot_files(entry)}
    assert declared <= uncached
    # the rest: the MLflow hand-overs (uncached to keep the run cache off) and text reports
    rest = (paths.CNN_RUN, paths.BASELINE_RUN, paths.CLASSIFICATION_REPORT, paths.COMPARISON_REPORT)
    assert uncached - declared == {str(p) for p in rest}
