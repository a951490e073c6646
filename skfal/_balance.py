"""Local pivotal sampling (LPM2) at scale, with exact inclusion probabilities.

The local pivotal method of Grafström, Lundström and Schelin (2012,
Biometrics) lets each row compete with its nearest neighbour, so the
sample is spread out in every direction; exact nearest neighbours cost
``O(n^2 d)``. Here the rows are first pooled in the default tournament's
tree order (runs of neighbours that hold at most half a selected row
become one row), and the few open rows left per selected row duel by LPM
within buckets of consecutive open rows, vectorised over the buckets.
Measured in ``benchmarks/bench_label_efficiency.py`` (``LPM pooled``).
"""

import numpy as np

from skfal._linalg import with_intercept
from skfal._sampling import (
    _SNAP as SNAP,
)
from skfal._sampling import (
    _pool_runs,
    draw_seed,
    horvitz_thompson,
    pivotal_tournament,
    settle_pending,
)


def _bucket_duels(P, C, rng):
    """LPM within each bucket, in place: ``P`` (buckets, m) the open rows'
    probabilities (0 for padding), ``C`` (buckets, m, k) their coordinates.

    In every bucket at once, the rows take turns in a random order, pass
    after pass; an open row on its turn duels with the nearest open row
    of its bucket. Returns the mask of the rows left open (at most one a
    bucket)."""
    m = P.shape[1]
    sq = np.einsum("bik,bik->bi", C, C)
    D = sq[:, :, None] + sq[:, None, :] - 2.0 * np.matmul(C, C.transpose(0, 2, 1))
    D[:, np.arange(m), np.arange(m)] = np.inf
    is_open = (P > SNAP) & (P < 1.0 - SNAP)
    n_open = is_open.sum(axis=1)
    while True:
        active = np.flatnonzero(n_open > 1)
        if active.size == 0:
            return is_open
        turns = rng.random_sample((active.size, m)).argsort(axis=1)
        for t in range(m):
            keep = n_open[active] > 1
            a, i = active[keep], turns[keep, t]
            ok = is_open[a, i]
            a, i = a[ok], i[ok]
            if a.size == 0:
                continue
            j = np.where(is_open[a], D[a, i], np.inf).argmin(axis=1)
            x, y = P[a, i], P[a, j]
            total = x + y
            u = rng.random_sample(a.size)
            high = total >= 1.0
            i_wins = np.where(high, u * (2.0 - total) < 1.0 - y, u * total < x)
            win = np.where(high, 1.0, total)
            lose = np.where(high, total - 1.0, 0.0)
            P[a, i] = np.where(i_wins, win, lose)
            P[a, j] = np.where(i_wins, lose, win)
            for col in (i, j):
                value = P[a, col]
                shut = (value <= SNAP) | (value >= 1.0 - SNAP)
                P[a[shut], col[shut]] = np.round(value[shut])
                is_open[a[shut], col[shut]] = False
                np.subtract.at(n_open, a[shut], 1)


def pooled_local_pivotal(pi, order, coordinates, rng, bucket=64):
    """A scalable LPM: the tournament's first step, then LPM in buckets.

    In the tree ``order`` (the default's, from the pass that computes the
    leverage scores), runs of neighbours whose probabilities sum to at most
    1/2 are pooled onto one of their rows
    (:func:`~skfal._sampling._pool_runs`, as the default's tournament
    does), leaving a few open rows per selected row; these duel by LPM
    within buckets of ``bucket`` consecutive open rows (nearest neighbours
    in the whitened space: ``coordinates(rows)`` gives those rows' ``[x, 1]
    W``; ``O(bucket k)`` a row), and the rows the buckets leave open by the
    tournament, in bucket order. Every step is a pivotal duel or a run's
    draw, so every inclusion probability is exact.
    """
    values = np.clip(pi[order], 0.0, 1.0)
    values[values < SNAP] = 0.0
    certain = np.flatnonzero(values > 1.0 - SNAP)
    values[certain] = 0.0
    decided = [certain]
    positions, values = _pool_runs(None, values, rng, decided)
    live = values > 0.0
    rows, values = order[positions[live]], values[live]
    n_buckets = -(-rows.shape[0] // bucket)
    P = np.zeros(n_buckets * bucket)
    P[: rows.shape[0]] = values
    R = np.full(n_buckets * bucket, -1)
    R[: rows.shape[0]] = rows
    C = np.zeros((n_buckets * bucket, coordinates(rows[:1]).shape[1]))
    C[: rows.shape[0]] = coordinates(rows)
    P, R = P.reshape(n_buckets, bucket), R.reshape(n_buckets, bucket)
    still = _bucket_duels(P, C.reshape(n_buckets, bucket, -1), rng)
    selected = [order[np.concatenate(decided)], R[(P == 1.0) & ~still]]
    left_rows, left_p = R[still], P[still]
    outcome = pivotal_tournament(left_p, rng)
    selected.append(left_rows[outcome.selected])
    if outcome.pending >= 0 and settle_pending(
        np.array([outcome.pending_probability]), rng
    ):
        selected.append(left_rows[[outcome.pending]])
    return np.sort(np.concatenate(selected))


def local_pivotal_select(X, pi, W, intercept, order, random_state, bucket=64):
    """:func:`pooled_local_pivotal` of ``X``'s rows in the whitened space
    ``[x, 1] W`` (``x W`` without ``intercept``), the coordinates computed
    for the pooled rows only; a :class:`~skfal._sampling.Selection` with
    Horvitz-Thompson weights ``1 / pi``. The duels draw from their own seed,
    as :func:`~skfal._sampling.pivotal_select`'s tournament does."""
    rng = np.random.RandomState(draw_seed(random_state))

    def coordinates(rows):
        block = np.asarray(X[rows], dtype=np.float64)
        return (with_intercept(block) if intercept else block) @ W

    rows = pooled_local_pivotal(pi, order, coordinates, rng, bucket)
    return horvitz_thompson(rows, pi)
