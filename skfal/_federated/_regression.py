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

import numpy as np
from joblib import Parallel, delayed

from skfal._federated._channel import Channel
from skfal._federated._leverage import client_shared_rotation
from skfal._federated._masks import apply_block_mask
from skfal._linalg import r_factor, solve_least_squares, weighted_least_squares

TRAININGS = ("global", "local")


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
def run_regression_protocol(
    clients,
    training,
    random_state,
    *,
    alpha=0.0,
    fit_intercept=True,
    protocol="qr",
    block_size=100,
    n_jobs=None,
    channel=None,
):
    """Simulate learning a linear model from each client's labeled rows.

    Parameters
    ----------
    clients : list of tuple (X_l, y_l, weights)
        Each client's labeled rows, their labels and importance weights
        (clients with no labeled row may be included; they sit out).
    training : {"global", "local"}
    random_state : numpy.random.RandomState
        Draws the clients' shared seed and private mask seeds.
    alpha : float, default=0.0
        Ridge penalty (the intercept is not penalised).
    fit_intercept : bool, default=True
    protocol : {"qr", "fedsvd"}, default="qr"
        Upload of ``"global"`` training: R factors or masked rows.
    block_size : int, default=100
        Rows per Haar block of the ``"fedsvd"`` row masks.
    n_jobs : int or None
        Clients' steps run in parallel threads (joblib).
    channel : Channel or None
        Where messages are counted (and recorded).

    Returns
    -------
    coef : ndarray of shape (n_features,)
    intercept : float
    channel : Channel
    """
    if training not in TRAININGS:
        raise ValueError(f"training must be one of {TRAININGS}, got {training!r}.")
    if protocol not in ("qr", "fedsvd"):
        raise ValueError(f"protocol must be 'qr' or 'fedsvd', got {protocol!r}.")
    channel = Channel() if channel is None else channel
    active = [c for c, (X_l, _, _) in enumerate(clients) if X_l.shape[0] > 0]
    parallel = Parallel(n_jobs=n_jobs, prefer="threads")
    shared_seed = int(random_state.randint(np.iinfo(np.int32).max))
    seeds = random_state.randint(np.iinfo(np.int32).max, size=len(clients))

    if training == "local":
        fits = parallel(
            delayed(client_local_model)(*clients[c], alpha, fit_intercept)
            for c in active
        )
        models, counts = [], []
        for c, (model_c, count_c) in zip(active, fits, strict=True):
            models.append(channel.up("local_model", c, model_c))
            counts.append(channel.up("local_model", c, count_c))
        model = server_fedavg(models, counts)
        for c in range(len(clients)):
            received = channel.down("global_model", c, model)
        return received[:-1], float(received[-1]), channel

    n_features = clients[active[0]][0].shape[1]
    rotation = client_shared_rotation(n_features + int(fit_intercept), shared_seed)
    x_mean, total_weight = None, None
    if fit_intercept:
        sums = [
            channel.up("weighted_sums", c, client_weighted_sums(X_l, w, rotation))
            for c, (X_l, _, w) in ((c, clients[c]) for c in active)
        ]
        total = server_sum(sums)
        for c in range(len(clients)):
            received = channel.down("weighted_sums", c, total)
        x_mean, total_weight = client_weighted_mean(received, rotation)

    if protocol == "fedsvd":
        systems = parallel(
            delayed(client_masked_system)(
                *clients[c], rotation, x_mean, seeds[c], block_size
            )
            for c in active
        )
    else:
        systems = parallel(
            delayed(client_r_system)(*clients[c], rotation, x_mean) for c in active
        )
    uploads = [
        channel.up("masked_system", c, system)
        for c, system in zip(active, systems, strict=True)
    ]
    masked_model = server_solve_masked(uploads, alpha)
    for c in range(len(clients)):
        received = channel.down("masked_model", c, masked_model)
    coef, intercept = client_unmask_model(
        received, rotation, x_mean, total_weight, alpha
    )
    return coef, intercept, channel
