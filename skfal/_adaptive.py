"""The adaptive (two-round) design of :class:`FederatedActiveRegressor`.

A pilot round buys part of the budget by the one-shot design; its labels
fit the model and a model of the residual scale; the second round draws the
rest by pivotal sampling on leverage times predicted residual scale, mixed
with uniform, among the rows the pilot left. The weights of the two rounds
are combined so that every weighted total (hence the weighted least
squares' normal equations) is unbiased given the pilot.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata
from scipy.stats import t as student_t

from skfal._linalg import with_intercept
from skfal._rows import matvec

# A pilot must leave this many residual degrees of freedom, else it cannot
# tell where the noise is and the design stays one-shot.
MIN_PILOT_DOF = 10
# The residual-scale model is used only when its cross-validated rank
# correlation with the pilot's held-out residual sizes is positive at this
# one-sided level.
CHECK_LEVEL = 0.1
_N_FOLDS = 5
_FLOOR = 0.1  # no row's predicted scale falls below this share of the mean


def pilot_size(n_selected, n_columns, share):
    """Rows of the pilot round, or 0 when the design stays one-shot.

    ``share`` of ``n_selected``, when that leaves ``MIN_PILOT_DOF`` residual
    degrees of freedom (``n_columns`` parameters) and at least one row for
    the second round. Decided from sizes only, before any label is read.
    """
    n_pilot = int(round(share * n_selected))
    if n_pilot - n_columns < MIN_PILOT_DOF or n_pilot >= n_selected:
        return 0
    return n_pilot


def held_out_residuals(X, y, weights, coef, intercept, fit_intercept):
    """Leave-one-out residuals of the pilot's weighted least squares.

    ``e_i / (1 - h_ii)`` with ``h_ii`` the weighted hat diagonal: the
    residual row ``i`` would have if it had not been fitted. Rows with
    ``h_ii`` near 1 (the fit interpolates them) give ``NaN``.
    """
    design = with_intercept(X) if fit_intercept else np.asarray(X, dtype=float)
    u, s, _ = np.linalg.svd(design * np.sqrt(weights)[:, None], full_matrices=False)
    u = u[:, s > 1e-10 * s.max()] if s.size else u
    hat = np.einsum("ij,ij->i", u, u)
    residuals = y - (X @ coef + intercept)
    out = np.full(y.shape[0], np.nan)
    fine = hat < 0.95
    out[fine] = residuals[fine] / (1.0 - hat[fine])
    return out


def _fit_scale(features, sizes):
    """Least squares of ``sizes`` on ``[1, features]``; the coefficients."""
    design = np.hstack([np.ones((features.shape[0], 1)), features])
    return np.linalg.lstsq(design, sizes, rcond=None)[0]


def rank_check(predicted, observed):
    """Spearman's correlation and its one-sided p-value (t approximation)."""
    n = predicted.shape[0]
    rho = np.corrcoef(rankdata(predicted), rankdata(observed))[0, 1]
    if not np.isfinite(rho):
        return 0.0, 1.0
    rho = float(np.clip(rho, -0.999999, 0.999999))
    stat = rho * np.sqrt((n - 2) / (1.0 - rho * rho))
    return rho, float(student_t.sf(stat, n - 2))


class ScaleModel(NamedTuple):
    """A candidate model of the residual scale ``|e| ~ a + b^T f``: the
    features ``f`` of the pilot rows, and ``predict(coef)``, its predictions
    at every row from the coefficients ``[a, b]``."""

    pilot_features: np.ndarray
    predict: Callable


def scale_models(X, X_pilot, coef, intercept, leverage, pilot):
    """The candidate residual-scale models.

    ``|e|`` linear in the fitted value and the root leverage (three
    parameters: a pilot of a few dozen rows fits it), and, when the pilot
    has ``MIN_PILOT_DOF`` rows per parameter, linear in the features (the
    better model on the benchmark's tables when fitted on every row).
    """
    fitted = matvec(X, coef) + intercept
    small = np.column_stack([fitted, np.sqrt(leverage)])
    models = [ScaleModel(small[pilot], lambda c: c[0] + small @ c[1:])]
    if X_pilot.shape[0] >= MIN_PILOT_DOF * (X_pilot.shape[1] + 1):
        models.append(ScaleModel(X_pilot, lambda c: c[0] + matvec(X, c[1:])))
    return models


def residual_scale(models, sizes, random_state):
    """Predicted residual scale of every row, or ``None`` when no model
    passes the check.

    Each candidate (:func:`scale_models`) is fitted by least squares of
    the pilot's held-out residual sizes ``sizes`` on its features; the one
    whose ``_N_FOLDS``-fold cross-validated predictions rank ``sizes``
    best is used, if that rank correlation is positive by a one-sided
    Spearman test at ``CHECK_LEVEL`` divided by the number of candidates
    (Bonferroni). Predictions are floored at ``_FLOOR`` times the mean size.

    Returns
    -------
    scale : ndarray of shape (n_samples,) or None
    rho : float
        The chosen model's cross-validated rank correlation.
    """
    n = sizes.shape[0]
    folds = random_state.permutation(n) % _N_FOLDS
    checked = []
    for model in models:
        F = model.pilot_features
        predicted = np.empty(n)
        for k in range(_N_FOLDS):
            test = folds == k
            c = _fit_scale(F[~test], sizes[~test])
            predicted[test] = c[0] + F[test] @ c[1:]
        checked.append((*rank_check(predicted, sizes), model))
    rho, p_value, model = max(checked, key=lambda check: check[0])
    if p_value >= CHECK_LEVEL / len(models):
        return None, rho
    scale = model.predict(_fit_scale(model.pilot_features, sizes))
    floor = _FLOOR * max(float(np.mean(sizes)), np.finfo(float).tiny)
    return np.maximum(scale, floor), rho


def combined_weights(pilot_weights, second_weights, n_pilot, n_selected):
    """The two rounds' weights, combined with fixed shares.

    For any values ``z``, ``T1 = sum_{pilot} w1 z`` is unbiased for the
    total ``T`` (``w1`` the pilot's weights), and so is, given the pilot,
    ``T2 = sum_{pilot} z + sum_{second} w2 z`` (the second round samples
    the rows the pilot left, ``w2 = 1 / pi2``). Hence ``lam T1 + (1 - lam)
    T2`` is unbiased for every fixed ``lam``; and since ``E[T2 | pilot] =
    T``, ``T1`` and ``T2`` are uncorrelated, so ``lam`` = the pilot's share
    of the labels weighs each round by its size. Pilot rows get ``lam w1 +
    1 - lam``, second-round rows ``(1 - lam) w2``.
    """
    lam = n_pilot / n_selected
    return lam * pilot_weights + (1.0 - lam), (1.0 - lam) * second_weights


__all__ = [
    "combined_weights",
    "held_out_residuals",
    "pilot_size",
    "rank_check",
    "residual_scale",
    "scale_models",
]
