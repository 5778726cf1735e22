"""The pipeline driven by DVC, for real, in a temp git copy of the repo fed from a local server: each
execution yields exactly one pipeline run, exactly as its outputs stand, and never rewrites another."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from PIL import Image

from pipeline.infra import paths
from pipeline.infra.files import content_digest, file_digest, load_npz
from pipeline.stages import card as card_stage
from pipeline.stages import record
from tests.commands.test_ui import assert_ui_opens_on_the_cnn
from tests.mnist_files import repo_mnist
from tests.repos import run
from tests.test_readme import readme_commands
from tests.tracked import assert_run_matches_outputs, runs_by_role, snapshot

pytestmark = pytest.mark.e2e


def store(repo: Path) -> str:
    return f"sqlite:///{repo}/mlflow.db"


def test_repro_yields_one_pipeline_run_exactly_as_its_outputs(reproduced, repo):
    assert "download: source dead failed: cannot fetch" in reproduced.output
    assert content_digest(load_npz(repo / paths.RAW_DATA)) == content_digest(repo_mnist())
    assert json.loads((repo / paths.DATA_METRICS).read_text()) == {"train": 270, "val": 30, "test": 100}
    runs = runs_by_role(store(repo))
    (pipeline,), (cnn,), (baseline,) = runs["pipeline"], runs["cnn"], runs["baseline"]
    assert all(r.info.status == "FINISHED" for r in (pipeline, cnn, baseline))
    commit = run(repo, "git", "rev-parse", "HEAD~1").stdout.strip()  # the commit the repro ran on
    assert pipeline.info.run_name == f"repro-{commit[:7]}" and pipeline.data.tags["git_commit"] == commit
    assert_run_matches_outputs(pipeline, repo)

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for stage, path in (("train", paths.CNN_MODEL), ("preprocess", paths.split_file("train"))):
        (out,) = [o for o in lock[stage]["outs"] if o["path"] == str(path)]
        assert pipeline.data.tags[f"dvc.md5.{path}"] == out["md5"] == file_digest(repo / path, "md5")
    manifest = json.loads((repo / paths.RAW_MANIFEST).read_text())
    assert pipeline.data.tags["data_digest"] == manifest["content_digest"]
    assert pipeline.data.tags["cnn.run_id"] == cnn.info.run_id
    assert pipeline.data.tags["cnn.model_uri"] == "models:/mnist-cnn/1"
    assert pipeline.data.tags["baseline.model_uri"] == "models:/mnist-logreg/1"
    assert cnn.data.tags["mlflow.parentRunId"] == baseline.data.tags["mlflow.parentRunId"] == pipeline.info.run_id
    assert "mlflow.parentRunId" not in pipeline.data.tags
    client = mlflow.MlflowClient()
    artifacts = {
        a.path for folder in ("reports", "metrics") for a in client.list_artifacts(pipeline.info.run_id, folder)
    }
    assert {
        "reports/confusion_matrix.png",
        "reports/comparison.md",
        "reports/photos.png",
        "metrics/CNN.json",
    } <= artifacts

    assert [m.step for m in client.get_metric_history(cnn.info.run_id, "CNN/epoch/val_accuracy")] == [1, 2]  # live
    assert cnn.data.metrics["CNN/train/epochs_run"] == 2
    assert {d.dataset.name for d in cnn.inputs.dataset_inputs} == {"mnist-train", "mnist-val"}
    assert cnn.data.params["train.epochs"] == "2" and cnn.data.tags["model.arch"] == "tiny"

    images, labels = (load_npz(repo / paths.split_file("test"))[k] for k in ("x", "y"))
    test_accuracy = pipeline.data.metrics["CNN/test_accuracy"]
    assert (
        float((mlflow.keras.load_model("models:/mnist-cnn/1").predict(images, verbose=0).argmax(1) == labels).mean())
        == test_accuracy
    )
    logreg = mlflow.sklearn.load_model("models:/mnist-logreg/1")
    assert float((logreg.predict(images) == labels).mean()) == pipeline.data.metrics["baseline/accuracy"]

    assert "Data and pipelines are up to date." in run(repo, "dvc", "repro").stdout
    assert len(runs_by_role(store(repo))["pipeline"]) == 1, "an execution that runs nothing adds no run"

    Image.fromarray(255 - images[0]).save(repo / "digit.png")  # dark on light, as a user's scan
    by_export = json.loads(run(repo, "python", "-m", "pipeline", "predict", "digit.png", "--json").stdout)
    by_keras = json.loads(
        run(repo, "python", "-m", "pipeline", "predict", "digit.png", "--json", "--model", "models/cnn.keras").stdout
    )
    assert by_export[0]["number"] == by_keras[0]["number"]


def test_an_experiment_downstream_of_training_reuses_it_and_leaves_every_earlier_run_untouched(repo, browser):
    """Evaluation and baseline settings changed: a new pipeline run whose CNN training is the first one's
    (nothing registered), a new baseline nested under it, earlier runs untouched; the UI opens on the CNN."""
    runs = runs_by_role(store(repo))
    before = {r.info.run_id: snapshot(r.info.run_id) for role in runs.values() for r in role}
    run(repo, "dvc", "exp", "run", "-n", "ev16", "-S", "evaluate.grid_size=16", "-S", "baseline.C=0.5")
    after = runs_by_role(store(repo))
    assert [len(after[role]) for role in ("pipeline", "cnn", "baseline")] == [2, 1, 2], "no CNN training reran"
    new, new_baseline = after["pipeline"][1], after["baseline"][1]
    assert new.info.run_name == new.data.tags["dvc_exp_name"] == "ev16"
    assert new.data.params["evaluate.grid_size"] == "16" and new_baseline.data.params["baseline.C"] == "0.5"
    assert_run_matches_outputs(new, repo)  # dvc exp run leaves the experiment's outputs in the workspace
    assert new.data.tags["cnn.run_id"] == runs["cnn"][0].info.run_id
    assert new_baseline.data.tags["mlflow.parentRunId"] == new.info.run_id
    assert new.data.tags["baseline.model_uri"] == "models:/mnist-logreg/2"
    assert {run_id: snapshot(run_id) for run_id in before} == before, "an earlier run was written to"
    versions = mlflow.MlflowClient().search_model_versions("name = 'mnist-cnn'")
    assert len(versions) == 1, "a reused training registers nothing"
    assert_ui_opens_on_the_cnn(repo, browser, new.info.run_id)  # two pipeline runs to compare


def test_the_readme_s_first_experiment_runs_as_written(repo):
    """README's "A first experiment": its dvc commands, as written, on the reproduced repo (what `make ui` then
    shows: test_an_experiment_downstream_of_training_reuses_it_and_leaves_every_earlier_run_untouched)."""
    commands = [command for command in readme_commands("## A first experiment") if command.startswith("dvc ")]
    assert commands[0].startswith("dvc exp run") and commands[-1].startswith("dvc exp show")
    shown = [run(repo, *shlex.split(command)).stdout for command in commands][-1]
    runs = runs_by_role(store(repo))
    _, experiment = runs["pipeline"]
    assert experiment.data.tags["dvc_exp_name"] in shown and experiment.data.params["train.epochs"] == "1"
    assert len(runs["cnn"]) == 2, "one training per experiment"
    assert len(runs["baseline"]) == 1, "the same split: the baseline is reused"


def test_experiments_change_params_through_the_loader(repo):
    run(repo, "dvc", "exp", "run", "-S", "preprocess.val_fraction=0.3", "preprocess")
    assert json.loads((repo / paths.DATA_METRICS).read_text())["val"] == 90
    bad = run(repo, "dvc", "exp", "run", "-S", "preprocess.val_fraction=2", "preprocess", check=False)
    assert bad.returncode != 0
    assert "error: params.yaml: preprocess.val_fraction = 2: expected a fraction in (0, 1)" in bad.stderr + bad.stdout


def test_the_model_card_s_figures_are_those_of_the_metrics_files(reproduced, repo):
    card = (repo / paths.MODEL_CARD).read_text()
    metrics = {path: json.loads((repo / path).read_text()) for path in record.METRICS}
    cnn, data = metrics[paths.CNN_METRICS], metrics[paths.DATA_METRICS]

    def percent(pattern: str) -> list[float]:
        return [float(v) / 100 for v in re.search(pattern, card).groups()]

    test, low, high = percent(r"\| test \(100 images\) \| \*\*([\d.]+)%\*\* \(95% interval ([\d.]+)% to ([\d.]+)%\)")
    assert test == pytest.approx(cnn["test_accuracy"], abs=5e-5) and low <= test <= high
    assert (low, high) == pytest.approx(card_stage.interval(cnn["test_accuracy"], data["test"]), abs=5e-5)
    assert percent(r"\| validation \(30 images\) \| ([\d.]+)%")[0] == pytest.approx(cnn["val_accuracy"], abs=5e-5)
    for digit, figures in metrics[paths.PER_CLASS_METRICS].items():
        if digit != "macro":
            row = percent(rf"\n\| {digit} \| ([\d.]+)% \| ([\d.]+)% \| ([\d.]+)% \|")
            assert row == pytest.approx([figures[k] for k in ("precision", "recall", "f1")], abs=5e-5)
    photos, numbers = metrics[paths.PHOTOS_METRICS], metrics[paths.NUMBERS_METRICS]
    assert percent(rf"\*\*([\d.]+)%\*\* of {photos['images']} test images")[0] == pytest.approx(
        photos["photo_accuracy"], abs=5e-5
    )
    whole, digits = percent(rf"\*\*([\d.]+)%\*\* of {numbers['numbers']} numbers[^%]*?([\d.]+)%\s+of their digits")
    assert (whole, digits) == pytest.approx((numbers["sequence_accuracy"], numbers["digit_accuracy"]), abs=5e-5)
    outside = percent(
        rf"\*\*([\d.]+)%\*\* of {numbers['outside_numbers']} numbers read whole; \*\*([\d.]+)%\*\* of "
        rf"{numbers['outside_digits']} single digits"
    )
    assert outside == pytest.approx([numbers["outside_sequence_accuracy"], numbers["outside_digits_read"]], abs=5e-5)
    assert f"read right, {numbers['outside_digits_as_several']} of them as several digits" in card
    explained = metrics[paths.EXPLAIN_METRICS]
    aucs = [
        float(v)
        for v in re.search(r"is ([\d.]+) for occlusion and ([\d.]+)\s+for Grad-CAM, against ([\d.]+)", card).groups()
    ]
    keys = ("occlusion_deletion_auc", "grad_cam_deletion_auc", "random_deletion_auc")
    assert aucs == pytest.approx([explained[k] for k in keys], abs=5e-4)
    assert json.loads((repo / paths.RAW_MANIFEST).read_text())["content_digest"] in card
    predictions = pd.read_csv(repo / paths.CNN_PREDICTIONS)
    rows = re.findall(r"\n\| (\d) \| (\d) \| (\d+) \| test image (\d+) \|", card)
    wrong = predictions[predictions.actual != predictions.predicted]
    most_confused = sorted(  # (true, read, count, first example): the most frequent first, ties by example
        (
            (true, read, len(mistakes), mistakes.index[0])
            for (true, read), mistakes in wrong.groupby(["actual", "predicted"])
        ),
        key=lambda row: (-row[2], row[3]),
    )[:5]
    assert most_confused and [tuple(map(int, row)) for row in rows] == most_confused
    (pipeline,) = runs_by_role(store(repo))["pipeline"]
    logged = mlflow.MlflowClient().download_artifacts(pipeline.info.run_id, str(paths.MODEL_CARD), str(repo / "dl"))
    assert Path(logged).read_text() == card
