"""Shared parameters: one constraint and one docstring entry for ``budget``."""

import pytest

from skfal import (
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
    UniformSampler,
)
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
