"""The error estimate of a federated least-squares model, by secure sums.

:func:`skfal.estimate_error` needs only sums over the bought rows: for each
row, its loss under the fitted model and under models trained without it
(cross-fitting, the learning curve, nested cross-validation), weighted by
the design. :func:`row_sums` turns a set of rows into that vector of sums
(the centralized estimate calls it once, on every bought row; a federated
client calls it on its own), and :func:`from_sums` turns the vector into
the estimate, its variance and the learning curve. Sums add, so the
server of a federation adds the clients' vectors by the secure sum of
:mod:`skfal._federated._secure`, its total padded so that the server
cannot read it; the clients decode the total and reply only
:func:`from_sums`'s outputs. The server's driver :func:`federated_error`,
in the order the messages flow:

0. server: the folds (it chose the bought rows, so it deals them into
   folds, exactly as the centralized estimate does from the same seed) and
   the fitted model (the clients released it); each client keeps the folds
   of its bought rows and the model (phase ``"error_folds"``) and stops
   releasing the models it learns, for the length of the protocol;
1. for every model of the plan (a fold's model, a learning-curve point's, a
   nested fold's): the server names each client's bought rows to train on
   (phase ``"error_rows"``); the clients train it by the secure-sum least
   squares of :func:`skfal._federated.global_training` and keep it, unreleased;
   the server names each client's rows to score (phase ``"error_score"``),
   and the client keeps the loss of each there;
2. each client computes its vector of sums (:func:`row_sums`) and the
   server adds the vectors by a secure sum (phase ``"error_sums"``) whose
   total the first client pads with words all clients draw from their group
   secret (:func:`step_error_padded_words`); the clients remove the pad,
   decode the total, compute the estimate from it
   (:func:`from_sums`) and reply only that (phase ``"error_total"``,
   :data:`OUTPUTS`), and resume releasing models.

What the server receives: the key agreement's public keys, masked words of
the training's secure sums and of the error sums, the exponent marks of the
secure maxima, the padded total of the error sums (uniform words),
and the outputs (every client's reply is
the same): the estimate, the in-sample error, the learning curve's points
and their variances, the gain's variance, the nested excess (a mean over
every nested fold) and the number of labels. It never sees a loss, a label,
a row, a fold's model, a client's sums or, decoded, the total, whose
nested part holds per-fold sums. Each client receives the folds of its own
bought rows, the fitted model, which of its rows to train on and to score,
the training's broadcasts (the R factor of each model's weighted Gram
matrix of ``[1, x, y]``) and the total: decoded, the per-fold sums
``[sum w, sum w v, sum w^2, sum w^2 v, sum w^2 v^2, n]`` over every
client's rows of each (nested repeat, fold). Subtracting its own rows, a
client gets these over the other clients' rows of a fold, and the
difference of two models' Gram matrices over the rows of a set less
another: with one other client's row there, that row's weight, held-out
loss, features and label. So the server deals whole groups of bought rows
(``plan.atoms``, each holding ``min_other_rows`` rows of the other clients
for every client) into the folds, every training set and scored set is a
union of groups, and :func:`check_private_plan` refuses any other plan
before the first message: every sum a client learns of the others' rows
covers at least ``min_other_rows`` of them (see :doc:`/threat_model`).
"""

import numpy as np

from skfal._federated._regression import global_training
from skfal._federated._secure import (
    _finite,
    _masked,
    client_decode,
    client_encode,
    decode_units,
    masked_round,
    relay_partner_keys,
    secure_bounds,
    shared_words,
)
from skfal._federated._transport import client_step, read_labels
from skfal._rows import dense_rows

# Losses of a prediction: what a client computes for a linear model.
PREDICTION_LOSSES = {
    "squared_error": lambda prediction, y: (prediction - y) ** 2,
    "neg_mean_squared_error": lambda prediction, y: -((prediction - y) ** 2),
    "absolute_error": lambda prediction, y: np.abs(prediction - y),
    "neg_mean_absolute_error": lambda prediction, y: -np.abs(prediction - y),
}


# --------------------------------------------------------------- variances
def scaled_points(X_rows):
    """Rows as numbers scaled to unit variance, for neighbours."""
    import scipy.sparse as sp

    if sp.issparse(X_rows):
        X_rows = X_rows.toarray()
    try:
        points = np.asarray(X_rows, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "variance='local' finds neighbours among the bought rows, so X "
            "must be numeric; pass variance='hajek' for a table with text "
            f"columns ({exc})."
        ) from exc
    scale = points.std(axis=0)
    return points / np.where(scale > 0, scale, 1.0)


def neighbourhoods(points, n_neighbors=3):
    """Each sampled row and its ``n_neighbors`` nearest sampled rows.

    Returns ``neighbourhood`` of shape ``(n, k)``: row ``r``'s neighbourhood
    (indices into ``points``), itself first; ``k`` is ``n_neighbors + 1``
    or the number of rows, whichever is smaller.
    """
    from scipy.spatial import cKDTree

    k = min(n_neighbors + 1, points.shape[0])
    _, neighbours = cKDTree(points).query(points, k=k)
    return np.asarray(neighbours).reshape(points.shape[0], k)


def local_variance(values, weights, neighbourhood):
    """Grafström and Schelin's local-mean variance of a Horvitz-Thompson total.

    ``sum_i k / (k - 1) (w_i v_i - m_i)^2``, where ``m_i`` is the mean of
    ``w_j v_j`` over the neighbourhood of row ``i`` (from
    :func:`neighbourhoods`: itself and its nearest sampled rows; ``k`` its
    size). A spatially balanced sample has no usable joint inclusion
    probabilities; a row and its neighbours are close to a stratum of a few
    rows, whose variance this is.
    """
    z = values * weights
    k = neighbourhood.shape[1]
    local_mean = z[neighbourhood].mean(axis=1)
    return k / (k - 1) * float(((z - local_mean) ** 2).sum())


def hajek_sums(values, weights):
    """``[sum c z^2, sum c z, sum c]``, ``z = w v``, ``c = 1 - min(1, 1 / w)``:
    the sums Hájek's variance (:func:`hajek_variance`) needs."""
    z = values * weights
    c = 1.0 - np.minimum(1.0, 1.0 / weights)
    return np.array([c @ z**2, c @ z, c.sum()])


def hajek_from_sums(sums, n):
    """Hájek's variance from :func:`hajek_sums` over ``n`` rows."""
    czz, cz, c = sums
    if c <= 0:  # a census: no sampling variance
        return 0.0
    return n / (n - 1) * max(float(czz - cz**2 / c), 0.0)


def hajek_variance(values, weights):
    """Hájek's approximation to the variance of a Horvitz-Thompson total.

    ``n / (n - 1) sum_i (1 - pi_i) (w_i v_i - G)^2`` with ``pi_i =
    min(1, 1 / w_i)`` and ``G`` the ``(1 - pi)``-weighted mean of ``w v``: the
    variance of a high-entropy design (conditional Poisson, simple random
    sampling, and close to that for i.i.d. draws) from first-order
    probabilities alone.
    """
    return hajek_from_sums(hajek_sums(values, weights), len(values))


def weighted_moments(values, weights):
    """``[sum w, sum w v, sum w^2, sum w^2 v, sum w^2 v^2, n]``: what a
    weighted mean and its variance need (:func:`mean_and_variance`)."""
    w2 = weights**2
    return np.array(
        [
            weights.sum(),
            weights @ values,
            w2.sum(),
            w2 @ values,
            w2 @ values**2,
            values.size,
        ]
    )


def mean_and_variance(moments):
    """A weighted mean and its variance as if the rows were independent,
    from :func:`weighted_moments`."""
    w, wv, w2, w2v, w2vv, n = moments
    mean = wv / w
    spread = max(w2vv - 2 * mean * w2v + mean**2 * w2, 0.0) / w**2
    return float(mean), float(spread * n / max(n - 1, 1))


# ----------------------------------------------------- what a client learns
def others_per_atom(atoms, owner, n_clients):
    """``(A, C)``: for each group of bought rows (``atoms``, ``(n,)``) and
    each client (``owner``, ``(n,)``), the group's bought rows of the other
    clients."""
    counts = np.zeros((int(atoms.max()) + 1, n_clients), dtype=np.int64)
    np.add.at(counts, (atoms, owner), 1)
    return counts.sum(axis=1, keepdims=True) - counts


def check_private_plan(plan, owner, n_clients, min_other_rows):
    """Refuse a plan that would let a client learn a sum over fewer than
    ``min_other_rows`` bought rows of the other clients.

    A client learns, of the other clients' bought rows, the weighted Gram
    matrix of ``[1, x, y]`` over each model's training rows (the R factor
    global training broadcasts) and the moments of the held-out losses of
    each fold (the decoded total): sums over the rows of a training set or
    a fold, and by differences over the rows of a set less another. Every
    such set is a union of the plan's groups (``plan.atoms``) when every
    fold, training set and scored set is; so the guarantee holds when
    every group holds ``min_other_rows`` rows of the others for every
    client.
    """
    if n_clients == 1:  # no other client to learn about
        return
    atoms = plan.atoms
    few = others_per_atom(atoms, owner, n_clients).min()
    if few < min_other_rows:
        raise ValueError(
            f"A group of the error estimate's folds holds {few} bought rows of "
            f"the other clients for some client, fewer than min_other_rows="
            f"{min_other_rows}: that client would read their sums. Build the "
            "folds with skfal._error._client_atoms."
        )
    sizes = np.bincount(atoms)
    for fold in plan.folds:
        of_group = np.empty(sizes.size, dtype=fold.dtype)
        of_group[atoms] = fold
        if np.any(of_group[atoms] != fold):
            raise ValueError("A fold of the error estimate splits a group of rows.")
    for model in plan.models:
        for rows in (model.train, model.score):
            taken = np.bincount(atoms[rows], minlength=sizes.size)
            if np.any((taken != 0) & (taken != sizes)):
                raise ValueError(
                    "A model of the error estimate trains on, or scores, part "
                    "of a group of rows."
                )


# ---------------------------------------------------------------- the sums
def sums_size(n_fractions, repeats, n_folds):
    """Length of :func:`row_sums`'s vector."""
    n_vectors = n_fractions + 1  # the curve's points and the gain
    return 3 + n_fractions + 3 * n_vectors + 1 + 12 * repeats * n_folds


def row_sums(rows, *, variance, n_neighbors, sign, n_folds):
    """The vector of sums over a set of bought rows (all, or one client's).

    ``rows`` holds, for those rows: ``own`` (the fitted model's value),
    ``curve`` (``(F, m)``, held out, one row per training fraction; the last
    is all of the other folds), ``weights``, ``points`` (for the local
    variance, else ``None``), and for nested cross-validation ``folds``
    (``(R, m)``: each repeat's fold), ``outer`` (``(R, m)``: the value under
    the model trained without the row's fold) and ``pair`` (``(R, m, K)``:
    under the model trained without the row's fold and fold ``k``).
    """
    own, curve, weights = rows["own"], rows["curve"], rows["weights"]
    vectors = [*curve, sign * (curve[-1] - curve[0])]
    if variance == "local":
        if own.size < 2:
            raise ValueError(
                "variance='local' compares each bought row with its neighbours "
                "among the bought rows of the same client, and a client holds "
                "only one: pass variance='hajek'."
            )
        near = neighbourhoods(rows["points"], n_neighbors)
        spread = [[local_variance(v, weights, near), 0.0, 0.0] for v in vectors]
    else:
        spread = [hajek_sums(v, weights) for v in vectors]
    nested = []
    for folds, outer, pair in zip(
        rows["folds"], rows["outer"], rows["pair"], strict=True
    ):
        for k in range(n_folds):
            at, other = folds == k, folds != k
            nested.append(weighted_moments(outer[at], weights[at]))
            nested.append(weighted_moments(pair[other, k], weights[other]))
    return np.concatenate(
        [
            [own.sum(), weights @ own, curve[-1].sum()],
            curve @ weights,
            np.ravel(spread),
            [own.size],
            np.ravel(nested),
        ]
    )


def from_sums(sums, *, n_fractions, repeats, n_folds, variance, n_samples):
    """The estimate, its variances and the learning curve from the sums.

    Returns a dict: ``estimate``, ``in_sample``, ``curve`` (the points'
    estimates), ``curve_variance`` (their design variances),
    ``gain`` and ``gain_variance`` (of the paired difference between the
    last and first points, in the "better" direction), ``design_variance``
    and ``nested_excess`` (see :func:`skfal.estimate_error`).
    """
    own_sum, own_weighted, held_sum = sums[:3]
    at = 3 + n_fractions
    curve = sums[3:at] / n_samples
    spread = sums[at : at + 3 * (n_fractions + 1)].reshape(-1, 3)
    n = int(round(sums[at + 3 * (n_fractions + 1)]))
    nested = sums[at + 3 * (n_fractions + 1) + 1 :].reshape(-1, 2, 6)
    if variance == "local":
        totals = spread[:, 0]
    else:
        totals = np.array([hajek_from_sums(s, n) for s in spread])
    totals = totals / n_samples**2
    terms = []
    for outer, inner in nested:
        m_out, b = mean_and_variance(outer)
        m_in, c = mean_and_variance(inner)
        # Bates et al.'s (a - b), less c (see skfal._error._nested_excess).
        terms.append((m_in - m_out) ** 2 - b - c)
    return {
        # Known sum at the bought rows + Horvitz-Thompson estimate of the
        # rest: sum_S l_i + sum_S (w_i - 1) l^cf_i.
        "estimate": (own_sum + sums[at - 1] - held_sum) / n_samples,
        "in_sample": own_weighted / n_samples,
        "curve": curve,
        "curve_variance": totals[:n_fractions],
        "gain": curve[-1] - curve[0],
        "gain_variance": totals[-1],
        "design_variance": totals[n_fractions - 1],
        "nested_excess": float(np.mean(terms)) if terms else 0.0,
        "n_labels": n,
    }


# What the clients reply to the server: from_sums's outputs, in this order
# ("curve" and "curve_variance" one entry per fraction); "gain" and
# "design_variance" follow from the curve's.
OUTPUTS = (
    "estimate",
    "in_sample",
    "curve",
    "curve_variance",
    "gain_variance",
    "nested_excess",
    "n_labels",
)


def outputs_vector(got):
    """:func:`from_sums`'s outputs as one vector (the order of
    :data:`OUTPUTS`): what a client replies to the server."""
    return np.concatenate([np.ravel(got[key]) for key in OUTPUTS]).astype(np.float64)


def outputs_from_vector(vector, n_fractions):
    """The dict of :func:`from_sums` from :func:`outputs_vector`."""
    F = n_fractions
    curve, curve_variance = vector[2 : 2 + F], vector[2 + F : 2 + 2 * F]
    return {
        "estimate": float(vector[0]),
        "in_sample": float(vector[1]),
        "curve": curve,
        "curve_variance": curve_variance,
        "gain": curve[-1] - curve[0],
        "gain_variance": float(vector[2 + 2 * F]),
        "design_variance": float(curve_variance[-1]),
        "nested_excess": float(vector[3 + 2 * F]),
        "n_labels": int(round(vector[4 + 2 * F])),
    }


# ------------------------------------------------------------------ clients
# What a client keeps (declared; tests/test_transport.py checks every fit's).
STATE = {
    "error_folds": "int64 (1 + R, m_i): each bought row's folds (cross-fit, nested)",
    "error_final": "float64 (d + 1,): the fitted model (coef, intercept)",
    "error_labels": "float64 (m_i,): the labels of its bought rows",
    "error_curve": "float64 (F, m_i): held-out losses, one row per fraction",
    "error_outer": "float64 (R, m_i): nested: without the row's fold",
    "error_pair": "float64 (R, m_i, K): nested: without its fold and fold k",
    "error_release": "bool: its release_model, while fold models stay kept",
    "errfit_indices": "int64 (t_i,): its rows a fold's model trains on",
    "errfit_weights": "float64 (t_i,): their weights",
    "errfit_labels": "float64 (t_i,): their labels",
    "error_sums": "float64 (s,): its vector of sums (row_sums)",
    "error_pad_round": "int64 (1,): the round whose pad hides the sums' total",
}


def _selected_rows(state):
    return dense_rows(state["X"], np.asarray(state["selection_indices"]))


def _loss(state, config, coef, intercept, positions):
    rows = np.asarray(state["selection_indices"])[positions]
    prediction = dense_rows(state["X"], rows) @ coef + intercept
    labels = state["error_labels"][positions]
    return PREDICTION_LOSSES[config["scoring"]](prediction, labels)


@client_step("error_begin")
def step_error_begin(state, config, folds, final):
    """Keep the folds of its bought rows and the fitted model; read the
    labels of its bought rows; stop releasing the models it learns."""
    folds = np.asarray(folds, dtype=np.int64)
    m = folds.shape[1]
    state["error_folds"] = folds
    state["error_final"] = np.asarray(final, dtype=np.float64)
    state["error_labels"] = read_labels(state, state["selection_indices"])
    state["error_curve"] = np.zeros((config["n_fractions"], m))
    state["error_outer"] = np.zeros((config["repeats"], m))
    state["error_pair"] = np.zeros((config["repeats"], m, config["n_folds"]))
    state["error_release"] = np.array(bool(state.get("release_model", True)))
    state["release_model"] = False


@client_step("error_rows")
def step_error_rows(state, config, positions, scale):
    """Keep the bought rows the next model trains on (positions among its
    bought rows) and their weights times ``scale``."""
    positions = np.asarray(positions, dtype=np.int64)
    state["errfit_indices"] = np.asarray(state["selection_indices"])[positions]
    weights = np.asarray(state["selection_weights"], dtype=np.float64)
    state["errfit_weights"] = weights[positions] * float(scale[0])
    state["errfit_labels"] = state["error_labels"][positions]


@client_step("error_score")
def step_error_score(state, config, positions, columns):
    """Keep the loss of the model it just learned at its bought rows
    ``positions`` (under ``config["store"]``: the curve's point, the
    nested repeat's outer or pair values, ``columns`` the pair's other fold)."""
    positions = np.asarray(positions, dtype=np.int64)
    coef = np.asarray(state["model_coef"])
    values = _loss(state, config, coef, state["model_intercept"][0], positions)
    index = config["index"]
    if config["store"] == "pair":
        columns = np.asarray(columns, dtype=np.int64)
        state["error_pair"][index, positions, columns] = values
    else:
        state["error_" + config["store"]][index, positions] = values


@client_step("error_sums")
def step_error_sums(state, config):
    """Keep its vector of sums (:func:`row_sums`) and its magnitudes."""
    final = state["error_final"]
    everything = np.arange(state["error_labels"].shape[0])
    own = _loss(state, config, final[:-1], final[-1], everything)
    points = None
    if config["variance"] == "local":
        points = scaled_points(_selected_rows(state))
    rows = {
        "own": own,
        "curve": state["error_curve"],
        "weights": np.asarray(state["selection_weights"], dtype=np.float64),
        "points": points,
        "folds": state["error_folds"][1:],
        "outer": state["error_outer"],
        "pair": state["error_pair"],
    }
    sums = row_sums(
        rows,
        variance=config["variance"],
        n_neighbors=config["n_neighbors"],
        sign=config["sign"],
        n_folds=config["n_folds"],
    )
    state["error_sums"] = sums
    state["error_sums_magnitudes"] = np.abs(sums)


def _pad(state, round_id, size):
    """The one-time pad of the sums' total: 64-bit words every client draws
    alike from the group secret (a cipher's keystream,
    :func:`~skfal._federated._secure.shared_words`), unknown to the server."""
    return shared_words(state["group_secret"], f"error sums pad {round_id}", size)


@client_step("error_padded_words")
def step_error_padded_words(state, config):
    """Secure sum of its vector of sums, the first participant adding the
    pad (:func:`_pad`): the server's total is uniform, the clients remove
    the pad (:func:`step_error_total`)."""
    sums = state["error_sums"]
    _finite([sums], config["phase"])
    words = client_encode(sums, state["error_sums_bounds"])
    round_id = int(config["round"])
    state["error_pad_round"] = np.array([round_id], dtype=np.int64)
    if state["client"] == min(config["participants"]):
        words = words + _pad(state, round_id, words.size)
    return _masked(state, words, config)


@client_step("error_total")
def step_error_total(state, config, words):
    """Remove the pad from the total, decode it and reply only what the
    estimate needs (:func:`outputs_vector` of :func:`from_sums`), never the
    sums, which hold per-fold sums; release models again."""
    state["release_model"] = bool(state.pop("error_release"))
    words = np.asarray(words, dtype=np.uint64)
    round_id = int(state.pop("error_pad_round")[0])
    units = decode_units(words - _pad(state, round_id, words.size))
    total = client_decode(units, state["error_sums_bounds"])
    shape = {k: config[k] for k in ("n_fractions", "repeats", "n_folds")}
    got = from_sums(
        total, variance=config["variance"], n_samples=config["n_samples"], **shape
    )
    return (outputs_vector(got),)


# ------------------------------------------------------------------- server
def federated_error(transport, indices, counts, final, plan, *, settings):
    """The server's side (module docstring). Returns :func:`from_sums`'s
    dict, computed by the clients from the total they decoded.

    Parameters
    ----------
    transport : Transport
        Every client kept its selection (``"selection_indices"``,
        ``"selection_weights"``) and reads its labels there.
    indices : ndarray
        The bought rows (the server chose them), in the federation's order.
    counts : dict of int to int
        Each client's number of rows.
    final : ndarray of shape (d + 1,)
        The fitted model, ``coef`` then ``intercept``.
    plan : Plan
        The folds and the models to train (``skfal._error._plan``), over
        positions in ``indices``.
    settings : dict
        ``n_features``, ``alpha``, ``fit_intercept``, ``scoring``,
        ``variance``, ``n_neighbors``, ``sign``, ``n_fractions``,
        ``repeats``, ``n_folds``, ``min_other_rows`` (checked by
        :func:`check_private_plan` before any message).
    """
    local, positions = transport.split(indices, counts)
    everyone = list(transport.clients)
    owner = np.empty(indices.shape[0], dtype=np.int64)
    slot = np.empty(indices.shape[0], dtype=np.int64)
    for c in everyone:
        owner[positions[c]] = c
        slot[positions[c]] = np.arange(positions[c].shape[0])
    # Before any message: every sum a client will learn of the others' rows
    # covers min_other_rows of them or more.
    check_private_plan(plan, owner, len(everyone), settings["min_other_rows"])
    shape = {k: settings[k] for k in ("n_fractions", "repeats", "n_folds")}
    transport.tell(
        "error_begin",
        "error_folds",
        {c: (plan.folds[:, positions[c]], final) for c in everyone},
        config=shape,
    )
    training = {k: settings[k] for k in ("n_features", "alpha", "fit_intercept")}
    for model in plan.models:
        train = {c: slot[model.train[owner[model.train] == c]] for c in everyone}
        holders = [c for c in everyone if train[c].size]
        if len(everyone) > 1 and len(holders) < 2:
            raise ValueError(
                f"A cross-fitting model trains on the bought rows of client "
                f"{holders} alone, so no secure sum hides them. Raise the "
                "budget, or lower cv, so that every fold's training rows span "
                "two clients or more."
            )
        scale = np.array([model.scale])
        transport.tell(
            "error_rows", "error_rows", {c: (train[c], scale) for c in everyone}
        )
        labeled = {c: int(train[c].size) for c in everyone}
        global_training(transport, labeled, rows="errfit", **training)
        score = {
            c: (
                slot[model.score[owner[model.score] == c]],
                model.columns[owner[model.score] == c],
            )
            for c in everyone
        }
        transport.tell(
            "error_score",
            "error_score",
            score,
            config={"store": model.store, "index": model.index, **settings},
        )
    transport.tell("error_sums", "error_sums", config=settings)
    # The secure sum (skfal._federated._secure.secure_sum), its total padded:
    # the server passes back words it cannot read, not units of 2^E_m (each
    # column's value up to a power of two).
    headroom = int(np.ceil(np.log2(max(len(everyone), 1))))
    participants = secure_bounds(
        transport,
        everyone,
        "error_sums",
        "error_sums_magnitudes",
        headroom,
        "error_sums_bounds",
    )
    relay_partner_keys(transport, participants, "error_sums")
    config = {"phase": "error_sums"}
    summed = masked_round(
        transport, "error_padded_words", "error_sums", participants, config=config
    )
    if min(participants) not in summed.participants:
        raise ValueError(
            f"Client {min(participants)}, which pads the error sums' total, "
            "dropped out of their secure sum: the total cannot be decoded. "
            "Run estimate_error again with every client."
        )
    total = summed.total
    config = {**settings, "n_samples": int(sum(counts.values()))}
    replies = transport.ask(
        "error_total", "error_total", broadcast=(total,), config=config
    )
    first = replies[everyone[0]][0]
    if any(not np.array_equal(r[0], first) for r in replies.values()):
        raise ValueError(
            "The clients decoded different totals of the error sums: they did "
            "not all receive the same messages."
        )
    n_outputs = 5 + 2 * settings["n_fractions"]
    if first.shape != (n_outputs,):
        raise ValueError(f"The error outputs have {first.shape}, not ({n_outputs},).")
    return outputs_from_vector(first, settings["n_fractions"])
