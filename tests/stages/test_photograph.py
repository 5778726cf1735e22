"""photograph and photos stages: photos read back as predict reads a file, the same on any number of
cores, and scored with unreadable photos counted wrong."""

from __future__ import annotations

import numpy as np

from pipeline.images.digits import load_digit
from pipeline.stages import photograph, photos
from tests.digits import font_mnist


def test_each_photo_has_its_own_generator_so_the_pool_gives_what_one_process_gives(tmp_path):
    images, _ = font_mnist(12, seed=5)
    indices = np.array([3, 7, 11])
    digits, readable = photograph.photograph_all(images, indices, seed=4, folder=tmp_path)
    one_by_one = [photograph.photograph_and_read(images[i], i, 4, tmp_path) for i in indices]
    np.testing.assert_array_equal(digits, np.stack([digit for digit, _ in one_by_one]))
    assert readable.tolist() == [True, True, True]
    np.testing.assert_array_equal(digits[0], load_digit(tmp_path / "test-00003.jpg"))  # predict's own reading


def test_a_blank_photo_is_unreadable_and_stands_as_a_black_field(tmp_path):
    digit, readable = photograph.photograph_and_read(np.zeros((28, 28), np.uint8), 0, 0, tmp_path)
    assert not readable and not digit.any()


def test_unreadable_photos_count_wrong():
    actual = np.array([1, 2, 3, 4])
    metrics = photos.photo_metrics(
        on_photos=np.array([1, 2, 0, 0]),  # the last two: blank fields, read as 0
        as_mnist=np.array([1, 2, 3, 0]),
        actual=actual,
        readable=np.array([True, True, False, True]),
    )
    assert metrics == {
        "images": 4,
        "unreadable": 1,
        "photo_accuracy": 0.5,
        "mnist_accuracy": 0.75,
        "gap_points": 25.0,
    }
