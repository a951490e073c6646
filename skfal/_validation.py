"""Input checks shared by the estimators: the table ``X`` (in memory, sparse
or out of core), client labels (``groups``), targets that may be missing
outside the selection, and labels read at chosen rows."""

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_consistent_length, column_or_1d

from skfal._compat import validate_data
from skfal._rows import Rows, is_dask_array, is_row_sliceable

ACCEPT_SPARSE = ("csr", "csc")


def validate_rows(estimator, X, *, reset=True, finite_by_gram=False):
    """``validate_data`` for skfal's estimators: X in memory, sparse or out of core.

    ``finite_by_gram``: the caller's first pass over a dense in-memory ``X``
    is the Gram kernel of :func:`~skfal._linalg.equilibrated_r_factor`,
    which refuses non-finite entries itself (a Gram matrix is finite only
    if every entry of ``X`` is: its diagonal sums their squares), so the
    separate scan of ``X`` is skipped. The error is scikit-learn's.

    Returns
    -------
    X : ndarray or Rows
        An ndarray (float64 or float32) for in-memory dense input, as
        :func:`~sklearn.utils.validation.validate_data` returns it. A sparse
        matrix (any format; converted to CSR, never densified), a
        :class:`numpy.memmap` or any 2-D array-like with row slicing and a
        numpy ``dtype`` (an HDF5 or zarr dataset) comes back as a
        :class:`~skfal._rows.Rows`, read a block at a time by the kernels:
        a memmap or dataset is not loaded (its blocks are checked for
        non-finite values as they are read), and never written. A Dask
        array chunked by rows comes back as a ``skfal._dask.DaskRows``,
        whose chunks the kernels process where they live (imported here
        only for such an array: nothing imports dask otherwise).
    """
    if isinstance(X, Rows):  # a meta-estimator's own validated rows
        validate_data(estimator, np.asarray(X[:1]), reset=reset)
        return X
    if is_dask_array(X):
        from skfal._dask import dask_rows

        rows = dask_rows(X)
        first = np.asarray(X[: min(1, X.shape[0])].compute())
        validate_data(estimator, first, reset=reset)
        return rows
    if is_row_sliceable(X):
        if X.dtype.kind not in "biuf":
            raise ValueError(
                f"X has dtype {X.dtype}; a table read in blocks (memmap or "
                "dataset) must hold numbers (bool, int or float)."
            )
        # The checks scikit-learn makes of the shape and the feature count,
        # on the first row alone (so nothing else is read).
        first = np.asarray(X[: min(1, X.shape[0])])
        validate_data(estimator, first.reshape(first.shape[0], X.shape[1]), reset=reset)
        return Rows(X, check_finite=True)
    X = validate_data(
        estimator,
        X,
        reset=reset,
        accept_sparse=ACCEPT_SPARSE,
        dtype=[np.float64, np.float32],
        # Sparse entries are checked here (the Gram kernel reads them too,
        # but the scan costs O(nnz) only).
        ensure_all_finite=not finite_by_gram or sp.issparse(X),
    )
    if sp.issparse(X):
        return Rows(sp.csr_matrix(X))
    return X


def refuse_distributed_groups(X, groups):
    """Raise a ValueError for ``groups`` with rows that live on a cluster.

    A Dask array is one owner's table, its chunks the parties of the
    ``"qr"`` reduction; a federation of clients is simulated on rows in
    memory or read in blocks.
    """
    if groups is not None and getattr(X, "distributed", False):
        raise ValueError(
            "groups cannot be combined with a Dask array: skfal treats a Dask "
            "array as one owner's table, its chunks processed where they live. "
            "To simulate a federation pass the rows in memory (X.compute()) or "
            "as a numpy.memmap; to fit on the cluster, leave groups=None."
        )


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


class MissingLabelsError(ValueError):
    """Labels the selection must read are not bought yet.

    A ValueError (``fit`` stops with its message); ``query`` methods catch it
    and return ``rows``, the rows to label next.
    """

    def __init__(self, message, rows):
        super().__init__(message)
        self.rows = rows


def check_labels_at(y, rows, what, hint):
    """Raise a ValueError naming the ``rows`` whose label ``y`` is NaN or infinite.

    A NaN is a label not bought yet; an infinite one is no regression target
    (its loss, and every score or weight built from it, would be infinite).
    """
    labels = y[rows]
    missing = rows[np.isnan(labels)]
    if missing.size:
        raise MissingLabelsError(
            f"{missing.size} of the {rows.size} {what} have no label (NaN in y), "
            f"e.g. rows {missing[:10].tolist()}. {hint}",
            np.sort(missing),
        )
    infinite = rows[np.isinf(labels)]
    if infinite.size:
        raise ValueError(
            f"{infinite.size} of the {rows.size} {what} have an infinite label, "
            f"e.g. rows {infinite[:10].tolist()}: a regression target must be "
            "finite. Fix or drop those rows."
        )


def check_partial_target(y, n_samples, name, *, allow_all_missing=False):
    """Validate a target that may be missing (NaN) at rows not selected.

    Returns ``y`` as a float64 vector of ``n_samples`` entries; raises a
    ValueError naming the problem when it is absent, not numeric, of the
    wrong length, infinite somewhere or missing everywhere (unless
    ``allow_all_missing``: a reader of labels at chosen rows then names the
    rows it needs, see :class:`MissingLabelsError`).
    """
    if y is None:
        raise ValueError(f"{name} requires y to be passed, but the target y is None.")
    y = column_or_1d(y, warn=True)
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must be numeric (a regression target): {exc}") from exc
    check_consistent_length(np.empty(n_samples), y)
    if np.isinf(y).any():
        raise ValueError(
            "Input y contains infinity or a value too large for dtype('float64')."
        )
    if np.isnan(y).all() and not allow_all_missing:
        raise ValueError(
            "Input y contains NaN at every row: no label can be read. Label "
            "the selected rows (leave the others NaN)."
        )
    return y


def check_target_labels(y, n_samples, name, classifier, *, none_labeled=False):
    """Validate labels that may be missing outside the selection, for any model.

    A regressor's target becomes a float64 vector (``NaN`` where missing;
    ``None`` and ``pd.NA`` are turned into ``NaN``); a classifier's labels
    keep their type (strings included), missing ones marked by ``NaN``,
    ``None`` or ``pd.NA``. Raises a ValueError naming the problem when ``y``
    is absent, of the wrong shape, or missing everywhere (unless
    ``none_labeled``: before any label is bought, ``None`` means no label).
    """
    if y is None and none_labeled:
        return np.full(n_samples, np.nan if not classifier else None)
    if y is None:
        raise ValueError(
            f"{name} requires y to be passed, but the target y is None. Pass "
            "the labels bought so far, NaN (or None) where a label is unknown."
        )
    y = column_or_1d(y, warn=True)
    check_consistent_length(np.empty(n_samples), y)
    if not classifier:
        if y.dtype.kind == "O":
            missing = np.array(
                [v is None or type(v).__name__ == "NAType" for v in y], dtype=bool
            )
            y = np.where(missing, np.nan, y)
        return check_partial_target(y, n_samples, name, allow_all_missing=none_labeled)
    return y
