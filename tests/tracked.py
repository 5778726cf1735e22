"""Reading an MLflow store back, for the tests of the tracking invariant: one pipeline run per
execution, exactly as its outputs stand, never rewritten."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import mlflow
import yaml

from pipeline.infra import metric_names
from pipeline.stages import record


def runs_by_role(store: str) -> dict[str, list]:
    """The experiment's runs, oldest first, keyed by role: pipeline, cnn, baseline."""
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=["mnist"], order_by=["attributes.start_time ASC"], output_format="list")
    return {role: [r for r in runs if r.data.tags["pipeline.role"] == role] for role in ("pipeline", "cnn", "baseline")}


def snapshot(run_id: str) -> dict:
    """Everything a run holds: status, params, metrics (with their histories), tags but the process
    holding it, and the sha256 of every artifact."""
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    histories = {
        name: [(m.step, m.value) for m in client.get_metric_history(run_id, name)] for name in run.data.metrics
    }
    with tempfile.TemporaryDirectory() as folder:
        root = Path(client.download_artifacts(run_id, "", folder))
        artifacts = {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
        }
    return {
        "status": run.info.status,
        "params": run.data.params,
        "metrics": histories,
        "tags": run.data.tags,
        "artifacts": artifacts,
    }


def assert_run_matches_outputs(run, repo: Path) -> None:
    """The pipeline run holds exactly the repo's params.yaml (of `data.datasets`, its own dataset's entry),
    metrics files and history."""
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    own = f"data.datasets.{raw['data']['dataset']}."
    params = metric_names.flatten(raw)
    assert run.data.params == {
        k: v for k, v in params.items() if not k.startswith("data.datasets.") or k.startswith(own)
    }
    files = {path: json.loads((repo / path).read_text()) for path in record.METRICS}
    expected = metric_names.metrics_of(files)
    epochs = (repo / "reports/history.csv").read_text().splitlines()
    curves = {f"{metric_names.EPOCH_SECTION}/{name}" for name in epochs[0].split(",")[1:]}
    assert run.data.metrics.keys() - curves == expected.keys()
    assert {name: run.data.metrics[name] for name in expected} == expected
    client = mlflow.MlflowClient()
    assert [
        m.step for m in client.get_metric_history(run.info.run_id, f"{metric_names.EPOCH_SECTION}/val_accuracy")
    ] == list(range(1, len(epochs)))
