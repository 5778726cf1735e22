"""The registered model served over REST by `mlflow models serve`, for real: start, ask, check, stop."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.commands import serve
from tests.digits import font_mnist
from tests.servers import served_predictions


def test_without_a_champion_serve_stops_in_one_line_naming_promote(tmp_path, monkeypatch):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    with pytest.raises(PipelineError) as refused:
        serve.main()
    assert str(refused.value) == (
        f"no model mnist-cnn@champion in {store}: run `python -m pipeline promote` first"
        " (it aliases the version best on validation)"
    )


@pytest.mark.e2e
def test_registered_model_serves_predictions_over_rest(digit_model, tmp_path, monkeypatch):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("serve")
    images, labels = font_mnist(50, seed=11)
    with mlflow.start_run():
        info = mlflow.keras.log_model(
            digit_model.model,
            name="model",
            signature=mlflow.models.infer_signature(
                images[:2].astype("float32"), digit_model.model.predict(images[:2], verbose=0)
            ),
            registered_model_name="mnist-cnn",  # params.yaml's mlflow.cnn_model_name,
        )
    mlflow.MlflowClient().set_registered_model_alias("mnist-cnn", "champion", info.registered_model_version)

    served = served_predictions(tmp_path, images)
    assert served.shape == (50, 10)
    assert np.array_equal(served.argmax(1), digit_model.model.predict(images, verbose=0).argmax(1))
    assert np.mean(served.argmax(1) == labels) >= 0.9
