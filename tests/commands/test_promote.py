"""`python -m pipeline promote` on a real MLflow store: only versions validated on the current split compete."""

from __future__ import annotations

import shutil

import mlflow
import pytest
import yaml

from pipeline import PipelineError
from pipeline.commands import promote
from pipeline.infra import tracking
from pipeline.infra.params import load_params
from tests.mnist_files import REPO

CURRENT, TINY = "0" * 32, "f" * 32  # md5s of the current params' validation split and of a 10-image one


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A project folder (params.yaml, a dvc.lock naming the CURRENT split) with an empty store of its own."""
    shutil.copy(REPO / "params.yaml", tmp_path)
    lock = {"schema": "2.0", "stages": {"preprocess": {"outs": [{"path": str(promote.VAL_SPLIT), "md5": CURRENT}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    return load_params().mlflow


def evaluated_version(settings, split: str, images: int, val_accuracy: float, val_loss: float) -> str:
    """A registered version and the pipeline run that validated it, tagged and logged as record does."""
    experiment_id = tracking.use_experiment(settings.experiment)
    client = mlflow.MlflowClient()
    if not client.search_registered_models(f"name = '{settings.cnn_model_name}'"):
        client.create_registered_model(settings.cnn_model_name)
    with mlflow.start_run(experiment_id=experiment_id) as training:
        pass
    version = client.create_model_version(settings.cnn_model_name, training.info.artifact_uri, training.info.run_id)
    tags = {"cnn.model_uri": f"models:/{settings.cnn_model_name}/{version.version}", promote.VAL_SPLIT_TAG: split}
    with mlflow.start_run(experiment_id=experiment_id, tags=tags):
        metrics = {promote.VAL_ACCURACY: val_accuracy, promote.VAL_LOSS: val_loss, promote.TEST_ACCURACY: 0.99}
        mlflow.log_metrics(metrics | {promote.VAL_IMAGES: images})
    return version.version


def test_a_tiny_split_at_100_percent_never_beats_a_real_one(store, capsys):
    real = evaluated_version(store, CURRENT, 6000, 0.994, 0.02)
    tiny = evaluated_version(store, TINY, 10, 1.0, 0.001)  # newer, and perfect on its 10 images
    weaker = evaluated_version(store, CURRENT, 6000, 0.990, 0.03)
    promote.main()
    champion = mlflow.MlflowClient().get_model_version_by_alias(store.cnn_model_name, promote.CHAMPION_ALIAS)
    assert champion.version == real
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"{store.cnn_model_name}@champion -> version {real}: val accuracy 0.9940")
    assert printed[1].startswith(f"  runner-up: version {weaker}: val accuracy 0.9900, val loss 0.0300 on 6,000")
    assert printed[2] == f"Not compared: 1 validated on another split than {promote.VAL_SPLIT} (md5 {CURRENT}):"
    assert printed[3].startswith(f"  version {tiny}: val accuracy 1.0000") and printed[3].endswith(f"md5 {TINY}")
    assert "on 10 images" in printed[3]


def test_without_a_version_of_the_current_split_nothing_is_aliased(store):
    evaluated_version(store, TINY, 10, 1.0, 0.001)
    with pytest.raises(PipelineError, match=f"validated on the current validation split .*md5 {CURRENT}"):
        promote.main()
    assert not mlflow.MlflowClient().get_registered_model(store.cnn_model_name).aliases


def test_a_project_without_dvc_lock_is_told_to_reproduce_first(store, tmp_path):
    (tmp_path / "dvc.lock").unlink()
    with pytest.raises(PipelineError, match=r"^dvc.lock: no md5 of data/processed/val.npz .*: run dvc repro first$"):
        promote.main()


def test_a_store_holding_both_datasets_promotes_within_the_current_one_only(store, tmp_path):
    """MNIST's and Fashion-MNIST's versions live in registered models and experiments of their own: a
    Fashion-MNIST version at 100% on the same split md5 is never ranked against MNIST's."""
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    fashion = load_params().data.datasets["fashion_mnist"].mlflow
    assert fashion.cnn_model_name != store.cnn_model_name and fashion.experiment != store.experiment
    garment = evaluated_version(fashion, CURRENT, 6000, 1.0, 0.001)
    digit = evaluated_version(store, CURRENT, 6000, 0.994, 0.02)
    promote.main()
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(store.cnn_model_name, promote.CHAMPION_ALIAS).version == digit
    assert not client.get_registered_model(fashion.cnn_model_name).aliases
    raw["data"]["dataset"] = "fashion_mnist"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    promote.main()
    assert client.get_model_version_by_alias(fashion.cnn_model_name, promote.CHAMPION_ALIAS).version == garment
