"""The steps every federated sampler shares: row counts up, the selection down,
and the federated pivotal tournament (with the scores uploaded, or kept at
the clients: :func:`private_pivotal_selection`).

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

from skfal._federated._secure import (
    client_decode,
    key_agreement,
    secure_sum,
    summed_words,
)
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
    "score_total": "float64 (2,): its eligible rows' total score and number",
    "inclusion_totals": "float64 (2,): the federation's total score and number",
    "inclusion_mass": "float64 (k_i,): its eligible rows' p, sorted",
    "capped_mass": "float64 (G, 2): capped rows and uncapped p at G scales",
    "inclusion_terms": "float64 (4,): the Inclusion its rows' pi come from",
    "tournament": "int64 (t_i,): the rows its private tournament decided in",
    "open_row": "float64 (2,): its open row, [index, probability left]",
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


# ---------------------------------------- private pivotal sampling (no score up)
# The water-filling scale c of pi_i = min(1, c p_i) is found from sums over
# every client's rows at candidate scales: the count of rows capped at 1 and
# the mass p of the others. c >= budget (sum_i min(1, c p_i) <= c), so the
# first round tries budget * 2^g; each later round splits the bracket that
# crosses the budget into _N_CANDIDATES geometric steps.
_N_CANDIDATES = 64
_MAX_ROUNDS = 24
_MASS_BOUND = 1  # every client's uncapped mass is below 2^1 (p sums to 1)


def client_capped_mass(sorted_p, candidates):
    """For each candidate scale ``c``: ``[#{c p >= 1}, sum of p where c p < 1}]``
    over the client's eligible rows (``sorted_p`` ascending)."""
    below = np.searchsorted(sorted_p, 1.0 / np.asarray(candidates), side="left")
    mass = np.concatenate([[0.0], np.cumsum(sorted_p)])
    return np.column_stack([sorted_p.shape[0] - below, mass[below]])


def server_water_level(counts, masses, candidates, budget):
    """The bracket ``(lo, hi)`` of candidate scales that holds the water
    level, and the scale when no row is capped in between (else ``None``).

    ``counts`` and ``masses`` are the federation's sums at ``candidates``
    (ascending); ``f(c) = count + c mass`` grows with ``c`` and meets the
    budget in the bracket.
    """
    level = counts + candidates * masses
    reached = np.flatnonzero(level >= budget * (1.0 - 1e-12))
    if not reached.size:
        raise ValueError(
            f"Only {int(counts[-1])} rows can be drawn (the others score 0), "
            f"fewer than the budget of {budget}: lower the budget or set "
            "uniform_mix > 0."
        )
    g = int(reached[0])
    if g == 0:  # f(c) <= c and f(c_0) reaches the budget c_0: the level is c_0
        return (candidates[0], candidates[0]), float(candidates[0])
    lo, hi = g - 1, g
    if (
        counts[lo] == counts[hi]
        or np.nextafter(candidates[lo], np.inf) >= (candidates[hi])
    ):
        scale = (budget - counts[lo]) / masses[lo]
        return (candidates[lo], candidates[hi]), float(
            np.clip(scale, candidates[lo], candidates[hi])
        )
    return (candidates[lo], candidates[hi]), None


def water_level(summed_at, budget):
    """The water-filling scale ``c`` of ``pi = min(1, c p)`` from sums over
    the parties' rows.

    ``summed_at(candidates)`` runs one round: every party's
    :func:`client_capped_mass` at the ascending ``candidates``, summed
    (masked, over clients; a reduction, over Dask chunks). The first round
    tries ``budget * 2^g``, each later one splits the bracket that holds the
    level into ``_N_CANDIDATES`` geometric steps, until
    :func:`server_water_level` finds no row capped inside it: the scale is
    then exact (the capped set is found). A bracket narrows by a factor of
    ``_N_CANDIDATES + 1`` in log scale each round, so it reaches adjacent
    floats in about ten rounds.
    """
    candidates = float(budget) * 2.0 ** np.arange(_N_CANDIDATES)
    steps = np.arange(1, _N_CANDIDATES + 1) / (_N_CANDIDATES + 1)
    for _ in range(_MAX_ROUNDS):
        sums = summed_at(candidates)
        (lo, hi), scale = server_water_level(
            np.rint(sums[:, 0]), sums[:, 1], candidates, budget
        )
        if scale is not None:
            return scale
        candidates = np.concatenate([[lo], lo * (hi / lo) ** steps, [hi]])
    raise RuntimeError(  # unreachable: float brackets close within ~10 rounds
        f"The water level was not found in {_MAX_ROUNDS} rounds."
    )


@client_step("score_total")
def step_score_total(state, config):
    """Private pivotal, 1: keep its eligible rows' total score and number."""
    scores, eligible = state["scores"], state.get("eligible")
    if eligible is not None:
        scores = np.where(eligible, scores, 0.0)
    n = scores.shape[0] if eligible is None else int(np.count_nonzero(eligible))
    total = np.array([float(np.sum(scores)), float(n)])
    state["score_total"], state["score_total_magnitudes"] = total, np.abs(total)


@client_step("inclusion_mass")
def step_inclusion_mass(state, config, units, candidates, bounds):
    """Private pivotal, 2: decode the federation's total score and number of
    eligible rows, keep its rows' sorted ``p``, and keep the capped counts
    and uncapped mass at the first candidate scales."""
    total, n_eligible = client_decode(units, state["score_total_bounds"])
    state["inclusion_totals"] = np.array([total, np.rint(n_eligible)])
    eligible = state.get("eligible")
    # p itself: the inclusion probabilities at scale 1 (p <= 1).
    unit = Inclusion(1.0, total, int(np.rint(n_eligible)), config["mix"])
    p = client_inclusion(state["scores"], unit, eligible)
    if eligible is not None:
        p = p[eligible]
    state["inclusion_mass"] = np.sort(p)
    _keep_capped_mass(state, candidates, bounds)


def _keep_capped_mass(state, candidates, bounds):
    state["capped_mass"] = client_capped_mass(state["inclusion_mass"], candidates)
    state["capped_mass_bounds"] = np.asarray(bounds, dtype=np.int64)


@client_step("capped_mass")
def step_capped_mass(state, config, candidates, bounds):
    """Private pivotal, 3: the capped counts and uncapped mass at the next
    candidate scales."""
    _keep_capped_mass(state, candidates, bounds)


@client_step("private_pivotal")
def step_private_pivotal(state, config, scale):
    """Private pivotal, 4: its rows' ``pi`` from the scale and its kept
    totals, its tournament (its own seed for this round); upload the rows
    decided in and the open row, as :func:`step_pivotal` does."""
    total, n_eligible = state.pop("inclusion_totals")
    terms = Inclusion(float(scale[0]), total, int(n_eligible), config["mix"])
    state["inclusion_terms"] = np.array(terms, dtype=np.float64)
    del state["inclusion_mass"], state["capped_mass"]
    pi = client_inclusion(state["scores"], terms, state.get("eligible"))
    stream_seed = stream(state["sampling_seed"], "private pivotal", config["round"])
    seed = int(stream_seed.randint(2**31 - 1))
    selected, open_row = client_pivotal(state["X"], pi, seed, config["max_depth"])
    state["tournament"], state["open_row"] = selected, open_row
    return selected, open_row


@client_step("private_selection")
def step_private_selection(state, config, verdict):
    """Private pivotal, 5: its selection (the rows its tournament decided in,
    and its open row if the server's verdict selects it) with their weights
    ``1 / pi``, computed here: keep them (``"selection_indices"``,
    ``"selection_weights"``)."""
    rows = state.pop("tournament")
    open_row = state.pop("open_row")
    if bool(verdict[0]):
        rows = np.sort(np.append(rows, int(open_row[0])))
    rows = rows.astype(np.int64)
    terms = Inclusion(*state["inclusion_terms"])
    eligible = state.get("eligible")
    pi = client_inclusion(
        state["scores"][rows], terms, None if eligible is None else eligible[rows]
    )
    state["selection_indices"], state["selection_weights"] = rows, 1.0 / pi


def private_pivotal_selection(
    transport, n_selected, random_state, *, uniform_mix, max_depth, counts, purpose
):
    """Federated pivotal sampling whose scores never leave the clients.

    Every client kept its rows' scores (``"scores"``; ``"eligible"`` when
    some may not be drawn). The server learns what turns a score into an
    inclusion probability without a score: the total score and the number
    of eligible rows by a secure sum (in units only the clients can read:
    the clients decode it), then the water-filling scale ``c`` of
    ``pi_i = min(1, c p_i)`` from a few masked sums of the number of rows
    capped at 1 and the mass of the others at candidate scales
    (:func:`water_level`): aggregates over every client's rows. Each
    client computes its rows' ``pi``, runs its tournament and uploads, as
    :func:`pivotal_selection`, only the rows decided in and its open row's
    probability; the server settles the open rows; each client computes its
    selected rows' weights ``1 / pi`` itself (the server never sees them).

    Parameters
    ----------
    transport : Transport
    n_selected : int
    random_state : numpy.random.RandomState
        The server's: settles the open rows.
    uniform_mix : float
    max_depth : int
        Levels of each client's spatial tree.
    counts : dict of int to int
        Each client's number of rows.
    purpose : str
        Names the round (each client's tournament seed derives from it, so
        two rounds of one fit draw independently).

    Returns
    -------
    indices : ndarray of int64
        Sorted selected rows (federation order). Each client keeps its own
        with their weights (``"selection_indices"``, ``"selection_weights"``).
    """
    clients = list(transport.clients)
    key_agreement(transport)
    headroom = int(np.ceil(np.log2(max(len(clients), 1))))
    mix = {"mix": float(uniform_mix)}
    transport.tell("score_total", "inclusion", config=mix)
    units = secure_sum(
        transport,
        clients,
        "inclusion",
        "score_total",
        "score_total_magnitudes",
        headroom,
    )
    n_total = sum(int(counts[c]) for c in clients)
    bounds = np.array([int(np.ceil(np.log2(n_total + 1))) + 1, _MASS_BOUND + 1])

    first = True

    def summed_at(candidates):  # one masked round at the candidate scales
        nonlocal clients, first
        if first:  # the clients also decode the total and keep their p
            transport.tell(
                "inclusion_mass",
                "inclusion",
                broadcast=(units, candidates, bounds),
                config=mix,
            )
            first = False
        else:
            transport.tell("capped_mass", "inclusion", broadcast=(candidates, bounds))
        sums, clients = summed_words(
            transport, clients, "inclusion", "capped_mass", "capped_mass_bounds"
        )
        return client_decode(sums, bounds)

    scale = water_level(summed_at, n_selected)
    replies = transport.ask(
        "private_pivotal",
        "inclusion",
        broadcast=(np.array([scale]),),
        config={**mix, "round": purpose, "max_depth": int(max_depth)},
        reply_phase="pivotal",
    )
    open_rows = [replies[c][1] for c in transport.clients]
    verdicts = server_settle_open_rows(open_rows, random_state)
    transport.tell(
        "private_selection",
        "pivotal",
        {c: (verdicts[i : i + 1],) for i, c in enumerate(transport.clients)},
    )
    local = {}
    for i, c in enumerate(transport.clients):
        mine = [replies[c][0]]
        if verdicts[i]:
            mine.append(np.array([int(open_rows[i][0])]))
        local[c] = np.concatenate(mine).astype(np.int64)
    return transport.rows(local, counts)
