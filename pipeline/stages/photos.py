"""photos stage: the exported model on photographed test digits, against the same digits as MNIST has them.

The photograph stage rendered the digits as photos and read them back as `predict` reads a file;
here the ONNX export, `predict`'s default model, classifies them.  A photo in which no digit was
found counts as wrong.
"""

from __future__ import annotations

import logging

import numpy as np

from pipeline.infra import paths
from pipeline.infra.files import load_npz, save_json
from pipeline.infra.params import load_params
from pipeline.ml.predictors import onnx_predictor, predict_in_batches

log = logging.getLogger(__name__)


def photo_metrics(on_photos: np.ndarray, as_mnist: np.ndarray, actual: np.ndarray, readable: np.ndarray) -> dict:
    """Accuracy on the photos (unreadable ones wrong) and on the same digits as in MNIST, and the gap."""
    metrics = {
        "images": len(actual),
        "unreadable": int(np.sum(~readable)),
        "photo_accuracy": float(np.mean((on_photos == actual) & readable)),
        "mnist_accuracy": float(np.mean(as_mnist == actual)),
    }
    return metrics | {"gap_points": round(100 * (metrics["mnist_accuracy"] - metrics["photo_accuracy"]), 2)}


def main() -> None:
    batch_size = load_params().evaluate.batch_size
    photos = load_npz(paths.PHOTOS)
    images, _ = paths.load_split("test")
    predictor = onnx_predictor(paths.ONNX_MODEL)
    on_photos = predict_in_batches(predictor, photos["x"], batch_size).argmax(1)
    as_mnist = predict_in_batches(predictor, images[photos["index"]], batch_size).argmax(1)
    metrics = photo_metrics(on_photos, as_mnist, photos["y"], photos["readable"])
    save_json(paths.PHOTOS_METRICS, metrics)
    log.info(
        "%d photographed test digits: %.2f%% right, against %.2f%% for the same digits as in MNIST (%d unreadable)",
        metrics["images"],
        100 * metrics["photo_accuracy"],
        100 * metrics["mnist_accuracy"],
        metrics["unreadable"],
    )
