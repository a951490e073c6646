"""Sensitivity scores from any model's loss, over clients that keep their rows.

The rounds of :class:`skfal.ActiveEstimator`'s model-based selection
(Axiotis et al., Algorithms 1 and 3) as server drivers and client steps
over a :class:`~skfal._federated._transport.Transport`. The clients hold
their rows, the labels bought at them, and the cluster centres of the
federated clustering (they moved them themselves). The trainer (the server)
holds the model, fitted on the labeled rows the clients sent it, and knows
which of them are the medoids (it asked for their labels).

The model never travels. Algorithms 1 and 3 evaluate the loss only at
labeled rows: at the medoids (``loss(c_j)`` in ``p_e``) and at the rows that
estimate the Holder constants (Lemma 8's probes). The trainer holds every
labeled row with its label, so it evaluates those losses itself and sends
each client only numbers:

0. client: upload its row count (:func:`row_counts`);
1. server: name the rows to label; client: read their labels and send the
   rows and labels to the trainer (:func:`send_labeled`; phases
   ``"selection"`` down, ``"training_rows"`` up);
2. server (:func:`model_scores`): the model's loss at every labeled row,
   computed by the trainer; broadcast the medoids' losses of the centres
   the round uses (phase ``"medoid_loss"``); each client assigns its rows to
   the nearest of those centres and keeps the distances;
3. with ``holder_constant="auto"``: the server sends each client its
   probes (its labeled rows other than medoids, as its own local indices)
   and their losses (phase ``"losses"``); the client uploads, per cluster,
   the largest ``|loss(x) - loss(medoid)| / d(x)^z`` over them (``-inf``
   where it has none; phase ``"holder"``): the distances stay at the
   clients, which alone hold the centres in the clear;
4. server: the Holder constants of Lemma 8 (``log n`` times the largest
   ratio of each cluster; the largest estimate where a cluster has none)
   and a floor, broadcast (phase ``"holder"``); client: score its rows
   ``loss(medoid) + Lambda d^z`` and upload the scores (phase ``"scores"``).

What each party receives: the trainer, the bought rows with their labels,
each client's row count, the Holder ratios and every row's score; each
client, which of its rows to label, the losses of the medoids, the losses
at its own probes, the Holder constants and the floor. Every message is an
array of numbers (or of strings: class labels, never Python objects); no
party receives code, and nothing is ever unpickled.

Centralized, the same drivers run with one client on an
:class:`~skfal._federated._transport.InProcessTransport` and the estimator
reports no ``communication_``.
"""

from typing import NamedTuple

import numpy as np

from skfal._clustering import assign
from skfal._federated._simulation import client_view
from skfal._federated._transport import InProcessTransport, client_step


class ModelScores(NamedTuple):
    """What a round leaves: every row's score, and ``Lambda`` per cluster."""

    scores: np.ndarray
    holder: np.ndarray | None


# --------------------------------------------------------------------- clients
def client_holder_ratios(assignment, probes, probe_losses, medoid_loss, z):
    """Per cluster, the largest ``|loss(x) - loss(m_j)| / d(x)^z`` (Lemma 8).

    Over the client's probes (local indices, with the losses the trainer
    sent) at a positive distance from their centre; ``-inf`` for a cluster
    where it has none.
    """
    labels, distances = assignment
    vz = distances[probes] ** z
    at = labels[probes]
    keep = vz > 0
    ratios = np.full(medoid_loss.shape[0], -np.inf)
    gap = np.abs(probe_losses[keep] - medoid_loss[at[keep]])
    np.maximum.at(ratios, at[keep], gap / vz[keep])
    return ratios


def client_model_scores(assignment, z, medoid_loss, holder, floor):
    """``loss(m_j) + Lambda_j d^z`` for the client's rows (``d^z`` without Lambda)."""
    labels, distances = assignment
    vz = distances**z
    scores = vz if holder is None else medoid_loss[labels] + holder[labels] * vz
    return np.maximum(scores, floor)


def client_label_array(labels):
    """The labels as an array of numbers or strings, never of objects.

    A class label column may hold Python objects (strings, numbers); sent
    as they are, such an array would cross a wire only as a pickle. Labels
    of one type (as :func:`skfal._validation.check_target_labels` ensures)
    become a plain ``str``, ``int``, ``float`` or ``bool`` array.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind == "O":
        labels = np.asarray(labels.tolist())
    if labels.dtype.kind == "O":
        raise ValueError(
            "The labels to send hold values of several types; labels must be "
            "all numbers or all strings."
        )
    return labels


def _assignment(state):
    return state["round_labels"], state["round_distances"]


# What a client keeps (declared; tests/test_transport.py checks every fit's).
STATE = {
    "centres": "float64 (k, d): the clustering's centres (ActiveEstimator)",
    "medoid_loss": "float64 (k,): the medoids' losses the trainer sent",
    "round_labels": "int64 (n_i,): each row's nearest of this round's centres",
    "round_distances": "float64 (n_i,): the distance to it",
}


@client_step("active_send_labeled")
def step_send_labeled(state, config, local_indices):
    """Read the labels of the rows the server named; send the rows and labels."""
    local_indices = np.asarray(local_indices, dtype=np.int64)
    labels = client_label_array(np.asarray(state["labels"])[local_indices])
    return state["X"][local_indices], labels


@client_step("active_round")
def step_round(state, config, medoid_loss):
    """Assign the client's rows to the round's first ``n_centres`` centres;
    keep the assignment and the medoids' losses."""
    labels, distances = assign(state["X"], state["centres"][: config["n_centres"]])
    state["round_labels"], state["round_distances"] = labels, distances
    state["medoid_loss"] = np.asarray(medoid_loss, dtype=np.float64)


@client_step("active_holder_ratios")
def step_holder_ratios(state, config, probes, probe_losses):
    """Upload the largest Holder ratio per cluster over the client's probes."""
    ratios = client_holder_ratios(
        _assignment(state),
        np.asarray(probes, dtype=np.int64),
        np.asarray(probe_losses, dtype=np.float64),
        state["medoid_loss"],
        config["z"],
    )
    return (ratios,)


@client_step("active_scores")
def step_scores(state, config, terms):
    """Score the client's rows from the Holder constants and the floor.

    ``terms`` is ``[Lambda_1, ..., Lambda_k, floor]``; ``Lambda`` all NaN
    means none (scores by distance alone).
    """
    holder, floor = terms[:-1], float(terms[-1])
    holder = None if np.isnan(holder).all() else holder
    scores = client_model_scores(
        _assignment(state), config["z"], state["medoid_loss"], holder, floor
    )
    return (scores,)


# ---------------------------------------------------------------------- server
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


# ------------------------------------------------------------------- drivers
def send_labeled(transport, rows, counts):
    """The server names rows to label; their clients send rows and labels back.

    For a model trained centrally (any scikit-learn estimator): the trainer
    receives the selected rows and their labels, read at their clients, and
    nothing of the other rows.

    Parameters
    ----------
    transport : Transport
        Every client holds its rows (``"X"``) and its labels (``"labels"``).
    rows : ndarray
        Sorted rows to label, in the federation's order.
    counts : dict of int to int
        Each client's number of rows.

    Returns
    -------
    received : dict of int to tuple of ndarray
        Each client's ``(rows, labels)`` as the trainer receives them.
    """
    local, _ = transport.split(np.asarray(rows, dtype=np.int64), counts)
    return transport.ask(
        "active_send_labeled",
        "selection",
        {c: (local[c],) for c in transport.clients},
        reply_phase="training_rows",
    )


def model_scores(
    transport,
    loss_at,
    *,
    labeled,
    medoids,
    counts,
    n_rows,
    z,
    holder_constant="auto",
):
    """The server's side of one round's scores (module docstring, steps 2-4).

    Parameters
    ----------
    transport : Transport
        Every client holds its rows and the centres (``"centres"``).
    loss_at : callable
        ``loss_at(rows)``: the trained model's loss at labeled ``rows``
        (federation order), computed by the trainer from the rows and labels
        the clients sent it. Called once per client holding labeled rows.
    labeled : ndarray
        Sorted labeled rows, in the federation's order.
    medoids : ndarray of shape (n_centres,)
        The medoids of the centres this round uses (labeled rows).
    counts : dict of int to int
        Each client's number of rows.
    n_rows : int
        The federation's number of rows (``log n`` of Lemma 8).
    z : {1, 2}
        Clustering exponent.
    holder_constant : "auto" or float, default="auto"
        ``"auto"`` for Lemma 8's estimate, else that ``Lambda`` everywhere.

    Returns
    -------
    result : ModelScores
        Every row's score (federation order) and the Holder constants.
    """
    clients = transport.clients
    n_centres = medoids.shape[0]
    local, positions = transport.split(labeled, counts)
    losses = np.empty(labeled.shape[0])
    for c in clients:  # one evaluation per client's rows, as it sent them
        if positions[c].size:
            losses[positions[c]] = loss_at(labeled[positions[c]])
    medoid_loss = losses[np.searchsorted(labeled, medoids)]
    transport.tell(
        "active_round",
        "medoid_loss",
        broadcast=(medoid_loss,),
        config={"n_centres": n_centres},
    )
    config = {"z": int(z)}
    if holder_constant == "auto":
        probe = {c: ~np.isin(labeled[positions[c]], medoids) for c in clients}
        ratios = transport.ask(
            "active_holder_ratios",
            "losses",
            {c: (local[c][probe[c]], losses[positions[c]][probe[c]]) for c in clients},
            config=config,
            reply_phase="holder",
        )
        holder = server_holder_constants([ratios[c][0] for c in clients], n_rows)
    else:
        holder = np.full(n_centres, float(holder_constant))
    floor = server_score_floor(medoid_loss, holder)
    terms = np.append(np.full(n_centres, np.nan) if holder is None else holder, floor)
    scores = transport.ask(
        "active_scores",
        "holder",
        broadcast=(terms,),
        config=config,
        reply_phase="scores",
    )
    return ModelScores(transport.gather({c: scores[c][0] for c in clients}), holder)


def simulated_clients(X, labels, client_rows, channel):
    """The in-process transport of :class:`skfal.ActiveEstimator`'s clients.

    Client ``c`` holds the rows ``X[client_rows[c]]`` and their labels (read
    only at the rows the server names); one client holding every row in a
    centralized fit.
    """
    states = [
        {"X": client_view(X, rows), "labels": client_view(labels, rows), "client": c}
        for c, rows in enumerate(client_rows)
    ]
    return InProcessTransport(states, channel, client_rows)


def keep_centres(transport, centres):
    """Every in-process client keeps the centres of the federated clustering.

    The simulation's bridge: the clustering ran over its own messages (its
    Lloyd rounds, counted there), which leave every client holding the
    centres in the clear.
    """
    for state in transport.states:
        state["centres"] = np.asarray(centres)
