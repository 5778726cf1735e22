"""train stage: learns, is deterministic, restores the best epoch, follows its schedule."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from pipeline import train as stage
from pipeline.params import AugmentParams, ModelParams, TrainParams
from tests.mnist_files import learnable_mnist

PARAMS = TrainParams(
    seed=1,
    epochs=3,
    batch_size=32,
    learning_rate=0.01,
    lr_schedule="one_cycle",
    warmup_fraction=0.3,
    ema_momentum=0,
    plateau_factor=0.5,
    plateau_patience=1,
    early_stopping_patience=0,
    augment=AugmentParams(enabled=False, rotation_deg=0, shift=0, zoom=0),
)
TINY = ModelParams(arch="tiny")


@pytest.fixture(scope="module")
def data():
    return learnable_mnist(400, seed=0), learnable_mnist(100, seed=1)


@pytest.fixture(scope="module")
def trained(data):
    return stage.train(*data, TINY, PARAMS)


def test_it_learns(trained):
    _, history = trained
    assert history["val_accuracy"].max() > 0.5
    assert list(history.columns) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss", "learning_rate"]
    assert history["epoch"].tolist() == [1, 2, 3]


def test_same_seed_same_model(data, trained):
    model, history = trained
    again_model, again = stage.train(*data, TINY, PARAMS)
    assert again.equals(history)
    for mine, theirs in zip(model.get_weights(), again_model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


class _WreckLastEpoch(keras.callbacks.Callback):
    """Sets an absurd learning rate for the last epoch, so the best epoch is an earlier one."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.params["epochs"] - 1:
            self.model.optimizer.learning_rate.assign(100.0)


def test_the_best_validation_epoch_is_kept(data):
    params = dataclasses.replace(PARAMS, lr_schedule="constant")
    model, history = stage.train(*data, TINY, params, [_WreckLastEpoch()])
    metrics = stage.summary(history, model)
    assert metrics["best_epoch"] < 3 and history["val_accuracy"].iloc[-1] < metrics["best_val_accuracy"]
    _, accuracy = model.evaluate(*data[1], verbose=0)
    assert accuracy == pytest.approx(metrics["best_val_accuracy"])
    assert metrics["params"] == 2_864


def test_weight_averaging_validates_and_keeps_the_averaged_weights(data, trained):
    model, history = stage.train(*data, TINY, dataclasses.replace(PARAMS, ema_momentum=0.9))
    _, accuracy = model.evaluate(*data[1], verbose=0)
    assert accuracy == pytest.approx(history["val_accuracy"].max())
    plain, _ = trained  # the same seed and steps without averaging: other weights are the averaged ones
    assert not np.array_equal(model.get_weights()[0], plain.get_weights()[0])


def test_one_cycle_warms_up_then_decays_to_zero(trained):
    _, history = trained
    rates = history["learning_rate"].tolist()
    assert rates[0] < PARAMS.learning_rate and max(rates) <= PARAMS.learning_rate
    assert rates[-1] == pytest.approx(0, abs=1e-6)


def test_plateau_schedule_uses_the_plateau_settings():
    callbacks = stage._schedule_callbacks(dataclasses.replace(PARAMS, lr_schedule="plateau"))
    (plateau,) = [c for c in callbacks if isinstance(c, keras.callbacks.ReduceLROnPlateau)]
    assert (plateau.factor, plateau.patience) == (0.5, 1)
    (stopping,) = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    assert stopping.patience == PARAMS.epochs and stopping.restore_best_weights
