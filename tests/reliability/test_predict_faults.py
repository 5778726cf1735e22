"""`predict` on a folder of awkward and broken images: each bad one gets its own one-line error, every
readable one is still predicted (right), and the exit code says some failed."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.digits import page
from tests.mnist_files import REPO

pytestmark = pytest.mark.e2e


def _grey(digit: int, seed: int) -> np.ndarray:
    return np.round(page(digit, np.random.default_rng(seed), size=200) * 255).astype(np.uint8)


def _bomb(path: Path) -> None:
    """A real PNG whose header claims 20000x20000 pixels."""
    Image.fromarray(_grey(1, 0)).save(path)
    png = bytearray(path.read_bytes())
    header = struct.pack(">II", 20000, 20000) + png[24:29]
    png[16:33] = header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path.write_bytes(png)


def _animated(path: Path) -> None:
    frames = [Image.fromarray(_grey(d, 3)) for d in (3, 8)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)


BROKEN = {  # file -> (how it is made, what its error says)
    "empty.png": (lambda p: p.write_bytes(b""), "not a readable image (cannot identify image file"),
    "text.png": (lambda p: p.write_text("not a picture"), "not a readable image (cannot identify image file"),
    "truncated.png": (
        lambda p: (Image.fromarray(_grey(2, 1)).save(p), p.write_bytes(p.read_bytes()[:400])),
        "not a readable image (",
    ),
    "one-pixel.png": (lambda p: Image.new("L", (1, 1), 128).save(p), "no digit found: the image is blank"),
    "bomb.png": (_bomb, "refused: Image size (400000000 pixels) exceeds limit"),
    "all-white.png": (lambda p: Image.new("L", (300, 200), 255).save(p), "no digit found: the image is blank"),
    "all-black.png": (lambda p: Image.new("L", (300, 200), 0).save(p), "no digit found: the image is blank"),
}
READABLE = {  # file -> (how it is made, the digit in it)
    "sixteen-bit.png": (lambda p: Image.fromarray(_grey(4, 4).astype(np.uint16) * 257).save(p), 4),
    "palette.gif": (lambda p: Image.fromarray(_grey(5, 5)).convert("P").save(p), 5),
    "transparent.png": (
        lambda p: Image.fromarray(np.dstack([np.zeros((200, 200, 3), np.uint8), 255 - _grey(6, 6)]), "RGBA").save(p),
        6,
    ),
    "cmyk.jpg": (lambda p: Image.fromarray(_grey(7, 7)).convert("CMYK").save(p), 7),
    "animated.gif": (_animated, 3),  # its first frame
    "light-on-dark.bmp": (lambda p: Image.fromarray(255 - _grey(0, 9)).save(p), 0),
}


@pytest.fixture(scope="module")
def answers(tmp_path_factory, digit_model) -> tuple[dict, subprocess.CompletedProcess]:
    folder = tmp_path_factory.mktemp("awkward")
    for name, (make, _) in (BROKEN | READABLE).items():
        make(folder / name)
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "predict", str(folder), "--json", "--model", str(digit_model.onnx_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return {Path(row["file"]).name: row for row in json.loads(result.stdout)}, result


def test_some_failed_so_exit_1_and_a_line_each(answers):
    rows, result = answers
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == len(BROKEN)
    assert set(rows) == set(BROKEN) | set(READABLE)


@pytest.mark.parametrize("name", BROKEN)
def test_broken_image_gets_its_own_error(answers, name):
    rows, result = answers
    assert set(rows[name]) == {"file", "error"}
    assert BROKEN[name][1] in rows[name]["error"]
    assert f"error: {rows[name]['file']}: " in result.stderr


@pytest.mark.parametrize("name", READABLE)
def test_awkward_but_readable_image_is_predicted(answers, name):
    rows, _ = answers
    assert rows[name]["number"] == str(READABLE[name][1]), rows[name]
