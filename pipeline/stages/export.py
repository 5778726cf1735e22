"""export stage: the CNN as ONNX, in float32 and statically quantized to int8, checked against Keras.

The train stage saves the inference model (no augmentation layers, which have no ONNX operators).
The int8 model is ONNX Runtime's static quantization of the float32 one (`quantize`), its
activation ranges calibrated on training images.  All three models classify the whole test set: the
stage fails, leaving neither export behind, unless the float32 model agrees with Keras on at least
`export.min_agreement` of the images with accuracies at most `export.max_accuracy_gap` apart, and
the int8 model's accuracy is within `export.int8_max_accuracy_gap` of Keras'.  Reports each
model's throughput and single-image latency.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime import quantization

from pipeline import PipelineError, models, paths
from pipeline.files import atomic_write, save_json
from pipeline.inference import keras_predictor, onnx_predictor, predict_in_batches
from pipeline.params import ExportParams, load_params
from pipeline.scoring import inference_speed

log = logging.getLogger(__name__)


def parity(actual: np.ndarray, reference: np.ndarray, exported: np.ndarray, name: str) -> dict:
    """How closely the exported model `name`'s probabilities follow the reference's on the same images."""
    return {
        f"{name}_accuracy": float(np.mean(exported.argmax(1) == actual)),
        f"{name}_agreement": float(np.mean(reference.argmax(1) == exported.argmax(1))),
        f"{name}_max_probability_difference": float(np.abs(reference - exported).max()),
    }


class _Calibration(quantization.CalibrationDataReader):
    """Feeds calibration images to the quantizer, a batch at a time."""

    def __init__(self, input_name: str, images: np.ndarray, batch_size: int) -> None:
        self._batches = iter(
            {input_name: images[i : i + batch_size].astype(np.float32)} for i in range(0, len(images), batch_size)
        )

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def quantize(fp32: Path, int8: Path, calibration: np.ndarray, batch_size: int) -> None:
    """Write to `int8` the static int8 quantization of the ONNX model `fp32`, its activation ranges
    calibrated on `calibration` images.  QDQ format, int8 weights per output channel in 7 bits
    (`reduce_range`: x86 CPUs without VNNI multiply uint8 by int8 in 16-bit sums that 8-bit weights
    can overflow; chosen on the validation split), uint8 activations; the softmax stays float, so probabilities keep their precision."""
    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder, "prepared.onnx")  # shapes inferred and graph optimized, as ORT advises
        quantization.quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)  # ONNX's own suffices
        graph = onnx.load(prepared).graph
        (source,) = graph.input
        quantization.quantize_static(
            prepared,
            int8,
            _Calibration(source.name, calibration, batch_size),
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            nodes_to_exclude=[node.name for node in graph.node if node.op_type == "Softmax"],
        )


def main() -> None:
    all_params = load_params()
    params, batch_size, latency_runs = (
        all_params.export,
        all_params.evaluate.batch_size,
        all_params.evaluate.latency_runs,
    )
    images, actual = paths.load_split("test")
    calibration = paths.load_split("train")[0][: params.int8_calibration_images]  # the split is shuffled
    model = models.load(paths.CNN_MODEL)
    predictors = {"keras": keras_predictor(model)}
    with atomic_write(paths.ONNX_MODEL) as fp32, atomic_write(paths.INT8_MODEL) as int8:
        model.export(fp32, format="onnx", opset_version=params.opset, verbose=False)
        quantize(fp32, int8, calibration, batch_size)
        predictors |= {"onnx": onnx_predictor(fp32), "int8": onnx_predictor(int8)}
        probabilities = {name: predict_in_batches(p, images, batch_size) for name, p in predictors.items()}
        report = {"keras_accuracy": float(np.mean(probabilities["keras"].argmax(1) == actual))}
        for name in ("onnx", "int8"):
            report |= parity(actual, probabilities["keras"], probabilities[name], name)
        _check(report, params)
    speed = {
        f"{name}_{key}": value
        for name, predictor in predictors.items()  # (the sessions hold the models in memory)
        for key, value in inference_speed(predictor, images, batch_size, latency_runs).items()
    }
    speed["int8_vs_onnx_throughput"] = round(
        speed["int8_throughput_images_per_s"] / speed["onnx_throughput_images_per_s"], 2
    )
    save_json(paths.EXPORT_METRICS, report)
    save_json(paths.EXPORT_SPEED, speed)
    log.info(
        "test accuracy Keras %.4f, ONNX %.4f (same digit on %.2f%%), int8 %.4f (%.2f%%); images/s %s, %s, %s",
        report["keras_accuracy"],
        report["onnx_accuracy"],
        100 * report["onnx_agreement"],
        report["int8_accuracy"],
        100 * report["int8_agreement"],
        speed["keras_throughput_images_per_s"],
        speed["onnx_throughput_images_per_s"],
        speed["int8_throughput_images_per_s"],
    )


def _check(report: dict, params: ExportParams) -> None:
    """Raise PipelineError unless both exports pass their gates."""
    gap = abs(report["onnx_accuracy"] - report["keras_accuracy"])
    if report["onnx_agreement"] < params.min_agreement or gap > params.max_accuracy_gap:
        raise PipelineError(
            f"ONNX export differs from Keras: same digit on {report['onnx_agreement']:.4%} of test images "
            f"(export.min_agreement {params.min_agreement:.4%}), accuracy gap {gap:.4%} "
            f"(export.max_accuracy_gap {params.max_accuracy_gap:.4%})"
        )
    gap = abs(report["int8_accuracy"] - report["keras_accuracy"])
    if gap > params.int8_max_accuracy_gap:
        raise PipelineError(
            f"int8 ONNX model's test accuracy {report['int8_accuracy']:.4%} is {gap:.4%} from Keras' "
            f"(export.int8_max_accuracy_gap {params.int8_max_accuracy_gap:.4%}); same digit on "
            f"{report['int8_agreement']:.4%} of test images"
        )
