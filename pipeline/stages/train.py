"""train stage: fit the CNN named by `model.arch` (`pipeline.training`) in its MLflow training run.

Writes models/cnn.keras (the kept epoch's weights as an inference model, with `model.test_time_shift`
its shifted copies), the per-epoch history for `dvc plots`, train metrics, and
reports/mlflow_runs/cnn.json, which names the training run and its registered model version for the
record stage.  The training run gets live per-epoch curves and the model (with signature and input
example), registered once.
"""

from __future__ import annotations

import logging

import keras
import mlflow
import tensorflow as tf

from pipeline import paths, tracking, training
from pipeline.files import atomic_write, save_json
from pipeline.params import load_params

log = logging.getLogger(__name__)


def main() -> None:
    params = load_params()
    tracking.use_experiment(params.mlflow.experiment)  # a store that cannot be used fails before any work
    train_split, val_split = paths.load_split("train"), paths.load_split("val")
    strategy = training.distribution(params.train.distribute)
    with tracking.start_run(
        tracking.run_name("cnn"), tracking.run_tags("cnn") | {"model.arch": params.model.arch}
    ) as run:
        mlflow.log_params(
            tracking.flatten({"preprocess": params.preprocess, "model": params.model, "train": params.train})
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
        log_epoch = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: mlflow.log_metrics(tracking.epoch_metrics(logs), step=epoch + 1)
        )
        trained = training.train(params, train_split, val_split, [log_epoch], strategy)
        speed = {
            "train_seconds": round(trained.seconds, 1),
            "seconds_per_epoch": round(trained.seconds / len(trained.history), 2),
        }
        with atomic_write(paths.CNN_MODEL) as tmp:
            trained.model.save(tmp)
        with atomic_write(paths.HISTORY) as tmp:
            trained.history.to_csv(tmp, index=False, float_format="%.6g")
        outputs = {paths.TRAIN_METRICS: trained.metrics, paths.TRAIN_SPEED: speed}
        for path, metrics in outputs.items():
            save_json(path, metrics)
        mlflow.log_metrics(tracking.metrics_of(outputs))

        examples = train_split[0][:2]
        info = mlflow.keras.log_model(
            trained.model,
            name="model",
            signature=mlflow.models.infer_signature(
                examples.astype("float32"), trained.model.predict(examples, verbose=0)
            ),
            registered_model_name=params.mlflow.cnn_model_name,
            pip_requirements=[f"keras=={keras.__version__}", f"tensorflow=={tf.__version__}"],
        )
        mlflow.log_dict({"inputs": examples.tolist()}, "input_example.json")  # mlflow#16183
        tracking.save_handover(paths.CNN_RUN, run, params.mlflow.cnn_model_name, info.registered_model_version)
    kept = training.kept_epoch(trained.history, params.train)
    log.info(
        "%s: val_accuracy %.4f at the kept epoch %d of %d, %.0f s; MLflow run %s",
        params.model.arch,
        kept["val_accuracy"],
        kept["epoch"],
        len(trained.history),
        trained.seconds,
        run.info.run_id,
    )
