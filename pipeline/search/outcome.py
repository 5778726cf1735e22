"""What a finished search tells its user: the best trial as a params.yaml diff, the command that
applies it, and its figures beside the workspace's current model."""

from __future__ import annotations

import difflib
import json

import yaml

from pipeline.infra import metric_names, paths
from pipeline.infra.params import PARAMS_FILE
from pipeline.infra.yaml_files import YamlLoader, read_yaml
from pipeline.search.driver import Search, params_text
from pipeline.search.dvc_queue import experiment_file, experiment_metrics


def outcome(search: Search) -> str:
    """The best trial as a params.yaml diff and the command that applies it, with its validation
    figure and, reported only, its test accuracy beside the workspace's current model."""
    best = search.best()
    if best is None:
        return "No trial completed: nothing to apply."
    name, metric = search.experiment(best), search.search.objective.metric
    lines = [f"Best: trial {best.number} ({name}), {metric} {best.value:.4f}, chosen on validation."]
    params = experiment_file(name, PARAMS_FILE)
    if params is None:
        return "\n".join(
            [
                *lines,
                f"  {params_text(best.params)}",
                f"It ran in another clone: dvc exp pull <git remote> {name} && dvc exp apply {name}",
            ]
        )
    ours, theirs = (  # key by key, in params.yaml's order: DVC rewrites the file in its own layout
        [f"{key}: {value}" for key, value in metric_names.flatten(parsed).items()]
        for parsed in (read_yaml(PARAMS_FILE), yaml.load(params, Loader=YamlLoader))
    )
    diff = difflib.unified_diff(ours, theirs, "params.yaml", f"{name}/params.yaml", n=0, lineterm="")
    found, current = experiment_metrics(name), json.loads(paths.CNN_METRICS.read_text())
    return "\n".join(
        [
            *lines,
            *diff,
            f"Apply it: dvc exp apply {name}",
            f"  {'':<22}{'validation accuracy':>20}{'test accuracy (reported only)':>32}",
            f"  {name:<22}{found['CNN/val_accuracy']:>20.4f}{found['CNN/test_accuracy']:>32.4f}",
            f"  {'current params.yaml':<22}{current['val_accuracy']:>20.4f}{current['test_accuracy']:>32.4f}",
        ]
    )
