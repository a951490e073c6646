"""skfal: scikit-learn estimators for label-efficient and federated regression."""

from skfal._leverage import LeverageScoreSampler

__version__ = "0.1.0.dev0"

__all__ = ["LeverageScoreSampler", "__version__"]
