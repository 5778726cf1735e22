"""The model `predict`, `draw` and the bench read with, whatever its form: a .keras file, its ONNX
export, or an MLflow URI.  Keras and MLflow are imported only when a model needs them."""

from __future__ import annotations

from pathlib import Path

from pipeline import PipelineError, one_line
from pipeline.infra import paths
from pipeline.ml.predictors import Predictor, keras_predictor, onnx_predictor

REGISTRY_SCHEMES = ("models:/", "runs:/")


def default_model() -> Path:
    """The pipeline's ONNX export when the export stage has run, else its Keras model."""
    return paths.ONNX_MODEL if paths.ONNX_MODEL.exists() else paths.CNN_MODEL


def load_predictor(model: str | Path) -> Predictor:
    """A predictor for `model`: a .keras or .onnx path, or an MLflow URI like models:/mnist-cnn@champion."""
    if str(model).startswith(REGISTRY_SCHEMES):
        return _mlflow_predictor(str(model))
    path = Path(model)
    if not path.is_file():
        raise PipelineError(f"{path}: no such model file (run dvc repro, or pass --model)")
    if path.suffix == ".onnx":
        return onnx_predictor(path)
    if path.suffix == ".keras":
        import keras  # TensorFlow takes seconds to import; only Keras models need it

        try:
            return keras_predictor(keras.saving.load_model(path, safe_mode=True))  # no code from the file is run
        except (ValueError, OSError, TypeError) as error:
            raise PipelineError(f"{path}: not a loadable Keras model ({one_line(error)})") from None
    raise PipelineError(f"{path}: expected a .keras or .onnx model file, or an MLflow URI (models:/<name>@<alias>)")


def _mlflow_predictor(uri: str) -> Predictor:
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipeline.infra import tracking  # imports MLflow

    mlflow.set_tracking_uri(tracking.tracking_uri())
    try:
        return keras_predictor(mlflow.keras.load_model(uri))
    except (MlflowException, OSError) as error:
        raise PipelineError(f"{uri}: cannot load from {tracking.tracking_uri()} ({one_line(error)})") from None
