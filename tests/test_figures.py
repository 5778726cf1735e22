"""Figures a person reads a class on name it as the dataset does: Fashion-MNIST's by name, MNIST's as digits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.infra.params import load_params
from pipeline.report import plots
from tests.mnist_files import REPO

DATASETS = load_params(REPO / "params.yaml").data.datasets


def _labels(figure) -> tuple[list[str], str]:
    (axes,) = figure.axes
    figure.canvas.draw()  # tick labels are set when drawn
    return [label.get_text() for label in axes.get_xticklabels()], axes.get_xlabel()


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_class_figures_name_each_class_and_what_it_is(name):
    dataset = DATASETS[name]
    counts = {"train": np.arange(10) + 1, "val": np.ones(10, int)}
    errors = pd.DataFrame({"CNN": np.linspace(1, 10, 10), "baseline": np.linspace(5, 50, 10)}, index=dataset.classes)
    distribution, comparison = (
        plots.class_distribution(counts, dataset.classes, dataset.noun),
        plots.comparison(errors, dataset.class_noun),
    )
    assert _labels(distribution) == (dataset.classes, dataset.noun)  # the images, each a digit or an item
    assert _labels(comparison) == (dataset.classes, dataset.class_noun)  # the classes, as the model card says
    assert comparison.axes[0].get_title() == f"Test error per {dataset.class_noun}"
    assert (dataset.noun, dataset.class_noun) == (("digit",) * 2 if name == "mnist" else ("item", "class"))


def test_the_photographed_figure_says_what_was_photographed():
    photo, image = np.zeros((40, 30, 3), np.uint8), np.zeros((28, 28), np.uint8)
    figure = plots.photos([photo], [image], ["test item Bag"], DATASETS["fashion_mnist"].noun)
    assert figure.get_suptitle().startswith("Test items photographed")
