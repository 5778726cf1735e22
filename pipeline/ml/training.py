"""Training, one code path for the train stage, the bench, the search and the tests.

`train` fits `model.arch` with the `train` recipe (seeded, deterministic), `model.ensemble_size` times
on different seeds, and returns the model as it is saved and served (`models.inference_model`, with
`model.test_time_shift`'s shifted copies; `models.ensemble` of the members), its per-epoch history, its
summary and the seconds training took (`pipeline.ml.onnx_export` exports it).  `train.distribute`
spreads each batch over several devices with `tf.distribute.MirroredStrategy`; `train.batch_size`
is per device (replica).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline.infra.params import ModelParams, Params, TrainParams
from pipeline.ml import models
from pipeline.ml.scoring import classification_metrics
from pipeline.ml.weight_average import WeightAverage

Split = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Trained:
    """A finished training: the model as saved, its per-epoch history, train metrics and seconds, and
    its members with their own histories (the model itself unless `model.ensemble_size` > 1)."""

    model: keras.Model
    history: pd.DataFrame
    metrics: dict
    seconds: float
    members: list[keras.Model]
    member_histories: list[pd.DataFrame]

    @property
    def seconds_per_epoch(self) -> float:
        """Training seconds per epoch of one member: every member's epochs counted."""
        return self.seconds / sum(len(history) for history in self.member_histories)


MemberCallbacks = Callable[[int], list[keras.callbacks.Callback]]


def train(
    params: Params,
    training: Split,
    validation: Split,
    callbacks: MemberCallbacks | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> Trained:
    """Fit `params.model.arch` with `params.train` and keep it as it is saved and served.

    With `model.ensemble_size` N > 1, N members are fitted one after another, each on its own seed
    (`member_seeds`), and the saved model averages their probabilities; the history is then the
    members' mean at each epoch (`mean_history`).  `callbacks(member)` gives the callbacks of member
    1, 2, ..., asked for once the members before it have finished.
    """
    members, histories, seconds = [], [], 0.0
    for member, seed in enumerate(member_seeds(params.train.seed, params.model.ensemble_size), start=1):
        recipe = params.train.model_copy(update={"seed": seed})
        start = time.perf_counter()
        fitted, history = fit(training, validation, params.model, recipe, callbacks and callbacks(member), strategy)
        seconds += time.perf_counter() - start
        name = fitted.name if params.model.ensemble_size == 1 else f"{fitted.name}_{member}"
        members.append(models.inference_model(fitted, params.model.test_time_shift, name))
        histories.append(history)
    model = models.ensemble(members)
    metrics = summary(histories, model, params)
    return Trained(model, mean_history(histories), metrics, seconds, members, histories)


def mean_history(histories: list[pd.DataFrame]) -> pd.DataFrame:
    """The members' mean at each epoch, over the members that ran it (early stopping may end one sooner)."""
    return pd.concat(histories).groupby("epoch", as_index=False).mean()


def member_seeds(seed: int, size: int) -> list[int]:
    """`train.seed` for the first member (so a one-member ensemble is the single model), then seeds
    drawn from it: members of different `train.seed`s never share one, as seed + k would."""
    return [seed, *(int(s) for s in np.random.SeedSequence(seed).generate_state(size - 1))]


def distribution(distribute: str) -> tf.distribute.Strategy:
    """The strategy `train.distribute` names: `mirrored` replicates the model on every GPU (on the CPU
    when there is none); `auto` does so when there are two or more GPUs; `none` trains on one device."""
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if distribute == "mirrored" or (distribute == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy(gpus or [d.name for d in tf.config.list_logical_devices("CPU")])
    return tf.distribute.get_strategy()


def global_batch_size(params: TrainParams, strategy: tf.distribute.Strategy) -> int:
    """Images per optimizer step: `train.batch_size` on each replica."""
    return params.batch_size * strategy.num_replicas_in_sync


def fit(
    training: Split,
    validation: Split,
    model_params: ModelParams,
    params: TrainParams,
    callbacks: list[keras.callbacks.Callback] | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[keras.Model, pd.DataFrame]:
    """The trained model (the kept epoch's weights, see `kept_epoch`) and its per-epoch history.

    `strategy` defaults to `distribution(params.distribute)`; each step takes `params.batch_size`
    images per replica.
    """
    keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()
    strategy = strategy or distribution(params.distribute)
    x, y = training
    batch_size = global_batch_size(params, strategy)
    steps = params.epochs * math.ceil(len(y) / batch_size)
    with strategy.scope():
        model = models.build(model_params.arch, params.augment)
        model.compile(
            optimizer=keras.optimizers.Adam(
                _learning_rate(params, steps), beta_1=params.adam_beta_1, beta_2=params.adam_beta_2
            ),
            loss=_loss(params),
            metrics=["accuracy"],
        )
    history = model.fit(
        x,
        _targets(y, params),
        batch_size=batch_size,
        epochs=params.epochs,
        validation_data=(validation[0], _targets(validation[1], params)),
        callbacks=[_RecordLearningRate(), *_schedule_callbacks(params, x), *(callbacks or [])],
        verbose=2,  # a line per epoch: readable in DVC and CI logs
    )
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    return model, frame


def _loss(params: TrainParams) -> str | keras.losses.Loss:
    """Cross-entropy on the digit's index, or on smoothed one-hot targets (`train.label_smoothing`),
    which Keras' sparse loss does not offer."""
    if params.label_smoothing == 0:
        return "sparse_categorical_crossentropy"
    return keras.losses.CategoricalCrossentropy(label_smoothing=params.label_smoothing)


def _targets(labels: np.ndarray, params: TrainParams) -> np.ndarray:
    """The labels as `_loss` takes them: digit indices, or one-hot rows to smooth."""
    return labels if params.label_smoothing == 0 else keras.utils.to_categorical(labels, num_classes=10)


def _learning_rate(params: TrainParams, steps: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    if params.lr_schedule != "one_cycle":
        return params.learning_rate
    warmup = int(params.warmup_fraction * steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=steps - warmup,
        warmup_target=params.learning_rate,
        warmup_steps=warmup,
    )


def _schedule_callbacks(params: TrainParams, images: np.ndarray) -> list[keras.callbacks.Callback]:
    callbacks = []
    if params.ema_momentum > 0:  # validate, keep and report the averaged weights (swapped in before the others run)
        statistics = images[: params.ema_statistics_images]
        callbacks.append(WeightAverage(params.ema_momentum, statistics, params.ema_statistics_batch_size))
    if params.early_stopping_patience > 0:  # val_loss: continuous, where val_accuracy moves in steps and ties
        callbacks.append(
            keras.callbacks.EarlyStopping(
                patience=params.early_stopping_patience,
                restore_best_weights=True,  # applied at the end of training, stopped early or not
            )
        )
    if params.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(factor=params.plateau_factor, patience=params.plateau_patience)
        )
    return callbacks


class _RecordLearningRate(keras.callbacks.Callback):
    """Adds the rate the optimizer ends each epoch at to that epoch's logs, hence to the history."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def kept_epoch(history: pd.DataFrame, params: TrainParams) -> pd.Series:
    """The epoch whose weights training keeps: the lowest val_loss under early stopping, else the last."""
    return history.loc[history["val_loss"].idxmin()] if params.early_stopping_patience else history.iloc[-1]


def summary(histories: list[pd.DataFrame], model: keras.Model, params: Params) -> dict:
    """Train metrics: epochs run and the kept epoch, the model's size and its members.

    Each member keeps an epoch of its own history (`kept_epoch`).  For an ensemble the figures are the
    longest member's epochs and the latest epoch a member kept, and each member's own under `member_<k>`."""
    own = [
        {"epochs_run": len(history), "kept_epoch": int(kept_epoch(history, params.train)["epoch"])}
        for history in histories
    ]
    figures = {key: max(member[key] for member in own) for key in ("epochs_run", "kept_epoch")}
    figures |= {"params": model.count_params(), "members": params.model.ensemble_size}
    if len(own) > 1:
        figures |= {f"member_{k}": member for k, member in enumerate(own, start=1)}
    return figures


def validation_metrics(model: keras.Model, validation: Split, batch_size: int) -> dict:
    """Accuracy, errors and loss of the saved model (test-time shifts included) on the validation split: the
    bench's validation figures (the export stage scores the pipeline's model on it once, with the same call)."""
    images, labels = validation
    scores = classification_metrics(labels, model.predict(images, batch_size=batch_size, verbose=0))
    return {key: scores[key] for key in ("accuracy", "errors", "loss")}
