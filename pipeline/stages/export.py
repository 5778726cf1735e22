"""export stage: the one stage after training that holds TensorFlow, where the CNN is scored once in each form.

It loads the trained Keras model once and, in that one process:

- scores it on the validation split and, once, on the test set (test-time shifts included), timing
  throughput on the scoring pass itself and single-image latency on the first `evaluate.latency_runs`
  images; the evaluate stage makes every metric and figure of those probabilities and imports no
  TensorFlow;
- explains it: the deletion test of its Grad-CAM and occlusion maps on the first
  `evaluate.explain_images` test images (metrics/CNN/explain.json, pipeline.ml.explain), and both
  maps of its `evaluate.explained_mistakes` most confident mistakes, for the evaluate stage's figure;
- converts it to ONNX and quantizes that to int8 (`pipeline.ml.onnx_export`; the train stage saved
  the inference model, without the augmentation layers, which have no ONNX operators), scores both
  on the test set, and compares their answers with Keras'.  The gates judge the conversion, not the
  model, so they hold a 1-epoch model to the same standard as a finished one:

  - float32 must give Keras' class on at least `export.min_agreement` of the images, with accuracies
    at most `export.max_accuracy_gap` apart (a correct conversion agrees on ~100% at any accuracy);
  - int8 may add errors (images Keras classifies right and int8 wrong) on at most
    `export.int8_max_added_errors` times the number Keras gets wrong, rounded up, and never on fewer
    than the images float32 may disagree on (`1 - export.min_agreement` of them, at least one).
    Honest quantization flips a few uncertain images, more for a weak model; a broken one
    (miscalibrated ranges, corrupted scales) adds errors by the thousand.

A failed gate stops the stage in one line, leaving neither export behind.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from pipeline import PipelineError
from pipeline.infra import paths
from pipeline.infra.files import atomic_write, save_json, save_npz
from pipeline.infra.params import EvaluateParams, ExportParams, load_params
from pipeline.ml import explain, models, onnx_export
from pipeline.ml.predictors import keras_predictor, onnx_predictor
from pipeline.ml.scoring import most_confident_mistakes, predictions_table, timed_predictions

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


def saliency_maps(model, digits: np.ndarray, classes: np.ndarray, params: EvaluateParams) -> dict[str, np.ndarray]:
    """Occlusion's and Grad-CAM's maps of Keras `model` for `classes` (those read) on `digits`."""
    occlusion = explain.occlusion(
        keras_predictor(model), digits, classes, params.occlusion_patch, params.occlusion_stride
    )
    return {"occlusion": occlusion, "grad_cam": explain.grad_cam(model, digits, classes)}


def explained(model, images: np.ndarray, probabilities: np.ndarray, actual: np.ndarray, params: EvaluateParams):
    """The deletion test of the maps on the first `explain_images` test images (against a random order),
    and the `explained_mistakes` most confident mistakes' indices with their maps (`mistakes`, `grad_cam`,
    `occlusion`), for the evaluate stage's figure."""
    table = predictions_table(actual, probabilities)
    read = table.predicted.to_numpy()
    first, first_read = images[: params.explain_images], read[: params.explain_images]
    maps = saliency_maps(model, first, first_read, params)
    test = explain.deletion_test(
        keras_predictor(model), first, first_read, maps, params.explain_seed, params.deletion_steps
    )
    mistakes = most_confident_mistakes(table, params.explained_mistakes)
    return test, {"mistakes": mistakes} | saliency_maps(model, images[mistakes], read[mistakes], params)


def main() -> None:
    params = load_params()
    scoring = params.evaluate
    images, actual = paths.load_split("test")
    model = models.load(paths.CNN_MODEL)
    reference, keras_speed = timed_predictions(model.predict_on_batch, images, scoring.batch_size, scoring.latency_runs)
    validation = model.predict(paths.load_split("val")[0], batch_size=scoring.batch_size, verbose=0)
    deletion, mistakes = explained(model, images, reference, actual, scoring)
    calibration = paths.load_split("train")[0]  # the split is shuffled: its first images are a fair sample
    report = {"keras_accuracy": float(np.mean(reference.argmax(1) == actual))}
    speed = {}
    with atomic_write(paths.ONNX_MODEL) as fp32, atomic_write(paths.INT8_MODEL) as int8:
        onnx_export.export(model, fp32, int8, calibration, params)
        for name, path in (("onnx", fp32), ("int8", int8)):
            probabilities, timing = timed_predictions(
                onnx_predictor(path), images, scoring.batch_size, scoring.latency_runs
            )
            report |= parity(actual, reference, probabilities, name)
            speed |= {f"{name}_{key}": value for key, value in timing.items()}
        check(report, len(actual), params.export)
    speed["int8_vs_onnx_throughput"] = round(
        speed["int8_throughput_images_per_s"] / speed["onnx_throughput_images_per_s"], 2
    )
    save_npz(paths.CNN_SCORES, {"test": reference, "val": validation} | mistakes)
    save_json(paths.EXPLAIN_METRICS, deletion)
    save_json(paths.INFERENCE_SPEED, keras_speed)
    save_json(paths.EXPORT_METRICS, report)
    save_json(paths.EXPORT_SPEED, speed)
    log.info(
        "test accuracy Keras %.4f, ONNX %.4f (same class on %.2f%%), int8 %.4f (%d errors added); images/s "
        "Keras %s, ONNX %s, int8 %s",
        report["keras_accuracy"],
        report["onnx_accuracy"],
        100 * report["onnx_agreement"],
        report["int8_accuracy"],
        report["int8_added_errors"],
        keras_speed["throughput_images_per_s"],
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
