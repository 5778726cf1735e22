"""The search's one MLflow run (the study run): its settings, each trial's state and value, and at
the end the whole study and Optuna's figures; each trial's pipeline run is nested under it."""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import mlflow
import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from pipeline.infra import heartbeat, metric_names, tracking
from pipeline.search.space import SearchFile

log = logging.getLogger(__name__)


def open_study_run(search: SearchFile, file: Path, experiment_id: str, jobs: int) -> str:
    """The study's run in MLflow: found by the study's name, else created with the search's settings."""
    client = mlflow.MlflowClient()
    found = client.search_runs(
        [experiment_id],
        f"tags.`{tracking.ROLE_TAG}` = 'study' and tags.`optuna.study` = '{search.study}'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    if found:
        run = found[0]
        if run.info.status != "RUNNING":  # resumed: this process now holds it open
            client.update_run(run.info.run_id, status="RUNNING")
            for key, value in heartbeat.beat_tags().items():
                client.set_tag(run.info.run_id, key, value)
    else:
        storage = search.storage_url()
        if "://" in storage:
            storage = sqlalchemy.engine.make_url(storage).render_as_string(hide_password=True)
        tags = tracking.run_tags("study") | heartbeat.beat_tags()
        tags |= {"optuna.study": search.study, "optuna.storage": storage}
        run = client.create_run(experiment_id, run_name=search.study, tags=tags)
        settings = search.model_dump(exclude={"storage", "study"})  # space.<key>.low, fixed.<key>, ...
        client.log_batch(
            run.info.run_id,
            params=[
                mlflow.entities.Param(key, value)
                for key, value in (metric_names.flatten(settings) | {"jobs": str(jobs)}).items()
            ],
        )
    client.log_artifact(run.info.run_id, str(file))
    return run.info.run_id


def log_trial(
    run_id: str, trial: FrozenTrial, experiment: str, value: float | None, shown: str, best: FrozenTrial | None
) -> None:
    """A finished trial's state and value (`shown`: as the search prints it) in the study run, and the
    best value so far."""
    client = mlflow.MlflowClient()
    client.set_tag(run_id, f"trial.{trial.number}", f"{trial.state.name} {shown} ({experiment})")
    if value is not None:
        client.log_metric(run_id, "study/trial_value", value, step=trial.number)
    if best:
        client.log_metric(run_id, "study/best_value", best.value, step=trial.number)


def summarize(
    run_id: str, study: optuna.Study, metric: str, best: FrozenTrial | None, experiment: Callable[[FrozenTrial], str]
) -> None:
    """The study run's record of the whole study: each trial (`experiment` names its DVC experiment),
    the best one on `metric`, Optuna's figures."""
    client = mlflow.MlflowClient()
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs", "duration"))
    with tempfile.TemporaryDirectory() as folder:
        frame.to_csv(Path(folder, "trials.csv"), index=False)
        for name, figure in study_figures(study).items():
            figure.savefig(Path(folder, f"{name}.png"), dpi=120, bbox_inches="tight")
            plt.close(figure)
        client.log_artifacts(run_id, folder, "study")
    states = frame["state"].value_counts().to_dict() if len(frame) else {}
    counts = ", ".join(f"{n} {state.lower()}" for state, n in states.items())
    note = f"Study {study.study_name}: {counts or 'no trial yet'}; each trial's pipeline run is nested under this run."
    tags = {"study.trials": counts}
    if best:
        tags |= {
            "best.trial": best.number,
            "best.experiment": experiment(best),
            "best.value": best.value,
            "best.params": json.dumps(best.params),
        }
        note += f" Best, on {metric}: trial {best.number} ({experiment(best)}), {best.value:.4f}."
    for key, value in (tags | {"mlflow.note.content": note}).items():
        client.set_tag(run_id, key, str(value))


def study_figures(study: optuna.Study) -> dict[str, Any]:
    """Optuna's figures of the study (matplotlib, headless), those its trials allow: importances
    need two finished trials, the others one."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return {}
    matplotlib.use("Agg")
    plots = {
        "optimization_history": optuna.visualization.matplotlib.plot_optimization_history,
        "param_importances": optuna.visualization.matplotlib.plot_param_importances,
        "parallel_coordinate": optuna.visualization.matplotlib.plot_parallel_coordinate,
    }
    figures = {}
    for name, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                figures[name] = plot(study).figure
            except (ValueError, RuntimeError) as error:
                log.info("no %s figure yet: %s", name, error)
    return figures
