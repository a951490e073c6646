"""Sensitivity scores from any model's loss, over clients that keep their rows.

One round of :class:`skfal.ActiveEstimator`'s model-based selection
(Axiotis et al., Algorithms 1 and 3). The clients hold their rows, the
labels bought at them, and the cluster centres of the federated clustering
(they moved them themselves); the trainer holds the model, fitted on the
labeled rows the clients sent it.

1. server: broadcast the model (its pickle, as bytes) and how many centres
   of the prefix ordering the round uses;
2. client: assign its rows to the nearest of those centres; evaluate the
   model's loss at its labeled rows; upload, per cluster, the loss of the
   medoid if it holds it (NaN otherwise) and the largest
   ``|loss(x) - loss(medoid)| / d(x)^z`` over its other labeled rows
   (``-inf`` where it has none): the medoid's loss reaches the clients with
   the next message, so this takes a second step;
3. server: the Holder constants of Lemma 8 (``log n`` times the largest
   ratio of each cluster; the largest estimate where a cluster has none)
   and the medoids' losses, broadcast;
4. client: score its rows ``loss(medoid) + Lambda d^z``, upload the scores.

The rows drawn from the scores (federated pivotal sampling) are labeled at
their clients, which send them and their labels to the trainer
(:func:`run_send_labeled`).

Centralized, the same steps run with one client and nothing is counted.
"""

import pickle
from typing import NamedTuple

import numpy as np

from skfal._clustering import assign
from skfal._federated._simulation import client_view, gather_rows, split_selection


class ModelScores(NamedTuple):
    """What a round leaves: every row's score, and ``Lambda`` per cluster."""

    scores: np.ndarray
    holder: np.ndarray | None


# --------------------------------------------------------------------- clients
def client_receive_model(message):
    """The model the server broadcast (its pickle as ``uint8``)."""
    return pickle.loads(message.tobytes())


def client_assign_prefix(X_i, centres, n_centres):
    """Nearest of the first ``n_centres`` centres of every row, and the distance."""
    return assign(X_i, centres[:n_centres])


def client_medoid_losses(losses_i, labeled_i, medoids_i, n_clusters):
    """The losses of the medoids the client holds (NaN for the others).

    ``medoids_i`` holds, per cluster, the local index of its medoid at this
    client, or -1.
    """
    out = np.full(n_clusters, np.nan)
    loss_of = dict(zip(labeled_i.tolist(), losses_i.tolist(), strict=True))
    for j, m in enumerate(medoids_i.tolist()):
        if m >= 0:
            out[j] = loss_of[m]
    return out


def client_holder_ratios(losses_i, labeled_i, assignment, medoid_loss, z, medoids_i):
    """Per cluster, the largest ``|loss(x) - loss(m_j)| / d(x)^z`` (Lemma 8).

    Over the client's labeled rows other than medoids and at a positive
    distance from their centre; ``-inf`` for a cluster where it has none.
    """
    labels, distances = assignment
    vz = distances[labeled_i] ** z
    at = labels[labeled_i]
    keep = (vz > 0) & ~np.isin(labeled_i, medoids_i[medoids_i >= 0])
    ratios = np.full(medoid_loss.shape[0], -np.inf)
    gap = np.abs(losses_i[keep] - medoid_loss[at[keep]])
    np.maximum.at(ratios, at[keep], gap / vz[keep])
    return ratios


def client_model_scores(assignment, z, medoid_loss, holder, floor):
    """``loss(m_j) + Lambda_j d^z`` for the client's rows (``d^z`` without Lambda)."""
    labels, distances = assignment
    vz = distances**z
    scores = vz if holder is None else medoid_loss[labels] + holder[labels] * vz
    return np.maximum(scores, floor)


# ---------------------------------------------------------------------- server
def server_model_message(model):
    """The model as a message: its pickle, as a ``uint8`` array."""
    return np.frombuffer(pickle.dumps(model), dtype=np.uint8)


def server_medoid_losses(uploads):
    """Each cluster's medoid loss, from the one client holding that medoid."""
    stacked = np.vstack(uploads)
    return np.nanmax(np.where(np.isnan(stacked), -np.inf, stacked), axis=0)


def server_holder_constants(ratios, n_rows):
    """Lemma 8: ``log(n)`` times each cluster's largest ratio over clients.

    Clusters without a labeled row to estimate from get the largest
    estimate of the others; ``None`` when no cluster has one, or every
    estimate is 0 (then the scores are distances alone, Algorithm 1 with
    ``Lambda`` infinite).
    """
    largest = np.max(np.vstack(ratios), axis=0)
    known = np.isfinite(largest)
    if not known.any() or not np.any(largest[known] > 0):
        # No labeled row to estimate from, or no loss varies (e.g. a first
        # model that saw one class, every loss 0): scores by distance alone.
        return None
    return np.log(max(n_rows, 2)) * np.where(known, largest, largest[known].max())


def server_score_floor(medoid_loss, holder):
    """A tiny positive score for rows whose bound is 0 (every row keeps a chance)."""
    positive = medoid_loss[medoid_loss > 0]
    if positive.size:
        return 1e-12 * positive.mean()
    if holder is not None and np.any(holder > 0):
        return 1e-12 * holder[holder > 0].min()
    return 1.0


# ------------------------------------------------------------- orchestration
def run_model_scores(
    X,
    client_rows,
    labeled_rows,
    losses_of,
    centres,
    medoids,
    n_centres,
    z,
    channel,
    *,
    model,
    holder_constant="auto",
):
    """Simulate one round's scores (steps in the module docstring).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        All rows; client ``c`` holds ``X[client_rows[c]]``.
    client_rows : list of ndarray
        Each client's row indices.
    labeled_rows : list of ndarray
        Each client's labeled rows (local indices, ascending).
    losses_of : callable
        ``losses_of(model, c, local_rows)``: the model's loss at client
        ``c``'s labeled rows ``local_rows``, computed where their labels are.
    centres : ndarray of shape (n_clusters, n_features)
        The centres of the prefix ordering, as every client holds them.
    medoids : ndarray of shape (n_clusters,)
        Each centre's medoid (a row of ``X``; the simulation's bookkeeping:
        each client knows which of its rows are medoids).
    n_centres : int
        Centres this round uses (a prefix).
    z : {1, 2}
        Clustering exponent.
    channel : Channel
        Where every message is counted.
    model : estimator
        The fitted model the server broadcasts.
    holder_constant : "auto" or float
        ``"auto"`` for Lemma 8's estimate, else that ``Lambda`` everywhere.

    Returns
    -------
    result : ModelScores
    """
    clients = range(len(client_rows))
    message = channel.broadcast("model", clients, server_model_message(model))
    # Which of its rows are this round's medoids: each client knows its own
    # (the simulation finds them from the indices of X).
    where = np.empty(X.shape[0], dtype=np.int64)
    in_client = np.empty(X.shape[0], dtype=np.int64)
    for c, rows in enumerate(client_rows):
        where[rows], in_client[rows] = np.arange(rows.shape[0]), c
    prefix = medoids[:n_centres]
    local_medoids = [
        np.where(in_client[prefix] == c, where[prefix], -1) for c in clients
    ]
    received = [client_receive_model(message) for _ in clients]
    assignments = [
        client_assign_prefix(client_view(X, client_rows[c]), centres, n_centres)
        for c in clients
    ]
    losses = [losses_of(received[c], c, labeled_rows[c]) for c in clients]
    medoid_uploads = [
        channel.up(
            "medoid_loss",
            c,
            client_medoid_losses(
                losses[c], labeled_rows[c], local_medoids[c], n_centres
            ),
        )
        for c in clients
    ]
    medoid_loss = server_medoid_losses(medoid_uploads)
    if holder_constant == "auto":
        medoid_loss = channel.broadcast("medoid_loss", clients, medoid_loss)
        ratios = [
            channel.up(
                "holder",
                c,
                client_holder_ratios(
                    losses[c],
                    labeled_rows[c],
                    assignments[c],
                    medoid_loss,
                    z,
                    local_medoids[c],
                ),
            )
            for c in clients
        ]
        holder = server_holder_constants(ratios, X.shape[0])
    else:
        holder = np.full(n_centres, float(holder_constant))
    floor = server_score_floor(medoid_loss, holder)
    terms = np.concatenate(
        [medoid_loss, np.full(n_centres, np.nan) if holder is None else holder, [floor]]
    )
    terms = channel.broadcast("holder", clients, terms)
    medoid_loss, holder_received, floor = np.split(terms, [n_centres, 2 * n_centres])
    holder_received = None if holder is None else holder_received
    scores = [
        channel.up(
            "scores",
            c,
            client_model_scores(
                assignments[c], z, medoid_loss, holder_received, float(floor[0])
            ),
        )
        for c in clients
    ]
    return ModelScores(gather_rows(client_rows, scores), holder)


def run_send_labeled(X, y, client_rows, rows, channel):
    """The server names rows to label; their clients send rows and labels back.

    For a model trained centrally (any scikit-learn estimator): the trainer
    receives the selected rows ``X[rows]`` and their labels, read at their
    clients, and nothing of the other rows.
    """
    local, _ = split_selection(client_rows, rows)
    for c, mine in enumerate(local):
        chosen = client_rows[c][channel.down("selection", c, mine)]
        channel.up("training_rows", c, np.asarray(X[chosen]))
        channel.up("training_rows", c, np.asarray(y[chosen]))
