"""A model as a `Predictor`: uint8 images (N, 28, 28) in, probabilities (N, 10) out.

The ONNX path never imports TensorFlow, so `predict` with the export starts in a fraction of a
second; a Keras model is passed in already loaded (pipeline.reading.models loads any form)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline import PipelineError, one_line

Predictor = Callable[[np.ndarray], np.ndarray]


def onnx_predictor(path: Path, threads: int = 0) -> Predictor:
    """ONNX Runtime on the CPU, for a model whose single input takes float pixels (N, 28, 28); on
    `threads` threads (0: ONNX Runtime's choice, every core; 1 in a pool of processes, one a core)."""
    import onnxruntime  # only ONNX models need it

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
