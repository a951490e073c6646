"""Learning a least-squares model from the clients' labeled rows.

``"global"`` training (FALE, Algorithm 1, lines 14-19, with secure
aggregation): the server helps solve the importance-weighted least squares
over all clients' labeled rows, and sees neither a row, a label, a client's
contribution, nor the model. With ``S = diag(sqrt(w))`` the weights of client
``i``'s selected rows:

1. (intercept only) secure sum of ``[sum_j w_j x_j, sum_j w_j]``; the server
   passes the total back and every client has the global weighted mean
   ``x_bar`` of the labeled rows. Centering makes the constant column
   orthogonal to the features, so the ridge term leaves the intercept alone.
2. Each client builds its system ``A_i = S [1, X_i - x_bar, y_i]`` (the label
   column included). A secure maximum gives every client the same power of
   two per column, ``2^E``, bounding the entries; each client divides its
   columns by them (exactly) and rotates the result by the clients' shared
   Haar matrix ``Q`` (label column included, so no column of the upload is
   the labels'), then takes its R factor ``R_i``.
3. Secure stacked factors (:func:`run_secure_stack`): the server receives
   only ``M [R_1; ...; R_k]`` for a Haar ``M`` it does not know, factors it
   and broadcasts the ``R``: a function of the equilibrated, rotated global
   Gram matrix alone.
4. Each client undoes the rotation (``R Q^T`` has the Gram matrix of the
   equilibrated system), factors it again and multiplies the columns back by
   ``2^E``. With the constant column first, the rest of this ``R`` is the R
   factor of the weighted centered features and labels, from which the
   model is solved as in the centralized fit; the first row gives the
   constant, hence the intercept.

Equilibrating by powers of two before rotating keeps every column's digits:
rotating columns of sizes ``1e15`` and ``1`` together would lose the smaller
one to rounding. So the model equals the centralized one at any feature
scale.

``"local"`` training (FALE-local, Appendix A.2): each client with at least
:data:`MIN_LOCAL_ROWS` labeled rows fits its own weighted least squares; the
server adds ``n_i [coef_i, intercept_i]`` and ``n_i`` by secure aggregation
and passes the sums back, so every client gets the FedAvg model and the
server sees no local model.
"""

import warnings
from typing import NamedTuple

import numpy as np
from joblib import Parallel, delayed

from skfal._federated._masks import client_shared_rotation
from skfal._federated._secure import (
    client_decode,
    client_shared_seeds,
    run_key_agreement,
    run_secure_bounds,
    run_secure_stack,
    run_secure_total,
)
from skfal._linalg import (
    r_factor,
    solve_centered,
    solve_least_squares,
    weighted_least_squares,
)
from skfal._sampling import draw_seed

MIN_LOCAL_ROWS = 2


class LinearModel(NamedTuple):
    """A learned linear model, as every client holds it at the end."""

    coef: np.ndarray
    intercept: float


# --------------------------------------------------------------------- clients
def client_weighted_sums(X_l, weights):
    """Step 1 share: ``[sum_j w_j x_j, sum_j w_j]`` over the client's labeled rows."""
    return np.append(weights @ np.asarray(X_l, dtype=np.float64), weights.sum())


def client_residual_sums(X_l, weights, x_mean):
    """Step 1 share, second round: ``sum_j w_j (x_j - x_bar)``."""
    return weights @ (np.asarray(X_l, dtype=np.float64) - x_mean)


def client_weighted_mean(sums):
    """The global weighted mean of the labeled rows, and their total weight."""
    return sums[:-1] / sums[-1], sums[-1]


def client_system(X_l, y_l, weights, x_mean):
    """``S [1, X - x_bar, y]`` (``S [X, y]`` when x_mean is None)."""
    root = np.sqrt(weights)[:, None]
    X_l = np.asarray(X_l, dtype=np.float64)
    columns = [X_l, np.asarray(y_l, dtype=np.float64)[:, None]]
    if x_mean is not None:
        columns = [np.ones((X_l.shape[0], 1)), X_l - x_mean, columns[1]]
    return np.hstack(columns) * root


def client_column_magnitudes(system):
    """Per column, the largest absolute entry (for the common scales)."""
    return np.abs(system).max(axis=0, initial=0.0)


def client_rotated_factor(system, scales, rotation):
    """Step 2 upload: the R factor of the equilibrated, rotated system."""
    return r_factor([np.ldexp(system, -scales) @ rotation], system.shape[1])


def client_solve(
    r_units, r_bounds, rotation, scales, zero, alpha, fit_intercept, x_mean
):
    """Step 4: the model from the server's ``R`` (in units of ``2^E_m``).

    Parameters
    ----------
    r_units, r_bounds : ndarray
        The broadcast factor and the columns' fixed-point bounds.
    rotation : ndarray
        The clients' ``Q``.
    scales : ndarray of int
        The equilibration exponents of step 2.
    zero : ndarray of bool
        The columns that are zero at every client (a constant feature, once
        centered): zero in the unrotated factor too, exactly.
    alpha : float
        Ridge penalty on the features (not on the constant column).
    fit_intercept : bool
    x_mean : ndarray or None
        The global weighted mean of the labeled rows (intercept only).
    """
    rotated = client_decode(r_units, r_bounds)
    unrotated = rotated @ rotation.T
    unrotated[:, zero] = 0.0  # not rounding noise from the other columns
    r = np.ldexp(r_factor([unrotated], rotated.shape[1]), scales)
    if not fit_intercept:
        return solve_least_squares(r, alpha), 0.0
    return solve_centered(r, alpha, x_mean)


def client_local_share(X_l, y_l, weights, alpha, fit_intercept):
    """FALE-local share: ``n_i [coef_i, intercept_i, 1]`` for the secure sum."""
    coef, intercept = weighted_least_squares(X_l, y_l, weights, alpha, fit_intercept)
    return X_l.shape[0] * np.append(np.append(coef, intercept), 1.0)


def client_fedavg(sums):
    """The FedAvg model from the summed shares."""
    model = sums[:-1] / sums[-1]
    return LinearModel(model[:-1], float(model[-1]))


# ---------------------------------------------------------------------- server
def server_factor(units):
    """Step 3: an R factor of the mixed stack (in the clients' unknown units)."""
    return r_factor([units], units.shape[1])


# ------------------------------------------------------------- orchestration
def _active(clients, min_rows=1):
    """Clients with at least ``min_rows`` labeled rows; the others sit out."""
    return [c for c, (X_l, _, _) in enumerate(clients) if X_l.shape[0] >= min_rows]


def _secure_setup(n_clients, random_state, channel):
    """The clients' shared secrets, and the pairwise keys for secure sums."""
    rotation_seed, mixing_seed, group_seed = client_shared_seeds(
        draw_seed(random_state)
    )
    secure = run_key_agreement(n_clients, group_seed, random_state, channel)
    return rotation_seed, mixing_seed, secure


def run_local_training(
    clients, random_state, channel, *, alpha=0.0, fit_intercept=True, n_jobs=None
):
    """Simulate FALE-local: local weighted fits, averaged by secure aggregation.

    Clients with fewer than :data:`MIN_LOCAL_ROWS` labeled rows sit out with a
    warning: a model fitted on one row is a function of that row and its
    label alone (``(0, ..., 0, y_j)`` with an intercept), which the average
    of two clients would give away to the other one.

    Parameters
    ----------
    clients : list of tuple (X_l, y_l, weights)
        Each client's labeled rows, their labels and importance weights.
    random_state : numpy.random.RandomState
        Draws the key material.
    channel : Channel
        Where every message is counted (and recorded).
    alpha : float, default=0.0
        Ridge penalty (the intercept is not penalised).
    fit_intercept : bool, default=True
    n_jobs : int or None
        Clients' steps run in parallel threads (joblib).

    Returns
    -------
    model : LinearModel
    """
    active = _active(clients, MIN_LOCAL_ROWS)
    few = [c for c in _active(clients) if c not in active]
    if few:
        warnings.warn(
            f"{len(few)} client(s) hold fewer than {MIN_LOCAL_ROWS} labeled rows "
            f"(clients {few}) and sit out FALE-local training: a model fitted on "
            "one row gives that row's label away. Raise the budget, or use "
            "training='global'.",
            UserWarning,
            stacklevel=3,
        )
    _, _, secure = _secure_setup(len(clients), random_state, channel)
    shares = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(client_local_share)(*clients[c], alpha, fit_intercept) for c in active
    )
    total = run_secure_total(
        dict(zip(active, shares, strict=True)),
        secure,
        channel,
        "local_model",
        random_state,
        range(len(clients)),
        down="global_model",
    )
    return client_fedavg(total)


def run_weighted_mean(clients, active, secure, channel, random_state):
    """Step 1: every client learns the global weighted mean of the labeled rows.

    Two secure sums: ``[sum w x, sum w]``, then the residual sums
    ``sum w (x - x_bar)`` that correct the mean (as
    :func:`skfal._linalg.weighted_mean`: a constant column's mean comes out
    exact, so centering leaves exactly zero). Returns ``(x_mean,
    total_weight)`` as the clients compute them.
    """
    everyone = range(len(clients))
    shares = {c: client_weighted_sums(clients[c][0], clients[c][2]) for c in active}
    x_mean, total = client_weighted_mean(
        run_secure_total(
            shares, secure, channel, "weighted_sums", random_state, everyone
        )
    )
    shares = {
        c: client_residual_sums(clients[c][0], clients[c][2], x_mean) for c in active
    }
    residual = run_secure_total(
        shares, secure, channel, "weighted_sums", random_state, everyone
    )
    return x_mean + residual / total, total


def run_global_training(
    clients, random_state, channel, *, alpha=0.0, fit_intercept=True, n_jobs=None
):
    """Simulate FALE's global training under secure aggregation (module docstring).

    Parameters
    ----------
    clients : list of tuple (X_l, y_l, weights)
        Each client's labeled rows, their labels and importance weights
        (clients with no labeled row may be included; they sit out).
    random_state : numpy.random.RandomState
        Draws the clients' shared secrets and key material.
    channel : Channel
        Where every message is counted (and recorded).
    alpha : float, default=0.0
        Ridge penalty (the intercept is not penalised).
    fit_intercept : bool, default=True
    n_jobs : int or None
        Clients' steps run in parallel threads (joblib).

    Returns
    -------
    model : LinearModel
    """
    active = _active(clients)
    rotation_seed, mixing_seed, secure = _secure_setup(
        len(clients), random_state, channel
    )
    n_columns = clients[0][0].shape[1] + int(fit_intercept) + 1
    rotation = client_shared_rotation(n_columns, rotation_seed)
    x_mean = None
    if fit_intercept:
        x_mean, _ = run_weighted_mean(clients, active, secure, channel, random_state)
    systems = {c: client_system(*clients[c], x_mean) for c in active}
    scales, zero = run_secure_bounds(
        {c: client_column_magnitudes(systems[c]) for c in active},
        secure,
        channel,
        "scales",
        0,
        random_state,
    )
    factors = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(client_rotated_factor)(systems[c], scales, rotation) for c in active
    )
    units, bounds = run_secure_stack(
        dict(zip(active, factors, strict=True)),
        secure,
        channel,
        "masked_system",
        mixing_seed,
        random_state,
    )
    r_units = channel.broadcast(
        "masked_model", range(len(clients)), server_factor(units)
    )
    return LinearModel(
        *client_solve(
            r_units, bounds, rotation, scales, zero, alpha, fit_intercept, x_mean
        )
    )
