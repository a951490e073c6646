"""Learning a least-squares model from the clients' labeled rows.

``"global"`` training (FALE, Algorithm 1, lines 14-19, with secure
aggregation): the server helps solve the importance-weighted least squares
over all clients' labeled rows, and sees neither a row, a label, nor a
client's contribution; it receives the model only if the clients release it
(and when a single client holds every labeled row, that model is the
client's own: :func:`_one_holder_training`'s warning). With
``S = diag(sqrt(w))`` the weights of client ``i``'s selected rows:

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
3. Secure stacked factors (:func:`~skfal._federated._secure.secure_stack`):
   the server receives only the exact sum of the clients' Gram matrices
   ``R_i^T R_i`` (masked integer digits), factors it and broadcasts the
   ``R``: a function of the equilibrated, rotated global Gram matrix alone.
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

from skfal._adaptive import (
    check_rows,
    choose_scale,
    combined_weights,
    hat_diagonal,
    leave_one_out,
    scale_fit,
    scale_floor,
    scale_models,
    scale_sums,
)
from skfal._federated._masks import client_shared_rotation
from skfal._federated._secure import (
    client_decode,
    key_agreement,
    secure_bounds,
    secure_stack,
    secure_sum,
    shared_generator,
)
from skfal._federated._selection import private_pivotal_selection
from skfal._federated._transport import (
    InProcessTransport,
    client_seeds,
    client_step,
    read_labels,
)
from skfal._linalg import (
    r_factor,
    solve_centered,
    solve_least_squares,
    weighted_least_squares,
)
from skfal._rows import dense_rows, matvec
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


def client_unrotated_r(r_units, r_bounds, rotation, scales, zero):
    """Step 4: an R factor of the weighted system ``S [1, X - x_bar, y]``
    (``S [X, y]`` without intercept) from the server's ``R`` (in units of
    ``2^E_m``, ``r_bounds`` the columns' fixed-point bounds), the clients'
    ``rotation``, the equilibration exponents ``scales`` of step 2 and the
    columns ``zero`` at every client (a constant feature, once centered:
    zero in the unrotated factor too, exactly)."""
    rotated = client_decode(r_units, r_bounds)
    unrotated = rotated @ rotation.T
    unrotated[:, zero] = 0.0  # not rounding noise from the other columns
    return np.ldexp(r_factor([unrotated], rotated.shape[1]), scales)


def client_solve(r, alpha, fit_intercept, x_mean):
    """Step 4: the model from the R factor of the weighted system
    (:func:`client_unrotated_r`); ``alpha`` the ridge penalty on the
    features (not on the constant column), ``x_mean`` the global weighted
    mean of the labeled rows (intercept only)."""
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
    """Step 3: an R factor of the secure stack's result (in the clients'
    unknown units)."""
    return r_factor([units], units.shape[1])


# What a client keeps (declared; tests/test_transport.py checks every fit's).
STATE = {
    "train_sums": "float64 (d + 1,): [sum w x, sum w] over its labeled rows",
    "train_residual": "float64 (d,): sum w (x - x_bar) over its labeled rows",
    "x_mean": "float64 (d,): the global weighted mean of the labeled rows",
    "total_weight": "float64 (1,): the global sum of the weights",
    "train_system": "float64 (m_i, d + 2): S [1, X - x_bar, y] of its rows",
    "train_scales": "int64 (d + 2,): the common column scales",
    "train_factor": "float64 (h_i, d + 2): R of its rotated system",
    "train_id": "int64 (1,): the server's public id of the last training",
    "local_share": "float64 (d + 2,): n_i [coef_i, intercept_i, 1]",
    "train_r": "float64 (d + 2, d + 2): R of the global weighted system",
    "scale_sums_small": "float64 (p, p + 1): the scale model's normal equations",
    "scale_sums_features": "float64 (p, p + 1): the same on the features",
    "scale_check": "float64 (k, 6): the candidates' held-out check sums",
    "scale_choice": "float64 (2,): the chosen model's correlation, used",
    "pilot_indices": "int64 (m_i,): its pilot rows (adaptive design)",
    "pilot_weights": "float64 (m_i,): their pilot weights",
    "model_coef": "float64 (d,): the model it learned",
    "model_intercept": "float64 (1,): the model's intercept",
    "selection_labels": "float64 (m_i,): the labels read at its selection",
    "medoid_labels": "float64 (m_i,): the labels read at its medoids",
}


# ------------------------------------------------------- client steps by name
def _labeled_rows(state, config):
    """The client's rows to train on and their weights, as a message gave
    them: ``config["rows"]`` (default ``"selection"``) names the kept
    ``<rows>_indices`` and ``<rows>_weights`` (the selection; the medoids of
    sensitivity sampling). With ``config["scaled"]`` the rows are read in
    the units of the kept ``"row_exponent"`` ``x`` (``X / 2**x``)."""
    rows = config.get("rows", "selection")
    indices = np.asarray(state[rows + "_indices"], dtype=np.int64)
    X_l = dense_rows(state["X"], indices)
    if config.get("scaled"):
        X_l = np.ldexp(X_l, -int(state["row_exponent"][0]))
    return X_l, np.asarray(state[rows + "_weights"], dtype=np.float64)


def _labels(state, config):
    """The labels of the client's rows to train on, read once (and kept)."""
    rows = config.get("rows", "selection")
    if rows + "_labels" not in state:
        state[rows + "_labels"] = read_labels(state, state[rows + "_indices"])
    return state[rows + "_labels"]


def _training_rotation(state, n_columns, training):
    """The clients' shared Haar rotation of one training's system: its own
    draw of the group secret (not the leverage protocol's ``Q``), fresh for
    each training (``training``: the server's public id of it), so the R
    factors of two trainings over one federation are not under one
    rotation."""
    purpose = f"training rotation {n_columns} {int(training)}"
    return client_shared_rotation(
        n_columns, shared_generator(state["group_secret"], purpose)
    )


def _released(state, coef, intercept):
    """Keep the model; reply it when the client releases it (the default)."""
    state["model_coef"] = np.asarray(coef, dtype=np.float64)
    state["model_intercept"] = np.array([float(intercept)])
    if not bool(np.asarray(state.get("release_model", True))):
        return ()
    return (np.append(coef, intercept),)


def _magnitudes(values):
    """Per column, the largest absolute entry (a secure sum's bound)."""
    values = np.asarray(values, dtype=np.float64)
    return np.abs(values.reshape(-1, values.shape[-1])).max(axis=0, initial=0.0)


@client_step("train_sums")
def step_train_sums(state, config):
    """Global training, 1: keep ``[sum w x, sum w]`` over the labeled rows."""
    X_l, weights = _labeled_rows(state, config)
    sums = client_weighted_sums(X_l, weights)
    state["train_sums"], state["train_sums_magnitudes"] = sums, _magnitudes(sums)


@client_step("train_residual")
def step_train_residual(state, config, units):
    """Global training, 1 (second round): decode the mean, keep the residual
    sums ``sum w (x - x_bar)``."""
    x_mean, total = client_weighted_mean(
        client_decode(units, state["train_sums_bounds"])
    )
    state["x_mean"], state["total_weight"] = x_mean, np.array([total])
    X_l, weights = _labeled_rows(state, config)
    residual = client_residual_sums(X_l, weights, x_mean)
    state["train_residual"] = residual
    state["train_residual_magnitudes"] = _magnitudes(residual)


@client_step("train_system")
def step_train_system(state, config, *units):
    """Global training, 2: the corrected mean (with an intercept), then keep
    the system ``S [1, X - x_bar, y]`` (labels read here) and its column
    magnitudes for the common scales."""
    x_mean = None
    if config["intercept"]:
        residual = client_decode(units[0], state["train_residual_bounds"])
        x_mean = state["x_mean"] + residual / state["total_weight"][0]
        state["x_mean"] = x_mean
    X_l, weights = _labeled_rows(state, config)
    system = client_system(X_l, _labels(state, config), weights, x_mean)
    state["train_system"] = system
    state["train_system_magnitudes"] = client_column_magnitudes(system)


@client_step("train_factor")
def step_train_factor(state, config):
    """Global training, 2 (end): keep the R factor of the equilibrated,
    rotated system."""
    system = state["train_system"]
    state["train_id"] = np.array([config["training"]], dtype=np.int64)
    rotation = _training_rotation(state, system.shape[1], config["training"])
    state["train_factor"] = client_rotated_factor(
        system, state["train_scales"], rotation
    )


@client_step("train_solve")
def step_train_solve(state, config, r_units):
    """Global training, 4: the model from the broadcast ``R``; kept, and
    replied when the client releases it."""
    scales = state["train_scales"]
    rotation = _training_rotation(state, scales.shape[0], config["training"])
    x_mean = state["x_mean"] if config["intercept"] else None
    r = client_unrotated_r(
        r_units, state["share_bounds"], rotation, scales, state["train_scales_zero"]
    )
    state["train_r"] = r
    coef, intercept = client_solve(r, config["alpha"], config["intercept"], x_mean)
    return _released(state, coef, intercept)


@client_step("solo_model")
def step_solo_model(state, config):
    """The one client holding labeled rows fits the model on them alone;
    kept, and replied when the client releases it."""
    X_l, weights = _labeled_rows(state, config)
    coef, intercept = weighted_least_squares(
        X_l, _labels(state, config), weights, config["alpha"], config["intercept"]
    )
    return _released(state, coef, intercept)


@client_step("local_share")
def step_local_share(state, config):
    """FALE-local, 1: keep ``n_i [coef_i, intercept_i, 1]`` of the client's own
    weighted fit (labels read here)."""
    X_l, weights = _labeled_rows(state, config)
    share = client_local_share(
        X_l, _labels(state, config), weights, config["alpha"], config["intercept"]
    )
    state["local_share"], state["local_share_magnitudes"] = share, _magnitudes(share)


@client_step("local_solve")
def step_local_solve(state, config, units):
    """FALE-local, 2: the FedAvg model from the summed shares; kept, and
    replied when the client releases it."""
    model = client_fedavg(client_decode(units, state["local_share_bounds"]))
    return _released(state, model.coef, model.intercept)


# ------------------------------------------- the adaptive design's pilot steps
_SCALE_SUMS = ("scale_sums_small", "scale_sums_features")


def _pilot_sizes(state, config):
    """The client's pilot rows with a held-out residual, and its size
    ``|e_i / (1 - h_ii)|``: ``h_ii`` from the global R it kept in the
    training (:func:`skfal._adaptive.hat_diagonal`), nothing sent."""
    X_l, weights = _labeled_rows(state, config)
    residuals = _labels(state, config) - (
        X_l @ state["model_coef"] + state["model_intercept"][0]
    )
    r = state["train_r"][:-1, :-1]  # the design's columns, labels left out
    design = X_l
    if config["intercept"]:
        design = np.hstack([np.ones((X_l.shape[0], 1)), X_l - state["x_mean"]])
    sizes = np.abs(leave_one_out(residuals, hat_diagonal(design, weights, r)))
    known = np.isfinite(sizes)
    return np.asarray(state["selection_indices"])[known], sizes[known]


def _scale_models(state, config):
    """The candidate scale models at the client's rows, their pilot
    features and the sizes."""
    pilot, sizes = _pilot_sizes(state, config)
    X = state["X"]
    fitted = matvec(X, state["model_coef"]) + state["model_intercept"][0]
    models = scale_models(X, fitted, state["scores"], pilot, config["features"])
    return models, sizes


@client_step("scale_sums")
def step_scale_sums(state, config):
    """Adaptive design, 1: keep each candidate scale model's normal
    equations over all its pilot rows (:func:`skfal._adaptive.scale_sums`)."""
    models, sizes = _scale_models(state, config)
    for name, model in zip(_SCALE_SUMS, models, strict=False):
        sums = scale_sums(model.pilot_features, sizes)
        state[name], state[name + "_magnitudes"] = sums, _magnitudes(sums)


def _decoded_sums(state, units):
    return [
        client_decode(u, state[name + "_bounds"])
        for name, u in zip(_SCALE_SUMS, units, strict=False)
    ]


@client_step("scale_check")
def step_scale_check(state, config, *units):
    """Adaptive design, 2: from the summed normal equations, each
    candidate's leave-one-out predictions at its own pilot rows (in closed
    form); keep their check sums (:func:`skfal._adaptive.check_rows`)."""
    models, sizes = _scale_models(state, config)
    sums = _decoded_sums(state, units)
    checks = [
        check_rows(m.pilot_features, sizes, total)
        for m, total in zip(models, sums, strict=False)
    ]
    state["scale_check"] = np.array(checks)
    state["scale_check_magnitudes"] = _magnitudes(state["scale_check"])


@client_step("scale_scores")
def step_scale_scores(state, config, check_units, *units):
    """Adaptive design, 3: choose the scale model (every client decides
    alike, from the same sums), score its rows by leverage times predicted
    scale (kept as ``"scores"``, with its rows left ``"eligible"``), and
    keep its pilot selection aside for the combination."""
    checks = client_decode(check_units, state["scale_check_bounds"])
    best, rho = choose_scale(list(checks))
    X = state["X"]
    fitted = matvec(X, state["model_coef"]) + state["model_intercept"][0]
    pilot = np.asarray(state.pop("selection_indices"), dtype=np.int64)
    if best is not None:
        model = scale_models(X, fitted, state["scores"], pilot, config["features"])
        total = _decoded_sums(state, units)[best]
        scale = model[best].predict(scale_fit(total)[0])
        state["scores"] = state["scores"] * np.maximum(scale, scale_floor(total))
    eligible = np.ones(X.shape[0], dtype=bool)
    eligible[pilot] = False
    state["eligible"] = eligible
    state["pilot_indices"] = pilot
    state["pilot_weights"] = np.asarray(state.pop("selection_weights"))
    state.pop("selection_labels", None)
    state["scale_choice"] = np.array([rho, float(best is not None)])


@client_step("combine_rounds")
def step_combine_rounds(state, config):
    """Adaptive design, 5: its pilot and second-round rows with the combined
    weights (:func:`skfal._adaptive.combined_weights`), as its selection."""
    pilot_w, second_w = combined_weights(
        state["pilot_weights"],
        state["selection_weights"],
        config["n_pilot"],
        config["n_selected"],
    )
    rows = np.concatenate([state["pilot_indices"], state["selection_indices"]])
    weights = np.concatenate([pilot_w, second_w])
    order = np.argsort(rows, kind="stable")
    state["selection_indices"] = rows[order]
    state["selection_weights"] = weights[order]
    state.pop("eligible")


def adaptive_second_round(
    transport,
    pilot,
    random_state,
    *,
    n_selected,
    features,
    fit_intercept,
    uniform_mix,
    max_depth,
    counts,
):
    """The server's side of the adaptive design's second round.

    Every client kept its pilot selection, its rows' leverage
    (``"scores"``), the pilot model and the R factor of
    :func:`global_training` on the pilot. By secure sums (in units only
    the clients read; the server relays them):

    1. each candidate residual-scale model's normal equations over all
       the pilot's held-out residual sizes (each client computes its pilot
       rows' sizes from the global R: no row or size leaves it); no sum
       over a subset of a client's rows, so a client that decodes a sum
       and subtracts its own part learns the other clients' totals only;
    2. the candidates' leave-one-out check sums (each client computes its
       pilot rows' held-out predictions in closed form); every client then
       chooses the same model, scores its own rows by leverage times
       predicted scale, and keeps the scores;
    3. :func:`~skfal._federated._selection.private_pivotal_selection` of
       the rest of the budget among the rows the pilot left: the server
       sees no score;
    4. each client combines its two rounds' weights itself.

    Parameters
    ----------
    transport : Transport
    pilot : ndarray of int64
        The pilot's rows (federation order; the server chose them).
    random_state : numpy.random.RandomState
    n_selected : int
        The whole budget.
    features : bool
        Whether the features are a candidate scale model
        (:func:`skfal._adaptive.with_features`).
    fit_intercept : bool
    uniform_mix : float
    max_depth : int
    counts : dict of int to int

    Returns
    -------
    indices : ndarray of int64
        Sorted rows of both rounds. Each client keeps its own with the
        combined weights (``"selection_indices"``, ``"selection_weights"``).
    """
    everyone = list(transport.clients)
    local, _ = transport.split(pilot, counts)
    active = [c for c in everyone if local[c].shape[0] > 0]
    headroom = int(np.ceil(np.log2(max(len(active), 1))))
    config = {"intercept": bool(fit_intercept), "features": bool(features)}
    transport.tell("scale_sums", "scale_model", config=config, clients=active)
    names = _SCALE_SUMS[: 1 + int(features)]
    units = tuple(
        secure_sum(
            transport,
            active,
            "scale_model",
            name,
            name + "_magnitudes",
            headroom,
            everyone,
        )
        for name in names
    )
    transport.tell(
        "scale_check", "scale_model", broadcast=units, config=config, clients=active
    )
    check = secure_sum(
        transport,
        active,
        "scale_model",
        "scale_check",
        "scale_check_magnitudes",
        headroom,
        everyone,
    )
    transport.tell(
        "scale_scores", "scale_model", broadcast=(check, *units), config=config
    )
    n_pilot = pilot.shape[0]
    second = private_pivotal_selection(
        transport,
        n_selected - n_pilot,
        random_state,
        uniform_mix=uniform_mix,
        max_depth=max_depth,
        counts=counts,
        purpose="adaptive second round",
    )
    transport.tell(
        "combine_rounds",
        "pivotal",
        config={"n_pilot": int(n_pilot), "n_selected": int(n_selected)},
    )
    transport.flush()
    return np.sort(np.concatenate([pilot, second]))


# ---------------------------------------------------------- server's drivers
class TrainingResult(NamedTuple):
    """What the server holds after training.

    ``model`` is the released model (``None`` when no client releases it);
    ``masked`` the server's own view: the R factor it broadcast
    (``"global"``) or the sum of the shares (``"local"``), in units it does
    not know (``None`` when one client alone held labeled rows and released
    the model); ``released_by`` the clients that sent the model.
    """

    model: LinearModel | None
    masked: np.ndarray
    released_by: tuple


def _server_model(replies, masked):
    """The clients' released models: one model, which they all agree on."""
    released = {c: reply[0] for c, reply in replies.items() if reply}
    if not released:
        return TrainingResult(None, masked, ())
    first = next(iter(released.values()))
    if any(
        not np.array_equal(model, first, equal_nan=True) for model in released.values()
    ):
        raise ValueError(
            "The clients released different models: they did not all receive "
            "the same messages or seeds (check every node's federation-seed)."
        )
    model = LinearModel(first[:-1].copy(), float(first[-1]))
    return TrainingResult(model, masked, tuple(sorted(released)))


def _one_holder_training(transport, holder, n_rows, config):
    """Training when a single client of several holds labeled rows.

    There is no sum to hide its part in: it fits the model on its own rows
    and releases it; the server passes the model to the other clients. The
    server learns the model, as it does whenever the clients release it,
    and that it comes from this client's rows alone; nothing else (no
    factor, no mean, no label) leaves the client.
    """
    gives_away = (
        " A model fitted on one row gives that row's label away." if n_rows < 2 else ""
    )
    warnings.warn(
        f"Only client {holder} holds labeled rows ({n_rows} of them): there is "
        "no secure sum to hide its part in, so it fits the model alone and the "
        "server passes that model to the other clients (the server learns "
        f"the model, and that it comes from that client's rows).{gives_away} "
        "Raise the budget so that several clients hold labeled rows.",
        UserWarning,
        stacklevel=5,
    )
    replies = transport.ask(
        "solo_model",
        "model_release",
        config=config,
        clients=[holder],
    )
    if not replies[holder]:
        raise ValueError(
            f"Only client {holder} holds labeled rows and it keeps its model "
            "(release_model=False): the other clients cannot learn the model "
            "without the server seeing it. Raise the budget so that several "
            "clients hold labeled rows."
        )
    model = replies[holder][0]
    others = [c for c in transport.clients if c != holder]
    transport.tell(
        "keep",
        "global_model",
        broadcast=(model[:-1].copy(), model[-1:].copy()),
        config={"keys": ["model_coef", "model_intercept"]},
        clients=others,
    )
    return _server_model(replies, None)


def global_training(
    transport,
    labeled,
    *,
    n_features,
    alpha=0.0,
    fit_intercept=True,
    rows="selection",
    scaled=False,
):
    """The server's side of ``"global"`` training (module docstring).

    Parameters
    ----------
    transport : Transport
        Every client kept its selection (``"selection_indices"``,
        ``"selection_weights"``) and can read its labels there.
    labeled : dict of int to int
        Each client's number of selected rows (the server chose them).
    n_features : int
    alpha : float, default=0.0
    fit_intercept : bool, default=True
    rows : str, default="selection"
        The rows the clients train on (kept ``<rows>_indices`` and
        ``<rows>_weights``).
    scaled : bool, default=False
        Train on the rows divided by ``2**x``, ``x`` the kept
        ``"row_exponent"`` (sensitivity sampling's working units).

    Returns
    -------
    result : TrainingResult
        Every client holds the model (``"model_coef"``,
        ``"model_intercept"``).
    """
    everyone = list(transport.clients)
    active = [c for c in everyone if labeled[c] >= 1]
    n_columns = n_features + int(fit_intercept) + 1
    config = {"intercept": bool(fit_intercept), "rows": rows, "scaled": scaled}
    if len(everyone) > 1 and len(active) == 1:
        solo = {**config, "alpha": float(alpha)}
        return _one_holder_training(transport, active[0], labeled[active[0]], solo)
    key_agreement(transport)
    headroom = int(np.ceil(np.log2(max(len(active), 1))))
    units = ()
    if fit_intercept:
        transport.tell("train_sums", "weighted_sums", config=config, clients=active)
        total = secure_sum(
            transport,
            active,
            "weighted_sums",
            "train_sums",
            "train_sums_magnitudes",
            headroom,
            everyone,
        )
        transport.tell(
            "train_residual", "weighted_sums", broadcast=(total,), config=config
        )
        residual = secure_sum(
            transport,
            active,
            "weighted_sums",
            "train_residual",
            "train_residual_magnitudes",
            headroom,
            everyone,
        )
        units = (residual,)
    transport.tell("train_system", "weighted_sums", broadcast=units, config=config)
    secure_bounds(
        transport,
        active,
        "scales",
        "train_system_magnitudes",
        0,
        "train_scales",
        everyone,
    )
    # A public id of this training, its number over this transport: its
    # rotation is drawn for it alone (the group secret, fresh in every fit,
    # makes the rotations of two fits differ; a federation of one, whose
    # secret is fixed, stays reproducible bit for bit).
    training = {"training": int(getattr(transport, "trainings", 0))}
    transport.trainings = training["training"] + 1
    transport.tell("train_factor", "scales", config=training, clients=active)
    heights = {c: np.array([min(labeled[c], n_columns)]) for c in everyone}
    units = secure_stack(transport, heights, "masked_system", "train_factor", everyone)
    masked = server_factor(units)
    replies = transport.ask(
        "train_solve",
        "masked_model",
        broadcast=(masked,),
        config={**config, **training, "alpha": float(alpha)},
        reply_phase="model_release",
    )
    return _server_model(replies, masked)


def local_training(transport, labeled, *, alpha=0.0, fit_intercept=True):
    """The server's side of FALE-local (module docstring).

    Clients with fewer than :data:`MIN_LOCAL_ROWS` labeled rows sit out with
    a warning, but still receive the summed shares and the bounds to decode
    them (by messages), so every client holds the FedAvg model.

    Parameters
    ----------
    transport : Transport
    labeled : dict of int to int
        Each client's number of selected rows (the server chose them).
    alpha : float, default=0.0
    fit_intercept : bool, default=True

    Returns
    -------
    result : TrainingResult
    """
    everyone = list(transport.clients)
    active = [c for c in everyone if labeled[c] >= MIN_LOCAL_ROWS]
    few = [c for c in everyone if 1 <= labeled[c] < MIN_LOCAL_ROWS]
    if few:
        warnings.warn(
            f"{len(few)} client(s) hold fewer than {MIN_LOCAL_ROWS} labeled rows "
            f"(clients {few}) and sit out FALE-local training: a model fitted on "
            "one row gives that row's label away. Raise the budget, or use "
            "training='global'.",
            UserWarning,
            stacklevel=4,
        )
    if not active:
        raise ValueError(
            f"FALE-local averages the local models of clients with at least "
            f"{MIN_LOCAL_ROWS} labeled rows, and none has that many (labeled "
            f"rows per client: {[labeled[c] for c in everyone]}). Raise the "
            "budget, or use training='global'."
        )
    config = {"intercept": bool(fit_intercept), "alpha": float(alpha)}
    if len(everyone) > 1 and len(active) == 1:
        # FedAvg of one local model is that model.
        return _one_holder_training(transport, active[0], labeled[active[0]], config)
    key_agreement(transport)
    transport.tell("local_share", "local_model", config=config, clients=active)
    headroom = int(np.ceil(np.log2(max(len(active), 1))))
    units = secure_sum(
        transport,
        active,
        "local_model",
        "local_share",
        "local_share_magnitudes",
        headroom,
        everyone,
    )
    replies = transport.ask(
        "local_solve",
        "global_model",
        broadcast=(units,),
        config=config,
        reply_phase="model_release",
    )
    return _server_model(replies, units)


# ------------------------------------------------------------ the simulation
def _simulate(driver, clients, random_state, channel, n_jobs, **kwargs):
    """Run a training driver on clients holding ``(X_l, y_l, weights)``.

    Each client's state holds its labeled rows as its rows (all selected),
    their labels and weights; its seeds derive from a federation seed drawn
    from ``random_state``; the clients agree on fresh keys.
    """
    seed = draw_seed(random_state)
    states = [
        {
            "X": np.asarray(X_l, dtype=np.float64),
            "labels": np.asarray(y_l, dtype=np.float64),
            "selection_indices": np.arange(X_l.shape[0]),
            "selection_weights": np.asarray(w, dtype=np.float64),
            "client": c,
            **client_seeds(seed, c),
        }
        for c, (X_l, y_l, w) in enumerate(clients)
    ]
    transport = InProcessTransport(states, channel, n_jobs=n_jobs)
    labeled = {c: int(X_l.shape[0]) for c, (X_l, _, _) in enumerate(clients)}
    return driver(transport, labeled, **kwargs).model


def run_local_training(
    clients, random_state, channel, *, alpha=0.0, fit_intercept=True, n_jobs=None
):
    """Simulate FALE-local: local weighted fits, averaged by secure aggregation.

    Runs :func:`local_training` over an in-process transport. Clients with
    fewer than :data:`MIN_LOCAL_ROWS` labeled rows sit out with a warning: a
    model fitted on one row is a function of that row and its label alone
    (``(0, ..., 0, y_j)`` with an intercept), which the average of two
    clients would give away to the other one.

    Parameters
    ----------
    clients : list of tuple (X_l, y_l, weights)
        Each client's labeled rows, their labels and importance weights.
    random_state : numpy.random.RandomState
        Draws the federation's seed (the clients' sampling seeds; keys and
        masks come from OS randomness, fresh in every run).
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
    return _simulate(
        local_training,
        clients,
        random_state,
        channel,
        n_jobs,
        alpha=alpha,
        fit_intercept=fit_intercept,
    )


def run_global_training(
    clients, random_state, channel, *, alpha=0.0, fit_intercept=True, n_jobs=None
):
    """Simulate FALE's global training under secure aggregation (module docstring).

    Runs :func:`global_training` over an in-process transport.

    Parameters
    ----------
    clients : list of tuple (X_l, y_l, weights)
        Each client's labeled rows, their labels and importance weights
        (clients with no labeled row may be included; they sit out).
    random_state : numpy.random.RandomState
        Draws the federation's seed (the clients' sampling seeds; keys and
        masks come from OS randomness, fresh in every run).
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
    return _simulate(
        global_training,
        clients,
        random_state,
        channel,
        n_jobs,
        n_features=clients[0][0].shape[1],
        alpha=alpha,
        fit_intercept=fit_intercept,
    )
