"""A model loaded for inference, whatever its form: a .keras file, its ONNX export, or an MLflow URI.

Every form becomes a `Predictor`: uint8 images (N, 28, 28) in, probabilities (N, 10) out.  The ONNX
path never imports TensorFlow, so `predict` with the export starts in a fraction of a second; Keras
and MLflow are imported only when a model needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline import PipelineError, one_line, paths
from pipeline.images import Digit, ImageError, load_number

Predictor = Callable[[np.ndarray], np.ndarray]
REGISTRY_SCHEMES = ("models:/", "runs:/")
TOP = 3  # the most likely digits each file row lists


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


def onnx_predictor(path: Path, threads: int = 0) -> Predictor:
    """ONNX Runtime on the CPU, for a model whose single input takes float pixels (N, 28, 28); on
    `threads` threads (0: ONNX Runtime's choice, every core; 1 in a pool of processes, one a core)."""
    import onnxruntime  # as keras above: only ONNX models need it

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 (onnxruntime raises its own unrelated classes)
        raise PipelineError(f"{path}: not a loadable ONNX model ({one_line(error)})") from None
    (source,) = session.get_inputs()
    return lambda images: session.run(None, {source.name: images.astype(np.float32)})[0]


def keras_predictor(model) -> Predictor:  # model: a keras.Model (not annotated: that would import Keras)
    return lambda images: np.asarray(model.predict_on_batch(images.astype(np.float32)))


def predict_in_batches(predictor: Predictor, images: np.ndarray, batch_size: int) -> np.ndarray:
    """`predictor` over `images`, `batch_size` at a time (bounded memory for any number of images)."""
    return np.concatenate([predictor(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def _mlflow_predictor(uri: str) -> Predictor:
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipeline import tracking  # imports MLflow

    mlflow.set_tracking_uri(tracking.tracking_uri())
    try:
        return keras_predictor(mlflow.keras.load_model(uri))
    except (MlflowException, OSError) as error:
        raise PipelineError(f"{uri}: cannot load from {tracking.tracking_uri()} ({one_line(error)})") from None


def load_touching(path: Path | None = None) -> Predictor | None:
    """The segmentation's touching-digits detector (the segmenter stage's export, or `path`); None when
    there is none, and touching digits are then cut by their width alone (pipeline.images)."""
    if path is None:
        return onnx_predictor(paths.TOUCHING_MODEL) if paths.TOUCHING_MODEL.is_file() else None
    if not path.is_file():
        raise PipelineError(f"{path}: no such model file")
    return onnx_predictor(path)


def predict_files(files: list[Path], predictor: Predictor, touching: Predictor | None = None) -> list[dict]:
    """One row per file: the number (a string of digits, left to right), its confidence (the product of
    its digits', the chance all are right if their errors are independent), and per digit its box
    (left, top, right, bottom pixels), confidence and top 3 [(digit, probability)]; or the error."""
    return [read_file(path, predictor, touching)[0] for path in files]


def read_file(path: Path, predictor: Predictor, touching: Predictor | None = None) -> tuple[dict, list[Digit]]:
    """A `predict_files` row for the image at `path`, and its digits as the model saw them."""
    try:
        digits = load_number(path, predictor, touching)
    except ImageError as error:
        return {"file": str(path), "error": str(error)}, []
    return {"file": str(path)} | read_number(digits, predictor), digits


def read_number(digits: list[Digit], predictor: Predictor) -> dict:
    """The number `digits` spell as `predictor` reads them: a `predict_files` row without its file."""
    read = []
    for digit, probabilities in zip(digits, predictor(np.stack([d.image for d in digits])), strict=True):
        top = np.argsort(probabilities)[::-1][:TOP]
        read.append(
            {
                "digit": int(top[0]),
                "confidence": float(probabilities[top[0]]),
                "top3": [[int(d), round(float(probabilities[d]), 6)] for d in top],
                "box": list(digit.box),
            }
        )
    return {
        "number": "".join(str(d["digit"]) for d in read),
        "confidence": float(np.prod([d["confidence"] for d in read])),
        "digits": read,
    }
