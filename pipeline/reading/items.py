"""Images read one item each, by class name: `predict` on a dataset whose classes are not digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.images.digits import ImageError
from pipeline.images.items import load_item
from pipeline.ml.predictors import Predictor
from pipeline.reading.numbers import TOP


def predict_items(files: list[Path], predictor: Predictor, classes: list[str]) -> list[dict]:
    """One row per file: its class (name and index), confidence and top 3 [(name, probability)]; or the error."""
    rows = []
    for path in files:
        try:
            image = load_item(path)
        except ImageError as error:
            rows.append({"file": str(path), "error": str(error)})
            continue
        probabilities = predictor(image[None])[0]
        top = np.argsort(probabilities)[::-1][:TOP]
        rows.append(
            {
                "file": str(path),
                "class": classes[top[0]],
                "index": int(top[0]),
                "confidence": float(probabilities[top[0]]),
                "top3": [[classes[i], round(float(probabilities[i]), 6)] for i in top],
            }
        )
    return rows
