"""The one place where skfal imports private scikit-learn names.

scikit-learn keeps parameter validation and ``_fit_context`` private. Importing
them here, and nowhere else, means a change in scikit-learn is fixed in one file.
The minimum supported version is scikit-learn 1.6, the first with the public
:func:`sklearn.utils.validation.validate_data` and ``__sklearn_tags__``.
"""

from sklearn.base import _fit_context as fit_context
from sklearn.utils import _safe_indexing as safe_indexing
from sklearn.utils._metadata_requests import RequestMethod
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    Options,
    StrOptions,
    validate_params,
)
from sklearn.utils.metadata_routing import _routing_enabled as routing_enabled
from sklearn.utils.validation import _check_feature_names_in as check_feature_names_in
from sklearn.utils.validation import _num_samples as num_samples
from sklearn.utils.validation import validate_data

MIN_SKLEARN_VERSION = "1.6"

__all__ = [
    "MIN_SKLEARN_VERSION",
    "HasMethods",
    "Interval",
    "Options",
    "RequestMethod",
    "StrOptions",
    "check_feature_names_in",
    "fit_context",
    "num_samples",
    "routing_enabled",
    "safe_indexing",
    "validate_data",
    "validate_params",
]
