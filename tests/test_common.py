"""scikit-learn's own API checks over every public estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skfal import FederatedActiveRegressor, LeverageScoreSampler, UniformSampler

ESTIMATORS = [
    LeverageScoreSampler(),
    LeverageScoreSampler(weighting="des-raj", budget=3),
    UniformSampler(),
    FederatedActiveRegressor(),
    FederatedActiveRegressor(sampler=UniformSampler(), training="local", alpha=1.0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
