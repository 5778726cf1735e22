"""`python -m pipeline predict PATH...`: the digit in each image, normalised as MNIST was made.

PATHs are image files (PNG, JPEG, BMP, GIF (first frame), TIFF, WebP), folders (their images, recursively)
or quoted globs.  Each image goes through `pipeline.images.load_digit`; one that cannot be read or
holds no digit gets a one-line error on stderr while the others are still predicted, and the exit
code is then 1.  Output: a table, or `--json` / `--csv` for machines.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import sys
from pathlib import Path

from pipeline import PipelineError
from pipeline.commands import add_model
from pipeline.inference import TOP, default_model, load_predictor, predict_files

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
    """The predicted rows as a table, JSON (errors included) or CSV (an error column)."""
    if output == "json":
        return "[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]"  # a row per line
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, ["file", "digit", "confidence", "top3", "error"], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            top = " ".join(f"{d}:{p:.4f}" for d, p in row.get("top3", []))
            writer.writerow(
                row | {"top3": top} | ({"confidence": f"{row['confidence']:.4f}"} if "digit" in row else {})
            )
        return buffer.getvalue().rstrip("\n")
    predicted = [row for row in rows if "error" not in row]
    width = max([len("file"), *(len(row["file"]) for row in predicted)])
    lines = [f"{'file':<{width}}  digit  confidence  top {TOP}"]
    for row in predicted:
        top = ", ".join(f"{d} {p:.1%}" for d, p in row["top3"])
        lines.append(f"{row['file']:<{width}}  {row['digit']:>5}  {row['confidence']:>10.1%}  {top}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or quoted globs")
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument("--json", dest="output", action="store_const", const="json", default="table")
    formats.add_argument("--csv", dest="output", action="store_const", const="csv")
    add_model(parser)


def main(paths: list[str], model: str | None = None, output: str = "table") -> int:
    files = image_files(paths)
    if not files:
        raise PipelineError(f"no image files in {' '.join(paths)} (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
    rows = predict_files(files, load_predictor(model or default_model()))
    for row in rows:
        if "error" in row:
            print(f"error: {row['error']}", file=sys.stderr)
    print(render(rows, output))
    return 1 if any("error" in row for row in rows) else 0
