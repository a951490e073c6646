"""Progress messages of a long fit (the ``verbose`` parameter).

scikit-learn's convention: ``verbose=0`` is silent, ``1`` prints a line per
phase of the fit with the time elapsed since it began, and ``2`` or more
also a line per block of rows read (each pass over the table, in a
federation each client's pass over its own rows). Lines go to standard
output, as scikit-learn's estimators print them.
"""

import time

import numpy as np

from skfal._rows import Rows


class Progress:
    """Prints ``[Name] message (elapsed s)`` lines at a verbosity level."""

    def __init__(self, estimator, verbose):
        self.name = type(estimator).__name__
        self.verbose = int(verbose)
        self.start = time.perf_counter()

    def __call__(self, message, level=1):
        """Print ``message`` when ``verbose >= level``."""
        if self.verbose >= level:
            elapsed = time.perf_counter() - self.start
            print(f"[{self.name}] {message} ({elapsed:.2f} s)", flush=True)

    def block(self, start, stop, n_rows):
        """A block of rows read (level 2)."""
        self(f"read rows {start:,}-{stop:,} of {n_rows:,}", level=2)

    def watch(self, X):
        """``X`` reporting each block read when ``verbose >= 2``; else ``X``.

        An in-memory ndarray is wrapped in a :class:`~skfal._rows.Rows`
        (read by the same blocks, with the same arithmetic) only then.
        """
        if self.verbose < 2:
            return X
        if isinstance(X, Rows):
            return X.watched(self.block)
        return Rows(np.asarray(X)).watched(self.block)


def describe(X):
    """``"1,000 x 20 float64 in memory"`` and the like, for the first line."""
    n, d = X.shape
    if isinstance(X, Rows) and X.sparse:
        kind = f"sparse, {X.base.nnz:,} stored entries"
    elif getattr(X, "distributed", False):
        kind = f"{X.dtype}, Dask array in {len(X.base.chunks[0]):,} row chunks"
    elif isinstance(X, Rows):
        kind = f"{X.dtype}, read in blocks of {type(X.base).__name__}"
    else:
        kind = f"{X.dtype} in memory"
    return f"X: {n:,} x {d:,} ({kind})"
