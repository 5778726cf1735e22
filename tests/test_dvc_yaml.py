"""dvc.yaml agrees with the code: declared paths are the ones stages write, declared params exist."""

from __future__ import annotations

import yaml

from pipeline import paths
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
    assert _outs(DVC["stages"]["download"]) == {str(paths.RAW_DATA), str(paths.RAW_MANIFEST)}
    assert _outs(DVC["stages"]["preprocess"]) == {str(paths.split_file(s)) for s in paths.SPLITS} | {
        str(paths.DATA_METRICS),
        str(paths.CLASS_DISTRIBUTION_PLOT),
    }


SECTION_OF_STAGE = {"download": "data", "preprocess": "preprocess"}


def test_each_stage_declares_exactly_the_keys_of_its_section():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for stage, section in SECTION_OF_STAGE.items():
        declared = set(DVC["stages"][stage]["params"])
        assert declared == {f"{section}.{key}" for key in params[section]}, stage


def test_committed_metrics_and_plots_are_declared_at_top_level():
    uncached = {
        next(iter(out))
        for stage in DVC["stages"].values()
        for out in stage.get("outs", [])
        if isinstance(out, dict) and out[next(iter(out))].get("cache") is False
    }
    assert uncached == {m for m in DVC["metrics"]} | {p for p in DVC["plots"]}
