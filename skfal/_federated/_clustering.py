"""Clustering-based sensitivity scores over clients that keep their rows.

The steps of :class:`skfal.SensitivitySampler`: client steps registered by
name (``step_sens_*``, run on each client's own state) and the server's
drivers that ask for them over a
:class:`~skfal._federated._transport.Transport`
(:func:`sensitivity_counts`, :func:`federated_clustering`,
:func:`federated_scores`, then the selection). Every vector a client uploads
that is built from its rows (a sum of rows, a local centre) is first rotated
by the clients' shared Haar matrix ``Q``, which the server never sees;
distances are rotation-invariant, so the server can seed and update centres
in the rotated space, and the clients rotate the centres back. Medoid rows
and labels never leave their client: the server learns per-cluster counts,
distances and losses (scalars) only.

0. Scale: the clients agree on ``x`` with ``max |X| < 2**x`` (a secure
   maximum) and work in ``X / 2**x``.
1. Subsample: the server draws ``m`` positions uniformly among all ``n`` rows
   and tells each client how many fall to it; the client picks that many of
   its rows at random.
2. Seeding: each client clusters its subsample locally (D^z seeding and Lloyd
   steps) and uploads its rotated local centres with their sizes; the server
   runs weighted D^z seeding over all of them.
3. Lloyd rounds on the subsample: the server sends the seeded centres; each
   round the clients' rotated per-cluster sums and weights are added up by
   secure aggregation (the server sees no client's statistics) and passed
   back, and every client moves the centres. From the same initial centres
   this is exactly centralized Lloyd.
4. Assignment: each client assigns all its rows and uploads, per cluster, its
   number of rows and its smallest distance to the centre; the server names,
   per cluster, the client holding the medoid (the row nearest the centre).
5. With labels: the medoids' owners learn the proxy model ``x0`` by the
   masked least-squares protocol (rows weighted by cluster size); they upload
   each medoid's loss under ``x0``; for the Holder constant the server picks,
   per cluster, a client with probability proportional to its rows there,
   which reads one random row's label and uploads that row's loss and
   distance. The server forms ``Lambda_j`` and sends ``(Lambda_j, loss_j)``.
6. Scores: each client uploads ``Lambda_j d^z + loss_j`` (``d^z`` without
   labels) for its rows.

A centralized fit is this protocol with a single client over an in-process
transport: a secure sum of one participant adds no mask (there is no other
party to share one with), so its total is that client's own values.
"""

import functools
from typing import NamedTuple

import numpy as np

from skfal._clustering import assign, cluster, lloyd_statistics, lloyd_update, seed_dz
from skfal._federated._masks import client_shared_rotation
from skfal._federated._regression import global_training
from skfal._federated._secure import (
    _check_participants,
    client_decode,
    finish_bounds,
    key_agreement,
    masked_round,
    relay_partner_keys,
    secure_bounds,
    shared_generator,
    summed_words,
)
from skfal._federated._transport import CLIENT_STEPS, client_step, read_labels, stream
from skfal._rows import Rows, max_abs, scale_rows

_NEEDED = "Their labels are needed to compute the sensitivity scores."


class Clustering(NamedTuple):
    """Steps 1-4: what the server holds of the clustering.

    ``sizes`` and ``owners``: each kept cluster's number of rows and the
    client holding its medoid (the row nearest the centre); ``medoids``:
    each medoid as a row of the federation (its owner uploads where it is,
    never the row); ``cluster_counts``: each client's rows per kept cluster,
    shape ``(n_clients, n_kept)``; ``n_iter``: Lloyd rounds. The centres and
    each row's cluster stay with the clients.
    """

    sizes: np.ndarray
    owners: np.ndarray
    medoids: np.ndarray
    cluster_counts: np.ndarray
    n_iter: int


class ProxyModel(NamedTuple):
    """Step 5: the proxy model ``x0`` fitted on the medoids, and their losses."""

    coef: np.ndarray
    intercept: float
    medoid_loss: np.ndarray


class SensitivityResult(NamedTuple):
    """What the server of :class:`skfal.SensitivitySampler` holds after step 6.

    ``scores`` (in the clients' working units) and the row indices
    (``clustering.medoids``, ``probes``) are in the federation's row order;
    ``holder`` and ``medoid_loss`` are ``None`` for distance-only scores;
    ``proxy`` is the released proxy model (or ``None``); ``n_labels_read``
    counts the labels bought.
    """

    clustering: Clustering
    scores: np.ndarray
    probes: np.ndarray
    holder: np.ndarray | None
    medoid_loss: np.ndarray | None
    proxy: ProxyModel | None
    n_labels_read: int


# --------------------------------------------------------------------- clients
def client_subsample(n_rows, n_sub, seed):
    """Pick ``n_sub`` of the client's ``n_rows`` rows uniformly (local indices)."""
    return np.sort(np.random.RandomState(seed).choice(n_rows, n_sub, replace=False))


def client_local_centres(X_sub, n_clusters, z, seed, rotation, max_iter):
    """Cluster the client's subsample; upload rotated centres and sizes."""
    k = min(n_clusters, X_sub.shape[0])
    centres, sizes = cluster(X_sub, k, z, np.random.RandomState(seed), max_iter)
    keep = sizes > 0
    return centres[keep] @ rotation, sizes[keep]


def client_lloyd_statistics(X_sub, centres_rot, z, rotation):
    """Lloyd share: ``[rotated per-cluster sums, weights]`` of the subsample."""
    if X_sub.shape[0] == 0:  # nothing drawn here: a share of zeros
        return np.zeros((centres_rot.shape[0], centres_rot.shape[1] + 1))
    sums, weights, _ = lloyd_statistics(X_sub, centres_rot @ rotation.T, z)
    return np.hstack([sums @ rotation, weights[:, None]])


def client_lloyd_update(centres_rot, totals):
    """The new (rotated) centres from the summed shares, as every client computes."""
    return lloyd_update(centres_rot, totals[:, :-1], totals[:, -1])


def client_assign(X_i, centres_rot, rotation):
    """Assign all rows; upload per-cluster row counts and smallest distances.

    The labels and distances of the rows stay with the client.
    """
    labels, distances = assign(X_i, centres_rot @ rotation.T)
    k = centres_rot.shape[0]
    nearest = np.full(k, np.inf)
    np.minimum.at(nearest, labels, distances)
    return (labels, distances), np.bincount(labels, minlength=k), nearest


# ---------------------------------------------------------------------- server
def server_subsample_counts(client_sizes, n_sub, random_state):
    """How many of ``n_sub`` uniform positions fall to each client."""
    positions = random_state.choice(int(np.sum(client_sizes)), n_sub, replace=False)
    edges = np.cumsum(client_sizes)
    return np.bincount(
        np.searchsorted(edges, positions, side="right"), minlength=len(edges)
    )


def server_seed_centres(centres_list, sizes_list, n_clusters, z, random_state):
    """Weighted D^z seeding over all clients' rotated local centres."""
    pool = np.vstack(centres_list)
    weights = np.concatenate(sizes_list).astype(float)
    return pool[seed_dz(pool, n_clusters, z, random_state, weights)]


def server_medoid_owners(counts, nearest):
    """Drop clusters no row joined; sizes and medoid-holding client of the rest.

    Returns ``keep`` (mask over the clusters), and for the kept clusters
    their sizes and the client holding the row nearest the centre.
    """
    sizes = np.sum(counts, axis=0)
    keep = sizes > 0
    return keep, sizes[keep], np.argmin(np.vstack(nearest)[:, keep], axis=0)


def client_keep_clusters(assignment, keep):
    """Renumber the client's row labels after empty clusters are dropped."""
    labels, distances = assignment
    return (np.cumsum(keep) - 1)[labels], distances


def client_medoids(assignment, owned):
    """Local index of the row nearest the centre, for each cluster in ``owned``."""
    labels, distances = assignment
    medoids = np.empty(owned.shape[0], dtype=np.int64)
    for m, j in enumerate(owned):
        rows = np.flatnonzero(labels == j)
        medoids[m] = rows[np.argmin(distances[rows])]
    return medoids


def client_losses(X_rows, y_rows, coef, intercept):
    """Squared residuals of the client's labeled rows under the proxy model.

    Raises a ValueError when they overflow (labels beyond about 1e154).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        losses = (np.asarray(X_rows, dtype=np.float64) @ coef + intercept - y_rows) ** 2
    if not np.all(np.isfinite(losses)):
        raise ValueError(
            "The squared residuals of the labels read overflow float64 (labels "
            "of size 1e154 or more): divide y by its scale, or use "
            "distance-only scores (holder_constant=np.inf)."
        )
    return losses


def client_probe(assignment, cluster_ids, exclude, seed):
    """One uniformly random row (local index) per cluster, avoiding ``exclude``."""
    labels, _ = assignment
    rng = np.random.RandomState(seed)
    picks = np.empty(cluster_ids.shape[0], dtype=np.int64)
    for m, j in enumerate(cluster_ids):
        rows = np.setdiff1d(np.flatnonzero(labels == j), exclude)
        picks[m] = rng.choice(rows)
    return picks


def client_scores(assignment, z, holder, medoid_loss):
    """Sensitivity scores ``Lambda_j d^z + loss_j`` (``d^z`` without labels)."""
    labels, distances = assignment
    scores = distances**z
    if holder is not None:
        scores = holder[labels] * scores + medoid_loss[labels]
    return scores


def holder_in_working_units(holder, z, x):
    """A Holder constant in the user's units, in the working units ``X / 2**x``.

    ``Lambda 2**(z x)`` (so ``Lambda d^z`` is unchanged), capped at
    ``2**900`` so that the scores stay finite.
    """
    with np.errstate(over="ignore", under="ignore"):
        return np.minimum(np.ldexp(holder, z * x), 2.0**900)


def client_cluster_counts(assignment, local_rows, n_clusters):
    """How many of the given rows of the client fall in each cluster."""
    return np.bincount(assignment[0][local_rows], minlength=n_clusters)


def server_probe_plan(counts, owners, max_probes, random_state):
    """Which clusters to probe, and at which client: -1 where none.

    At most ``max_probes`` clusters having a row besides the medoid are
    probed, chosen with probability proportional to those rows (all of them
    when the budget allows). In a probed cluster the client is chosen with
    probability proportional to its rows there other than the medoid, so the
    probe is uniform over the cluster.
    """
    counts = np.vstack(counts).astype(float)
    counts[owners, np.arange(counts.shape[1])] -= 1
    others = counts.sum(axis=0)
    candidates = np.flatnonzero(others > 0)
    if candidates.size > max_probes:
        p = others[candidates] / others[candidates].sum()
        candidates = random_state.choice(candidates, max_probes, replace=False, p=p)
    plan = np.full(counts.shape[1], -1)
    for j in candidates:
        plan[j] = random_state.choice(counts.shape[0], p=counts[:, j] / others[j])
    return plan


def server_holder_constants(medoid_loss, probe_loss, probe_distance_z, n_rows):
    """Lemma 8: ``Lambda_j = log(n) |loss(probe) - loss(medoid)| / d(probe)^z``.

    Clusters without a probe get the largest estimate of the others; with no
    probe at all the result is ``None`` (distance-only scores).
    """
    probed = ~np.isnan(probe_loss)
    if not probed.any():
        return None
    holder = np.full(medoid_loss.shape[0], np.nan)
    gap = np.abs(probe_loss[probed] - medoid_loss[probed])
    scale = np.log(max(n_rows, 2))
    holder[probed] = scale * gap / np.maximum(probe_distance_z[probed], 1e-12)
    return np.where(np.isnan(holder), np.nanmax(holder), holder)


# What a client keeps (declared; tests/test_transport.py checks every fit's).
STATE = {
    "abs_max": "float64 (1,): max |X_i| (for the common scale)",
    "row_exponent": "int64 (1,): x, the common scale: max |X| < 2**x",
    "sub_rows": "array (s_i, d): its Lloyd subsample (until assignment)",
    "centres_rot": "float64 (k, d): the rotated centres, as it moved them",
    "lloyd_share": "float64 (k, d + 1): its rotated per-cluster sums, weights",
    "assign_labels": "int64 (n_i,): each of its rows' cluster",
    "assign_distances": "float64 (n_i,): each row's distance to its centre",
    "medoid_indices": "int64 (m_i,): its rows that are medoids",
    "medoid_weights": "float64 (m_i,): their weights (proxy model)",
    "probe_indices": "int64 (p_i,): its rows that are Holder probes",
    "probe_clusters": "int64 (p_i,): their clusters",
}


# ------------------------------------------------------- client steps by name
# The protocol over a transport (steps 1-6 as client steps): every value a
# client uses arrived in a message or derives from its own rows and seeds.
def _rows(state):
    """The client's rows in the working units ``X / 2**x`` (cached for the
    message; ``x`` from the secure maximum). Sparse or out-of-core rows (a
    :class:`~skfal._rows.Rows`) stay a view, read a block at a time."""
    if "scaled_X" not in state:
        x = int(state["row_exponent"][0])
        own = _own_rows(state)
        state["scaled_X"] = own if x == 0 else scale_rows(own, -x)
    return state["scaled_X"]


def _own_rows(state):
    """The client's rows as kept: a :class:`~skfal._rows.Rows` as it is,
    anything else as a float64 array."""
    own = state["X"]
    return own if isinstance(own, Rows) else np.asarray(own, dtype=np.float64)


def cluster_rotation(state, n_features):
    """The clients' shared Haar rotation for clustering (its own draw of
    the group secret); read-only."""
    return _shared_rotation(bytes(state["group_secret"]), int(n_features))


@functools.lru_cache(maxsize=2)
def _shared_rotation(group_secret, n_features):
    """:func:`cluster_rotation`, a pure function of the secret: cached, since
    every step of a fit that touches rows uses it (each Lloyd round); a
    fresh fit has a fresh secret."""
    rng = shared_generator(group_secret, f"cluster rotation {n_features}")
    rotation = client_shared_rotation(n_features, rng)
    rotation.flags.writeable = False
    return rotation


def holder_centres(transport, n_features):
    """The centres, unrotated: what the holder of an in-process fit keeps.

    Every client holds them rotated (``centres_rot``) with the rotation of
    its group secret; a deployment's clients would hand them over unrotated.
    """
    state = transport.states[0]
    return state["centres_rot"] @ cluster_rotation(state, n_features).T


def _own_seed(state, purpose):
    return int(stream(state["sampling_seed"], purpose).randint(2**31 - 1))


@client_step("sens_begin")
def step_sens_begin(state, config):
    """Upload the row count; keep ``max |X_i|`` for the common scale."""
    own = _own_rows(state)
    state["abs_max"] = np.array([max_abs(own)])
    return (np.array([own.shape[0]]),)


@client_step("sens_scale")
def step_sens_scale(state, config):
    """Keep the common exponent ``x`` (``max |X| < 2**x``) from the bounds."""
    state["row_exponent"] = np.asarray(state["abs_max_bounds"], dtype=np.int64)


@client_step("sens_local_centres")
def step_sens_local_centres(state, config, n_sub):
    """Step 1-2: pick the subsample (own seed) and keep its rows, read once
    for every Lloyd round (an array; a sparse table's rows stay sparse, as
    its ``X`` does); upload rotated local centres and their sizes (nothing
    when no row of the client was drawn)."""
    own = _rows(state)
    sub = client_subsample(own.shape[0], int(n_sub[0]), _own_seed(state, "subsample"))
    state["sub_rows"] = own[sub]
    rotation = cluster_rotation(state, own.shape[1])
    if sub.size == 0:
        return np.empty((0, own.shape[1])), np.empty(0)
    return client_local_centres(
        state["sub_rows"],
        config["n_clusters"],
        config["z"],
        _own_seed(state, "local_centres"),
        rotation,
        config["max_iter"],
    )


@client_step("lloyd_move")
def step_lloyd_move(state, config, *totals):
    """Step 3, end of a Lloyd round: move the centres by the summed shares
    (when sent); reply whether they moved less than the tolerance."""
    done = False
    if totals:
        centres = state["centres_rot"]
        summed = client_decode(totals[0], state["lloyd_share_bounds"])
        new = client_lloyd_update(centres, summed)
        done = bool(np.allclose(new, centres, rtol=0, atol=1e-10))
        state["centres_rot"] = new
    return (np.array([int(done)]),)


@client_step("lloyd_marks")
def step_lloyd_marks(state, config, *totals):
    """Step 3, one Lloyd round: move the centres (:func:`step_lloyd_move`),
    keep the next share and upload the first round of its secure maximum,
    with whether the centres moved in the clear after it (the server stops
    when they did not, and drops this round)."""
    (flag,) = step_lloyd_move(state, config, *totals)
    sub_rows = state["sub_rows"]
    rotation = cluster_rotation(state, sub_rows.shape[1])
    share = client_lloyd_statistics(
        sub_rows, state["centres_rot"], config["z"], rotation
    )
    state["lloyd_share"] = share
    state["lloyd_share_magnitudes"] = np.abs(share).max(axis=0, initial=0.0)
    return (*CLIENT_STEPS["exponent_marks"](state, config), flag)


@client_step("sens_assign")
def step_sens_assign(state, config):
    """Step 4: assign every row; keep labels and distances, upload per-cluster
    counts and smallest distances. The Lloyd rounds are over: the
    subsample's rows are let go."""
    state.pop("sub_rows", None)
    own = _rows(state)
    rotation = cluster_rotation(state, own.shape[1])
    (labels, distances), counts, nearest = client_assign(
        own, state["centres_rot"], rotation
    )
    state["assign_labels"], state["assign_distances"] = labels, distances
    return counts, nearest


@client_step("sens_medoids")
def step_sens_medoids(state, config, keep, owners, sizes):
    """Step 4 (end): drop empty clusters, keep the medoids of the clusters
    this client owns (weighted by cluster size); upload their local rows."""
    labels, distances = client_keep_clusters(
        (state["assign_labels"], state["assign_distances"]), keep.astype(bool)
    )
    state["assign_labels"] = labels
    state["centres_rot"] = state["centres_rot"][keep.astype(bool)]
    owned = np.flatnonzero(owners == state["client"])
    medoids = client_medoids((labels, distances), owned)
    state["medoid_indices"] = medoids
    state["medoid_weights"] = np.asarray(sizes, dtype=np.float64)[owned]
    return (medoids,)


@client_step("sens_medoid_loss")
def step_sens_medoid_loss(state, config):
    """Step 5: the losses of the client's medoids under the proxy model."""
    medoids = state["medoid_indices"]
    if medoids.size == 0:
        return (np.empty(0),)
    return (
        client_losses(
            _rows(state)[medoids],
            state["medoid_labels"],
            state["model_coef"],
            float(state["model_intercept"][0]),
        ),
    )


@client_step("sens_probe_rows")
def step_sens_probe_rows(state, config, plan):
    """Step 5 (``"auto"``): pick one random row (own seed) in every cluster
    the plan gives this client, not a medoid; upload their local rows."""
    mine = np.flatnonzero(plan == state["client"])
    picks = client_probe(
        (state["assign_labels"], state["assign_distances"]),
        mine,
        np.sort(state["medoid_indices"]),
        _own_seed(state, "probe"),
    )
    state["probe_clusters"], state["probe_indices"] = mine, picks
    return (picks,)


@client_step("sens_probe_losses")
def step_sens_probe_losses(state, config):
    """Step 5 (``"auto"``): read the probes' labels; upload their losses and
    distances ``d^z``."""
    picks = state["probe_indices"]
    if picks.size == 0:
        return np.empty(0), np.empty(0)
    losses = client_losses(
        _rows(state)[picks],
        read_labels(state, picks),
        state["model_coef"],
        float(state["model_intercept"][0]),
    )
    return losses, state["assign_distances"][picks] ** config["z"]


@client_step("sens_scores")
def step_sens_scores(state, config, *holder_and_loss):
    """Step 6: score the client's rows; keep and upload the scores. A float
    Holder constant comes in the user's units; the client converts it."""
    holder = medoid_loss = None
    if holder_and_loss:
        holder, medoid_loss = holder_and_loss
        if config["user_holder"]:
            x = int(state["row_exponent"][0])
            holder = holder_in_working_units(holder, config["z"], x)
    scores = client_scores(
        (state["assign_labels"], state["assign_distances"]),
        config["z"],
        holder,
        medoid_loss,
    )
    state["scores"] = scores
    return (scores,)


@client_step("sens_eligible")
def step_sens_eligible(state, config, zeroed, excluded):
    """The selection's starting point: the client's bought rows score 0;
    forced and unreachable rows may not be drawn."""
    scores = state["scores"].copy()
    scores[zeroed] = 0.0
    state["scores"] = scores
    eligible = np.ones(scores.shape[0], dtype=bool)
    eligible[excluded] = False
    state["eligible"] = eligible


@client_step("sens_stand_in")
def step_sens_stand_in(state, config, local_rows):
    """How many of the given rows of the client fall in each cluster."""
    return (
        client_cluster_counts(
            (state["assign_labels"],), local_rows, config["n_clusters"]
        ),
    )


# ---------------------------------------------------------- server's drivers
def _agreed(replies, what):
    """The value every client replied (they compute the same one)."""
    values = [int(reply[0][0]) for reply in replies.values()]
    if len(set(values)) != 1:
        raise ValueError(f"The clients disagree on {what}: {values}.")
    return values[0]


def sensitivity_counts(transport):
    """Key agreement, then the clients' row counts and the common scale.

    Returns each client's number of rows; every client keeps ``x`` with
    ``max |X| < 2**x`` (a secure maximum) and works in ``X / 2**x``.
    """
    key_agreement(transport)
    replies = transport.ask("sens_begin", "row_counts")
    counts = {c: int(replies[c][0][0]) for c in transport.clients}
    secure_bounds(transport, transport.clients, "scale", "abs_max", 0, "abs_max_bounds")
    transport.tell("sens_scale", "scale")
    return counts


def federated_clustering(
    transport, counts, *, n_clusters, z, n_sub, max_iter, random_state
):
    """Steps 1-4 over ``transport``; what the server holds of the clustering.

    Returns
    -------
    clustering : Clustering
        Each kept cluster's size, the client holding its medoid, the medoid
        as a row of the federation (uploaded by its owner: bought rows), each
        client's rows per cluster, and the Lloyd rounds run.
    """
    everyone = list(transport.clients)
    sizes_i = np.array([counts[c] for c in everyone])
    counts_sub = server_subsample_counts(sizes_i, n_sub, random_state)
    config = {"n_clusters": int(n_clusters), "z": int(z), "max_iter": int(max_iter)}
    local = transport.ask(
        "sens_local_centres",
        "subsample",
        {c: (np.array([counts_sub[i]]),) for i, c in enumerate(everyone)},
        config=config,
        reply_phase="seeding",
    )
    active = [c for c in everyone if local[c][0].shape[0] > 0]
    centres_rot = server_seed_centres(
        [local[c][0] for c in active],
        [local[c][1] for c in active],
        n_clusters,
        z,
        random_state,
    )
    transport.tell(
        "keep", "lloyd", broadcast=(centres_rot,), config={"keys": ["centres_rot"]}
    )
    n_iter = lloyd_rounds(transport, z=z, max_iter=max_iter)
    assigned = transport.ask("sens_assign", "assignment")
    keep, sizes, owners = server_medoid_owners(
        [assigned[c][0] for c in everyone], [assigned[c][1] for c in everyone]
    )
    replies = transport.ask(
        "sens_medoids",
        "assignment",
        broadcast=(keep.astype(np.int64), owners, sizes),
        reply_phase="medoids",
    )
    medoids = np.empty(owners.shape[0], dtype=np.int64)
    for c in everyone:
        owned = np.flatnonzero(owners == c)
        medoids[owned] = transport.rows_of(c, replies[c][0], counts)
    cluster_counts = np.vstack([assigned[c][0][keep] for c in everyone])
    return Clustering(sizes, owners, medoids, cluster_counts, n_iter)


def lloyd_rounds(transport, *, z, max_iter):
    """Step 3: Lloyd rounds on secure sums, from the centres every client kept.

    Each round is one secure sum (:func:`~skfal._federated._secure.secure_sum`'s
    rounds) of the clients' rotated per-cluster sums and weights; its secure
    maximum's first round rides on the message that moves the centres by
    the previous sum. Every client moves the centres itself and replies
    whether they moved, so the server stops when they agree they did not
    (or after ``max_iter`` rounds). Returns the rounds.
    """
    everyone = list(transport.clients)
    _check_participants(everyone, transport.n_clients, "lloyd")
    if max_iter == 0:
        return 0
    key_agreement(transport)
    bounds = {
        "magnitudes": "lloyd_share_magnitudes",
        "headroom": int(np.ceil(np.log2(len(everyone)))),
        "store": "lloyd_share_bounds",
    }
    n_iter, totals = 0, ()
    while n_iter < max_iter:
        relay_partner_keys(transport, everyone, "lloyd")
        first = masked_round(
            transport,
            "lloyd_marks",
            "lloyd",
            everyone,
            config={"magnitudes": bounds["magnitudes"], "z": int(z)},
            broadcast=totals,
        )
        moved = {c: first.replies[c][-1:] for c in first.participants}
        if totals and _agreed(moved, "whether Lloyd's centres moved"):
            return n_iter
        everyone = finish_bounds(transport, first, "lloyd", bounds)
        total, everyone = summed_words(
            transport, everyone, "lloyd", "lloyd_share", bounds["store"]
        )
        totals = (total,)
        n_iter += 1
    replies = transport.ask("lloyd_move", "lloyd", broadcast=totals, clients=everyone)
    _agreed(replies, "whether Lloyd's centres moved")
    return n_iter


def federated_scores(
    transport,
    counts,
    clustering,
    *,
    n_features,
    z,
    holder_constant,
    with_labels,
    fit_intercept,
    max_probes,
    random_state,
):
    """Steps 5-6 over ``transport``: the server's side of the scores.

    ``clustering`` is :func:`federated_clustering`'s result. With labels,
    the medoids' owners read their labels and learn the proxy model (global
    training on the medoids, weighted by cluster size), upload the medoids'
    losses, and (``"auto"``) the probes' losses and distances. In-process,
    ``transport.check_labels`` names rows whose label is missing before any
    client reads it.

    Returns
    -------
    result : SensitivityResult
        ``scores`` in the clients' working units; ``holder`` in those units
        for ``"auto"``, the user's float otherwise; ``proxy`` the released
        proxy model (or ``None``).
    """
    owners, medoids = clustering.owners, clustering.medoids
    everyone = list(transport.clients)
    k = owners.shape[0]
    holder = medoid_loss = proxy = None
    probes = np.empty(0, dtype=np.int64)
    user_holder = False
    if with_labels:
        transport.check_labels(medoids, "cluster medoids", _NEEDED)
        labeled = {c: int(np.sum(owners == c)) for c in everyone}
        trained = global_training(
            transport,
            labeled,
            n_features=n_features,
            fit_intercept=fit_intercept,
            rows="medoid",
            scaled=True,
        )
        replies = transport.ask("sens_medoid_loss", "medoid_loss")
        medoid_loss = np.empty(k)
        for c in everyone:
            medoid_loss[owners == c] = replies[c][0]
        model = trained.model
        proxy = None if model is None else ProxyModel(*model, medoid_loss)
        if holder_constant == "auto":
            plan = server_probe_plan(
                list(clustering.cluster_counts), owners, max_probes, random_state
            )
            picked = transport.ask("sens_probe_rows", "probe", broadcast=(plan,))
            found = [transport.rows_of(c, picked[c][0], counts) for c in everyone]
            probes = np.sort(np.concatenate(found)) if found else probes
            transport.check_labels(probes, "Holder probes", _NEEDED)
            replies = transport.ask("sens_probe_losses", "probe", config={"z": int(z)})
            probe_loss, probe_dz = np.full(k, np.nan), np.full(k, np.nan)
            for c in everyone:
                mine = np.flatnonzero(plan == c)
                probe_loss[mine], probe_dz[mine] = replies[c]
            n_samples = int(sum(counts.values()))
            holder = server_holder_constants(
                medoid_loss, probe_loss, probe_dz, n_samples
            )
        else:
            holder, user_holder = np.full(k, float(holder_constant)), True
    scores = _scores(transport, z, holder, medoid_loss, user_holder)
    bought = np.union1d(medoids, probes)
    if holder is not None and scores.sum() - scores[bought].sum() <= 0:
        # The labels say the loss vanishes everywhere (Lambda = loss = 0):
        # nothing to weigh the other rows by, so fall back to distances.
        holder = medoid_loss = None
        scores = _scores(transport, z, None, None, False)
    return SensitivityResult(
        clustering=clustering,
        scores=scores,
        probes=probes,
        holder=holder,
        medoid_loss=medoid_loss,
        proxy=proxy,
        n_labels_read=int(bought.size) if with_labels else 0,
    )


def _scores(transport, z, holder, medoid_loss, user_holder):
    """Step 6: every client scores its rows; the scores in federation order."""
    broadcast = () if holder is None else (holder, medoid_loss)
    replies = transport.ask(
        "sens_scores",
        "holder" if broadcast else "scores",
        broadcast=broadcast,
        config={"z": int(z), "user_holder": bool(user_holder)},
        reply_phase="scores",
    )
    return transport.gather({c: replies[c][0] for c in transport.clients})


def federated_stand_in_counts(transport, counts, rows, n_clusters):
    """Per cluster, how many of ``rows`` (sorted, federation order) it holds."""
    local, _ = transport.split(rows, counts)
    replies = transport.ask(
        "sens_stand_in",
        "stand_in",
        {c: (local[c],) for c in transport.clients},
        config={"n_clusters": int(n_clusters)},
    )
    return np.sum([replies[c][0] for c in transport.clients], axis=0)


def send_eligible(transport, counts, zeroed, excluded):
    """Each client learns its rows that score 0 (bought) and those that may
    not be drawn (forced, unreachable), before the federated selection."""
    zero_local, _ = transport.split(np.sort(zeroed), counts)
    out_local, _ = transport.split(np.sort(excluded), counts)
    transport.tell(
        "sens_eligible",
        "eligible",
        {c: (zero_local[c], out_local[c]) for c in transport.clients},
    )
