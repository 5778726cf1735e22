"""Numbers read from image files as `predict` reads them: segmented into digits, each classified."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import PipelineError
from pipeline.images.segmentation import Digit, ImageError, load_number
from pipeline.infra import paths
from pipeline.ml.predictors import Predictor, onnx_predictor

TOP = 3  # the most likely digits each file row lists


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
