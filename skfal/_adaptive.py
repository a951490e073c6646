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
from scipy.stats import t as student_t

from skfal._linalg import with_intercept
from skfal._rows import dense_rows, matvec

# A pilot must leave this many residual degrees of freedom, else it cannot
# tell where the noise is and the design stays one-shot.
MIN_PILOT_DOF = 10
# The residual-scale model is used only when its cross-validated
# correlation with the pilot's held-out residual sizes is positive at this
# one-sided level.
CHECK_LEVEL = 0.1
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


def hat_diagonal(design, weights, r=None):
    """The weighted least squares' hat diagonal ``w_i d_i^T (D^T W D)^+ d_i``.

    From the SVD of ``sqrt(W) D``, or, given ``r``, from an R factor of
    ``sqrt(W) D`` over all the pilot's rows (what a federated client holds
    after the training: its own rows' hat values, nothing sent).
    """
    root = np.sqrt(weights)[:, None]
    if r is not None:
        Z = (design @ np.linalg.pinv(r, rcond=1e-10)) * root
        return np.einsum("ij,ij->i", Z, Z)
    u, s, _ = np.linalg.svd(design * root, full_matrices=False)
    u = u[:, s > 1e-10 * s.max()] if s.size else u
    return np.einsum("ij,ij->i", u, u)


def leave_one_out(residuals, hat):
    """``e_i / (1 - h_ii)``; ``NaN`` where ``h_ii`` is near 1 (the fit
    interpolates the row)."""
    out = np.full(residuals.shape[0], np.nan)
    fine = hat < 0.95
    out[fine] = residuals[fine] / (1.0 - hat[fine])
    return out


def held_out_residuals(X, y, weights, coef, intercept, fit_intercept):
    """Leave-one-out residuals of the pilot's weighted least squares.

    ``e_i / (1 - h_ii)`` with ``h_ii`` the weighted hat diagonal: the
    residual row ``i`` would have if it had not been fitted. Rows with
    ``h_ii`` near 1 (the fit interpolates them) give ``NaN``.
    """
    design = with_intercept(X) if fit_intercept else np.asarray(X, dtype=float)
    residuals = y - (X @ coef + intercept)
    return leave_one_out(residuals, hat_diagonal(design, weights))


def correlation_check(sums):
    """Pearson's correlation of predictions and sizes, and its one-sided
    p-value (t approximation), from :func:`check_sums` (summed over rows,
    hence over clients)."""
    n, s_p, s_pp, s_ps, s_s, s_ss = (float(v) for v in sums)
    var_p, var_s = n * s_pp - s_p * s_p, n * s_ss - s_s * s_s
    if n < 3 or not var_p > 0 or not var_s > 0:
        return 0.0, 1.0
    rho = (n * s_ps - s_p * s_s) / np.sqrt(var_p * var_s)
    if not np.isfinite(rho):
        return 0.0, 1.0
    rho = float(np.clip(rho, -0.999999, 0.999999))
    stat = rho * np.sqrt((n - 2) / (1.0 - rho * rho))
    return rho, float(student_t.sf(stat, n - 2))


def check_sums(predicted, sizes):
    """``[n, sum p, sum p^2, sum p s, sum s, sum s^2]``: what
    :func:`correlation_check` needs, additive over rows (a secure sum)."""
    p, s = np.asarray(predicted, dtype=float), np.asarray(sizes, dtype=float)
    return np.array([p.size, p.sum(), p @ p, p @ s, s.sum(), s @ s])


class ScaleModel(NamedTuple):
    """A candidate model of the residual scale ``|e| ~ a + b^T f``: the
    features ``f`` of the pilot rows, and ``predict(coef)``, its predictions
    at every row from the coefficients ``[a, b]``."""

    pilot_features: np.ndarray
    predict: Callable


def with_features(n_pilot, n_features):
    """Whether the features are a candidate scale model: the pilot has
    ``MIN_PILOT_DOF`` rows per parameter."""
    return n_pilot >= MIN_PILOT_DOF * (n_features + 1)


def scale_models(X, fitted, leverage, pilot, features):
    """The candidate residual-scale models at the rows of ``X`` (a client's,
    or all of them), their features taken at the ``pilot`` rows.

    ``|e|`` linear in the fitted value ``fitted`` and the root leverage
    (three parameters: a pilot of a few dozen rows fits it), and, when the
    whole pilot (:func:`with_features`, ``pilot`` holds the rows with a
    held-out residual) is large enough, linear in the features (the better
    model on the benchmark's tables when fitted on every row).
    """
    small = np.column_stack([fitted, np.sqrt(leverage)])
    models = [ScaleModel(small[pilot], lambda c: c[0] + small @ c[1:])]
    if features:
        models.append(
            ScaleModel(dense_rows(X, pilot), lambda c: c[0] + matvec(X, c[1:]))
        )
    return models


def scale_sums(features, sizes):
    """The normal equations ``[D^T D | D^T s]`` of ``sizes`` on
    ``D = [1, features]``, shape ``(p, p + 1)`` with ``p`` the number of
    features plus one.

    Additive over rows, so the clients' arrays add up (a secure sum) to the
    pilot's; they are summed over all of a client's pilot rows, never over
    a subset, so what a client decodes minus its own part is the other
    clients' total, not a few of their rows.
    """
    D = np.hstack([np.ones((features.shape[0], 1)), features])
    return np.hstack([D.T @ D, (D.T @ sizes)[:, None]])


def scale_fit(sums):
    """The scale model's coefficients fitted on every pilot row, and the
    pseudo-inverse of ``D^T D``, from the summed :func:`scale_sums`."""
    gram = sums[:, :-1]
    return np.linalg.lstsq(gram, sums[:, -1], rcond=None)[0], np.linalg.pinv(gram)


def held_out_predictions(features, sizes, sums):
    """Each pilot row's size predicted by the model fitted without it.

    Leave-one-out in closed form from the summed :func:`scale_sums`:
    ``(d_i^T b - h_i s_i) / (1 - h_i)`` with ``h_i = d_i^T (D^T D)^+ d_i``
    (``s_i`` minus the held-out residual :func:`leave_one_out`), so a
    client needs the pilot's total and its own rows only. ``NaN`` where
    ``h_i`` is near 1.
    """
    coef, inverse = scale_fit(sums)
    D = np.hstack([np.ones((features.shape[0], 1)), features])
    hat = np.einsum("ij,jk,ik->i", D, inverse, D)
    return sizes - leave_one_out(sizes - D @ coef, hat)


def check_rows(features, sizes, sums):
    """:func:`check_sums` of the held-out predictions of the rows given
    (a client's pilot rows, or all), rows without one left out."""
    predicted = held_out_predictions(features, sizes, sums)
    known = np.isfinite(predicted)
    return check_sums(predicted[known], sizes[known])


def choose_scale(checks):
    """Which candidate to use (its index, or ``None``) and its correlation.

    The candidate whose cross-validated predictions correlate best with the
    held-out sizes (``checks``: each candidate's summed :func:`check_sums`),
    if that correlation is positive by a one-sided test at ``CHECK_LEVEL``
    divided by the number of candidates (Bonferroni).
    """
    tested = [correlation_check(c) for c in checks]
    best = int(np.argmax([rho for rho, _ in tested]))
    rho, p_value = tested[best]
    if p_value >= CHECK_LEVEL / len(checks):
        return None, rho
    return best, rho


def scale_floor(sums):
    """``_FLOOR`` times the pilot's mean size, from the summed :func:`scale_sums`."""
    mean = sums[0, -1] / max(sums[0, 0], 1.0)
    return _FLOOR * max(float(mean), np.finfo(float).tiny)


def residual_scale(models, sizes):
    """Predicted residual scale of every row, or ``None`` when no model
    passes the check.

    Each candidate (:func:`scale_models`) is fitted by least squares of
    the pilot's held-out residual sizes ``sizes`` on its features; the one
    whose leave-one-out predictions correlate best with ``sizes`` is used
    if it passes :func:`choose_scale`. Predictions are floored at
    ``_FLOOR`` times the mean size. Every step works on sums over all the
    pilot's rows, so a federation computes the same from secure sums
    (:func:`skfal._federated.adaptive_second_round`).

    Returns
    -------
    scale : ndarray of shape (n_samples,) or None
    rho : float
        The chosen model's cross-validated correlation.
    """
    sums = [scale_sums(m.pilot_features, sizes) for m in models]
    checks = [
        check_rows(m.pilot_features, sizes, s)
        for m, s in zip(models, sums, strict=True)
    ]
    best, rho = choose_scale(checks)
    if best is None:
        return None, rho
    scale = models[best].predict(scale_fit(sums[best])[0])
    return np.maximum(scale, scale_floor(sums[best])), rho


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
    "hat_diagonal",
    "held_out_residuals",
    "leave_one_out",
    "pilot_size",
    "check_rows",
    "check_sums",
    "choose_scale",
    "correlation_check",
    "held_out_predictions",
    "residual_scale",
    "scale_fit",
    "scale_floor",
    "scale_models",
    "scale_sums",
    "with_features",
]
