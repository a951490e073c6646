"""The steps every federated sampler shares: row counts up, the selection down,
and the federated pivotal tournament.

Federated pivotal sampling (same inclusion probabilities as centralized):

1. server: from the uploaded scores, the four numbers that turn a score
   into an inclusion probability (``pi_i = min(1, c p_i)``, ``p_i`` the
   scores mixed with uniform: the scale ``c``, the total score, the number
   of eligible rows, the uniform share); broadcast them, and each client
   computes its own rows' ``pi`` (as the server does for the weights);
2. client: the pivotal tournament over its own rows in its own spatial
   order; upload the local indices of the rows it decided in, and its at
   most one undecided row (local index and probability);
3. server: a last tournament over the open rows, from their probabilities
   alone; send each client the verdict on its open row.

Every duel keeps each row's inclusion probability, whoever runs it, so the
law of each row's inclusion is exactly ``pi`` and the total is exactly the
budget. The server sees probabilities and indices of selected rows, never a
row.
"""

import numpy as np

from skfal._federated._transport import client_step, simulated_federation, stream
from skfal._sampling import (
    Inclusion,
    draw_seed,
    horvitz_thompson,
    inclusion_from_terms,
    pivotal_tournament,
    settle_pending,
    spatial_order,
)


@client_step("row_count")
def step_row_count(state, config):
    """Upload the client's number of rows."""
    return (np.array([state["X"].shape[0]]),)


@client_step("uniform_scores")
def step_uniform_scores(state, config):
    """Uniform sampling's scores: one per row (no message needed)."""
    state["scores"] = np.ones(state["X"].shape[0])


def row_counts(transport):
    """Every client uploads its row count; ``{client: count}``."""
    replies = transport.ask("row_count", "row_counts")
    return {c: int(replies[c][0][0]) for c in transport.clients}


def client_labeled_rows(X_i, y_i, local_indices, local_weights):
    """A client's training rows from the selection it received: ``(X_l, y_l, w_l)``.

    The labels are read only at the selected rows.
    """
    return X_i[local_indices], y_i[local_indices], local_weights


def client_pivotal(X_i, pi_i, seed, max_depth):
    """Step 2: the tournament over the client's rows (its own seed and order).

    Returns the local indices decided in, and the open row as
    ``[local index, probability]`` (``[-1, 0]`` when none is open).
    """
    outcome = pivotal_tournament(
        pi_i, np.random.RandomState(seed), spatial_order(X_i, max_depth)
    )
    return outcome.selected, np.array([outcome.pending, outcome.pending_probability])


def server_settle_open_rows(open_rows, random_state):
    """Step 3: which clients' open rows are selected (one bool per client)."""
    return settle_pending(np.array([row[1] for row in open_rows]), random_state)


def client_inclusion(scores_i, terms, eligible_i):
    """Step 1, at the client: its own rows' inclusion probabilities."""
    return inclusion_from_terms(scores_i, Inclusion(*terms), eligible_i)


# What a client keeps (declared; tests/test_transport.py checks every fit's).
STATE = {
    "selection_indices": "int64 (m_i,): which of its rows to label",
    "selection_weights": "float64 (m_i,): their importance weights",
    "scores": "float64 (n_i,): its rows' scores (the sampler's)",
    "eligible": "bool (n_i,): its rows that may be drawn",
    "open_row_selected": "bool (1,): the verdict on its open row",
}


@client_step("keep")
def step_keep(state, config, *arrays):
    """Keep what the server sent under the names ``config["keys"]``."""
    for key, array in zip(config["keys"], arrays, strict=True):
        state[key] = array


@client_step("pivotal")
def step_pivotal(state, config, terms, max_depth):
    """Steps 1 and 2 at a client: its rows' ``pi`` from its kept scores, then
    its tournament (its own sampling seed); upload the decided rows and the
    open row."""
    pi = client_inclusion(state["scores"], terms, state.get("eligible"))
    seed = int(stream(state["sampling_seed"], "pivotal").randint(2**31 - 1))
    return client_pivotal(state["X"], pi, seed, int(max_depth[0]))


def pivotal_selection(
    transport, scores, terms, random_state, *, max_depth, counts, eligible=None
):
    """The server's side of federated pivotal sampling (module docstring).

    Parameters
    ----------
    transport : Transport
        Every client kept its rows' scores (``"scores"``; and ``"eligible"``
        when some of its rows may not be drawn).
    scores : ndarray of shape (n_samples,)
        The uploaded scores in the federation's row order.
    terms : Inclusion
        The server's terms (:func:`skfal._sampling.inclusion_terms`).
    random_state : numpy.random.RandomState
        The server's: draws its last round.
    max_depth : int
        Levels of each client's spatial tree.
    counts : dict of int to int
        Each client's number of rows.
    eligible : ndarray of shape (n_samples,) of bool or None
        Rows that may be drawn; all if ``None``.

    Returns
    -------
    selection : Selection
        Sorted selected rows (federation order) with weights ``1 / pi``.
    """
    clients = transport.clients
    replies = transport.ask(
        "pivotal",
        "inclusion",
        broadcast=(np.array(terms, dtype=np.float64), np.array([int(max_depth)])),
        reply_phase="pivotal",
    )
    open_rows = [replies[c][1] for c in clients]
    verdicts = server_settle_open_rows(open_rows, random_state)
    transport.tell(
        "keep",
        "pivotal",
        {c: (verdicts[i : i + 1],) for i, c in enumerate(clients)},
        config={"keys": ["open_row_selected"]},
    )
    local = {}
    for i, c in enumerate(clients):
        mine = [replies[c][0]]
        if verdicts[i]:
            mine.append(np.array([int(open_rows[i][0])]))
        local[c] = np.concatenate(mine).astype(np.int64)
    pi = inclusion_from_terms(scores, terms, eligible)  # the server's, for weights
    return horvitz_thompson(transport.rows(local, counts), pi)


def send_selection(transport, indices, weights, counts):
    """Send each client which of its rows to label, and their weights.

    Each client keeps them (``"selection_indices"``, ``"selection_weights"``);
    delivered with the next message (:meth:`Transport.flush` at the end).
    """
    local, positions = transport.split(indices, counts)
    transport.tell(
        "keep",
        "selection",
        {c: (local[c], weights[positions[c]]) for c in transport.clients},
        config={"keys": ["selection_indices", "selection_weights"]},
    )


def run_pivotal_selection(
    X, client_rows, scores, terms, random_state, channel, *, max_depth, eligible=None
):
    """Simulate federated pivotal sampling (module docstring).

    The clients' scores (and eligible rows) are put in their states here,
    as each client computed them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        All rows; client ``c`` holds ``X[client_rows[c]]``.
    client_rows : list of ndarray
    scores : ndarray of shape (n_samples,)
        Every row's score, as its client computed (and uploaded) it.
    terms : Inclusion
        The server's terms (:func:`skfal._sampling.inclusion_terms`).
    random_state : numpy.random.RandomState
        Draws the federation's seed (each client's tournament seed derives
        from it) and the server's last round.
    channel : Channel
    max_depth : int
        Levels of each client's spatial tree.
    eligible : ndarray of shape (n_samples,) of bool or None
        Rows that may be drawn (each client knows its own); all if ``None``.

    Returns
    -------
    selection : Selection
        Sorted selected rows of ``X`` with weights ``1 / pi``.
    """
    transport = simulated_federation(X, client_rows, draw_seed(random_state), channel)
    for state, rows in zip(transport.states, client_rows, strict=True):
        state["scores"] = scores[rows]
        if eligible is not None:
            state["eligible"] = eligible[rows]
    selection = pivotal_selection(
        transport,
        scores,
        terms,
        random_state,
        max_depth=max_depth,
        counts={c: rows.shape[0] for c, rows in enumerate(client_rows)},
        eligible=eligible,
    )
    transport.flush()
    return selection
