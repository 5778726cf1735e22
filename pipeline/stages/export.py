"""export stage: the CNN as ONNX, in float32 and statically quantized to int8, checked against Keras.

`pipeline.ml.onnx_export.export` writes both (the train stage saved the inference model, without the
augmentation layers, which have no ONNX operators).  Both classify the whole test set, and their
answers are compared with Keras' own, which the evaluate stage saved.  The gates judge the
conversion, not the model, so they hold a 1-epoch model to the same standard as a finished one:

- float32 must give Keras' digit on at least `export.min_agreement` of the images, with accuracies
  at most `export.max_accuracy_gap` apart (a correct conversion agrees on ~100% at any accuracy);
- int8 may add errors (images Keras classifies right and int8 wrong) on at most
  `export.int8_max_added_errors` times the number Keras gets wrong, rounded up, and never on fewer
  than the images float32 may disagree on (`1 - export.min_agreement` of them, at least one).
  Honest quantization flips a few uncertain images, more for a weak model; a broken one
  (miscalibrated ranges, corrupted scales) adds errors by the thousand.

A failed gate stops the stage in one line, leaving neither export behind.  Throughput is timed on
the scoring pass itself, single-image latency on the first `evaluate.latency_runs` images; Keras'
own speed is the evaluate stage's.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from pipeline import PipelineError
from pipeline.infra import paths
from pipeline.infra.files import atomic_write, load_npz, save_json
from pipeline.infra.params import ExportParams, load_params
from pipeline.ml import models, onnx_export
from pipeline.ml.predictors import onnx_predictor
from pipeline.ml.scoring import timed_predictions

log = logging.getLogger(__name__)


def parity(actual: np.ndarray, reference: np.ndarray, exported: np.ndarray, name: str) -> dict:
    """How closely the exported model `name`'s probabilities follow the reference's on the same images."""
    right, exported_right = reference.argmax(1) == actual, exported.argmax(1) == actual
    return {
        f"{name}_accuracy": float(np.mean(exported_right)),
        f"{name}_agreement": float(np.mean(reference.argmax(1) == exported.argmax(1))),
        f"{name}_added_errors": int(np.sum(right & ~exported_right)),
        f"{name}_max_probability_difference": float(np.abs(reference - exported).max()),
    }


def allowed_added_errors(keras_errors: int, images: int, params: ExportParams) -> int:
    """The int8 gate: errors int8 may add, `export.int8_max_added_errors` of Keras' own, with a floor."""
    floor = (1 - params.min_agreement) * images
    return math.ceil(max(params.int8_max_added_errors * keras_errors, floor) - 1e-9)


def main() -> None:
    params = load_params()
    images, actual = paths.load_split("test")
    reference = load_npz(paths.TEST_PROBABILITIES)["probabilities"]
    calibration = paths.load_split("train")[0]  # the split is shuffled: its first images are a fair sample
    batch_size, latency_runs = params.evaluate.batch_size, params.evaluate.latency_runs
    report = {"keras_accuracy": float(np.mean(reference.argmax(1) == actual))}
    speed = {}
    with atomic_write(paths.ONNX_MODEL) as fp32, atomic_write(paths.INT8_MODEL) as int8:
        onnx_export.export(models.load(paths.CNN_MODEL), fp32, int8, calibration, params)
        for name, path in (("onnx", fp32), ("int8", int8)):
            probabilities, timing = timed_predictions(onnx_predictor(path), images, batch_size, latency_runs)
            report |= parity(actual, reference, probabilities, name)
            speed |= {f"{name}_{key}": value for key, value in timing.items()}
        check(report, len(actual), params.export)
    speed["int8_vs_onnx_throughput"] = round(
        speed["int8_throughput_images_per_s"] / speed["onnx_throughput_images_per_s"], 2
    )
    save_json(paths.EXPORT_METRICS, report)
    save_json(paths.EXPORT_SPEED, speed)
    log.info(
        "test accuracy Keras %.4f, ONNX %.4f (same digit on %.2f%%), int8 %.4f (%d errors added); images/s %s, %s",
        report["keras_accuracy"],
        report["onnx_accuracy"],
        100 * report["onnx_agreement"],
        report["int8_accuracy"],
        report["int8_added_errors"],
        speed["onnx_throughput_images_per_s"],
        speed["int8_throughput_images_per_s"],
    )


def check(report: dict, images: int, params: ExportParams) -> None:
    """Raise PipelineError unless both exports pass their gates."""
    gap = abs(report["onnx_accuracy"] - report["keras_accuracy"])
    if report["onnx_agreement"] < params.min_agreement or gap > params.max_accuracy_gap:
        raise PipelineError(
            f"ONNX export differs from Keras: same digit on {report['onnx_agreement']:.4%} of test images "
            f"(export.min_agreement {params.min_agreement:.4%}), accuracy gap {gap:.4%} "
            f"(export.max_accuracy_gap {params.max_accuracy_gap:.4%})"
        )
    keras_errors = round((1 - report["keras_accuracy"]) * images)
    allowed = allowed_added_errors(keras_errors, images, params)
    if report["int8_added_errors"] > allowed:
        raise PipelineError(
            f"int8 ONNX model is broken: it gets {report['int8_added_errors']} test images wrong that Keras gets "
            f"right, more than the {allowed} allowed (export.int8_max_added_errors {params.int8_max_added_errors} "
            f"of Keras' {keras_errors} errors); accuracy {report['int8_accuracy']:.2%} against Keras' "
            f"{report['keras_accuracy']:.2%}"
        )
