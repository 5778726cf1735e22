"""dvc.yaml agrees with the code: every module a stage imports is a dep, declared paths are the ones
stages write, record depends on everything it logs."""

from __future__ import annotations

import json

import pytest
import yaml

from pipeline.__main__ import SUBCOMMANDS
from pipeline.infra import paths
from pipeline.stages import evaluate, record
from tests.architecture import import_closure
from tests.mnist_files import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _outs(stage: dict) -> set[str]:
    return {next(iter(out)) if isinstance(out, dict) else out for out in stage.get("outs", [])}


def test_the_import_closure_follows_imports_inside_functions_and_packages_not_error_handlers():
    closure = import_closure("pipeline.commands.predict")
    assert {"pipeline/__init__.py", "pipeline/commands/__init__.py", "pipeline/reading/models.py"} <= closure
    assert "pipeline/infra/tracking.py" in closure  # reading.models imports it inside a function, for MLflow URIs
    assert "pipeline/report/plots.py" in closure  # predict imports it inside a function, for --explain
    params = import_closure("pipeline.infra.params")
    assert "pipeline/infra/params_errors.py" not in params  # imported only while a ValidationError is handled


@pytest.mark.parametrize("name", list(DVC["stages"]))
def test_every_module_a_stage_imports_is_in_its_deps(name):
    stage = DVC["stages"][name]
    assert stage["cmd"] == f"python -m pipeline {name}"
    code_deps = {dep for dep in stage["deps"] if dep.startswith("pipeline/")}
    assert code_deps == import_closure(f"pipeline.stages.{name}")


def test_every_stage_is_a_cli_command():
    assert list(DVC["stages"]) == [
        name for name, sub in SUBCOMMANDS.items() if sub.module.startswith("pipeline.stages.")
    ]


def test_declared_outputs_match_the_code():
    expected = {
        "download": (paths.RAW_DATA, paths.RAW_MANIFEST),
        "preprocess": (
            *map(paths.split_file, paths.SPLITS),
            paths.DATA_METRICS,
            paths.CLASS_COUNTS,
            paths.CLASS_DISTRIBUTION_PLOT,
        ),
        "train": (
            paths.CNN_MODEL,
            paths.CNN_RUN,
            paths.HISTORY,
            paths.TRAIN_METRICS,
            paths.TRAIN_SPEED,
        ),
        "export": (
            paths.CNN_SCORES,
            paths.ONNX_MODEL,
            paths.INT8_MODEL,
            paths.EXPORT_METRICS,
            paths.EXPORT_SPEED,
            paths.INFERENCE_SPEED,
            paths.EXPLAIN_METRICS,
        ),
        "evaluate": (
            paths.CNN_METRICS,
            paths.PER_CLASS_METRICS,
            paths.CNN_PREDICTIONS,
            paths.CLASSIFICATION_REPORT,
            *evaluate.FIGURES,
            paths.EXPLAINED_PLOT,
        ),
        "photograph": (paths.PHOTOS, paths.PHOTOS_PLOT),
        "photos": (paths.PHOTOS_METRICS,),
        "segmenter": (paths.TOUCHING_MODEL, paths.SEGMENTER_METRICS),
        "compose": (paths.NUMBER_PHOTOS, paths.OUTSIDE_PHOTOS),
        "cut": (paths.CUT_DIGITS,),
        "numbers": (paths.NUMBERS_METRICS, paths.NUMBERS_READ, paths.NUMBERS_PLOT),
        "card": (paths.MODEL_CARD, paths.CONFUSED_PLOT),
        "baseline": (
            paths.BASELINE_MODEL,
            paths.BASELINE_RUN,
            paths.BASELINE_METRICS,
            paths.BASELINE_SPEED,
            paths.BASELINE_PREDICTIONS,
        ),
        "compare": (paths.COMPARE_METRICS, paths.COMPARISON_REPORT, paths.COMPARISON_PLOT),
        "record": (paths.PIPELINE_RUN,),
    }
    assert {name: _outs(stage) for name, stage in DVC["stages"].items()} == {
        name: {str(path) for path in files} for name, files in expected.items()
    }


def test_record_depends_on_everything_it_logs_and_every_params_section():
    deps = DVC["stages"]["record"]["deps"]
    logged = (*record.METRICS, *record.REPORTS, *record.FINGERPRINTED, *record.TRAININGS.values(), paths.RAW_MANIFEST)
    assert {str(path) for path in logged} <= set(deps)
    assert DVC["stages"]["record"]["params"] == list(PARAMS)
    everything_written = set().union(*(_outs(stage) for name, stage in DVC["stages"].items() if name != "record"))
    assert everything_written <= set(deps), "record must rerun whenever any stage ran"


def test_metrics_are_declared_in_record_s_order_test_accuracy_first():
    assert DVC["metrics"] == [str(path) for path in record.METRICS]
    assert DVC["metrics"][0] == str(paths.CNN_METRICS)
    assert list(json.loads((REPO / paths.CNN_METRICS).read_text()))[:2] == ["test_accuracy", "test_loss"]
    on_disk = {str(path.relative_to(REPO)) for path in (REPO / "metrics").rglob("*.json")}
    assert on_disk - set(DVC["metrics"]) == {"metrics/bench.json", "metrics/bench-fashion_mnist.json"}  # make bench's


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
    # the rest: the MLflow hand-overs (uncached to keep the run cache off) and text or table reports
    rest = (
        paths.CNN_RUN,
        paths.BASELINE_RUN,
        paths.PIPELINE_RUN,
        paths.CLASSIFICATION_REPORT,
        paths.COMPARISON_REPORT,
        paths.CLASS_COUNTS,
        paths.NUMBERS_READ,
        paths.MODEL_CARD,
    )
    assert uncached - declared == {str(p) for p in rest}
