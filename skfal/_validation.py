"""Input checks shared by the estimators: client labels (``groups``)."""

import numpy as np


def check_groups(groups, n_samples):
    """Validate client labels and split the row indices by client.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        The client of each row: ints or strings, rows in any order.
    n_samples : int
        Number of rows of X.

    Returns
    -------
    clients : ndarray of shape (n_clients,)
        The distinct client labels, sorted.
    client_rows : list of ndarray
        For each client, its row indices in ascending order.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(
            "groups must be a 1-D array with the client label of each row of X; "
            f"got an array of shape {groups.shape}."
        )
    if groups.shape[0] != n_samples:
        raise ValueError(
            f"groups has {groups.shape[0]} entries but X has {n_samples} rows: "
            "give exactly one client label per row."
        )
    if groups.dtype.kind == "f" and not np.all(np.isfinite(groups)):
        raise ValueError(
            "groups contains NaN or infinity: every row needs a client label."
        )
    try:
        order = np.argsort(groups, kind="stable")  # rows of each client stay ascending
    except TypeError as exc:
        raise ValueError(
            "groups labels could not be compared with each other; use labels "
            "of one type (all ints or all strings)."
        ) from exc
    ordered = groups[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return ordered[starts], np.split(order, starts[1:])


def client_view(X, rows):
    """``X[rows]``, as a view (no copy) when the rows are one contiguous range."""
    if rows.shape[0] and rows[-1] - rows[0] + 1 == rows.shape[0]:
        return X[rows[0] : rows[-1] + 1]
    return np.take(X, rows, axis=0)  # ~3x faster than X[rows] for many short rows


def check_labels_at(y, rows, what, hint):
    """Raise a ValueError naming the ``rows`` whose label ``y`` is NaN."""
    missing = rows[np.isnan(y[rows])]
    if missing.size:
        raise ValueError(
            f"{missing.size} of the {rows.size} {what} have no label (NaN in y), "
            f"e.g. rows {missing[:10].tolist()}. {hint}"
        )
