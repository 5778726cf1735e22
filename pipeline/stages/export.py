"""export stage: the CNN as ONNX, for fast inference without TensorFlow, checked against Keras.

The train stage saves the inference model (no augmentation layers, which have no ONNX operators).
Both models classify the whole test set: the stage fails, leaving no export behind, unless they
agree on at least `export.min_agreement` of the images and their accuracies differ by at most
`export.max_accuracy_gap`.  Reports both models' throughput and single-image latency.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from pipeline import PipelineError, models, paths
from pipeline.files import atomic_write, save_json
from pipeline.inference import keras_predictor, onnx_predictor, predict_in_batches
from pipeline.params import load_params
from pipeline.scoring import inference_speed

log = logging.getLogger(__name__)


def parity(actual: np.ndarray, reference: np.ndarray, exported: np.ndarray) -> dict:
    """How closely the exported model's probabilities follow the reference's on the same images."""
    return {
        "agreement": float(np.mean(reference.argmax(1) == exported.argmax(1))),
        "keras_accuracy": float(np.mean(reference.argmax(1) == actual)),
        "onnx_accuracy": float(np.mean(exported.argmax(1) == actual)),
        "max_probability_difference": float(np.abs(reference - exported).max()),
    }


def main() -> None:
    all_params = load_params()
    params, batch_size, latency_runs = (
        all_params.export,
        all_params.evaluate.batch_size,
        all_params.evaluate.latency_runs,
    )
    images, actual = paths.load_split("test")
    model = models.inference_model(keras.saving.load_model(paths.CNN_MODEL, safe_mode=True))  # a called model
    reference = keras_predictor(model)
    with atomic_write(paths.ONNX_MODEL) as tmp:
        model.export(tmp, format="onnx", opset_version=params.opset, verbose=False)
        exported = onnx_predictor(tmp)
        report = parity(
            actual, predict_in_batches(reference, images, batch_size), predict_in_batches(exported, images, batch_size)
        )
        gap = abs(report["onnx_accuracy"] - report["keras_accuracy"])
        if report["agreement"] < params.min_agreement or gap > params.max_accuracy_gap:
            raise PipelineError(
                f"ONNX export differs from Keras: same digit on {report['agreement']:.4%} of test images "
                f"(export.min_agreement {params.min_agreement:.4%}), accuracy gap {gap:.4%} "
                f"(export.max_accuracy_gap {params.max_accuracy_gap:.4%})"
            )
    speed = {}
    for name, predictor in (("keras", reference), ("onnx", exported)):  # (the session holds the model in memory)
        speed |= {
            f"{name}_{key}": value
            for key, value in inference_speed(predictor, images, batch_size, latency_runs).items()
        }
    save_json(paths.EXPORT_METRICS, report)
    save_json(paths.EXPORT_SPEED, speed)

    log.info(
        "ONNX agrees on %.2f%% of test images (accuracy %.4f vs Keras %.4f); %s vs %s images/s, latency %s vs %s ms",
        100 * report["agreement"],
        report["onnx_accuracy"],
        report["keras_accuracy"],
        speed["onnx_throughput_images_per_s"],
        speed["keras_throughput_images_per_s"],
        speed["onnx_latency_ms_p50"],
        speed["keras_latency_ms_p50"],
    )
