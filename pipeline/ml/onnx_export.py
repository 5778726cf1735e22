"""The CNN as ONNX, float32 and statically quantized int8: the export stage's conversion, and the bench's
and the tests' (one code path).  Apart from `pipeline.ml.training`, so an edit here reruns the export
onward, never the training.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import onnx
from onnxruntime import quantization

from pipeline.infra.params import Params

# Calibration images per ONNX Runtime run: the ranges (each tensor's minimum and maximum over every
# image) do not depend on it; 100 a run calibrated four times faster than 1,000.
CALIBRATION_BATCH = 100


def export(model: keras.Model, fp32: Path, int8: Path, calibration: np.ndarray, params: Params) -> None:
    """Write `model` as ONNX to `fp32` (opset `export.opset`) and its int8 quantization to `int8`,
    calibrated on the first `export.int8_calibration_images` of `calibration`."""
    settings = params.export
    model.export(str(fp32), format="onnx", opset_version=settings.opset, verbose=False)
    images = calibration[: settings.int8_calibration_images]
    quantize(fp32, int8, images, settings.int8_per_channel, settings.int8_reduce_range)


class _Calibration(quantization.CalibrationDataReader):
    """Feeds calibration images to the quantizer, a batch at a time."""

    def __init__(self, input_name: str, images: np.ndarray, batch_size: int) -> None:
        self._batches = iter(
            {input_name: images[i : i + batch_size].astype(np.float32)} for i in range(0, len(images), batch_size)
        )

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def quantize(fp32: Path, int8: Path, calibration: np.ndarray, per_channel: bool, reduce_range: bool) -> None:
    """Write to `int8` the static int8 quantization of the ONNX model `fp32`, its activation ranges
    calibrated on `calibration` images.  QDQ format, int8 weights (`per_channel`: a scale per output
    channel; `reduce_range`: in 7 bits, as x86 CPUs without VNNI multiply uint8 by int8 in 16-bit sums
    that 8-bit weights can overflow; both chosen on the validation split), uint8 activations; the
    softmax stays float, so probabilities keep their precision."""
    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder, "prepared.onnx")  # shapes inferred and graph optimized, as ORT advises
        quantization.quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)  # ONNX's own suffices
        graph = onnx.load(prepared).graph
        (source,) = graph.input
        quantization.quantize_static(
            prepared,
            int8,
            _Calibration(source.name, calibration, CALIBRATION_BATCH),
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            nodes_to_exclude=[node.name for node in graph.node if node.op_type == "Softmax"],
        )
