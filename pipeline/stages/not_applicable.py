"""What the stages that only make sense for digits (segmenter, compose, cut, numbers) leave on another dataset.

Whole numbers are composed of digit images and read as digits: on a dataset whose classes are not digits
(`data.datasets.<name>.digits: false`) such a stage does no work.  It still leaves each of its outputs,
so DVC, `record` and `card` find them: its metrics file says why, `{"not_applicable": "<reason>"}`
(`record` makes that a tag of the run, `card` a line), and every other output is an empty file of its kind.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image, ImageDraw

from pipeline.infra.files import atomic_write, save_json, save_npz
from pipeline.infra.params import Params

log = logging.getLogger(__name__)
KEY = "not_applicable"  # the metrics file's one key on a dataset whose classes are not digits


def reason(params: Params) -> str | None:
    """Why whole numbers do not apply to the dataset `params` name; None where they do."""
    if params.data.current.digits:
        return None
    return f"{params.data.dataset}'s classes are not digits"


def skip(params: Params, metrics: Path | None, others: tuple[Path, ...]) -> bool:
    """On a dataset whose classes are not digits, write `metrics` saying why and each of `others` empty
    (an .npz without arrays, a .png saying why, any other file empty) and return True; else False."""
    why = reason(params)
    if why is None:
        return False
    for path in others:
        if path.suffix == ".npz":
            save_npz(path, {})
            continue
        with atomic_write(path) as tmp:
            if path.suffix == ".png":
                image = Image.new("RGB", (640, 60), "white")
                ImageDraw.Draw(image).text((10, 22), f"not applicable: {why}", fill="black")
                image.save(tmp, "PNG")
            else:
                tmp.write_bytes(b"")
    if metrics is not None:
        save_json(metrics, {KEY: why})
    log.info("not applicable: %s", why)
    return True
