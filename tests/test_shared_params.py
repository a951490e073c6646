"""Shared parameters: one constraint and one docstring entry for ``budget``."""

import numpy as np
import pytest

from skfal import (
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
    UniformSampler,
)
from skfal._sampling import resolve_budget
from skfal._shared_params import BUDGET_CONSTRAINT

WITH_BUDGET = [
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
    UniformSampler,
]


@pytest.mark.parametrize("cls", WITH_BUDGET)
def test_budget_is_documented_and_constrained_once(cls):
    assert cls._parameter_constraints["budget"] is BUDGET_CONSTRAINT
    assert "{budget}" not in cls.__doc__
    assert "    budget : int or float, default=0.1\n" in cls.__doc__
    assert "selects every row, each with weight 1" in cls.__doc__


@pytest.mark.parametrize("budget", [0, -1, 0.0, 1.5, "all"])
def test_bad_budget_is_rejected_by_every_estimator(budget):
    for cls in WITH_BUDGET:
        with pytest.raises(ValueError, match="'budget' parameter"):
            cls(budget=budget)._validate_params()


@pytest.mark.parametrize("budget", [True, False])
@pytest.mark.parametrize("cls", WITH_BUDGET)
def test_bool_budget_is_rejected_by_every_estimator(cls, budget):
    # bool is a subclass of int: Interval(Integral, 1, None) took True for 1
    # row and Interval(Real, 0, 1) for the fraction 1.0, so budget=True used
    # to select every row without a word.
    X = np.random.RandomState(0).standard_normal((20, 2))
    y = X.sum(axis=1)
    with pytest.raises(ValueError, match=r"'budget' parameter.*not a bool"):
        cls(budget=budget).fit(X, y)


@pytest.mark.parametrize("budget", [True, np.True_, False])
def test_resolve_budget_rejects_bools(budget):
    # A direct caller of the sampling core gets the same answer.
    with pytest.raises(ValueError, match="is a bool, not a number of rows"):
        resolve_budget(budget, 10)
