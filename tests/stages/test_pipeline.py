"""The pipeline driven by DVC, for real, in a temp git copy of the repo fed from a local server."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml
from PIL import Image

from pipeline import paths
from pipeline.files import content_digest, load_npz
from tests.mnist_files import fake_mnist
from tests.repos import make_repo, run, wait_for_queue

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(tmp_path, http_server, repo_params) -> Path:
    """A git repo holding a copy of this one, whose sources are a dead URL, then a local server."""
    return make_repo(tmp_path, http_server, repo_params)


def test_repro_builds_the_data_then_has_nothing_to_do(repo):
    first = run(repo, "dvc", "repro", "preprocess")
    assert "download: source dead failed: URL fetch failure" in first.stderr
    assert content_digest(load_npz(repo / paths.RAW_DATA)) == content_digest(fake_mnist())
    assert json.loads((repo / paths.RAW_MANIFEST).read_text())["source"] == "local"
    stats = json.loads((repo / paths.DATA_METRICS).read_text())
    assert {split: stats[split]["total"] for split in paths.SPLITS} == {"train": 270, "val": 30, "test": 100}
    assert "Data and pipelines are up to date." in run(repo, "dvc", "repro", "preprocess").stdout


def test_changing_val_fraction_reruns_preprocess_only(repo):
    run(repo, "dvc", "repro", "preprocess")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["preprocess"]["val_fraction"] = 0.2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(repo, "dvc", "repro", "preprocess").stdout
    assert "Stage 'download' didn't change, skipping" in out
    assert "Running stage 'preprocess'" in out
    assert json.loads((repo / paths.DATA_METRICS).read_text())["val"]["total"] == 60


def test_experiment_overrides_flow_through_the_loader(repo):
    run(repo, "dvc", "exp", "run", "-S", "preprocess.val_fraction=0.3", "preprocess")
    assert json.loads((repo / paths.DATA_METRICS).read_text())["val"]["total"] == 90
    bad = run(repo, "dvc", "exp", "run", "-S", "preprocess.val_fraction=2", "preprocess", check=False)
    assert bad.returncode != 0
    assert "error: params.yaml: preprocess.val_fraction = 2: expected a fraction in (0, 1)" in bad.stderr + bad.stdout


def runs_by_role(repo: Path) -> dict[str, list]:
    mlflow.set_tracking_uri(f"sqlite:///{repo}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["mnist"], output_format="list")
    return {role: [r for r in runs if r.data.tags["pipeline.role"] == role] for role in ("cnn", "baseline")}


def test_repro_runs_every_stage_and_tracks_everything_in_mlflow(repo):
    run(repo, "dvc", "repro")
    assert run(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    test_metrics = json.loads((repo / paths.TEST_METRICS).read_text())
    runs = runs_by_role(repo)
    (cnn,), (baseline,) = runs["cnn"], runs["baseline"]
    assert cnn.info.status == baseline.info.status == "FINISHED"
    assert cnn.info.artifact_uri.startswith((repo / "mlartifacts").as_uri())
    assert cnn.data.metrics["test_accuracy"] == test_metrics["test_accuracy"]
    assert cnn.data.metrics["macro_f1"] == pytest.approx(test_metrics["macro_f1"])
    assert cnn.data.params["train.epochs"] == "1" and cnn.data.params["model.arch"] == "tiny"
    assert {"git_commit", "data_digest", "dvc.preprocess.data/processed/train.npz"} <= set(cnn.data.tags)
    assert cnn.data.tags["model.arch"] == "tiny"
    history = mlflow.MlflowClient().get_metric_history(cnn.info.run_id, "val_accuracy")
    assert [point.step for point in history] == [1]
    assert {d.dataset.name for d in cnn.inputs.dataset_inputs} == {"mnist-train", "mnist-val"}
    client = mlflow.MlflowClient()
    artifacts = {a.path for folder in ("reports", "metrics") for a in client.list_artifacts(cnn.info.run_id, folder)}
    assert {
        "reports/confusion_matrix.png",
        "reports/misclassified.png",
        "reports/training_curves.png",
        "reports/cnn_predictions.csv",
        "reports/comparison.md",
        "reports/photos.png",
        "metrics/test.json",
    } <= artifacts
    assert [a.path for a in client.list_artifacts(cnn.info.run_id, "export")] == ["export/cnn.onnx"]
    export_metrics = json.loads((repo / paths.EXPORT_METRICS).read_text())
    assert export_metrics["agreement"] >= 0.999 and export_metrics["onnx_accuracy"] == test_metrics["test_accuracy"]
    assert cnn.data.metrics["export_agreement"] == export_metrics["agreement"]
    photos = json.loads((repo / paths.PHOTOS_METRICS).read_text())
    assert photos["images"] == 30 and cnn.data.metrics["photo_accuracy"] == photos["photo_accuracy"]

    baseline_metrics = json.loads((repo / paths.BASELINE_METRICS).read_text())
    assert baseline.data.metrics["test_accuracy"] == baseline_metrics["test_accuracy"]
    compare = json.loads((repo / paths.COMPARE_METRICS).read_text())
    for tracked in (cnn, baseline):
        assert tracked.data.metrics["compare.mcnemar_p_value"] == pytest.approx(compare["mcnemar_p_value"])

    images, labels = (load_npz(repo / paths.split_file("test"))[k] for k in ("x", "y"))
    model = mlflow.keras.load_model("models:/mnist-cnn@candidate")
    accuracy = float((model.predict(images, verbose=0).argmax(axis=1) == labels).mean())
    assert accuracy == test_metrics["test_accuracy"]
    logreg = mlflow.sklearn.load_model("models:/mnist-logreg/1")
    assert float((logreg.predict(images) == labels).mean()) == baseline_metrics["test_accuracy"]

    Image.fromarray(255 - images[0]).save(repo / "digit.png")  # dark on light, as a user's scan
    predicted = run(repo, "python", "-m", "pipeline", "predict", "digit.png", "--json")  # the default model: the export
    expected = json.loads(
        run(repo, "python", "-m", "pipeline", "predict", "digit.png", "--json", "--model", "models/cnn.keras").stdout
    )
    assert json.loads(predicted.stdout)[0]["digit"] == expected[0]["digit"]


@pytest.mark.reliability  # concurrency: four experiments on two workers against one SQLite store
def test_queued_grid_with_two_workers_logs_every_experiment_then_promote_picks_the_best(repo):
    run(repo, "dvc", "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "baseline results")
    run(repo, "dvc", "exp", "run", "--queue", "-S", "train.batch_size=32,48,80,96")
    run(repo, "dvc", "queue", "start", "-j", "2")
    wait_for_queue(repo)
    runs = runs_by_role(repo)
    experiments = [r for r in runs["cnn"] if "dvc_exp_name" in r.data.tags]
    assert len(experiments) == 4 and len(runs["baseline"]) == 1, "the baseline did not change: not rerun"
    assert len({r.data.tags["dvc_exp_name"] for r in experiments}) == 4
    assert {r.data.params["train.batch_size"] for r in experiments} == {"32", "48", "80", "96"}
    assert all(r.info.status == "FINISHED" and "compare.mcnemar_p_value" in r.data.metrics for r in experiments)
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))

    promoted = run(repo, "python", "-m", "pipeline", "promote").stdout
    best = max(runs["cnn"], key=lambda r: (r.data.metrics["test_accuracy"], -r.data.metrics["test_loss"]))
    version = mlflow.MlflowClient().get_model_version_by_alias("mnist-cnn", "champion")
    assert version.run_id == best.info.run_id
    assert f"mnist-cnn@champion -> version {version.version}" in promoted
    assert mlflow.keras.load_model("models:/mnist-cnn@champion").count_params() == 2_864
