"""baseline stage: multinomial logistic regression on the pixels, the bar the CNN has to clear.

Trained on the same split and scored on the same test set with the same metric names as the CNN,
in an MLflow training run of its own (registered as a model version once).  Like the CNN, the model
takes raw images (N, 28, 28) with pixels 0-255.
"""

from __future__ import annotations

import logging
import time
import warnings

import joblib
import mlflow
import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from pipeline.infra import metric_names, paths, tracking
from pipeline.infra.files import atomic_write, save_json
from pipeline.infra.params import BaselineParams, load_params
from pipeline.ml.scoring import classification_metrics, save_predictions, timed_predictions

log = logging.getLogger(__name__)


def flatten(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) images -> (N, 784) float32 rows (scikit-learn's solvers keep float32: a third faster)."""
    return images.reshape(len(images), -1).astype(np.float32)


def to_unit_range(pixels: np.ndarray) -> np.ndarray:
    return pixels / np.float32(255)


def build(params: BaselineParams) -> Pipeline:
    """Flatten, scale, then a multinomial logistic regression."""
    scaler = FunctionTransformer(to_unit_range) if params.pixel_scaling == "unit" else StandardScaler()
    classifier = LogisticRegression(
        C=params.C, solver=params.solver, max_iter=params.max_iter, random_state=params.seed
    )
    return make_pipeline(FunctionTransformer(flatten), scaler, classifier)


def fit(images: np.ndarray, labels: np.ndarray, params: BaselineParams) -> tuple[Pipeline, bool]:
    """The fitted model, and whether the solver converged within max_iter."""
    model = build(params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(images, labels)
    return model, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def main() -> None:
    params = load_params()
    tracking.use_experiment(params.mlflow.experiment)  # a store that cannot be used fails before any work
    training, (images, actual) = paths.load_split("train"), paths.load_split("test")
    with tracking.start_run(tracking.run_name("baseline"), tracking.run_tags("baseline")) as run:
        mlflow.log_params(metric_names.flatten({"preprocess": params.preprocess, "baseline": params.baseline}))
        mlflow.set_tag(
            "data_digest", tracking.log_dataset(*training, "mnist-train", paths.split_file("train"), "training")
        )
        start = time.perf_counter()
        model, converged = fit(*training, params.baseline)
        seconds = time.perf_counter() - start
        if not converged:
            log.warning("the solver did not converge in baseline.max_iter = %d iterations", params.baseline.max_iter)

        probabilities, speed = timed_predictions(
            model.predict_proba, images, params.evaluate.batch_size, params.evaluate.latency_runs
        )
        classifier = model[-1]
        metrics = classification_metrics(actual, probabilities)
        del metrics["per_class"]  # the comparison reads per-digit accuracy from the predictions
        metrics |= {"converged": converged, "params": int(classifier.coef_.size + classifier.intercept_.size)}
        speed = {"train_seconds": round(seconds, 1)} | speed
        with atomic_write(paths.BASELINE_MODEL) as tmp:
            joblib.dump(model, tmp)
        outputs = {paths.BASELINE_METRICS: metrics, paths.BASELINE_SPEED: speed}
        for path, content in outputs.items():
            save_json(path, content)
        save_predictions(paths.BASELINE_PREDICTIONS, actual, probabilities)
        mlflow.log_metrics(metric_names.metrics_of(outputs))

        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=mlflow.models.infer_signature(images[:2].astype("float32"), probabilities[:2]),
            registered_model_name=params.mlflow.baseline_model_name,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            code_paths=["pipeline"],  # the model's transformers are functions of this package ...
            skops_trusted_types=[f"{__name__}.{f.__name__}" for f in (flatten, to_unit_range)],  # ... and safe to load
        )
        tracking.save_handover(
            paths.BASELINE_RUN, run, params.mlflow.baseline_model_name, info.registered_model_version
        )
    log.info("logistic regression: test accuracy %.4f in %.0f s of training", metrics["accuracy"], seconds)
