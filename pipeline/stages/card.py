"""card stage: reports/model_card.md, the model card of this execution's model, from its metrics files only.

Every figure in the card is read from the metrics and report files this `dvc repro` left (a test
checks they agree): the data and its digest, test accuracy with its 95% Wilson interval, per-digit
precision, recall and F1, the most confused pairs (with an example of each in
reports/confused_pairs.png), accuracy on photographed digits and composed numbers, and the saliency
maps' deletion test.  The record stage logs the card with the pipeline run.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from pipeline.infra import paths
from pipeline.infra.files import atomic_write
from pipeline.infra.params import Params, load_params
from pipeline.report import plots
from pipeline.stages.not_applicable import KEY

log = logging.getLogger(__name__)
CONFUSED_PAIRS = 5  # the most frequent (true, read) pairs the card lists


def confused_pairs(predictions: pd.DataFrame, count: int) -> pd.DataFrame:
    """The `count` most frequent (actual, predicted) mistakes, with their count and the first example's index."""
    wrong = predictions[predictions.actual != predictions.predicted]
    pairs = wrong.reset_index().groupby(["actual", "predicted"])["index"].agg(["size", "first"])
    return pairs.sort_values(["size", "first"], ascending=[False, True]).head(count).reset_index()


def interval(accuracy: float, images: int) -> tuple[float, float]:
    """The 95% Wilson interval of an accuracy measured on `images` images."""
    ci = binomtest(round(accuracy * images), images).proportion_ci(0.95, method="wilson")
    return ci.low, ci.high


def model_card(params: Params, metrics: dict[str, dict], manifest: dict, pairs: pd.DataFrame) -> str:
    """The card's markdown; `metrics` holds each metrics file by name (CNN, per_class, data, photos, numbers, explain)."""
    cnn, data, photos, numbers, explained = (metrics[k] for k in ("CNN", "data", "photos", "numbers", "explain"))
    dataset, names = params.data.current, params.data.current.classes
    kind = dataset.class_noun
    low, high = interval(cnn["test_accuracy"], data["test"])
    per_class = "\n".join(
        f"| {names[int(label)]} | {m['precision']:.2%} | {m['recall']:.2%} | {m['f1']:.2%} |"
        for label, m in metrics["per_class"].items()
    )
    confused = "\n".join(
        f"| {names[r.actual]} | {names[r.predicted]} | {r.size} | test image {r.first} |" for r in pairs.itertuples()
    )
    subset = f"a stratified subset of {params.preprocess.subset:,}" if params.preprocess.subset else "all"
    return f"""# Model card: {params.mlflow.cnn_model_name} (`{params.model.arch}`)

Written by the card stage of `dvc repro` from this execution's metrics files: every figure below is read from them.

## Intended use
{_use(params)} A reference
pipeline for learning and comparing models, not for decisions that matter without a human check.

## Training data
{dataset.title}, from source `{manifest["source"]}` ({manifest["origin"]}), content digest `{manifest["content_digest"]}`.
Training used {subset} of the {manifest["images"]["train"]:,} training images: {data["train"]:,} to train on and
{data["val"]:,} held out for validation (stratified, seed {params.preprocess.seed}); {data["test"]:,} test images.

## Evaluation protocol
Every choice (recipe, epochs, architecture, a search's best trial, the registry's champion) is made on the
validation split; the test set is scored once per finished model and only reported.

| split | accuracy | loss |
|---|---|---|
| test ({data["test"]:,} images) | **{cnn["test_accuracy"]:.2%}** (95% interval {low:.2%} to {high:.2%}) | {cnn["test_loss"]:.4f} |
| validation ({data["val"]:,} images) | {cnn["val_accuracy"]:.2%} | {cnn["val_loss"]:.4f} |

## Per {kind} (test set)
| {kind} | precision | recall | F1 |
|---|---|---|---|
{per_class}

## Most confused pairs (test set)
| true | read as | images | example |
|---|---|---|---|
{confused}

One example of each: `{paths.CONFUSED_PLOT}`.

## Beyond {dataset.title}'s own images
- Photographed {"digits" if dataset.digits else "items"}: **{photos["photo_accuracy"]:.2%}** of {photos["images"]:,} test images rendered as photos
  and normalised back as `predict` normalises one ({photos["mnist_accuracy"]:.2%} on the same images as {dataset.title} has them).
{_numbers(params, numbers)}

## Explanations
Saliency maps (occlusion, and Grad-CAM on the last convolution) on {explained["images"]:,} test digits, judged by
the deletion test: hiding a digit's ink most salient first, the area under the curve of the read class's
probability is {explained["occlusion_deletion_auc"]:.3f} for occlusion and {explained["grad_cam_deletion_auc"]:.3f}
for Grad-CAM, against {explained["random_deletion_auc"]:.3f} in random order (lower: the map found what mattered).

## Known limits
{_limits(params)}
"""


def _use(params: Params) -> str:
    """The card's intended use: digits and numbers, or one item per image of another dataset."""
    dataset = params.data.current
    if dataset.digits:
        return """Reading handwritten digits 0-9 in images: one digit, or one row of several (a number), scanned, photographed or
drawn, dark on light or light on dark (`python -m pipeline predict`, the draw page, the REST server)."""
    return f"""Telling which of {dataset.title}'s 10 classes ({", ".join(dataset.classes)}) one image shows, one item per
image, dark on light or light on dark (`python -m pipeline predict`, the REST server)."""


def _numbers(params: Params, numbers: dict) -> str:
    """The card's lines on whole numbers: their figures, or why they do not apply."""
    if KEY in numbers:
        return f"- Whole numbers: not applicable: {numbers[KEY]}."
    return f"""- Composed numbers: **{numbers["sequence_accuracy"]:.2%}** of {numbers["numbers"]:,} numbers of
  {params.numbers.min_digits}-{params.numbers.max_digits} test digits read whole, {numbers["digit_accuracy"]:.2%}
  of their digits (1 - edit distance / digits); {_touching(numbers)}.
- Written and photographed another way (other pens, slants, gaps, papers and light; code that shares nothing
  with the composition): {_outside(numbers)}."""


def _limits(params: Params) -> str:
    """The card's known limits for digits, or for another dataset."""
    if params.data.current.digits:
        return """- Digits are expected as MNIST has them: one per 28x28 field, size-normalised and centred. `predict` and the draw
  page normalise images so; a raw 28x28 array sent to the REST server that is not centred is read less well.
- No "not a digit" answer: letters, symbols and scribbles are read as some digit, and the confidence is no guard.
- Other scripts (Arabic-Indic, Devanagari, Chinese numerals, ...) were never seen in training.
- One row: a number is read left to right; several rows, decimal points and signs are not understood; touching
  digits are read less well than separate ones (above)."""
    title = params.data.current.title
    return f"""- Images are expected as {title} has them: one item per 28x28 field, grey, centred; `predict` normalises images so.
- No "none of these" answer: anything else is read as one of the 10 classes, and the confidence is no guard."""


def _touching(numbers: dict) -> str:
    """What the card says of touching digits, which a short run may not have."""
    if "touching_sequence_accuracy" not in numbers:
        return "no number had a touching pair"
    return (
        f"{numbers['touching_pair_share']:.2%} of adjacent pairs touch, and numbers with a touching pair are read "
        f"whole {numbers['touching_sequence_accuracy']:.2%} of the time"
    )


def _outside(numbers: dict) -> str:
    """What the card says of the held-out photos, of which a short run may have none."""
    said = []
    if "outside_sequence_accuracy" in numbers:
        said.append(
            f"**{numbers['outside_sequence_accuracy']:.2%}** of {numbers['outside_numbers']:,} numbers read whole"
        )
    if "outside_digits_read" in numbers:
        said.append(
            f"**{numbers['outside_digits_read']:.2%}** of {numbers['outside_digits']:,} single digits (test and UCI "
            f"digits) read right, {numbers['outside_digits_as_several']:,} of them as several digits"
        )
    return "; ".join(said) or "none made in this run"


def main() -> None:
    params = load_params()
    names = {
        "CNN": paths.CNN_METRICS,
        "per_class": paths.PER_CLASS_METRICS,
        "data": paths.DATA_METRICS,
        "photos": paths.PHOTOS_METRICS,
        "numbers": paths.NUMBERS_METRICS,
        "explain": paths.EXPLAIN_METRICS,
    }
    metrics = {name: json.loads(path.read_text()) for name, path in names.items()}
    metrics["per_class"].pop("macro")
    pairs = confused_pairs(pd.read_csv(paths.CNN_PREDICTIONS), CONFUSED_PAIRS)
    images, _ = paths.load_split("test")
    card = model_card(params, metrics, json.loads(paths.RAW_MANIFEST.read_text()), pairs)
    with atomic_write(paths.MODEL_CARD) as tmp:
        tmp.write_text(card)
    classes = params.data.current.classes
    captions = [f"true {classes[r.actual]}, read {classes[r.predicted]}\n({r.size} images)" for r in pairs.itertuples()]
    figure = plots.digit_grid(images[pairs["first"]], captions, np.ones(len(pairs), bool), "Most confused pairs")
    plots.save(figure, paths.CONFUSED_PLOT)
    log.info("model card: %s", paths.MODEL_CARD)
