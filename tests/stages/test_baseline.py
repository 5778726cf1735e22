"""baseline stage: logistic regression on raw images, both scalings, convergence reported."""

from __future__ import annotations

import numpy as np

from pipeline.infra.params import BaselineParams
from pipeline.stages import baseline as stage
from tests.mnist_files import learnable_mnist, params_with


def params(**overrides) -> BaselineParams:
    settings = {"seed": 0, "C": 1.0, "solver": "lbfgs", "max_iter": 200, "pixel_scaling": "unit"} | overrides
    return params_with({f"baseline.{key}": value for key, value in settings.items()}).baseline


PARAMS = params()


def test_learns_from_raw_images_with_either_scaling():
    (x, y), (x_test, y_test) = learnable_mnist(300, seed=0), learnable_mnist(100, seed=1)
    for scaling in ("unit", "standard"):
        model, converged = stage.fit(x, y, params(pixel_scaling=scaling))
        assert converged
        assert (model.predict(x_test) == y_test).mean() > 0.9
        assert model.predict_proba(x_test).shape == (100, 10)


def test_unit_scaling_divides_by_255():
    assert stage.build(PARAMS)[:2].transform(np.full((1, 28, 28), 255, np.uint8)).tolist() == [[1.0] * 784]


def test_too_few_iterations_are_reported_not_hidden():
    x, y = learnable_mnist(300)
    _, converged = stage.fit(x, y, params(max_iter=2))
    assert not converged
