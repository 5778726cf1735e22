"""pipeline.ml.training: learns, is deterministic, keeps the right epoch, follows its schedule."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pipeline.infra.overrides import with_overrides
from pipeline.infra.params import Params, TrainParams
from pipeline.ml import models, training
from tests.mnist_files import REPO, learnable_mnist, params_with

CONFIG = params_with(
    {
        "model.arch": "tiny",
        "model.test_time_shift": 0,
        "train.seed": 1,
        "train.epochs": 3,
        "train.batch_size": 32,
        "train.learning_rate": 0.01,
        "train.lr_schedule": "one_cycle",
        "train.warmup_fraction": 0.3,
        "train.ema_momentum": 0,
        "train.plateau_patience": 1,
        "train.early_stopping_patience": 0,
        "train.distribute": "none",
        "train.augment.enabled": False,
    },
)
PARAMS, TINY = CONFIG.train, CONFIG.model


def recipe(**overrides) -> TrainParams:
    """PARAMS with some keys changed, validated like params.yaml."""
    return configured(**overrides).train


def configured(**overrides) -> Params:
    """CONFIG with some `train` keys changed, validated like params.yaml."""
    return with_overrides(CONFIG, {f"train.{key}": value for key, value in overrides.items()})


@pytest.fixture(scope="module")
def data():
    return learnable_mnist(400, seed=0), learnable_mnist(100, seed=1)


@pytest.fixture(scope="module")
def trained(data):
    return training.fit(*data, TINY, PARAMS)


def test_it_learns(trained):
    _, history = trained
    assert history["val_accuracy"].max() > 0.5
    assert list(history.columns) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss", "learning_rate"]
    assert history["epoch"].tolist() == [1, 2, 3]


def test_same_seed_same_model(data, trained):
    model, history = trained
    again_model, again = training.fit(*data, TINY, PARAMS)
    assert again.equals(history)
    for mine, theirs in zip(model.get_weights(), again_model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("smoothing", [0, 0.2])
def test_it_minimises_the_smoothed_cross_entropy(data, trained, smoothing):
    """The loss training reports is the cross-entropy against targets of 1 - s for the digit plus s/10
    for every class (s = `train.label_smoothing`), and `accuracy` still counts the digit."""
    model, history = trained if smoothing == 0 else training.fit(*data, TINY, recipe(label_smoothing=smoothing))
    images, labels = data[1]
    probabilities = model.predict(images, verbose=0)
    targets = (1 - smoothing) * np.eye(10)[labels] + smoothing / 10
    last = history.iloc[-1]
    assert last["val_loss"] == pytest.approx(-np.mean(np.sum(targets * np.log(probabilities), axis=1)), rel=1e-4)
    assert last["val_accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == labels))


class _WreckLastEpoch(keras.callbacks.Callback):
    """Sets an absurd learning rate for the last epoch, so the best epoch is an earlier one."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.params["epochs"] - 1:
            self.model.optimizer.learning_rate.assign(100.0)


def test_early_stopping_keeps_the_epoch_of_lowest_validation_loss(data):
    config = configured(lr_schedule="constant", early_stopping_patience=2)
    model, history = training.fit(*data, TINY, config.train, [_WreckLastEpoch()])
    train_metrics = training.summary([history], model, config)
    kept = history.iloc[train_metrics["kept_epoch"] - 1]
    assert kept["val_loss"] == history["val_loss"].min() < history["val_loss"].iloc[-1]
    assert model.evaluate(*data[1], verbose=0) == pytest.approx([kept["val_loss"], kept["val_accuracy"]], rel=1e-5)
    assert train_metrics == {"epochs_run": 3, "kept_epoch": train_metrics["kept_epoch"], "params": 2_864, "members": 1}


def test_without_early_stopping_the_last_epoch_is_kept(data):
    """As the default runs one-cycle, whose schedule sets the length: however bad, its end is kept."""
    config = configured(lr_schedule="constant")
    model, history = training.fit(*data, TINY, config.train, [_WreckLastEpoch()])
    assert training.summary([history], model, config)["kept_epoch"] == 3
    last = history.iloc[-1]
    assert last["val_loss"] > history["val_loss"].min()
    assert model.evaluate(*data[1], verbose=0) == pytest.approx([last["val_loss"], last["val_accuracy"]], rel=1e-5)


def test_validation_metrics_score_the_saved_model_shifts_included(data, trained):
    model, history = trained
    plain = training.validation_metrics(models.inference_model(model), data[1], 32)
    accuracy, images = history["val_accuracy"].iloc[-1], len(data[1][1])
    errors = images - round(accuracy * images)
    assert plain == pytest.approx({"accuracy": accuracy, "errors": errors, "loss": history["val_loss"].iloc[-1]})
    assert training.validation_metrics(models.inference_model(model, 1), data[1], 32) != plain


def test_weight_averaging_validates_and_keeps_the_averaged_weights(data, trained):
    model, history = training.fit(*data, TINY, recipe(ema_momentum=0.9))
    _, accuracy = model.evaluate(*data[1], verbose=0)
    assert accuracy == pytest.approx(history["val_accuracy"].iloc[-1])
    plain, _ = trained  # the same seed and steps without averaging: other weights are the averaged ones
    assert not np.array_equal(model.get_weights()[0], plain.get_weights()[0])


class RecordWeights(keras.callbacks.Callback):
    """Every weight, BatchNorm statistics included, after every optimizer step."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.steps = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps.append(self.model.get_weights())


def assert_same_steps(recorded: RecordWeights, reference: RecordWeights) -> None:
    """Every weight after every step exactly as in `reference`."""
    for step, (mine, theirs) in enumerate(zip(recorded.steps, reference.steps, strict=True)):
        for weight, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            np.testing.assert_array_equal(a, b, err_msg=f"step {step + 1}, weight {weight}")


def test_weight_average_is_bias_corrected_so_short_runs_keep_trained_weights(data):
    momentum, recorder = 0.99, RecordWeights()  # 39 steps: Keras' own average would keep 68% of step 1
    params = recipe(ema_momentum=momentum, early_stopping_patience=0, lr_schedule="constant")
    model, _ = training.fit(*data, TINY, params, [recorder])
    weights = momentum ** np.arange(len(recorder.steps))[::-1]  # every step: the last epoch is kept
    expected = np.tensordot(weights / weights.sum(), np.stack([step[0] for step in recorder.steps]), axes=1)
    np.testing.assert_allclose(model.get_weights()[0], expected, rtol=1e-4, atol=1e-6)


def test_the_average_only_observes_training(data):
    """Swapping the average in to validate and out again leaves the running weights exactly as they were."""
    plain, averaged = RecordWeights(), RecordWeights()
    training.fit(*data, TINY, PARAMS, [plain])
    training.fit(*data, TINY, recipe(ema_momentum=0.9), [averaged])
    assert_same_steps(averaged, plain)


def test_the_saved_model_keeps_the_weights_without_augmentation_or_optimizer(data, tmp_path):
    augment = {"enabled": True, "flip": False, "rotation_deg": 10, "shift": 0.1, "zoom": 0.1, "erasing": 0}
    params = recipe(epochs=1, ema_momentum=0.9, augment=augment)
    model, _ = training.fit(*data, TINY, params)
    inference = models.inference_model(model)
    assert any(isinstance(layer, models.AUGMENTATION) for layer in model.layers)
    assert not any(isinstance(layer, models.AUGMENTATION) for layer in inference.layers)
    inference.save(tmp_path / "cnn.keras")
    loaded = keras.saving.load_model(tmp_path / "cnn.keras", safe_mode=True)  # needs no class from this project
    assert not loaded.compiled
    images = data[1][0]
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_one_cycle_warms_up_then_decays_to_zero(trained):
    _, history = trained
    rates = history["learning_rate"].tolist()
    assert rates[0] < PARAMS.learning_rate and max(rates) <= PARAMS.learning_rate
    assert rates[-1] == pytest.approx(0, abs=1e-6)


def test_plateau_schedule_and_early_stopping_use_their_settings(data):
    params = recipe(lr_schedule="plateau", early_stopping_patience=2)
    callbacks = training._schedule_callbacks(params, data[0][0])
    (plateau,) = [c for c in callbacks if isinstance(c, keras.callbacks.ReduceLROnPlateau)]
    assert (plateau.factor, plateau.patience, plateau.monitor) == (0.5, 1, "val_loss")
    (stopping,) = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    assert (stopping.patience, stopping.monitor, stopping.restore_best_weights) == (2, "val_loss", True)
    assert not any(
        isinstance(c, keras.callbacks.EarlyStopping) for c in training._schedule_callbacks(PARAMS, data[0][0])
    )


@pytest.mark.parametrize("distribute", ["none", "auto"])
def test_training_mirrors_over_the_gpus_only_when_auto_finds_two_or_more(distribute):
    gpus = len(tf.config.list_logical_devices("GPU"))
    expected = gpus if distribute == "auto" and gpus > 1 else 1
    assert training.distribution(distribute).num_replicas_in_sync == expected


MIRRORED_ON_TWO_CPUS = """
    import sys, numpy as np, tensorflow as tf
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from pipeline.ml import training
    from tests.test_training import PARAMS, TINY, recipe
    from tests.mnist_files import learnable_mnist
    params = recipe(ema_momentum=0.9, distribute="mirrored")
    runs = [training.fit(learnable_mnist(400, seed=0), learnable_mnist(100, seed=1), TINY, params) for _ in range(2)]
    (model, history), (_, again) = runs
    print(model.distribute_strategy.num_replicas_in_sync, int(model.optimizer.iterations.numpy()),
          history["val_accuracy"].max(), again.equals(history))
"""


def test_mirrored_training_splits_each_step_over_the_replicas():
    """Two logical CPUs stand in for two GPUs: each step takes batch_size images per replica."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MIRRORED_ON_TWO_CPUS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    replicas, steps, best_accuracy, deterministic = result.stdout.splitlines()[-1].split()
    assert replicas == "2" and int(steps) == PARAMS.epochs * 7  # 400 images at 2 x 32 a step
    assert float(best_accuracy) > 0.25 and deterministic == "True"


def test_an_ensemble_trains_each_member_on_its_own_seed_and_averages_them(data, trained):
    """Member 1 is the single model of train.seed; the others are seeded apart from any other
    train.seed's members; the history is the members' mean; callbacks are asked for per member."""
    asked = []
    config = with_overrides(CONFIG, {"model.ensemble_size": 2})
    result = training.train(config, *data, callbacks=lambda member: asked.append(member) or [])
    assert asked == [1, 2] and result.metrics["members"] == 2 and len(result.members) == 2
    single, _ = trained
    np.testing.assert_array_equal(result.members[0].get_weights()[0], single.get_weights()[0])
    images = data[1][0]
    expected = np.mean([member.predict(images, verbose=0) for member in result.members], axis=0)
    np.testing.assert_allclose(result.model.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-7)
    assert result.history["epoch"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(result.member_histories[0], trained[1])
    second = result.member_histories[1]
    pd.testing.assert_frame_equal(result.history, (trained[1] + second) / 2, check_dtype=False)  # members' mean
    assert not np.allclose(second["val_loss"], trained[1]["val_loss"])  # (a mean of two different members)
    seeds = [training.member_seeds(seed, 3) for seed in (42, 43, 44)]
    assert [s[0] for s in seeds] == [42, 43, 44] and len({s for member in seeds for s in member}) == 9


def history(losses: list[float]) -> pd.DataFrame:
    """A hand-made member history: val_loss as given, val_accuracy 1 - val_loss."""
    epochs = np.arange(1, len(losses) + 1)
    return pd.DataFrame({"epoch": epochs, "val_accuracy": 1 - np.array(losses), "val_loss": losses})


def test_the_mean_history_averages_each_epoch_over_the_members_that_ran_it():
    mean = training.mean_history([history([0.5, 0.3, 0.2]), history([0.7, 0.5])])
    assert mean["epoch"].tolist() == [1, 2, 3]
    assert mean["val_loss"].tolist() == pytest.approx([0.6, 0.4, 0.2])  # epoch 3: the first member alone


def test_an_ensemble_s_epochs_are_its_members_own():
    """Each member's epochs and kept epoch as it ran them; the ensemble's: the most epochs and the latest kept."""
    config = with_overrides(configured(early_stopping_patience=1), {"model.ensemble_size": 2})
    members = [history([0.5, 0.3, 0.4]), history([0.7, 0.5, 0.4, 0.45])]
    figures = training.summary(members, keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), config)
    assert figures == {
        "epochs_run": 4,
        "kept_epoch": 3,
        "params": 3,
        "members": 2,
        "member_1": {"epochs_run": 3, "kept_epoch": 2},
        "member_2": {"epochs_run": 4, "kept_epoch": 3},
    }


def test_seconds_per_epoch_count_every_member_s_epochs():
    trained = training.Trained(None, None, {}, 70.0, [None, None], [history([0.5] * 3), history([0.5] * 4)])
    assert trained.seconds_per_epoch == 10.0
