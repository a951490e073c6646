"""Learning a least-squares model from the clients' labeled rows.

``"global"`` training (FALE, Algorithm 1, lines 14-19): the server solves the
importance-weighted least squares over all clients' labeled rows in a masked
space and never sees a raw row, a label, or the model itself.

With ``S = diag(sqrt(w))`` the weights of the selected rows of client ``i``:

1. (intercept only) client: upload ``Q^T [sum_j w_j x_j, sum_j w_j]``;
   server: add them up and send the total back; clients unrotate it into the
   global weighted mean ``x_bar`` of the labeled rows. Centering makes the
   constant column orthogonal to the features, so the intercept is not
   penalised by the ridge term and is recovered exactly below.
2. client: build ``[A_i, b_i] = [S [X_i - x_bar, 1] Q, S y_i]`` and upload
   either its R factor (``protocol="qr"``, ``(d + 2)^2`` numbers) or the rows
   masked on the left as well, ``P_i [A_i, b_i]`` (``protocol="fedsvd"``, the
   paper's).
3. server: stack the uploads, factor, and solve
   ``min ||A t - b||^2 + alpha ||t||^2`` for the masked model ``t``; send it.
4. client: unmask ``theta = Q t``. ``Q`` is orthogonal, so
   ``||A t - b|| = ||S [X - x_bar, 1] theta - S y||`` and ``||t|| = ||theta||``:
   ``theta`` is the solution of the unmasked problem. Its last entry is
   ``sum w y / (sum w + alpha)``, which gives back the weighted mean label and
   the intercept ``y_bar - x_bar coef``.

``"local"`` training (FALE-local, Appendix A.2): each client fits its own
weighted least squares and uploads it; the server averages the models
weighted by the clients' numbers of labeled rows (FedAvg). Here the server
does see each client's local model, as in any FedAvg.
"""

from typing import NamedTuple

import numpy as np
from joblib import Parallel, delayed

from skfal._federated._masks import apply_block_mask, client_shared_rotation
from skfal._linalg import r_factor, solve_least_squares, weighted_least_squares
from skfal._sampling import draw_seed


class LinearModel(NamedTuple):
    """A learned linear model, as every client holds it at the end."""

    coef: np.ndarray
    intercept: float


# --------------------------------------------------------------------- clients
def client_weighted_sums(X_l, weights, rotation):
    """Upload ``Q^T [sum_j w_j x_j, sum_j w_j]`` over the client's labeled rows."""
    return rotation.T @ np.append(weights @ X_l, weights.sum())


def client_weighted_mean(total, rotation):
    """Unrotate the summed uploads into the global weighted mean of the rows."""
    sums = rotation @ total
    return sums[:-1] / sums[-1], sums[-1]


def _client_system(X_l, y_l, weights, rotation, x_mean):
    """``[S [X - x_bar, 1] Q, S y]`` (no centering and no 1 when x_mean is None)."""
    root = np.sqrt(weights)[:, None]
    if x_mean is None:
        features = X_l
    else:
        features = np.hstack([X_l - x_mean, np.ones((X_l.shape[0], 1))])
    return np.hstack([(features * root) @ rotation, y_l[:, None] * root])


def client_r_system(X_l, y_l, weights, rotation, x_mean):
    """``protocol="qr"`` upload: the R factor of the client's masked system."""
    system = _client_system(X_l, y_l, weights, rotation, x_mean)
    return r_factor([system], system.shape[1])


def client_masked_system(X_l, y_l, weights, rotation, x_mean, seed, block_size):
    """``protocol="fedsvd"`` upload: ``P_i [S X Q, S y]``."""
    system = _client_system(X_l, y_l, weights, rotation, x_mean)
    return apply_block_mask(system, seed, block_size)


def client_unmask_model(masked_model, rotation, x_mean, total_weight, alpha):
    """Recover ``(coef, intercept)`` from the server's masked solution."""
    theta = rotation @ masked_model
    if x_mean is None:
        return theta, 0.0
    coef, scaled_mean = theta[:-1], theta[-1]
    y_mean = scaled_mean * (total_weight + alpha) / total_weight
    return coef, float(y_mean - x_mean @ coef)


def client_local_model(X_l, y_l, weights, alpha, fit_intercept):
    """FALE-local upload: the client's own model and its number of labeled rows."""
    coef, intercept = weighted_least_squares(X_l, y_l, weights, alpha, fit_intercept)
    return np.append(coef, intercept), np.array([X_l.shape[0]])


# ---------------------------------------------------------------------- server
def server_sum(uploads):
    """Add up the clients' uploads."""
    return np.sum(uploads, axis=0)


def server_solve_masked(uploads, alpha):
    """Solve the stacked masked least squares; returns the masked model ``t``."""
    n_columns = uploads[0].shape[1]
    return solve_least_squares(r_factor(iter(uploads), n_columns), alpha)


def server_fedavg(models, counts):
    """Average the clients' models weighted by their numbers of labeled rows."""
    counts = np.array([count[0] for count in counts], dtype=np.float64)
    return counts @ np.vstack(models) / counts.sum()


# ------------------------------------------------------------- orchestration
def _active(clients):
    """Clients with at least one labeled row; the others sit out."""
    return [c for c, (X_l, _, _) in enumerate(clients) if X_l.shape[0] > 0]


def run_local_training(clients, channel, *, alpha=0.0, fit_intercept=True, n_jobs=None):
    """Simulate FALE-local: local weighted fits, averaged by the server (FedAvg).

    Parameters
    ----------
    clients : list of tuple (X_l, y_l, weights)
        Each client's labeled rows, their labels and importance weights
        (clients with no labeled row may be included; they sit out).
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
    fits = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(client_local_model)(*clients[c], alpha, fit_intercept) for c in active
    )
    model = server_fedavg(
        [
            channel.up("local_model", c, fit[0])
            for c, fit in zip(active, fits, strict=True)
        ],
        [
            channel.up("local_model", c, fit[1])
            for c, fit in zip(active, fits, strict=True)
        ],
    )
    received = channel.broadcast("global_model", range(len(clients)), model)
    return LinearModel(received[:-1], float(received[-1]))


def run_weighted_mean(clients, active, rotation, channel):
    """Step 1: every client learns the global weighted mean of the labeled rows.

    Returns ``(x_mean, total_weight)`` as the clients compute them.
    """
    total = server_sum(
        [
            channel.up("weighted_sums", c, client_weighted_sums(X_l, w, rotation))
            for c, (X_l, _, w) in ((c, clients[c]) for c in active)
        ]
    )
    received = channel.broadcast("weighted_sums", range(len(clients)), total)
    return client_weighted_mean(received, rotation)


def run_global_training(
    clients,
    random_state,
    channel,
    *,
    alpha=0.0,
    fit_intercept=True,
    protocol="qr",
    block_size=100,
    n_jobs=None,
):
    """Simulate FALE's global training on masked data (module docstring).

    Parameters
    ----------
    clients : list of tuple (X_l, y_l, weights)
        Each client's labeled rows, their labels and importance weights
        (clients with no labeled row may be included; they sit out).
    random_state : numpy.random.RandomState
        Draws the clients' shared seed and private mask seeds.
    channel : Channel
        Where every message is counted (and recorded).
    alpha : float, default=0.0
        Ridge penalty (the intercept is not penalised).
    fit_intercept : bool, default=True
    protocol : {"qr", "fedsvd"}, default="qr"
        What clients upload: the R factor of their masked system, or its
        rows masked on the left too.
    block_size : int, default=100
        Rows per Haar block of the ``"fedsvd"`` row masks.
    n_jobs : int or None
        Clients' steps run in parallel threads (joblib).

    Returns
    -------
    model : LinearModel
    """
    active = _active(clients)
    shared_seed = int(draw_seed(random_state))
    seeds = draw_seed(random_state, size=len(clients))
    n_features = clients[active[0]][0].shape[1]
    rotation = client_shared_rotation(n_features + int(fit_intercept), shared_seed)
    x_mean = total_weight = None
    if fit_intercept:
        x_mean, total_weight = run_weighted_mean(clients, active, rotation, channel)

    def upload(c):
        if protocol == "fedsvd":
            return client_masked_system(
                *clients[c], rotation, x_mean, seeds[c], block_size
            )
        return client_r_system(*clients[c], rotation, x_mean)

    systems = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(upload)(c) for c in active
    )
    masked_model = server_solve_masked(
        [
            channel.up("masked_system", c, system)
            for c, system in zip(active, systems, strict=True)
        ],
        alpha,
    )
    received = channel.broadcast("masked_model", range(len(clients)), masked_model)
    return LinearModel(
        *client_unmask_model(received, rotation, x_mean, total_weight, alpha)
    )
