"""Design-based estimate of a fitted model's error on the whole pool.

:func:`estimate_error` takes a fitted skfal estimator (or a sampler and a
model) and the pool with labels at the bought rows only, and returns an
:class:`ErrorEstimate`: the model's mean loss over every row of the pool,
with a confidence interval, from the bought rows and their design weights.

The bought rows are a probability sample: row ``i`` was bought with a
known inclusion probability, and its weight ``w_i`` (``1 / pi_i`` for
pivotal and uniform sampling, the Hansen-Hurwitz or Des Raj weight for
i.i.d. draws, the mixture weight of :class:`~skfal.ActiveEstimator`'s
rounds) makes ``sum_i w_i l_i`` an unbiased estimate of the pool's total
``sum_j l_j`` of any fixed per-row loss ``l``. The model was fitted on the
same rows, so its losses there are optimistic; the unbought rows' losses are
estimated by cross-fitting instead: the bought rows are split into ``cv``
folds, and each fold's losses come from a model trained, with the design
weights, on the other folds only.
"""

import warnings
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from scipy.stats import norm
from scipy.stats import t as student_t
from sklearn.base import BaseEstimator, RegressorMixin, clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skfal._compat import (
    HasMethods,
    Interval,
    StrOptions,
    num_samples,
    safe_indexing,
    validate_params,
)
from skfal._federated._error import (
    PREDICTION_LOSSES,
    federated_error,
    from_sums,
    others_per_atom,
    row_sums,
    scaled_points,
)
from skfal._linalg import weighted_least_squares
from skfal._rows import dense_rows, matvec

_EPS = 1e-15  # probabilities are clipped here, as ActiveEstimator does

# Scorer names whose value is the mean of a per-row term, computed row by row
# here in one call per fold: name -> (per-row function, greater is better).


def _squared_error(model, X, y):
    prediction = np.asarray(model.predict(X), dtype=np.float64)
    return PREDICTION_LOSSES["squared_error"](prediction, y)


def _absolute_error(model, X, y):
    prediction = np.asarray(model.predict(X), dtype=np.float64)
    return PREDICTION_LOSSES["absolute_error"](prediction, y)


def _error_rate(model, X, y):
    return (np.asarray(model.predict(X)) != y).astype(np.float64)


def _log_loss(model, X, y):
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    position = {c: i for i, c in enumerate(np.asarray(model.classes_).tolist())}
    at = np.array([position.get(v, -1) for v in np.asarray(y).tolist()], dtype=int)
    p_true = np.where(at >= 0, proba[np.arange(len(at)), np.maximum(at, 0)], 0.0)
    return -np.log(np.clip(p_true, _EPS, 1.0))


_PER_ROW = {
    "squared_error": (_squared_error, False),
    "neg_mean_squared_error": (lambda m, X, y: -_squared_error(m, X, y), True),
    "neg_mean_absolute_error": (lambda m, X, y: -_absolute_error(m, X, y), True),
    "error_rate": (_error_rate, False),
    "accuracy": (lambda m, X, y: 1.0 - _error_rate(m, X, y), True),
    "log_loss": (_log_loss, False),
    "neg_log_loss": (lambda m, X, y: -_log_loss(m, X, y), True),
}
_NON_NEGATIVE = {"squared_error", "error_rate", "log_loss"}
# Shares of the other folds the learning curve trains on: half and all, the
# two ends whose paired difference ErrorEstimate.expected_gain extrapolates.
_FRACTIONS = (0.5, 1.0)


class LearningCurve(NamedTuple):
    """The cross-fitted error at training sets of growing size.

    Every point is evaluated on the same held-out rows (each bought row by a
    model trained on other folds), so differences between points are paired.
    """

    n_train: np.ndarray
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray


class ExpectedGain(NamedTuple):
    """What ``k`` more labels are expected to buy (see
    :meth:`ErrorEstimate.expected_gain`)."""

    gain: float
    upper: float
    confidence: float


class ErrorEstimate:
    """A model's estimated error on the whole pool, with its interval.

    Returned by :func:`estimate_error`; not meant to be built by hand.

    Attributes
    ----------
    estimate : float
        The estimated mean of the scorer's per-row value over every row of
        the pool, for ``model``: its exact in-sample value at the bought rows
        plus the design-weighted, cross-fitted estimate for the others.
    low, high : float
        The two-sided interval at level ``confidence``: ``estimate -+ q sd``
        (``q`` the quantile of Student's t with ``cv - 1`` degrees of
        freedom, ``sd`` the square root of ``variance``).
    variance : float
        Estimated variance of ``estimate`` about the model's true error:
        ``design_variance`` plus what one model per fold adds
        (``nested_excess``, scaled by ``(cv - 1) / cv``, clipped to
        ``[0, (cv - 1) design_variance]``).
    design_variance : float
        The design variance of the cross-fitted Horvitz-Thompson mean,
        by ``variance_estimator``, as if the held-out values were fixed.
    nested_excess : float
        Nested cross-validation's estimate (Bates, Hastie and Tibshirani
        2021) of the variance the fold models add: the held-out values of
        one fold share a model, so they are correlated, and the model the
        estimate is about changes with the sample. ``0.0`` with
        ``nested=0``; may be negative (noise), then not used.
    confidence : float
        Level of ``low``, ``high`` and of :meth:`expected_gain`'s bound.
    scoring : str or callable
        What is estimated: ``"squared_error"`` (regressor's default),
        ``"error_rate"`` (classifier's default), or the scorer passed.
    greater_is_better : bool
        Whether a larger value of the scorer is better (``True`` for
        scikit-learn's scorers, ``False`` for the default losses).
    model : estimator
        The fitted model the estimate is about (the one the estimator
        predicts with; for a sampler, ``model`` fitted on the bought rows
        with their weights).
    n_labels : int
        Number of bought rows the estimate used.
    n_samples : int
        Number of rows of the pool.
    in_sample : float
        The naive design-weighted estimate from ``model``'s own training
        rows, ``sum_i w_i l_i / n_samples``: optimistic, for comparison.
    variance_estimator : str
        The variance estimator used (``"local"`` or ``"hajek"``).
    sample_indices : ndarray of shape (n_labels,)
        The bought rows.
    sample_weight : ndarray of shape (n_labels,)
        Their design weights.
    fold : ndarray of shape (n_labels,)
        The cross-fitting fold of each bought row: its value comes from a
        model trained on the rows of the other folds.
    held_out : ndarray of shape (n_labels,) or None
        The scorer's per-row value at each bought row under the model
        trained without its fold; ``None`` over clients (no party holds
        every value).
    learning_curve : LearningCurve
        The cross-fitted error for training sets of half and all of the
        other folds, on the same held-out rows.
    """

    def __init__(self, **values):
        self.__dict__.update(values)

    def __repr__(self):
        return (
            f"ErrorEstimate(estimate={self.estimate:.6g}, low={self.low:.6g}, "
            f"high={self.high:.6g}, confidence={self.confidence}, "
            f"n_labels={self.n_labels}, scoring={self.scoring!r})"
        )

    def expected_gain(self, k, *, confidence=None):
        """What the next ``k`` labels are expected to buy, with a bound.

        The gain is the expected improvement of the scorer (a decrease of a
        loss, an increase of a score) from training on ``n_labels + k``
        labels instead of ``n_labels``. It is extrapolated from the paired
        difference ``D`` between the held-out error of models trained on
        about half of the other folds and on all of them (the two ends of
        :attr:`learning_curve`, ``r = n_train[1] / n_train[0]``, 2 or close
        to it): for any learning curve of the form ``a + b m^{-c}`` with
        ``c > 0`` (the usual parametric and nonparametric rates), the gain
        of ``k`` more labels at ``n`` is at most ``D log(1 + k / n) /
        log(r)``; that bound is reported, so the rule errs toward buying
        more.

        Parameters
        ----------
        k : int
            Number of further labels.
        confidence : float in (0, 1), default=None
            Level of the one-sided upper bound ``upper``; ``None`` means the
            estimate's ``confidence``.

        Returns
        -------
        gain : ExpectedGain
            ``gain`` (the extrapolated gain from the estimated ``D``),
            ``upper`` (from the upper confidence bound of ``D``) and the
            ``confidence``. Stop buying when ``upper`` is below the gain that
            ``k`` labels are worth to you.
        """
        if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be an int >= 1 (further labels), got {k!r}.")
        confidence = self.confidence if confidence is None else confidence
        if not (isinstance(confidence, Real) and 0 < confidence < 1):
            raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
        factor = np.log1p(k / self.n_labels) / np.log(self._curve_ratio)
        z = norm.ppf(confidence)
        upper = self._half_gain + z * np.sqrt(self._half_gain_variance)
        return ExpectedGain(
            gain=float(factor * self._half_gain),
            upper=float(factor * upper),
            confidence=float(confidence),
        )


# ------------------------------------------------------------------ models


class _Linear(RegressorMixin, BaseEstimator):
    """A fitted linear model (coef, intercept): what a fold's fit returns."""

    def __init__(self, coef, intercept):
        self.coef_, self.intercept_ = coef, intercept

    def predict(self, X):
        return matvec(X, self.coef_) + self.intercept_


class _Design(NamedTuple):
    """Everything the estimate needs from the fitted estimator."""

    indices: np.ndarray
    weights: np.ndarray
    fit: object  # fit(X_rows, y_rows, weights) -> fitted model
    final: object  # the fitted model the estimate is about
    classifier: bool
    design: str  # "pivotal", "iid" or "mixed": which variance "auto" picks
    linear: bool  # a FederatedActiveRegressor's least squares: dense float rows


def _weighted_fit(template, X, y, w, weighted=True):
    """``clone(template)`` fitted with the weights divided by their mean."""
    model = clone(template)
    if not weighted:
        return model.fit(X, y)
    w = w / w.mean()
    if isinstance(model, Pipeline):
        return model.fit(X, y, **{f"{model.steps[-1][0]}__sample_weight": w})
    return model.fit(X, y, sample_weight=w)


def _pool_size(estimator):
    """The number of rows the estimator was fitted on, where it says
    (its or its sampler's per-row ``scores_``); ``None`` otherwise."""
    for holder in (estimator, getattr(estimator, "sampler_", None)):
        scores = getattr(holder, "scores_", None)
        if scores is not None and hasattr(scores, "shape"):
            return int(scores.shape[0])
    return None


def _sampling_of(sampler):
    params = sampler.get_params(deep=False) if hasattr(sampler, "get_params") else {}
    return params.get("sampling", "iid")


def _design(estimator, model):
    """The bought rows, their weights, and how a model is fitted on rows."""
    # Imported here: the estimators import scikit-learn's heavier parts.
    from skfal._active import ActiveEstimator
    from skfal._regressor import FederatedActiveRegressor

    if isinstance(estimator, FederatedActiveRegressor):
        check_is_fitted(estimator, "sample_indices_")
        if estimator.coef_ is None:
            raise ValueError(
                "The clients kept the model (coef_ is None): the error of a model "
                "the server does not hold cannot be estimated here."
            )
        alpha, intercept = estimator.alpha, estimator.fit_intercept

        def fit(X, y, w):
            return _Linear(*weighted_least_squares(X, y, w, alpha, intercept))

        final, classifier = estimator, False
        design = _sampling_of(estimator.sampler_)
    elif isinstance(estimator, ActiveEstimator):
        check_is_fitted(estimator, "estimator_")
        template, weighted = estimator.estimator, estimator.weighted

        def fit(X, y, w):
            return _weighted_fit(template, X, y, w, weighted)

        final = estimator.estimator_
        classifier = is_classifier(estimator)
        if estimator.sampler is None:
            warnings.warn(
                "ActiveEstimator's default selection (sampler=None) puts most of "
                "each round's probability on the rows the model doubts, and the "
                "interval covers well below its level there, the estimate "
                "running low (measured: benchmarks/bench_error.py --doubt). "
                "For an interval that covers, select with "
                "sampler=SensitivitySampler(holder_constant='auto') (Algorithm "
                "1) or sampler=UniformSampler(); see the user guide's page on "
                "error estimates, 'When it fails'.",
                UserWarning,
                stacklevel=4,  # _design, estimate_error, validate_params' wrapper
            )
        design = "mixed" if len(getattr(estimator, "rounds_", [])) > 1 else "iid"
        sampler = estimator.sampler
        if design == "iid" and sampler is not None:
            design = _sampling_of(sampler)
    elif hasattr(estimator, "sample_indices_") and hasattr(estimator, "sample_weight_"):
        if model is None:
            raise ValueError(
                f"{type(estimator).__name__} is a sampler: pass the model to "
                "evaluate, e.g. estimate_error(sampler, X, y, model=Ridge()); it "
                "is fitted on the bought rows with their weights."
            )

        def fit(X, y, w):
            return _weighted_fit(model, X, y, w)

        final, classifier = None, is_classifier(model)
        design = _sampling_of(estimator)
    else:
        raise TypeError(
            f"estimator must be a fitted FederatedActiveRegressor, ActiveEstimator "
            f"or skfal sampler (with sample_indices_ and sample_weight_); got "
            f"{type(estimator).__name__}. Fit it first."
        )
    if model is not None and final is not None:
        raise ValueError(
            "model is only for a sampler: a FederatedActiveRegressor or an "
            "ActiveEstimator is evaluated with its own model."
        )
    return _Design(
        indices=np.asarray(estimator.sample_indices_),
        weights=np.asarray(estimator.sample_weight_, dtype=np.float64),
        fit=fit,
        final=final,
        classifier=classifier,
        design=design,
        linear=isinstance(estimator, FederatedActiveRegressor),
    )


# ----------------------------------------------------------------- scoring


def _per_row_scorer(scoring, classifier):
    """``(name, per_row(model, X, y) -> values, greater_is_better)``."""
    if scoring is None:
        scoring = "error_rate" if classifier else "squared_error"
    if isinstance(scoring, str) and scoring in _PER_ROW:
        function, greater = _PER_ROW[scoring]
        return scoring, function, greater
    scorer = check_scoring(None, scoring=scoring) if isinstance(scoring, str) else None
    scorer = scorer if scorer is not None else scoring
    if not callable(scorer):
        raise ValueError(
            f"scoring must be None, a scorer name or a scorer; got {scoring!r}."
        )

    def per_row(model, X, y):
        """The scorer at each row alone; refused unless its mean is the scorer."""
        with warnings.catch_warnings():  # e.g. R^2 on one row, refused below
            warnings.simplefilter("ignore")
            values = np.array(
                [scorer(model, _take(X, [i]), y[i : i + 1]) for i in range(len(y))],
                dtype=np.float64,
            )
        if len(y) > 1:
            whole = float(scorer(model, X, y))
            if not np.isclose(whole, values.mean(), rtol=1e-6, atol=1e-12):
                raise ValueError(
                    f"scoring={scoring!r} is not the mean of a per-row value (on "
                    f"{len(y)} rows it gives {whole:.6g}, the mean of its values "
                    f"at each row {values.mean():.6g}), so its value on the pool "
                    "cannot be estimated from a sample of rows. Use a per-row "
                    "loss: 'neg_mean_squared_error', 'neg_mean_absolute_error', "
                    "'accuracy' or 'neg_log_loss' (R^2 and ROC AUC are not)."
                )
        return values

    return scoring, per_row, getattr(scorer, "_sign", 1) > 0


# ---------------------------------------------------------------- estimate


@validate_params(
    {
        "estimator": [HasMethods(["get_params"])],
        "X": ["array-like", "sparse matrix"],
        "y": ["array-like"],
        "groups": ["array-like", None],
        "scoring": [str, callable, None],
        "confidence": [Interval(Real, 0, 1, closed="neither")],
        "model": [HasMethods(["fit", "predict"]), None],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "variance": [StrOptions({"auto", "local", "hajek"})],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "nested": [Interval(Integral, 0, None, closed="left")],
        "min_other_rows": [Interval(Integral, 1, None, closed="left")],
        "allow_disclosure": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def estimate_error(
    estimator,
    X,
    y,
    *,
    groups=None,
    scoring=None,
    confidence=0.9,
    model=None,
    cv=10,
    variance="auto",
    n_neighbors=3,
    nested=5,
    min_other_rows=5,
    allow_disclosure=False,
    random_state=None,
):
    """Estimate a fitted model's error on the whole pool, with an interval.

    From the labels bought only. The estimate is about the model the
    estimator predicts with (``estimator.predict``): the mean of the
    scorer's per-row value over every row of ``X``. At the bought rows that
    value is known exactly; at the other rows it is estimated by
    cross-fitting: the bought rows are split into ``cv`` folds, each fold is
    scored by the same kind of model trained on the other folds with the
    design's weights, and the held-out values are weighted by the design
    (Horvitz-Thompson; unbiased for a model that does not depend on its
    training rows, pessimistic by the gap between ``(cv - 1) / cv`` of the
    labels and all of them otherwise). The interval's variance is the
    design variance, estimated to respect the design (see ``variance``),
    plus what nested cross-validation measures the fold models add (see
    ``nested``).

    Parameters
    ----------
    estimator : estimator
        A fitted :class:`~skfal.FederatedActiveRegressor` or
        :class:`~skfal.ActiveEstimator`, or a fitted skfal sampler (any
        object with ``sample_indices_`` and ``sample_weight_``) together
        with ``model``.
    X : array-like of shape (n_samples, n_features)
        The pool the estimator was fitted on: every row, bought or not.
    y : array-like of shape (n_samples,)
        Labels at the bought rows; the others are read never and may be
        ``NaN`` or ``None``.
    groups : array-like of shape (n_samples,), default=None
        Client of each row, when the selection ran over clients: the
        federated pivotal tournament spreads the sample within each client,
        so the local variance compares rows of the same client. For a
        :class:`~skfal.FederatedActiveRegressor` fitted over these clients
        (``training="global"``), the estimate runs over them: every fold's
        model is trained by the secure-sum least squares and kept by the
        clients, who add their sums by a secure sum and reply only the
        estimate (the server learns nothing per client or per fold; each
        client learns sums over groups of at least ``min_other_rows`` bought
        rows of the other clients; scorers: the squared or absolute error;
        see :doc:`/threat_model`).
    scoring : str, callable or None, default=None
        ``None``: the squared error for a regressor, the error rate
        (``1 - accuracy``) for a classifier. ``"squared_error"``,
        ``"error_rate"``, ``"log_loss"`` (losses), or any scikit-learn scorer
        (a name such as ``"neg_mean_absolute_error"``, ``"accuracy"``,
        ``"neg_log_loss"``, or a callable ``scorer(model, X, y)``) whose value
        is the mean of a per-row value; one that is not (``"r2"``,
        ``"roc_auc"``) is refused.
    confidence : float in (0, 1), default=0.9
        Level of the two-sided interval ``[low, high]``.
    model : estimator, default=None
        With a sampler only: the unfitted model to evaluate, fitted on the
        bought rows with the sampler's weights (divided by their mean).
    cv : int, default=10
        Cross-fitting folds (at most the number of bought rows; each fold's
        model is trained on ``(cv - 1) / cv`` of them).
    variance : {"auto", "local", "hajek"}, default="auto"
        ``"local"``: Grafström and Schelin's local-mean estimator, for
        spatially balanced (pivotal) samples, neighbours among the bought
        rows in ``X`` scaled to unit variance; ``"hajek"``: Hájek's
        approximation, for high-entropy designs (i.i.d. draws, a mix of
        rounds). ``"auto"``: ``"local"`` when the selection was pivotal (a
        single batch), else ``"hajek"``.
    n_neighbors : int, default=3
        Neighbours of each bought row in the local estimator.
    nested : int, default=5
        Repeats of nested cross-validation (Bates, Hastie and Tibshirani
        2021), which measures what one model per fold adds to the design
        variance (see ``ErrorEstimate.nested_excess``); each repeat fits
        ``cv (cv + 1) / 2`` models. ``0``: the design variance alone, an
        interval that undercovers for a model learned from the rows (see
        :doc:`/error_estimates`).
    min_other_rows : int, default=5
        Over clients only: the fewest bought rows of the other clients that
        anything a client learns about them is summed over. The folds are
        then built from groups of bought rows (each holding at least this
        many rows of the other clients, for every client; every model
        trains on, and every sum is over, whole groups), so a client's
        view of a fold (the fold models it holds, the per-fold sums of
        held-out losses) never singles out one or two rows of another
        client. Too few bought rows for ``cv`` such groups is a clear
        error naming the largest ``cv`` that fits. Lower it only against
        clients that may see other clients' per-row losses and rows (see
        :doc:`/threat_model`).
    allow_disclosure : bool, default=False
        Over clients only, and required there: the estimate runs only when
        set. Every client holds the Gram matrix of each fold model's
        training rows and decodes per-fold sums of held-out losses, over
        every client's bought rows. ``min_other_rows`` bounds what one
        client reads in one call, but two colluding clients, the server
        with one client over repeated calls, or one client with many
        nested repeats can solve these sums for other clients' bought rows,
        labels and weights (an attacker's review did all three; see
        :doc:`/threat_model`). Set ``True`` only where the clients may learn
        each other's bought rows.
    random_state : int, RandomState instance or None, default=None
        Controls the folds.

    Returns
    -------
    result : ErrorEstimate
        ``estimate``, ``low``, ``high``, ``variance``, ``model`` (what the
        estimate is about), the learning curve and
        :meth:`ErrorEstimate.expected_gain`.

    Raises
    ------
    ValueError
        When fewer than 4 rows were bought, a bought row has no label, or a
        fold's training rows cannot fit the model (a classifier's with one
        class only). Over clients, also when a fold's training rows lie at
        one client only (no secure sum hides them), the scorer is not a loss
        of the predictions, the selection holds a row twice, or the bought
        rows are too few for ``cv`` folds of ``min_other_rows`` rows of the
        other clients each.

    Warns
    -----
    UserWarning
        For an :class:`~skfal.ActiveEstimator` with its doubt-driven default
        selection (``sampler=None``), whose interval undercovers.

    Notes
    -----
    The cross-fitted values come from models trained on ``(cv - 1) / cv``
    of the labels, so for the unbought rows the estimate is about a model
    slightly weaker than the one fitted: it errs on the pessimistic side,
    by an amount that shrinks as labels grow (see :doc:`/error_estimates`
    for the coverage measured on real tables).

    Examples
    --------
    >>> import numpy as np
    >>> from skfal import FederatedActiveRegressor, estimate_error
    >>> rng = np.random.RandomState(0)
    >>> X = rng.standard_normal((2000, 3))
    >>> y = X @ [1.0, -2.0, 0.5] + rng.standard_normal(2000)
    >>> reg = FederatedActiveRegressor(budget=100, random_state=0).fit(X, y)
    >>> y_bought = np.full(2000, np.nan)
    >>> y_bought[reg.sample_indices_] = y[reg.sample_indices_]
    >>> result = estimate_error(reg, X, y_bought, random_state=0)
    >>> bool(result.low < np.mean((reg.predict(X) - y) ** 2) < result.high)
    True
    """
    design = _design(estimator, model)
    n_samples = num_samples(X)
    y = np.asarray(y, dtype=None if design.classifier else np.float64)
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(
            f"y must hold one label per row of X ({n_samples}), NaN at the rows "
            f"not bought; got shape {y.shape}."
        )
    if groups is not None and num_samples(groups) != n_samples:
        raise ValueError(
            f"groups must name the client of each row of X ({n_samples}); got "
            f"{num_samples(groups)} entries."
        )
    rows, weights = design.indices, design.weights
    n = rows.shape[0]
    if n < 4:
        raise ValueError(
            f"Only {n} rows were bought: an error estimate with an interval needs "
            "at least 4 (cross-fitting holds some out, the variance needs "
            "several). Buy more labels (raise the budget)."
        )
    fitted = _pool_size(estimator)
    if rows.max() >= n_samples or fitted not in (None, n_samples):
        raise ValueError(
            f"The estimator was fitted on a pool of {fitted or 'more'} rows "
            f"(it bought row {int(rows.max())}), but X has {n_samples} rows: "
            "pass the pool the estimator was fitted on."
        )
    from skfal._active import _is_missing  # NaN, None, pd.NA or pd.NaT

    labels = y[rows]
    missing = _is_missing(labels)
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} of the {n} bought rows have no label in y, e.g. "
            f"rows {rows[missing][:10].tolist()}: pass y with the labels bought "
            "(NaN only at rows not bought)."
        )
    if design.classifier is False:
        labels = labels.astype(np.float64)
    name, per_row, greater = _per_row_scorer(scoring, design.classifier)
    X_rows = _rows_of(X, rows, design)

    final = design.final
    if final is None:
        final = design.fit(X_rows, labels, weights)
    rng = check_random_state(random_state)
    n_folds = min(cv, n)
    repeats = nested if n_folds >= 3 else 0
    over_clients = _federated_fit(estimator, groups)
    atoms = None
    if over_clients and not allow_disclosure:
        raise ValueError(
            "Over clients, every client would hold the fold models' Gram "
            "matrices and the per-fold sums of held-out losses over all "
            "clients' bought rows, from which colluding parties can solve for "
            "other clients' bought rows and labels (docs/threat_model.rst). "
            "Pass allow_disclosure=True if the clients may learn them, or "
            "estimate the error where the labels are held together."
        )
    if over_clients:
        owner, n_clients = _owners(groups, rows, n_samples)
        atoms = _client_atoms(owner, n_clients, min_other_rows, n_folds, rng)
    plan = _plan(n, n_folds, repeats, rng, atoms)
    choice = variance
    if choice == "auto":
        choice = "local" if design.design == "pivotal" else "hajek"
    settings = {
        "scoring": name,
        "variance": choice,
        "n_neighbors": int(n_neighbors),
        "sign": 1.0 if greater else -1.0,
        "n_fractions": len(_FRACTIONS),
        "repeats": repeats,
        "n_folds": n_folds,
    }
    held_out = None
    shape = {k: settings[k] for k in ("n_fractions", "repeats", "n_folds")}
    if over_clients:
        settings["min_other_rows"] = int(min_other_rows)
        got = _federated_outputs(estimator, X, y, groups, plan, settings, rng)
    else:
        values = _run_plan(design, X_rows, labels, weights, per_row, plan, settings)
        values["own"] = per_row(final, X_rows, labels)
        held_out = values["curve"][-1]
        group_of = None if groups is None else np.asarray(groups)[rows]
        sums = _grouped_sums(values, X_rows, group_of, settings)
        got = from_sums(sums, variance=choice, n_samples=n_samples, **shape)
    design_var, excess = got["design_variance"], got["nested_excess"]
    var = _combined_variance(design_var, excess, n_folds) if repeats else design_var
    z = norm.ppf(0.5 + confidence / 2)
    # Student's t with cv - 1 degrees of freedom: the held-out values come
    # from cv models, whose shared noise the variance estimates from the
    # folds (as the corrected resampled t-test of Nadeau and Bengio 2003
    # counts its folds); measured: covers on real tables where the normal
    # quantile undercovers at 5d (docs/error_estimates.rst).
    q = student_t.ppf(0.5 + confidence / 2, n_folds - 1)
    estimate = got["estimate"]
    low, high = estimate - q * np.sqrt(var), estimate + q * np.sqrt(var)
    if name in _NON_NEGATIVE:
        low = max(low, 0.0)
    points_half = z * np.sqrt(got["curve_variance"])
    n_train = _curve_sizes(plan, len(_FRACTIONS))
    return ErrorEstimate(
        estimate=float(estimate),
        low=float(low),
        high=float(high),
        variance=float(var),
        design_variance=float(design_var),
        nested_excess=float(excess),
        confidence=float(confidence),
        scoring=name,
        greater_is_better=bool(greater),
        model=final,
        n_labels=int(n),
        n_samples=int(n_samples),
        in_sample=float(got["in_sample"]),
        variance_estimator=choice,
        sample_indices=rows,
        sample_weight=weights,
        fold=plan.folds[0],
        held_out=held_out,
        learning_curve=LearningCurve(
            n_train=n_train,
            estimate=got["curve"],
            low=got["curve"] - points_half,
            high=got["curve"] + points_half,
        ),
        _half_gain=float(settings["sign"] * got["gain"]),
        _half_gain_variance=float(got["gain_variance"]),
        _curve_ratio=float(n_train[-1] / n_train[0]),
    )


class _Model(NamedTuple):
    """One model of the plan: trained on the bought rows ``train`` (positions
    among them, weights times ``scale``), it scores the rows ``score``; their
    values go to ``store`` (``"curve"``, ``"outer"`` or ``"pair"``) at row
    ``index`` (the curve's point, the nested repeat), and for ``"pair"`` at
    ``columns`` (the other fold left out)."""

    train: np.ndarray
    score: np.ndarray
    columns: np.ndarray
    store: str
    index: int
    scale: float


class _Plan(NamedTuple):
    """The folds (``(1 + R, n)``: the cross-fit's, then each nested
    repeat's), the models to train, the same centralized and federated, and
    the groups of rows (``atoms``, ``(n,)``) that every fold, every training
    set and every scored set is a union of."""

    folds: np.ndarray
    models: list
    atoms: np.ndarray


def _plan(n, n_folds, repeats, rng, atoms=None):
    """Deal the ``n`` bought rows into folds and list the models.

    Cross-fitting: each fold is scored by models trained on ``_FRACTIONS``
    of the other folds (a random subset for a fraction below 1; its weights
    divided by the share kept: a subsample of a probability sample is one,
    with inclusion probabilities ``pi * share``), never on the fold itself.
    Nested cross-validation (``repeats`` times, new folds each): a model
    without each pair of folds scores both, and one without each fold
    scores it.

    ``atoms`` (the group of each row; ``None``: every row its own) are dealt
    instead of rows, whole: over clients, each holds enough rows of the
    other clients (:func:`_client_atoms`), and every set of rows a client
    learns an aggregate over is a union of them.
    """
    atoms = np.arange(n) if atoms is None else np.asarray(atoms)
    n_atoms = int(atoms.max()) + 1
    group = rng.permutation(np.arange(n_atoms) % n_folds)
    fold = group[atoms]
    models = []
    for k in range(n_folds):
        test = np.flatnonzero(fold == k)
        train = np.flatnonzero(fold != k)
        kept = np.flatnonzero(group != k)
        for j, fraction in enumerate(_FRACTIONS):
            part, scale = train, 1.0
            if fraction < 1:
                # Fewer than all (the plan needs two kept groups or more).
                size = max(min(2, kept.size - 1), int(round(fraction * kept.size)))
                size = min(size, kept.size - 1)
                chosen = rng.choice(kept, size=size, replace=False)
                part = np.flatnonzero(np.isin(atoms, chosen))
                scale = kept.size / size
            zeros = np.zeros(test.size, dtype=np.int64)
            models.append(_Model(part, test, zeros, "curve", j, scale))
    folds = [fold]
    for r in range(repeats):
        fold = rng.permutation(np.arange(n_atoms) % n_folds)[atoms]
        folds.append(fold)
        for j in range(n_folds):
            for k in range(j + 1, n_folds):
                part = np.flatnonzero((fold != j) & (fold != k))
                score = np.flatnonzero((fold == j) | (fold == k))
                other = np.where(fold[score] == j, k, j)
                models.append(_Model(part, score, other, "pair", r, 1.0))
        for k in range(n_folds):
            part, score = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            zeros = np.zeros(score.size, dtype=np.int64)
            models.append(_Model(part, score, zeros, "outer", r, 1.0))
    return _Plan(np.array(folds), models, atoms)


def _curve_sizes(plan, n_fractions):
    """The mean number of training rows of each learning-curve point."""
    sizes = [[] for _ in range(n_fractions)]
    for model in plan.models:
        if model.store == "curve":
            sizes[model.index].append(model.train.size)
    return np.array([np.mean(s) for s in sizes])


def _owners(groups, rows, n_samples):
    """The client (its index among the sorted labels) of each bought row,
    and the number of clients."""
    from skfal._validation import check_groups

    clients, client_rows = check_groups(groups, n_samples)
    client_of = np.empty(n_samples, dtype=np.int64)
    for c, at in enumerate(client_rows):
        client_of[at] = c
    return client_of[rows], len(clients)


def _client_atoms(owner, n_clients, min_other_rows, n_folds, rng):
    """Groups of bought rows, each holding ``min_other_rows`` rows or more of
    the other clients, for every client: as many as can be made.

    Each client's bought rows, in a random order, are dealt round the groups
    one client after another, so every group holds about its share of each
    client's rows. A client learns of the others' rows only sums over whole
    groups (the folds and the models' training sets are unions of them).
    Fewer than ``n_folds`` groups is a clear error.
    """
    n = owner.size
    if n_clients == 1:  # no other client to learn about
        return np.arange(n)
    held = np.bincount(owner, minlength=n_clients)
    order = np.concatenate(
        [rng.permutation(np.flatnonzero(owner == c)) for c in range(n_clients)]
    )
    atoms = np.empty(n, dtype=np.int64)
    # Client c sees n - held[c] rows of the others, min_other_rows or more in
    # each group: at most that many groups.
    n_atoms = min(n, int(n - held.max()) // min_other_rows)
    while n_atoms >= 1:
        atoms[order] = np.arange(n) % n_atoms
        if others_per_atom(atoms, owner, n_clients).min() >= min_other_rows:
            break
        n_atoms -= 1
    # The learning curve's half needs two groups or more outside each fold.
    if n_atoms < max(n_folds, 3 if n_folds > 2 else 4):
        fix = f"lower cv to {n_atoms}" if n_atoms >= 3 else "buy more labels"
        raise ValueError(
            f"Over clients, each fold of the error estimate must hold at least "
            f"min_other_rows={min_other_rows} bought rows of the other clients, "
            "for every client, so that no client reads another client's "
            "held-out losses or rows off a fold's sums or models. The "
            f"{n} bought rows (per client: {held.tolist()}) make at most "
            f"{max(n_atoms, 0)} such groups, too few for cv={n_folds} folds: {fix}, or "
            "buy labels at more clients; against clients that may see each "
            "other's per-row losses, lower min_other_rows (see the threat "
            "model), or estimate at a trusted party (groups=None on pooled "
            "labels)."
        )
    return atoms


def _run_plan(design, X_rows, labels, weights, per_row, plan, settings):
    """Train and score every model of ``plan`` on the bought rows here."""
    n = labels.shape[0]
    rows = {
        "curve": np.empty((settings["n_fractions"], n)),
        "outer": np.empty((settings["repeats"], n)),
        "pair": np.zeros((settings["repeats"], n, settings["n_folds"])),
        "weights": weights,
        "folds": plan.folds[1:],
    }
    for number, model in enumerate(plan.models):
        fitted = _fit_fold(design, X_rows, labels, weights, model, number)
        values = per_row(fitted, _take(X_rows, model.score), labels[model.score])
        if model.store == "pair":
            rows["pair"][model.index, model.score, model.columns] = values
        else:
            rows[model.store][model.index, model.score] = values
    return rows


def _grouped_sums(rows, X_rows, groups, settings):
    """:func:`row_sums` over every bought row, or added over the clients of
    ``groups`` (the local variance then compares rows of one client only,
    as the federated pivotal tournament spreads the sample within each)."""
    common = {k: settings[k] for k in ("variance", "n_neighbors", "sign", "n_folds")}
    labels = np.zeros(rows["weights"].shape[0]) if groups is None else groups
    total = 0.0
    for label in np.unique(labels):
        at = np.flatnonzero(labels == label)
        part = {
            "own": rows["own"][at],
            "curve": rows["curve"][:, at],
            "weights": rows["weights"][at],
            "folds": rows["folds"][:, at],
            "outer": rows["outer"][:, at],
            "pair": rows["pair"][:, at],
            "points": None,
        }
        if settings["variance"] == "local":
            part["points"] = scaled_points(_take(X_rows, at))
        total = total + row_sums(part, **common)
    return total


def _combined_variance(design_var, excess, n_folds):
    """The interval's variance: the design's, plus what the fold models add.

    ``excess`` is nested cross-validation's estimate (Bates, Hastie and
    Tibshirani 2021, Algorithm 1, with the design's weights): for each
    outer fold ``k``, the inner cross-fitted mean ``m_in`` over the other
    folds (each inner fold ``j`` scored by a model trained without folds
    ``j`` and ``k``) is compared with the mean ``m_out`` over fold ``k`` of
    the model trained on all the other folds. The squared gap ``a_k``
    estimates the squared error of a cross-fitted mean about the error of
    the model trained on all its rows, plus the sampling variance ``b_k``
    of ``m_out``, which they subtract. Subtracted here as well: the
    sampling variance ``c_k`` of ``m_in`` as if its rows were independent,
    the part the design variance already counts (and counts better, for a
    spatially balanced sample). What is left, ``mean(a - b - c)``, is what
    the losses of one fold add by sharing one model: zero on average for a
    model that does not depend on its training rows.

    It is for a cross-fit on ``(K - 1) / K`` of the rows, scaled by
    ``(K - 1) / K`` to all of them as Bates et al. do; never negative, and
    at most ``K - 1`` times the design variance (their bound: at most ``K``
    times the naive variance in all).
    """
    scaled = (n_folds - 1) / n_folds * max(excess, 0.0)
    return design_var + min(scaled, (n_folds - 1) * design_var)


def _take(X, rows):
    """Rows of ``X`` (an ndarray directly: scikit-learn's helper is slower)."""
    if isinstance(X, np.ndarray):
        return X[rows]
    return safe_indexing(X, rows)


def _rows_of(X, rows, design):
    """The bought rows of ``X``, as the model reads them."""
    from skfal._rows import Rows

    if not design.linear:
        return _take(X, rows)
    return dense_rows(X, rows) if isinstance(X, Rows) else _dense(X, rows)


def _dense(X, rows):
    import scipy.sparse as sp

    taken = _take(X, rows)
    if sp.issparse(taken):
        return taken.toarray().astype(np.float64)
    return np.asarray(taken, dtype=np.float64)


def _fit_fold(design, X_rows, labels, weights, model, number):
    """A model of the plan, trained on its rows (never on those it scores)."""
    part = model.train
    if design.classifier and np.unique(labels[part].astype(str)).size < 2:
        raise ValueError(
            f"The training rows of cross-fitting model {number} ({model.store} "
            f"values, {part.size} rows) hold one class only, so no classifier "
            "can be fitted there. Buy more labels of the rare classes, or "
            "lower cv."
        )
    return design.fit(_take(X_rows, part), labels[part], weights[part] * model.scale)


def _federated_fit(estimator, groups):
    """Whether the estimate runs over the clients: a FederatedActiveRegressor
    fitted over them (``groups``), with global training."""
    from skfal._regressor import FederatedActiveRegressor

    return (
        groups is not None
        and isinstance(estimator, FederatedActiveRegressor)
        and bool(getattr(estimator, "communication_", {}))
    )


def _federated_outputs(estimator, X, y, groups, plan, settings, rng):
    """:func:`from_sums`'s outputs over clients
    (:func:`skfal._federated._error.federated_error`): the clients of
    ``groups`` hold their rows and labels; the server, the bought rows and
    the fitted model; the clients add their sums by a secure sum and reply
    the outputs computed from the total, never the total."""
    from skfal._federated import Channel, send_selection, simulated_federation
    from skfal._sampling import draw_seed
    from skfal._validation import check_groups

    if estimator.training != "global":
        raise ValueError(
            "The federated error estimate trains each fold's model by the "
            "secure-sum least squares of training='global'; this estimator "
            "was fitted with training='local'. Refit it with "
            "training='global', or pass groups=None to estimate centrally."
        )
    if callable(settings["scoring"]) or settings["scoring"] not in (PREDICTION_LOSSES):
        raise ValueError(
            f"Over clients, scoring must be one of {sorted(PREDICTION_LOSSES)} "
            f"(a loss every client computes from the model's predictions); got "
            f"{settings['scoring']!r}."
        )
    indices = np.asarray(estimator.sample_indices_)
    if np.unique(indices).size != indices.size:
        raise ValueError(
            "The selection holds a row more than once (i.i.d. draws): the "
            "federated estimate needs each bought row once. Pass groups=None "
            "to estimate centrally."
        )
    _, client_rows = check_groups(groups, num_samples(X))
    labels = np.asarray(y, dtype=np.float64)
    transport = simulated_federation(
        X, client_rows, draw_seed(rng), Channel(), estimator.n_jobs, labels=labels
    )
    counts = {c: rows.shape[0] for c, rows in enumerate(client_rows)}
    send_selection(transport, indices, estimator.sample_weight_, counts)
    final = np.append(estimator.coef_, estimator.intercept_)
    settings = {
        **settings,
        "n_features": int(estimator.n_features_in_),
        "alpha": float(estimator.alpha),
        "fit_intercept": bool(estimator.fit_intercept),
    }
    return federated_error(transport, indices, counts, final, plan, settings=settings)
