"""segmenter stage: the touching-digits detector that `predict`'s segmentation asks which blobs to cut.

It learns from blobs composed of training-split digits and is scored on blobs composed of validation-
split digits (pipeline.ml.touching_detector); no test digit is seen.  Writes models/touching.onnx (ONNX, like the
digit model `predict` uses by default) and metrics/segmenter.json.
"""

from __future__ import annotations

import logging

from pipeline.infra import paths
from pipeline.infra.files import atomic_write, save_json
from pipeline.infra.params import load_params
from pipeline.stages import not_applicable

log = logging.getLogger(__name__)


def main() -> None:
    params = load_params()
    if not_applicable.skip(params, paths.SEGMENTER_METRICS, (paths.TOUCHING_MODEL,)):
        return
    from pipeline.ml import touching_detector  # Keras: seconds to import, needless on another dataset

    model, metrics = touching_detector.train(paths.load_split("train")[0], paths.load_split("val")[0], params.segmenter)
    with atomic_write(paths.TOUCHING_MODEL) as tmp:
        model.export(str(tmp), format="onnx", verbose=False)
    save_json(paths.SEGMENTER_METRICS, metrics)
    log.info(
        "touching-digits detector: %.2f%% right on %d validation blobs (%.2f%% of single digits kept whole, "
        "%.2f%% of touching ones found)",
        100 * metrics["val_accuracy"],
        metrics["val_examples"],
        100 * metrics["val_single_kept"],
        100 * metrics["val_touching_found"],
    )
