"""An adapter that makes any skfal sampler a resampling step of imbalanced-learn."""

from sklearn.base import BaseEstimator, clone
from sklearn.utils import get_tags

from skfal._base import DocLinkMixin, check_resample_target
from skfal._compat import HasMethods, RequestMethod, fit_context
from skfal._leverage import LeverageScoreSampler


class Resampler(DocLinkMixin, BaseEstimator):
    """Use a skfal sampler as a resampling step of an imbalanced-learn pipeline.

    skfal's samplers have both ``transform`` (each row's score) and
    ``fit_resample`` (the selected rows); :class:`imblearn.pipeline.Pipeline`
    refuses a step that has both. ``Resampler(sampler)`` has only
    ``fit_resample``: during ``fit`` the pipeline hands the next step the
    selected rows and their labels, and at ``predict`` time it is skipped,
    as every imbalanced-learn sampler is.

    The importance weights do not travel: imbalanced-learn passes ``(X, y)``
    from a sampler to the next step, not weights, so the final estimator is
    fitted on the selected rows unweighted. To keep them, use skfal's own
    way: :class:`FederatedActiveRegressor`, or fit the sampler and pass
    ``sample_weight=sampler.sample_weight_`` to the estimator.

    Parameters
    ----------
    sampler : estimator or None, default=None
        An unfitted skfal sampler (:class:`LeverageScoreSampler`,
        :class:`SensitivitySampler`, :class:`UniformSampler`); ``None``
        means ``LeverageScoreSampler()``. It is cloned, never modified.

    Attributes
    ----------
    sampler_ : estimator
        The fitted clone of ``sampler``.
    sample_indices_ : ndarray of shape (n_selected,)
        Sorted indices of the selected rows.
    sample_weight_ : ndarray of shape (n_selected,)
        Their importance weights (which imbalanced-learn does not pass on).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``, when ``X`` has string column
        names.

    See Also
    --------
    FederatedActiveRegressor : Selection and a weighted fit in one estimator.

    Notes
    -----
    imbalanced-learn's pipeline passes metadata such as ``groups`` to a
    resampling step only through scikit-learn's metadata routing (without
    it, ``pipe.fit(X, y, select__groups=groups)`` does not reach the step
    and the selection is centralized)::

        sklearn.set_config(enable_metadata_routing=True)
        select = Resampler(sampler).set_fit_request(groups=True)
        select.set_fit_resample_request(groups=True)
        Pipeline([("select", select), ("model", Ridge())]).fit(X, y, groups=groups)

    Examples
    --------
    >>> import numpy as np
    >>> from imblearn.pipeline import Pipeline
    >>> from sklearn.linear_model import LinearRegression
    >>> from skfal import LeverageScoreSampler, Resampler
    >>> rng = np.random.RandomState(0)
    >>> X = rng.standard_normal((500, 3))
    >>> y = X @ [1.0, -2.0, 0.5] + 0.01 * rng.standard_normal(500)
    >>> pipe = Pipeline([
    ...     ("select", Resampler(LeverageScoreSampler(budget=30, random_state=0))),
    ...     ("model", LinearRegression()),
    ... ]).fit(X, y)
    >>> pipe.named_steps["select"].sample_indices_.shape
    (30,)
    >>> np.round(pipe.named_steps["model"].coef_, 1)
    array([ 1. , -2. ,  0.5])
    """

    _parameter_constraints: dict = {
        "sampler": [HasMethods(["fit_resample", "get_params"]), None],
    }

    # scikit-learn makes ``set_{method}_request`` only for the methods it knows
    # when a class is defined; imbalanced-learn adds ``fit_resample`` to them
    # when it is imported, which may be after skfal. Declared here, metadata
    # routing of ``groups`` works whatever the order of the imports.
    set_fit_resample_request = RequestMethod("fit_resample", ["groups"])

    def __init__(self, sampler=None):
        self.sampler = sampler

    @fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, groups=None):
        """Select the rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows.
        y : array-like of shape (n_samples,), default=None
            Labels, for a sampler that reads them (only at rows it buys).
        groups : array-like of shape (n_samples,), default=None
            Client label of each row, for a federated selection.

        Returns
        -------
        self : object
            Fitted adapter.
        """
        return self._keep(self._new_sampler().fit(X, y, groups=groups))

    @fit_context(prefer_skip_nested_validation=False)
    def fit_resample(self, X, y, groups=None):
        """Select the rows; return them with their labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows.
        y : array-like of shape (n_samples,)
            Labels; only the selected rows' entries are returned (and read,
            by a sampler that reads labels), so the others may be missing.
        groups : array-like of shape (n_samples,), default=None
            Client label of each row, for a federated selection. In an
            imbalanced-learn pipeline it arrives by metadata routing only
            (see the class Notes).

        Returns
        -------
        X_resampled : array-like of shape (n_selected, n_features)
            ``X[sample_indices_]``, in the type of ``X``.
        y_resampled : array-like of shape (n_selected,)
            ``y[sample_indices_]``.
        """
        check_resample_target(y, type(self).__name__)
        sampler = self._new_sampler()
        resampled = sampler.fit_resample(X, y, groups=groups)
        self._keep(sampler)
        return resampled

    def _new_sampler(self):
        return clone(LeverageScoreSampler() if self.sampler is None else self.sampler)

    def _keep(self, sampler):
        """Store the fitted sampler and the selection it made."""
        self.sampler_ = sampler
        self.sample_indices_ = sampler.sample_indices_
        self.sample_weight_ = sampler.sample_weight_
        self.n_features_in_ = sampler.n_features_in_
        if hasattr(sampler, "feature_names_in_"):
            self.feature_names_in_ = sampler.feature_names_in_
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The sampler reads X; it takes sparse rows when it says so.
        sampler = LeverageScoreSampler() if self.sampler is None else self.sampler
        tags.input_tags.sparse = get_tags(sampler).input_tags.sparse
        return tags
