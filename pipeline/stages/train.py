"""train stage: fit the CNN named by `model.arch` (`pipeline.ml.training`) in its MLflow training run.

Writes models/cnn.keras (the kept epoch's weights as an inference model, with `model.test_time_shift`
its shifted copies; with `model.ensemble_size` > 1 the mean of its members, each logged in the same
training run under `CNN/epoch/member_<k>/`), the per-epoch history for `dvc plots`, train metrics, and
reports/mlflow_runs/cnn.json, which names the training run and its registered model version for the
record stage.  The training run gets live per-epoch curves and the model (with signature and input
example), registered once.

Run as a trial of a search (`pipeline.search.handover`), it reports each epoch's validation figure to the
trial and, when the search's pruner says the trial is losing, stops there and saves that epoch's
model; metrics/CNN/train.json then says `pruned` and how many epochs ran.
"""

from __future__ import annotations

import logging

import keras
import mlflow
import tensorflow as tf

from pipeline.infra import metric_names, paths, tracking
from pipeline.infra.files import atomic_write, save_json
from pipeline.infra.params import load_params
from pipeline.ml import training
from pipeline.search.handover import EpochReporter, current_trial, open_reporter

log = logging.getLogger(__name__)


class ReportToTrial(keras.callbacks.Callback):
    """Reports each epoch's `metric` (val_accuracy, val_loss) to the search's trial; stops training
    after an epoch its pruner prunes (not after the last: stopping there would save nothing)."""

    def __init__(self, reporter: EpochReporter, metric: str) -> None:
        super().__init__()
        self.reporter, self.metric, self.pruned_after = reporter, metric, None

    @property
    def pruned(self) -> bool:
        return self.pruned_after is not None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        prune = self.reporter.report(epoch + 1, float(logs[self.metric]))
        if epoch + 1 < self.params["epochs"] and prune:
            log.info("trial %d pruned after epoch %d: its model is that epoch's", self.reporter.number, epoch + 1)
            self.pruned_after, self.model.stop_training = epoch + 1, True


class StopWhereTrialWasPruned(keras.callbacks.Callback):
    """An ensemble's later member stops after the epoch at which the trial was pruned, as the first did."""

    def __init__(self, report: ReportToTrial) -> None:
        super().__init__()
        self.report = report

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.report.pruned_after == epoch + 1:
            self.model.stop_training = True


def search_callbacks(report: ReportToTrial | None, member: int) -> list[keras.callbacks.Callback]:
    """A trial's member 1 reports to it; the others stop where it was pruned.  Outside a search, none."""
    if report is None:
        return []
    return [report if member == 1 else StopWhereTrialWasPruned(report)]


def main() -> None:
    params = load_params()
    tracking.use_experiment(params.mlflow.experiment)  # a store that cannot be used fails before any work
    train_split, val_split = paths.load_split("train"), paths.load_split("val")
    strategy = training.distribution(params.train.distribute)
    trial = current_trial()
    report = ReportToTrial(open_reporter(trial), trial.epoch_metric) if trial else None
    with tracking.start_run(
        tracking.run_name("cnn"), tracking.run_tags("cnn") | {"model.arch": params.model.arch}
    ) as run:
        mlflow.log_params(
            metric_names.flatten({"preprocess": params.preprocess, "model": params.model, "train": params.train})
        )
        mlflow.log_params(
            {
                "train.replicas": strategy.num_replicas_in_sync,
                "train.global_batch_size": training.global_batch_size(params.train, strategy),
            }
        )
        digest = tracking.log_dataset(*train_split, "mnist-train", paths.split_file("train"), "training")
        tracking.log_dataset(*val_split, "mnist-val", paths.split_file("val"), "validation")
        mlflow.set_tag("data_digest", digest)
        members = params.model.ensemble_size

        def callbacks(member: int) -> list[keras.callbacks.Callback]:
            """Live curves (an ensemble's under member_<k>/); the search hears the first member, and
            when it prunes the trial, the others stop at the same epoch."""
            section = f"member_{member}/" if members > 1 else ""
            log_epoch = keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: mlflow.log_metrics(
                    metric_names.epoch_metrics({f"{section}{name}": value for name, value in logs.items()}),
                    step=epoch + 1,
                )
            )
            return [log_epoch, *search_callbacks(report, member)]

        trained = training.train(params, train_split, val_split, callbacks, strategy)
        speed = {
            "train_seconds": round(trained.seconds, 1),
            "seconds_per_epoch": round(trained.seconds_per_epoch, 2),
        }
        with atomic_write(paths.CNN_MODEL) as tmp:
            trained.model.save(tmp)
        with atomic_write(paths.HISTORY) as tmp:
            trained.history.to_csv(tmp, index=False, float_format="%.6g")
        outputs = {
            paths.TRAIN_METRICS: trained.metrics | {"pruned": bool(report and report.pruned)},
            paths.TRAIN_SPEED: speed,
        }
        for path, metrics in outputs.items():
            save_json(path, metrics)
        mlflow.log_metrics(metric_names.metrics_of(outputs))

        examples = train_split[0][:2]
        info = mlflow.keras.log_model(
            trained.model,
            name="model",
            signature=mlflow.models.infer_signature(
                examples.astype("float32"), trained.model.predict(examples, verbose=0)
            ),
            registered_model_name=params.mlflow.cnn_model_name,
            metadata={"dataset": params.data.dataset, "classes": params.data.current.classes},
            pip_requirements=[f"keras=={keras.__version__}", f"tensorflow=={tf.__version__}"],
        )
        mlflow.log_dict({"inputs": examples.tolist()}, "input_example.json")  # mlflow#16183
        tracking.save_handover(paths.CNN_RUN, run, params.mlflow.cnn_model_name, info.registered_model_version)
    log.info(
        "%s: kept epoch %d of %d, %.0f s; MLflow run %s",
        params.model.arch,
        trained.metrics["kept_epoch"],
        trained.metrics["epochs_run"],
        trained.seconds,
        run.info.run_id,
    )
