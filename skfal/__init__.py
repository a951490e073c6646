"""skfal: scikit-learn estimators for label-efficient and federated regression."""

from skfal._active import ActiveEstimator
from skfal._datasets import load_diamonds
from skfal._leverage import LeverageScoreSampler
from skfal._regressor import FederatedActiveRegressor
from skfal._resampler import Resampler
from skfal._sensitivity import SensitivitySampler
from skfal._split import non_iid_split
from skfal._uniform import UniformSampler

__version__ = "0.1.0.dev0"

__all__ = [
    "ActiveEstimator",
    "FederatedActiveRegressor",
    "LeverageScoreSampler",
    "Resampler",
    "SensitivitySampler",
    "UniformSampler",
    "__version__",
    "load_diamonds",
    "non_iid_split",
]
