"""The train stage's part in a search: a pruned trial's ensemble stops every member where the first was pruned."""

from __future__ import annotations

import optuna

from pipeline.infra.overrides import with_overrides
from pipeline.ml import training
from pipeline.search.trials import TrialReporter
from pipeline.stages import train as stage
from tests.mnist_files import learnable_mnist
from tests.test_training import CONFIG


def test_a_pruned_trial_stops_every_member_of_its_ensemble_at_the_same_epoch():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))  # prunes all
    report = stage.ReportToTrial(TrialReporter(study.ask()), "val_accuracy")
    config = with_overrides(CONFIG, {"model.ensemble_size": 2})  # 3 epochs each, unless pruned
    data = learnable_mnist(200, seed=0), learnable_mnist(50, seed=1)
    trained = training.train(config, *data, callbacks=lambda member: stage.search_callbacks(report, member))
    assert report.pruned_after == 1
    assert [len(history) for history in trained.member_histories] == [1, 1]
    assert (trained.metrics["epochs_run"], trained.metrics["kept_epoch"]) == (1, 1)
    assert [trial.intermediate_values for trial in study.trials] == [
        {1: trained.member_histories[0]["val_accuracy"][0]}
    ]
