"""evaluate stage: its figures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.infra import paths
from pipeline.ml.scoring import predictions_table
from pipeline.stages import evaluate as stage
from tests.mnist_files import one_hot


def test_figures_show_the_most_confident_mistakes_first():
    images = np.zeros((30, 28, 28), np.uint8)
    actual = np.arange(30) % 10
    predicted = actual.copy()
    predicted[[4, 7]] = 0
    probabilities = one_hot(predicted)
    probabilities[7] = one_hot(np.array([0]), confidence=0.99)
    table = predictions_table(actual, probabilities)
    history = pd.DataFrame(
        {
            "epoch": [1, 2],
            "accuracy": [0.9, 0.95],
            "loss": [0.3, 0.2],
            "val_accuracy": [0.9, 0.96],
            "val_loss": [0.3, 0.1],
            "learning_rate": [1e-3, 0.0],
        }
    )
    figures = stage.figures(images, table, history, kept_epoch=2, grid_size=9, names=[str(d) for d in range(10)])
    assert set(figures) == set(stage.FIGURES)
    curves_legend = figures[paths.CURVES_PLOT].axes[0].get_legend().get_texts()
    assert "kept (epoch 2)" in [text.get_text() for text in curves_legend]
    mistakes = figures[paths.MISCLASSIFIED_PLOT]
    titles = [axes.get_title() for axes in mistakes.axes if axes.get_title()]
    assert titles == ["true 7, pred 0\n99%", "true 4, pred 0\n91%"]
    assert mistakes.get_suptitle() == "The 2 most confident mistakes"
    garments = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
    named = stage.figures(images, table, history, kept_epoch=2, grid_size=9, names=garments)[paths.MISCLASSIFIED_PLOT]
    titles = [axes.get_title() for axes in named.axes if axes.get_title()]
    assert titles == ["true Sneaker\npred T-shirt/top\n99%", "true Coat\npred T-shirt/top\n91%"]  # a line each
    x_labels = [t.get_text() for t in figures[paths.CONFUSION_PLOT].axes[0].get_xticklabels()]
    assert x_labels == [str(d) for d in range(10)]
