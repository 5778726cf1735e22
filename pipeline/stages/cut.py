"""cut stage: the photographed numbers cut into digits, wherever the cutting needs no digit model.

The compose stage's photos (data/numbers.npz, then data/outside.npz) are cut as `predict` cuts a
file, with the touching-digits detector (`pipeline.reading.photographed`).  Nothing here depends on
the CNN, so an experiment that retrains it reuses the cut digits: the numbers stage classifies them
in one batch and segments again, with the CNN, only the photos where a blob of touching digits has
to be cut where the CNN is most confident.
"""

from __future__ import annotations

import logging

import numpy as np

from pipeline.infra import paths
from pipeline.infra.files import load_npz, save_npz
from pipeline.infra.params import load_params
from pipeline.reading.photographed import CUT, NEEDS_MODEL, UNREADABLE, cut_all, every_photo
from pipeline.stages import not_applicable

log = logging.getLogger(__name__)


def main() -> None:
    if not_applicable.skip(load_params(), None, (paths.CUT_DIGITS,)):
        return
    photos = every_photo(load_npz(paths.NUMBER_PHOTOS), load_npz(paths.OUTSIDE_PHOTOS))
    cut = cut_all(photos, paths.TOUCHING_MODEL)
    save_npz(paths.CUT_DIGITS, cut)
    log.info(
        "%d photos: %d cut into %d digits, %d to cut with the digit model, %d without a digit",
        len(photos),
        np.sum(cut["status"] == CUT),
        len(cut["digits"]),
        np.sum(cut["status"] == NEEDS_MODEL),
        np.sum(cut["status"] == UNREADABLE),
    )
