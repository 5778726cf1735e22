"""preprocess stage: seeded stratified split, untouched test set, subset, stats and outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import PipelineError
from pipeline.infra import paths
from pipeline.infra.files import load_npz, save_npz
from pipeline.infra.params import PreprocessParams
from pipeline.stages import preprocess as stage
from tests.mnist_files import fake_mnist, params_with


def params(**overrides) -> PreprocessParams:
    settings = {"seed": 0, "val_fraction": 0.2, "subset": None} | overrides
    return params_with({f"preprocess.{key}": value for key, value in settings.items()}).preprocess


def test_split_is_stratified_and_keeps_every_image_once():
    arrays = fake_mnist(n_train=300)
    splits = stage.split(arrays, params())
    counts = stage.class_counts(splits)
    assert counts["train"].tolist() == [24] * 10
    assert counts["val"].tolist() == [6] * 10
    rows = {row.tobytes() for name in ("train", "val") for row in splits[name][0]}
    assert rows == {row.tobytes() for row in arrays["x_train"]}


def test_images_keep_their_labels():
    arrays = fake_mnist()
    label_of = {x.tobytes(): y for x, y in zip(arrays["x_train"], arrays["y_train"], strict=True)}
    x, y = stage.split(arrays, params())["val"]
    assert all(label_of[image.tobytes()] == label for image, label in zip(x, y, strict=True))


def test_test_set_passes_through_untouched():
    arrays = fake_mnist()
    x, y = stage.split(arrays, params())["test"]
    assert x is arrays["x_test"] and y is arrays["y_test"]


def test_same_seed_same_split_other_seed_other_split():
    arrays = fake_mnist()
    first, again, other = (stage.split(arrays, params(seed=s))["val"][0] for s in (1, 1, 2))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_subset_is_a_stratified_sample():
    splits = stage.split(fake_mnist(n_train=300), params(subset=150))
    counts = stage.class_counts(splits)
    assert (counts["train"] + counts["val"]).tolist() == [15] * 10
    assert len(splits["test"][1]) == 100


def test_subset_larger_than_the_data_is_an_error():
    with pytest.raises(PipelineError, match="preprocess.subset = 301 exceeds the 300 training images"):
        stage.split(fake_mnist(n_train=300), params(subset=301))


def test_a_split_too_small_for_every_class_is_an_error():
    with pytest.raises(PipelineError, match="cannot split 100 images stratified"):
        stage.split(fake_mnist(n_train=100), params(val_fraction=0.05))


def test_main_writes_splits_stats_and_plot(tmp_path, monkeypatch, repo_params):
    repo_params["preprocess"] |= {"val_fraction": 0.2, "subset": None}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    monkeypatch.chdir(tmp_path)
    save_npz(paths.RAW_DATA, fake_mnist())
    stage.main()
    assert {name: len(load_npz(paths.split_file(name))["y"]) for name in paths.SPLITS} == {
        "train": 240,
        "val": 60,
        "test": 100,
    }
    stats = json.loads(paths.DATA_METRICS.read_text())
    assert stats == {"train": 240, "val": 60, "test": 100}
    counts = pd.read_csv(paths.CLASS_COUNTS, index_col="digit")
    assert counts["val"].tolist() == [6] * 10 and counts.index.tolist() == list(range(10))
    assert paths.CLASS_DISTRIBUTION_PLOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
