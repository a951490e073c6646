"""(k, z)-clustering kernels: D^z seeding, assignment and Lloyd statistics.

``z = 2`` is k-means (a cluster's best centre is its mean); ``z = 1`` is
k-median in the Euclidean sense (its best centre is the geometric median,
approached by Weiszfeld steps). Every function works on one block of rows, so
the same code runs centralized and at each federated client; Lloyd's update
only needs per-cluster sums and weights, which clients can add up.

``X`` is an ndarray or a :class:`~skfal._rows.Rows` (sparse or out-of-core
rows): distances are computed one densified block of rows at a time, with
the same arithmetic, so a sparse table clusters exactly as its dense copy.
"""

import numpy as np

from skfal._rows import as_dense, chunk_size, dense_rows, iter_blocks, map_pieces

_TINY = 1e-9


def assign(X, centres):
    """Nearest centre of every row and the Euclidean distance to it.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    centres : ndarray of shape (n_clusters, n_features)

    Returns
    -------
    labels : ndarray of shape (n_rows,)
    distances : ndarray of shape (n_rows,)
        Zero for rows within ``1e-9 max |centre entry|`` of their centre, so
        rounding does not turn a row on its centre into one near it. The
        cutoff is relative: scaling X and the centres by any factor scales
        the distances and selects the same rows at zero.
    """
    # Rows on a cluster's workers are assigned there (2 n numbers come back).
    parts = map_pieces(X, _assign_rows, centres)
    labels = np.concatenate([part[0] for part in parts])
    distances = np.concatenate([part[1] for part in parts])
    # A row on its centre up to rounding (e.g. after the federated rotation)
    # is on it: distance exactly 0. Rounding is relative to the entries, so
    # is the cutoff (an absolute one zeroed every row of data at 1e-9 scale).
    distances[distances <= _TINY * np.abs(centres).max()] = 0.0
    return labels, distances


def _assign_rows(X, centres):
    """Nearest centre of every row of ``X`` and the distance to it."""
    labels = np.empty(X.shape[0], dtype=np.int64)
    distances = np.empty(X.shape[0])
    centre_norms = np.einsum("ij,ij->i", centres, centres)
    size = max(1, chunk_size(max(X.shape[1], centres.shape[0])))
    for start, block in iter_blocks(X, size):
        block = as_dense(block)
        squared = centre_norms - 2.0 * block @ centres.T
        nearest = np.argmin(squared, axis=1)
        rows = slice(start, start + block.shape[0])
        labels[rows] = nearest
        exact = block - centres[nearest]  # recompute: no cancellation error
        distances[rows] = np.sqrt(np.einsum("ij,ij->i", exact, exact))
    return labels, distances


def seed_dz(X, n_clusters, z, random_state, sample_weight=None):
    """D^z seeding (k-means++ for z = 2): indices of ``n_clusters`` rows of X.

    The first row is drawn with probability proportional to its weight, each
    next one proportional to weight times (distance to the nearest chosen
    row)^z. Stops early when every remaining row coincides with a chosen one.
    """
    weight = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    chosen = [int(random_state.choice(X.shape[0], p=weight / weight.sum()))]
    nearest = np.full(X.shape[0], np.inf)
    for _ in range(1, n_clusters):
        nearest = np.minimum(nearest, _distances_to(X, dense_rows(X, chosen[-1:])[0]))
        mass = weight * nearest**z
        total = mass.sum()
        if total <= 0:
            break
        chosen.append(int(random_state.choice(X.shape[0], p=mass / total)))
    return np.array(chosen)


def _distances_to(X, point):
    """Euclidean distance of every row of ``X`` to ``point``, block by block."""
    out = np.empty(X.shape[0])
    for start, block in iter_blocks(X):
        diff = as_dense(block) - point
        out[start : start + diff.shape[0]] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def lloyd_statistics(X, centres, z, sample_weight=None):
    """What one Lloyd step needs from a block of rows, per cluster.

    Returns ``(sums, weights, counts)``: for ``z = 2`` the (weighted) sums of
    the rows and their total weight; for ``z = 1`` the Weiszfeld sums
    ``sum w x / ||x - c||`` and weights ``sum w / ||x - c||``; ``counts`` is
    the number of rows of each cluster. The new centre is ``sums / weights``.
    """
    labels, distances = assign(X, centres)
    w = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    if z == 1:
        # Weiszfeld; a row sitting on its centre is left out of the step
        # (Vardi and Zhang), which also keeps 1/d finite.
        at_centre = distances == 0
        w = np.where(at_centre, 0.0, w / np.where(at_centre, 1.0, distances))
    k = centres.shape[0]
    sums = np.zeros((k, X.shape[1]))
    for start, block in iter_blocks(X):
        rows = slice(start, start + block.shape[0])
        np.add.at(sums, labels[rows], as_dense(block) * w[rows, None])
    return sums, np.bincount(labels, w, k), np.bincount(labels, minlength=k)


def lloyd_update(centres, sums, weights):
    """New centres ``sums / weights``; a cluster with no row keeps its centre."""
    new = centres.copy()
    filled = weights > 0
    new[filled] = sums[filled] / weights[filled, None]
    return new


def cluster(X, n_clusters, z, random_state, max_iter=10, sample_weight=None):
    """D^z seeding then Lloyd (Weiszfeld for z = 1) steps on the rows of X.

    Returns the centres and each cluster's (weighted) number of rows.
    """
    centres = dense_rows(X, seed_dz(X, n_clusters, z, random_state, sample_weight))
    for _ in range(max_iter):
        sums, weights, _ = lloyd_statistics(X, centres, z, sample_weight)
        new = lloyd_update(centres, sums, weights)
        if np.allclose(new, centres, rtol=0, atol=1e-10):
            break
        centres = new
    labels, _ = assign(X, centres)
    w = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    return centres, np.bincount(labels, w, centres.shape[0])
