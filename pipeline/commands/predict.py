"""`python -m pipeline predict PATH...`: the number in each image (one digit or a row of several).

PATHs are image files (PNG, JPEG, BMP, GIF (first frame), TIFF, WebP), folders (their images, recursively)
or quoted globs.  Each image goes through `pipeline.images.load_number`: its digits found, split
where they touch, and normalised as MNIST was made.  An image that cannot be read or holds no digit
gets a one-line error on stderr while the others are still read, and the exit code is then 1.
Output: a table, or `--json` / `--csv` for machines; `"number"` is a string of digits ("0042").
`--explain DIR` also writes DIR/<image name>.png (names that repeat, with their folders): the image
with a box round each digit, and each digit with its occlusion map (pipeline.ml.explain: it works on any
model, the ONNX export included).  On a dataset whose classes are not digits (`data.dataset`), each image
is one item (`pipeline.images.items`), read by class name and index: `{"class": "Sneaker", "index": 7, ...}`.
"""

from __future__ import annotations

import argparse
import collections
import csv
import glob
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

from pipeline import PipelineError
from pipeline.commands import add_model
from pipeline.infra.params import load_params
from pipeline.ml.predictors import Predictor
from pipeline.reading.items import predict_items
from pipeline.reading.models import default_model, load_predictor
from pipeline.reading.numbers import TOP, load_touching, predict_files, read_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def image_files(patterns: list[str]) -> list[Path]:
    """The files `patterns` name: files as given, folders' images (sorted), glob matches (sorted)."""
    files = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif glob.has_magic(pattern):
            files += sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        else:
            files.append(path)  # a missing file is reported with the others' errors
    return files


def render(rows: list[dict], output: str) -> str:
    """The rows as a table, JSON (errors included) or CSV (an error column)."""
    if output == "json":
        return _json(rows)
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, ["file", "number", "confidence", "digits", "boxes", "error"], lineterminator="\n"
        )
        writer.writeheader()
        for row in rows:
            writer.writerow(row | _csv_digits(row.get("digits", [])) | _csv_confidence(row))
        return buffer.getvalue().rstrip("\n")
    predicted = [row for row in rows if "error" not in row]
    width = max([len("file"), *(len(row["file"]) for row in predicted)])
    lines = [f"{'file':<{width}}  {'number':>8}  confidence  digits (top {TOP} each)"]
    for row in predicted:
        digits = "; ".join(", ".join(f"{d} {p:.1%}" for d, p in digit["top3"]) for digit in row["digits"])
        lines.append(f"{row['file']:<{width}}  {row['number']:>8}  {row['confidence']:>10.1%}  {digits}")
    return "\n".join(lines)


def render_items(rows: list[dict], output: str) -> str:
    """Rows of `predict_items` as a table, JSON (errors included) or CSV (an error column)."""
    if output == "json":
        return _json(rows)
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, ["file", "class", "index", "confidence", "top3", "error"], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row | {"top3": " ".join(f"{name}:{p:.4f}" for name, p in row.get("top3", []))})
        return buffer.getvalue().rstrip("\n")
    read = [row for row in rows if "error" not in row]
    width = max([len("file"), *(len(row["file"]) for row in read)])
    lines = [f"{'file':<{width}}  {'class':>12}  confidence  top {TOP}"]
    for row in read:
        top = ", ".join(f"{name} {p:.1%}" for name, p in row["top3"])
        lines.append(f"{row['file']:<{width}}  {row['class']:>12}  {row['confidence']:>10.1%}  {top}")
    return "\n".join(lines)


def _json(rows: list[dict]) -> str:
    """The rows as a JSON list, a row per line."""
    return "[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]"


def _csv_digits(digits: list[dict]) -> dict:
    """The digits' top 3 (`digit:p digit:p ...`, digits separated by `|`) and boxes (`left top right bottom`, likewise)."""
    return {
        "digits": "|".join(" ".join(f"{d}:{p:.4f}" for d, p in digit["top3"]) for digit in digits),
        "boxes": "|".join(" ".join(map(str, digit["box"])) for digit in digits),
    }


def _csv_confidence(row: dict) -> dict:
    return {"confidence": f"{row['confidence']:.4f}"} if "number" in row else {}


def write_explanations(files: list[Path], predictor: Predictor, touching: Predictor | None, folder: Path) -> list[dict]:
    """`predict_files`' rows, and for each image read, `folder`/<name>.png: its digits boxed, each with its
    occlusion map."""
    from pipeline.images.digits import read_image
    from pipeline.ml import explain  # matplotlib: only with --explain
    from pipeline.report import plots

    settings = load_params().evaluate  # the maps as the evaluate stage draws them
    folder.mkdir(parents=True, exist_ok=True)
    rows, names = [], overlay_names(files)
    for path in files:
        row, digits = read_file(path, predictor, touching)
        rows.append(row)
        if digits:
            images = np.stack([digit.image for digit in digits])
            classes = np.array([d["digit"] for d in row["digits"]])
            maps = explain.occlusion(predictor, images, classes, settings.occlusion_patch, settings.occlusion_stride)
            plots.save(
                plots.explained_number(read_image(path), row, list(images), maps, "occlusion"),
                folder / f"{names[path]}.png",
            )
    return rows


def overlay_names(files: list[Path]) -> dict[Path, str]:
    """Each file's overlay name: its stem, or where stems repeat (a/1.png, b/1.png), its path from the
    files' common folder, parts joined by "__" (a__1, b__1)."""
    stems = collections.Counter(path.stem for path in files)
    common = Path(os.path.commonpath([path.resolve().parent for path in files])) if files else Path()
    return {
        path: path.stem
        if stems[path.stem] == 1
        else "__".join(path.resolve().with_suffix("").relative_to(common).parts)
        for path in files
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or quoted globs")
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument("--json", dest="output", action="store_const", const="json", default="table")
    formats.add_argument("--csv", dest="output", action="store_const", const="csv")
    parser.add_argument("--explain", type=Path, metavar="DIR", help="write each image's digits and saliency maps here")
    add_model(parser)


def main(
    paths: list[str],
    model: str | None = None,
    output: str = "table",
    explain: Path | None = None,
    touching: Path | None = None,
) -> int:
    files = image_files(paths)
    if not files:
        raise PipelineError(f"no image files in {' '.join(paths)} (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
    dataset = load_params().data.current
    if explain and not dataset.digits:
        raise PipelineError(f"--explain draws a number's digits; {dataset.title}'s classes are not digits")
    predictor = load_predictor(model or default_model())
    if not dataset.digits:  # one item per image: no number to cut, no detector
        rows = predict_items(files, predictor, dataset.classes)
    elif explain:
        rows = write_explanations(files, predictor, load_touching(touching), explain)
    else:
        rows = predict_files(files, predictor, load_touching(touching))
    for row in rows:
        if "error" in row:
            print(f"error: {row['error']}", file=sys.stderr)
    print(render(rows, output) if dataset.digits else render_items(rows, output))
    return 1 if any("error" in row for row in rows) else 0
