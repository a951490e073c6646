"""skfal: scikit-learn estimators for label-efficient and federated regression.

The public names are imported on first use (PEP 562 module ``__getattr__``),
so a process that needs only the protocol steps (a Flower ClientApp, started
once per message) does not pay for importing scikit-learn and the estimators.
``from skfal import LeverageScoreSampler`` works as usual.
"""

import importlib

__version__ = "0.1.0.dev0"

# Public name -> the private module that defines it.
_LAZY = {
    "ActiveEstimator": "skfal._active",
    "FederatedActiveRegressor": "skfal._regressor",
    "LeverageScoreSampler": "skfal._leverage",
    "Resampler": "skfal._resampler",
    "SensitivitySampler": "skfal._sensitivity",
    "UniformSampler": "skfal._uniform",
    "estimate_error": "skfal._error",
    "load_diamonds": "skfal._datasets",
    "non_iid_split": "skfal._split",
}

__all__ = [
    "ActiveEstimator",
    "FederatedActiveRegressor",
    "LeverageScoreSampler",
    "Resampler",
    "SensitivitySampler",
    "UniformSampler",
    "__version__",
    "estimate_error",
    "load_diamonds",
    "non_iid_split",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'skfal' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
