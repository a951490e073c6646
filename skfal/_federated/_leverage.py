"""Global leverage scores over clients that keep their rows.

Two protocols compute the leverage scores of the stacked matrix
``X = [X_1; ...; X_k]`` without any client revealing a raw row. Both start from
a Haar orthogonal ``Q`` (d x d) shared by the clients and never seen by the
server (generated from a seed the clients agree on; in FedSVD a trusted
authority hands it out).

``"fedsvd"`` (FALE, Algorithm 1, after Chai et al., 2022)
    1. client: upload ``P_i X_i Q`` (``P_i`` the client's block-diagonal
       orthogonal mask);
    2. server: thin SVD of the stacked masked matrix ``X' = P X Q = U' S V'^T``
       (by the centralized kernel: CholeskyQR, TSQR where it would not be
       accurate); send every client ``V' S^{-1}`` (``d x d``);
    3. client: its rows of the orthonormal basis ``U = P^T U'``,
       ``U_i = P_i^T X'_i V' S^{-1} = X_i Q V' S^{-1}``, upload their squared
       norms. FALE sends each client ``U'_i`` to unmask; since ``P_i`` is
       orthogonal, ``X_i Q V' S^{-1}`` is the same basis without the
       ``n_i x d`` download or a second pass of the mask.

``"qr"`` (communication-efficient, with secure aggregation)
    1. client: the R factor ``R_i`` of ``X_i Q`` (non-negative diagonal):
       ``O(d^2)`` numbers instead of ``O(n_i d)``; the server receives only
       the secure sum of their exact Gram matrices ``R_i^T R_i`` as integer
       digits (:func:`~skfal._federated._secure.secure_stack`), which is
       the global ``Q^T X^T X Q`` and no client's part;
    2. server: ``R`` = the factor of that exact sum = R factor of ``X Q``; send it to
       every client;
    3. client: scores ``||x_j Q W||^2`` with ``W`` from the SVD of ``R``
       (``W = R^{-1}`` when ``X`` has full column rank), upload them.

Uploading the R factor of the *unrotated* ``X_i`` times ``Q`` instead would
be unsafe: an RQ decomposition of that product gives back both factors, and
with them ``Q``. A FedSVD client's upload ``P_i X_i Q`` has the Gram matrix
``Q^T X_i^T X_i Q``: to whoever learns ``Q`` (a client, or the holder of a
fitted estimator's ``whitener_`` and the transcript) a client with at most
``d`` rows gives its rows away up to an orthogonal map, one row exactly up to
sign. So ``"fedsvd"`` refuses such clients (:func:`check_fedsvd_clients`).
"""

import os
from typing import NamedTuple

import numpy as np

from skfal._federated._masks import client_shared_rotation, mask_rows
from skfal._federated._secure import (
    client_decode,
    key_agreement,
    secure_bounds,
    secure_stack,
    shared_generator,
)
from skfal._federated._transport import client_step, simulated_federation
from skfal._linalg import (
    column_norms,
    equilibrated_r_factor,
    r_factor,
    r_from_whitener,
    ridge_r_factor,
    squared_row_norms,
    whitener,
    with_intercept,
)
from skfal._rows import Stacked
from skfal._sampling import draw_seed


class LeverageResult(NamedTuple):
    """What a leverage protocol leaves: every row's score and the clients' map.

    ``scores`` are in the row order of ``X`` (each client uploaded its own);
    ``whitener`` is ``W`` with ``X @ W`` orthonormal (``W W^T = (X^T X)^+``),
    for ``[X, 1]`` with an intercept; every client holds it.
    """

    scores: np.ndarray
    whitener: np.ndarray


# --------------------------------------------------------------------- clients
def client_mask_rows(X_i, rotation, seed, block_size):
    """FedSVD upload: the masked rows ``P_i X_i Q``."""
    return mask_rows(np.asarray(X_i, dtype=np.float64) @ rotation, seed, block_size)


def client_own_r(X_i):
    """The R factor ``R_0`` of the client's rows (kept), and its row count.

    By the centralized kernel (CholeskyQR at the speed of Gram products, TSQR
    where it would not be accurate); its column norms are the client's
    columns' norms, which set the common column scales.
    """
    r, exponents, _ = equilibrated_r_factor(X_i)
    return np.ldexp(r, exponents), np.array([X_i.shape[0]])


def client_r_factor(r0, rotation):
    """QR upload: the R factor of ``X_i Q`` from ``X_i = Q_0 R_0``.

    ``X_i Q = Q_0 (R_0 Q)``, so both have the same R, and the ``n_i x d``
    product ``X_i Q`` is never formed.
    """
    return r_factor([r0 @ rotation], r0.shape[1])


def client_scaled_rotation(rotation, scales):
    """``D Q`` with ``D = diag(2^-E)``: the common column scales, then ``Q``.

    Dividing the columns by powers of two near the largest client's column
    norms (exactly) before rotating keeps every column's digits: rotating
    columns of sizes ``1e-150`` and ``1e150`` together would lose the small
    one. Leverage scores do not depend on the columns' scales, and every
    later step works with ``D Q`` in place of ``Q``.
    """
    return np.ldexp(rotation, -scales[:, None])


def client_whitener(rotation, W_rotated):
    """Map a whitener of the rotated data ``X Q`` back to ``X``: ``Q W``."""
    return rotation @ W_rotated


def client_scores(X_i, rotation, r, n_rows, alpha=0.0, n_penalised=0):
    """The client's (ridge) leverage scores ``||x_j Q W||^2`` from a global R.

    ``r`` is any factor with ``r^T r = Q^T X^T X Q`` (the combined R of
    ``"qr"``, or the one the client derives from FedSVD's ``V' S^{-1}``);
    with ``alpha > 0`` the client adds the ridge penalty on the first
    ``n_penalised`` coordinates itself (it knows ``Q``). Returns the scores
    (to upload) and the client's map ``W`` in its own coordinates (kept by
    the client).
    """
    ridge = ridge_r_factor(r, alpha, n_penalised, rotation)
    W = client_whitener(rotation, whitener(ridge, int(n_rows[0])))
    return squared_row_norms(X_i, W), W


# ---------------------------------------------------------------------- server
def server_masked_svd(masked_uploads):
    """FedSVD: right factor ``V' S^{-1}`` of the thin SVD of the stacked uploads.

    The SVD is taken through an R factor: ``X' = Q_x R`` and ``R = U_r S
    V'^T``, so ``U' = X' V' S^{-1}``. The R factor comes from the centralized
    kernel (:func:`~skfal._linalg.equilibrated_r_factor`: CholeskyQR at the
    speed of Gram products, TSQR where it would not be accurate) on the
    uploads as they arrived, never stacked into one array.
    """
    stacked = Stacked(masked_uploads)
    r, exponents, _ = equilibrated_r_factor(stacked)
    return whitener(np.ldexp(r, exponents), stacked.shape[0])


def server_combine_r(units, row_counts):
    """The R factor of the secure stack's result (upper triangular, non-negative
    diagonal), and the total rows."""
    total = np.array([int(sum(int(count[0]) for count in row_counts))])
    return r_factor([units], units.shape[1]), total


def check_fedsvd_clients(client_rows, n_columns):
    """Refuse FedSVD when a client holds too few rows to hide them (docstring)."""
    few = [c for c, rows in enumerate(client_rows) if rows.shape[0] <= n_columns]
    if few:
        counts = [client_rows[c].shape[0] for c in few]
        raise ValueError(
            f"protocol='fedsvd' uploads each client's masked rows P_i X_i Q, whose "
            "Gram matrix gives a client's rows away (up to an orthogonal map) to "
            "anyone who learns Q when the client holds no more rows than there "
            f"are columns ({n_columns}); clients {few} hold {counts} rows. Use "
            "protocol='qr', whose uploads are securely aggregated, or merge "
            "the small clients."
        )


# What a client keeps (declared; tests/test_transport.py checks every fit's).
STATE = {
    "r0": "float64 (h_i, d): R of its rows",
    "r0_norms": "float64 (d,): column norms of r0 (for the common scales)",
    "design_norms": "float64 (d,): column norms of its rows (fedsvd)",
    "scales": "int64 (d,): the common column scales (a secure maximum)",
    "rotation": "float64 (d, d): the scales, then the shared rotation Q",
    "factor": "float64 (h_i, d): R of X_i D Q (its part of the stack)",
    "whitener": "float64 (d, r): its map W, W W^T = (X^T X)^+",
}


# ------------------------------------------------------- client steps by name
def _design(state, config):
    """The client's design rows: its ``X_i``, with the 1 column for an intercept.

    Cached for the later steps of the same message (not kept between
    messages).
    """
    if "design" not in state:
        own = state["X"]
        state["design"] = with_intercept(own) if config["intercept"] else own
    return state["design"]


def _rotation(state, n_columns):
    """The clients' shared Haar rotation ``Q`` (from their shared seed)."""
    rng = shared_generator(state["group_secret"], f"leverage rotation {n_columns}")
    return client_shared_rotation(n_columns, rng)


@client_step("qr_own_r")
def step_qr_own_r(state, config):
    """QR, 1: keep ``R_0`` and its column norms; upload the row count and the
    factor's height (its number of rows, at most ``d``)."""
    r0, count = client_own_r(_design(state, config))
    state["r0"] = r0
    state["r0_norms"] = column_norms(r0)
    return count, np.array([min(r0.shape)])


@client_step("qr_rotate")
def step_qr_rotate(state, config):
    """QR, 2: keep ``D Q`` (the common scales, then ``Q``) and the R of ``X_i D Q``."""
    r0 = state["r0"]
    state["rotation"] = client_scaled_rotation(
        _rotation(state, r0.shape[1]), state["scales"]
    )
    state["factor"] = client_r_factor(r0, state["rotation"])


@client_step("qr_scores")
def step_qr_scores(state, config, r_units, total):
    """QR, 3: decode the global R, keep ``W`` and the scores; upload the scores."""
    r = client_decode(r_units, state["share_bounds"])
    scores, W = client_scores(
        _design(state, config),
        state["rotation"],
        r,
        total,
        config["alpha"],
        config["n_penalised"],
    )
    state["scores"], state["whitener"] = scores, W
    return (scores,)


@client_step("fedsvd_norms")
def step_fedsvd_norms(state, config):
    """FedSVD, 0: keep the column norms of the client's rows (for the scales)."""
    own = _design(state, config)
    if own.shape[0] <= own.shape[1]:
        raise ValueError(
            f"protocol='fedsvd' uploads this client's masked rows, and it holds "
            f"{own.shape[0]} rows for {own.shape[1]} columns: the Gram matrix "
            "of its upload would give its rows away to anyone who learns Q "
            "(see check_fedsvd_clients). Use protocol='qr'."
        )
    state["design_norms"] = column_norms(own)


def _mask_seed(state):
    """A fresh private row-mask key (256 bits of OS randomness, every fit)."""
    return os.urandom(32)


@client_step("fedsvd_mask")
def step_fedsvd_mask(state, config):
    """FedSVD, 1: upload ``P_i X_i D Q`` (keep ``D Q``)."""
    own = _design(state, config)
    state["rotation"] = client_scaled_rotation(
        _rotation(state, own.shape[1]), state["scales"]
    )
    return (
        client_mask_rows(
            own, state["rotation"], _mask_seed(state), config["block_size"]
        ),
    )


@client_step("fedsvd_scores")
def step_fedsvd_scores(state, config, W_masked, total):
    """FedSVD, 2: (ridge) scores ``||x_j Q W||^2`` from the server's ``V' S^{-1}``.

    ``X_i Q V' S^{-1}`` is the client's block of ``U = P^T U'``; with
    ``alpha > 0`` the client adds the ridge penalty to the factor
    ``S V'^T`` itself (it knows ``Q``).
    """
    scores, W = client_scores(
        _design(state, config),
        state["rotation"],
        r_from_whitener(W_masked),
        total,
        config["alpha"],
        config["n_penalised"],
    )
    state["scores"], state["whitener"] = scores, W
    return (scores,)


# ---------------------------------------------------------- server's drivers
def qr_leverage(transport, *, n_features, intercept=False, alpha=0.0):
    """The server's side of ``"qr"`` (module docstring), over ``transport``.

    Parameters
    ----------
    transport : Transport
    n_features : int
        The clients' number of features (without the intercept column).
    intercept, alpha
        As :func:`run_qr_leverage`.

    Returns
    -------
    scores : dict of int to ndarray
        Each client's uploaded scores of its own rows; every client keeps
        them and its map ``W`` (``"scores"``, ``"whitener"``).
    """
    clients = transport.clients
    config = {"intercept": bool(intercept)}
    key_agreement(transport)
    own = transport.ask("qr_own_r", "r_factor", config=config)
    counts = [own[c][0] for c in clients]
    secure_bounds(transport, clients, "scales", "r0_norms", 0, "scales")
    transport.tell("qr_rotate", "scales")
    units = secure_stack(
        transport, {c: own[c][1] for c in clients}, "r_factor", "factor"
    )
    r_units, total = server_combine_r(units, counts)
    replies = transport.ask(
        "qr_scores",
        "combined_r",
        broadcast=(r_units, total),
        config={**config, "alpha": float(alpha), "n_penalised": int(n_features)},
        reply_phase="scores",
    )
    return {c: replies[c][0] for c in clients}


def fedsvd_leverage(
    transport, *, n_features, intercept=False, alpha=0.0, block_size=100
):
    """The server's side of ``"fedsvd"`` (module docstring), over ``transport``.

    Parameters and result as :func:`qr_leverage`, and ``block_size``, the
    rows per Haar block of the clients' row masks.
    """
    clients = transport.clients
    config = {"intercept": bool(intercept), "block_size": int(block_size)}
    key_agreement(transport)
    transport.tell("fedsvd_norms", "scales", config=config)
    secure_bounds(transport, clients, "scales", "design_norms", 0, "scales")
    masked = transport.ask("fedsvd_mask", "masked_data", config=config)
    uploads = [masked[c][0] for c in clients]
    del masked
    W_masked = server_masked_svd(uploads)
    total = np.array([sum(upload.shape[0] for upload in uploads)])
    del uploads
    replies = transport.ask(
        "fedsvd_scores",
        "svd",
        broadcast=(W_masked, total),
        config={**config, "alpha": float(alpha), "n_penalised": int(n_features)},
        reply_phase="scores",
    )
    return {c: replies[c][0] for c in clients}


# ------------------------------------------------------------ the simulation
def _simulate(driver, X, client_rows, random_state, channel, n_jobs, **kwargs):
    """Run ``driver`` on a simulated federation of ``X``'s rows."""
    transport = simulated_federation(
        X, client_rows, draw_seed(random_state), channel, n_jobs
    )
    scores = driver(transport, n_features=X.shape[1], **kwargs)
    return LeverageResult(transport.gather(scores), transport.states[0]["whitener"])


def run_qr_leverage(
    X, client_rows, random_state, channel, *, intercept=False, alpha=0.0, n_jobs=None
):
    """Simulate the ``"qr"`` leverage protocol (steps in the module docstring).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        All rows; client ``c`` holds ``X[client_rows[c]]`` and only its own
        steps ever touch them.
    client_rows : list of ndarray
        Each client's row indices.
    random_state : numpy.random.RandomState
        Draws the federation's seed, from which the clients derive theirs
        (:func:`~skfal._federated._transport.client_seeds`).
    channel : Channel
        Where every message is counted (and recorded).
    intercept : bool, default=False
        Score the rows of ``[X, 1]``: each client appends the constant
        column to its rows.
    alpha : float, default=0.0
        Ridge leverage ``x^T (X^T X + alpha D)^{-1} x`` (``D`` penalising the
        features, not the intercept); each client adds the penalty to the
        global R itself, so nothing else crosses.
    n_jobs : int or None
        Clients' steps run in parallel threads (joblib).

    Returns
    -------
    result : LeverageResult
    """
    return _simulate(
        qr_leverage,
        X,
        client_rows,
        random_state,
        channel,
        n_jobs,
        intercept=intercept,
        alpha=alpha,
    )


def run_fedsvd_leverage(
    X,
    client_rows,
    random_state,
    channel,
    *,
    intercept=False,
    alpha=0.0,
    block_size=100,
    n_jobs=None,
):
    """Simulate FALE's ``"fedsvd"`` leverage protocol (module docstring).

    Parameters as :func:`run_qr_leverage`, and ``block_size``, the rows per
    Haar block of the clients' row masks. The server sends only ``V'
    S^{-1}`` (and the number of rows): each client turns it into a factor of
    the rotated Gram matrix (with ``alpha > 0`` adds the ridge penalty) and
    scores its own rows.

    Returns
    -------
    result : LeverageResult
    """
    check_fedsvd_clients(client_rows, X.shape[1] + intercept)
    return _simulate(
        fedsvd_leverage,
        X,
        client_rows,
        random_state,
        channel,
        n_jobs,
        intercept=intercept,
        alpha=alpha,
        block_size=block_size,
    )
