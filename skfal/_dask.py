"""Dask arrays: rows that live on the workers of a cluster.

The only module that imports dask; :func:`~skfal._validation.validate_rows`
imports it when (and only when) ``X`` is a Dask array. The array's row
chunks act as the parties of the federated ``"qr"`` protocol with one owner
(no masks): each kernel pass (:func:`~skfal._rows.map_pieces`) runs on every
chunk where it lives, through :func:`dask.compute` on the current scheduler
(a :class:`dask.distributed.Client` once one is created), and only its
result comes back: a ``d x d`` Gram or R factor per chunk, which the
kernels add or stack at the client, or a few numbers per row (scores, leaf
codes of the spatial order, cluster labels and distances). Rows themselves
come back only when asked for by index: the selected rows, and the
deterministic subsamples the spatial order (at most 8,192 rows) and the
clustering (``subsample_size`` rows) are built on.
"""

import dask
import numpy as np

from skfal._rows import Rows


def check_dask_array(X):
    """Raise a ValueError for a Dask array skfal cannot read by row chunks."""
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D Dask array (rows by features), got {X.ndim} dimensions."
        )
    if any(np.isnan(size) for size in X.chunks[0]):
        raise ValueError(
            "The Dask array's row chunk sizes are unknown (NaN), e.g. after "
            "boolean indexing: call X.compute_chunk_sizes() first."
        )
    if len(X.chunks[1]) > 1:
        raise ValueError(
            f"The Dask array is chunked along its columns ({len(X.chunks[1])} "
            "column chunks): skfal reads whole rows, one row chunk per task. "
            "Call X.rechunk({1: -1}) first."
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"X has dtype {X.dtype}; a Dask array must hold numbers (bool, int "
            "or float)."
        )


class DaskRows(Rows):
    """Some rows of a Dask array chunked by rows: kernels run on its chunks.

    A :class:`~skfal._rows.Rows` whose :meth:`map_pieces` runs a kernel on
    each row chunk where it lives; indexing with row positions gathers those
    rows (one :func:`dask.compute`), and a slice or ``take`` is a view that
    reads nothing.
    """

    distributed = True

    def _read(self, index):
        if isinstance(index, slice):
            return np.asarray(self.base[index].compute())
        index = np.asarray(index, dtype=np.intp)
        if index.size == 0:
            return np.empty((0, self.base.shape[1]), dtype=self.base.dtype)
        # Each chunk sends the rows asked of it, no more: one task per chunk
        # holding some (dask's own fancy indexing may move whole chunks).
        order = np.argsort(index, kind="stable")
        ordered = index[order]
        bounds = np.cumsum((0, *self.base.chunks[0]))
        owner = np.searchsorted(bounds, ordered, side="right") - 1
        chunks = self.base.to_delayed(optimize_graph=True).ravel()
        cuts = np.flatnonzero(np.diff(owner)) + 1
        tasks = [
            dask.delayed(_take)(chunks[rows[0]], ordered[at] - bounds[rows[0]])
            for rows, at in zip(
                np.split(owner, cuts),
                np.split(np.arange(ordered.size), cuts),
                strict=True,
            )
        ]
        block = np.concatenate(dask.compute(*tasks))
        out = np.empty_like(block)
        out[order] = block
        return out

    def _view(self):
        """The Dask array of the view's rows (lazy)."""
        index = self.index
        if isinstance(index, slice) and index == slice(0, self.base.shape[0]):
            return self.base
        return self.base[index]

    @property
    def n_pieces(self):
        """How many row chunks :meth:`map_pieces` runs on."""
        return len(self._view().chunks[0])

    def map_pieces(self, func, *args):
        """``[func(piece, *args)]`` for each row chunk, computed where it lives."""
        chunks = self._view().to_delayed(optimize_graph=True).ravel()
        options = (self.shift, self.ones, self.check_finite)
        tasks = [
            dask.delayed(_run_on_piece)(chunk, func, args, options) for chunk in chunks
        ]
        results = list(dask.compute(*tasks))
        if self.on_block is not None:  # progress: each chunk's rows, once done
            bounds = np.cumsum((0, *self._view().chunks[0]))
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
                self.on_block(int(start), int(stop), self.shape[0])
        return results


def _take(chunk, rows):
    """On a worker: rows ``rows`` of a chunk."""
    return np.asarray(chunk)[rows]


def _run_on_piece(chunk, func, args, options):
    """On a worker: ``func`` on the chunk, as the kernels see in-memory rows."""
    shift, ones, check_finite = options
    block = np.asarray(chunk)
    if block.dtype not in (np.float32, np.float64):
        block = block.astype(np.float64)
    if check_finite and not np.isfinite(block).all():
        raise ValueError(
            "Input X contains NaN or infinity: every entry of the table must be finite."
        )
    piece = Rows(block, shift=shift, ones=ones) if shift or ones else block
    return func(piece, *args)


def dask_rows(X):
    """``X`` (a Dask array) checked and viewed as :class:`DaskRows`."""
    check_dask_array(X)
    return DaskRows(X, check_finite=True)
