"""Normalising real-world images as MNIST was made: any background, place, size, mode; clear errors."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage

from pipeline.images.digits import MAX_PIXELS, ImageError, grey_levels, load_digit, read_image, to_mnist
from tests.digits import page


@pytest.fixture
def seven() -> np.ndarray:
    return page(7, np.random.default_rng(0), size=200)


def _save(tmp_path, array: np.ndarray, name: str, mode: str = "L") -> object:
    path = tmp_path / name
    Image.fromarray(np.round(array * 255).astype(np.uint8)).convert(mode).save(path)
    return path


def test_output_is_shaped_like_mnist(seven):
    digit = to_mnist(seven)
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert digit.max() == 255 and digit[0].max() == digit[-1].max() == 0  # light ink on black, margins empty
    rows, cols = np.nonzero(digit)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 == 20  # the longer side fills the 20x20 box
    assert np.allclose(ndimage.center_of_mass(digit), (14, 14), atol=1.0)


def test_light_ink_on_dark_reads_as_dark_ink_on_light(seven):
    assert np.array_equal(to_mnist(1 - seven), to_mnist(seven))


def test_position_and_page_size_do_not_matter(seven):
    wide = np.full((300, 500), seven[0, 0], np.float32)
    wide[90:290, 280:480] = seven  # off-centre, near a corner, on a page of another shape
    assert np.array_equal(to_mnist(wide), to_mnist(seven))


@pytest.mark.parametrize("side", [14, 40, 3000])
def test_tiny_and_huge_images_give_the_same_digit(seven, side):
    resized = np.asarray(Image.fromarray(seven).resize((side, side), Image.Resampling.BILINEAR))
    difference = np.abs(to_mnist(resized).astype(int) - to_mnist(seven).astype(int))
    assert difference.mean() < 20  # of 255: the same shape at another sampling


def test_thin_pen_strokes_are_widened_to_mnist_stroke_width():
    thin = np.ones((400, 400), np.float32)
    thin[50:350, 198:202] = 0  # a "1" drawn with a 4-pixel pen on a 300-pixel-high digit
    digit = to_mnist(thin)
    assert (digit > 127).sum(axis=1).max() >= 2  # MNIST-like 2-3 pixel stroke, not a faint hairline


def test_specks_of_noise_are_ignored(seven):
    noisy = seven.copy()
    noisy[5:7, 5:7] = noisy[190:192, 10:12] = 0.1  # dust far from the digit
    assert np.array_equal(to_mnist(noisy), to_mnist(seven))


def test_transparent_png_is_read_as_ink_on_white(tmp_path, seven):
    ink = np.round((1 - seven) * 255).astype(np.uint8)
    rgba = np.zeros((*seven.shape, 4), np.uint8)  # black strokes, transparent elsewhere, as a canvas exports
    rgba[..., 3] = ink
    Image.fromarray(rgba, "RGBA").save(tmp_path / "drawn.png")
    assert np.abs(read_image(tmp_path / "drawn.png") - (1 - ink / 255)).max() < 0.01


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path, seven):
    Image.fromarray(np.round(seven * 65535).astype(np.uint16)).save(tmp_path / "deep.png")
    assert np.abs(read_image(tmp_path / "deep.png") - seven).max() < 0.01


@pytest.mark.parametrize(("name", "mode"), [("p.gif", "P"), ("cmyk.jpg", "CMYK"), ("rgb.bmp", "RGB"), ("la.png", "LA")])
def test_other_modes_and_formats_read_as_the_same_digit(tmp_path, seven, name, mode):
    reference = to_mnist(read_image(_save(tmp_path, seven, "l.png")))
    difference = np.abs(load_digit(_save(tmp_path, seven, name, mode)).astype(int) - reference.astype(int))
    assert difference.mean() < 10


def test_animated_gif_uses_its_first_frame(tmp_path, seven):
    frames = [Image.fromarray(np.round(a * 255).astype(np.uint8)) for a in (seven, page(1, np.random.default_rng(1)))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    assert np.abs(load_digit(tmp_path / "anim.gif").astype(int) - to_mnist(seven).astype(int)).mean() < 10


@pytest.mark.reliability
@pytest.mark.parametrize("level", [0.0, 1.0, 0.5])
def test_a_blank_image_is_an_error(tmp_path, level):
    path = _save(tmp_path, np.full((50, 80), level, np.float32), "blank.png")
    with pytest.raises(ImageError, match=r"blank.png: no digit found: the image is blank"):
        load_digit(path)


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "cannot identify image file"), (b"just some text", "cannot identify image file")],
)
def test_files_that_are_not_images_are_named_in_one_line(tmp_path, content, expected):
    (tmp_path / "fake.png").write_bytes(content)
    with pytest.raises(ImageError, match=rf"fake.png: not a readable image \(.*{expected}") as raised:
        load_digit(tmp_path / "fake.png")
    assert "\n" not in str(raised.value)


@pytest.mark.reliability
def test_a_truncated_png_is_an_error(tmp_path, seven):
    whole = _save(tmp_path, seven, "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImageError, match="cut.png: not a readable image"):
        load_digit(tmp_path / "cut.png")


@pytest.mark.reliability
def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(ImageError, match="nothing.png: not a readable image .*No such file"):
        load_digit(tmp_path / "nothing.png")


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (10000, 6000, f"10000x6000 pixels, more than the {MAX_PIXELS:,} allowed"),
        (20000, 20000, r"refused: Image size \(400000000 pixels\) exceeds limit"),
    ],
)
def test_huge_dimensions_are_refused_before_decoding(tmp_path, seven, width, height, expected):
    """A PNG whose header claims a huge size (a decompression bomb) is refused unread."""
    png = bytearray(_save(tmp_path, seven, "small.png").read_bytes())
    header = struct.pack(">II", width, height) + png[24:29]  # IHDR: width, height, then depth, colour, ...
    png[16:33] = header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    (tmp_path / "bomb.png").write_bytes(png)
    with pytest.raises(ImageError, match=f"bomb.png: {expected}"):
        load_digit(tmp_path / "bomb.png")


def test_grey_levels_of_a_float_image():
    assert grey_levels(Image.fromarray(np.array([[0, 127.5, 255]], np.float32), "F")).tolist() == [[0, 0.5, 1]]


@settings(max_examples=40, deadline=None)
@given(paper=st.floats(0.25, 1.0), contrast=st.floats(0.2, 1.0), light_ink=st.booleans())
def test_ink_is_found_on_any_paper_in_any_light(paper, contrast, light_ink):
    """Dark ink on dim grey paper is still dark ink (not a light digit on a dark page), and chalk on a
    bright board still light: the ink lies on the side of the background the image reaches farther."""
    seven = page(7, np.random.default_rng(0), size=200)  # dark ink on white
    ink = max(paper - contrast, 0.0)
    photo = ink + (paper - ink) * seven
    if light_ink:
        photo = 1 - photo
    assert np.abs(to_mnist(photo).astype(int) - to_mnist(seven)).max() <= 2
