"""scikit-learn's own API checks over every public estimator."""

from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from skfal import (
    ActiveEstimator,
    FederatedActiveRegressor,
    LeverageScoreSampler,
    Resampler,
    SensitivitySampler,
    UniformSampler,
)

ESTIMATORS = [
    LeverageScoreSampler(),
    LeverageScoreSampler(weighting="des-raj", budget=3),
    UniformSampler(),
    SensitivitySampler(),
    SensitivitySampler(z=1, budget=0.5, n_clusters=2, holder_constant="auto"),
    FederatedActiveRegressor(),
    FederatedActiveRegressor(sampler=UniformSampler(), training="local", alpha=1.0),
    FederatedActiveRegressor(sampler=SensitivitySampler(), budget=0.5),
    Resampler(),
    Resampler(UniformSampler(budget=3)),
    ActiveEstimator(LinearRegression()),
    ActiveEstimator(LinearRegression(), n_rounds=2, loss="gradient"),
    # Half the rows, so that the few rows of the checks' tables hold every class.
    ActiveEstimator(LogisticRegression(), budget=0.5),
    ActiveEstimator(LogisticRegression(), budget=0.5, n_rounds=2, loss="gradient"),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
