"""train stage: fit the CNN named by `model.arch`, seeded and deterministic, and open its MLflow run.

Writes models/cnn.keras (the kept epoch's weights as an inference model, with `model.test_time_shift`
its shifted copies), the per-epoch history for `dvc plots`, train metrics, the saved model's
validation metrics, and reports/mlflow_runs/cnn.json, which names the training run and its
registered model version for the record stage.  The training
run gets live per-epoch curves and the model (with signature and input example), registered once.
`train.distribute` spreads each batch over several devices with `tf.distribute.MirroredStrategy`;
`train.batch_size` is per device (replica).
"""

from __future__ import annotations

import logging
import math
import time

import keras
import mlflow
import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline import models, paths, tracking
from pipeline.files import atomic_write, save_json
from pipeline.params import ModelParams, TrainParams, load_params
from pipeline.scoring import classification_metrics

log = logging.getLogger(__name__)
Split = tuple[np.ndarray, np.ndarray]


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


def train(
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
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    history = model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=params.epochs,
        validation_data=validation,
        callbacks=[_RecordLearningRate(), *_schedule_callbacks(params), *(callbacks or [])],
        verbose=2,  # a line per epoch: readable in DVC and CI logs
    )
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    return model, frame


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


class WeightAverage(keras.callbacks.Callback):
    """Keeps a bias-corrected moving average of the weights; validation and early stopping see it.

    After step t the average is the `momentum`-weighted mean of the weights of steps 1 to t, as Adam
    corrects its moments (Keras' own `use_ema` starts from the initial weights, which still make up
    82% of it after 100 steps at 0.998).  The average is copied in for each validation and stays in
    for the callbacks after this one at the epoch's end, so early stopping records and restores it;
    the running weights are copied back, exactly, before training goes on.
    """

    def __init__(self, momentum: float) -> None:
        super().__init__()
        self.momentum = momentum

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._steps, self._running = 0, None
        self._average = [keras.Variable(w, trainable=False) for w in self.model.trainable_weights]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._steps += 1
        m, t = self.momentum, self._steps
        momentum = m * (1 - m ** (t - 1)) / (1 - m**t)  # 0 at the first step, tends to m
        for average, weight in zip(self._average, self.model.trainable_weights, strict=True):
            average.assign(momentum * average + (1 - momentum) * weight)

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self._running is None:
            self._running = [keras.ops.copy(w) for w in self.model.trainable_weights]
            self._assign(self._average)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._running is not None:
            self._assign(self._running)
            self._running = None

    def _assign(self, values: list) -> None:
        for weight, value in zip(self.model.trainable_weights, values, strict=True):
            weight.assign(value)


def _schedule_callbacks(params: TrainParams) -> list[keras.callbacks.Callback]:
    callbacks = []
    if params.ema_momentum > 0:  # validate, keep and report the averaged weights (swapped in before the others run)
        callbacks.append(WeightAverage(params.ema_momentum))
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


def summary(history: pd.DataFrame, model: keras.Model, params: TrainParams) -> dict:
    """Train metrics: epochs run, the kept epoch and the model's size."""
    return {
        "epochs_run": len(history),
        "kept_epoch": int(kept_epoch(history, params)["epoch"]),
        "params": model.count_params(),
    }


def validation_metrics(model: keras.Model, validation: Split) -> dict:
    """Accuracy and loss of the saved model (test-time shifts included) on the validation split."""
    images, labels = validation
    scores = classification_metrics(labels, model.predict(images, verbose=0))
    return {"accuracy": scores["accuracy"], "loss": scores["loss"]}


def main() -> None:
    params = load_params()
    tracking.use_experiment(params.mlflow.experiment)  # a store that cannot be used fails before any work
    training, validation = paths.load_split("train"), paths.load_split("val")
    strategy = distribution(params.train.distribute)
    with tracking.start_run(
        tracking.run_name("cnn"), tracking.run_tags("cnn") | {"model.arch": params.model.arch}
    ) as run:
        mlflow.log_params(
            tracking.flatten({"preprocess": params.preprocess, "model": params.model, "train": params.train})
        )
        mlflow.log_params(
            {
                "train.replicas": strategy.num_replicas_in_sync,
                "train.global_batch_size": global_batch_size(params.train, strategy),
            }
        )
        digest = tracking.log_dataset(*training, "mnist-train", paths.split_file("train"), "training")
        tracking.log_dataset(*validation, "mnist-val", paths.split_file("val"), "validation")
        mlflow.set_tag("data_digest", digest)
        log_epoch = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: mlflow.log_metrics(tracking.epoch_metrics(logs), step=epoch + 1)
        )
        start = time.perf_counter()
        trained, history = train(training, validation, params.model, params.train, [log_epoch], strategy)
        seconds = time.perf_counter() - start

        train_metrics = summary(history, trained, params.train)
        model = models.inference_model(trained, params.model.test_time_shift)
        val_metrics = validation_metrics(model, validation)
        speed = {"train_seconds": round(seconds, 1), "seconds_per_epoch": round(seconds / len(history), 2)}
        with atomic_write(paths.CNN_MODEL) as tmp:
            model.save(tmp)
        with atomic_write(paths.HISTORY) as tmp:
            history.to_csv(tmp, index=False, float_format="%.6g")
        outputs = {paths.TRAIN_METRICS: train_metrics, paths.VAL_METRICS: val_metrics, paths.TRAIN_SPEED: speed}
        for path, metrics in outputs.items():
            save_json(path, metrics)
        mlflow.log_metrics(tracking.metrics_of(outputs))

        info = mlflow.keras.log_model(
            model,
            name="model",
            signature=mlflow.models.infer_signature(
                training[0][:2].astype("float32"), model.predict(training[0][:2], verbose=0)
            ),
            registered_model_name=params.mlflow.cnn_model_name,
            pip_requirements=[f"keras=={keras.__version__}", f"tensorflow=={tf.__version__}"],
        )
        mlflow.log_dict({"inputs": training[0][:2].tolist()}, "input_example.json")  # mlflow#16183
        tracking.save_handover(paths.CNN_RUN, run, params.mlflow.cnn_model_name, info.registered_model_version)
    log.info(
        "%s: val_accuracy %.4f at the kept epoch %d of %d, %.0f s; MLflow run %s",
        params.model.arch,
        val_metrics["accuracy"],
        train_metrics["kept_epoch"],
        train_metrics["epochs_run"],
        seconds,
        run.info.run_id,
    )
