"""Row access to tables that are not in-memory arrays.

A scipy sparse matrix, a :class:`numpy.memmap` or any array-like with row
slicing, ``.shape`` and ``.dtype`` (an HDF5 or zarr dataset) reaches the
kernels as :class:`Rows`: a view of some of the table's rows that reads them
a block at a time, and never as a whole. The kernels in ``_linalg``,
``_sampling`` and ``_clustering`` take an ndarray or a ``Rows``; the few
operations the federated steps apply to their rows (``X[a:b]``,
``numpy.take(X, rows, axis=0)``, ``X[rows]``, ``numpy.asarray`` of a handful
of selected rows, ``numpy.abs(X[rows]).max()``) keep working on a ``Rows``,
so the same steps serve every input. Only the rows asked for are read:
``X[rows]`` returns them (dense for a dense table, still sparse for a sparse
one), slices and ``take`` return views that read nothing yet.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits

_CHUNK_BYTES = 8 * 2**20


def chunk_size(n_features):
    """Rows per chunk: about 8 MiB of float64, and at least ``2 * n_features``."""
    return max(2 * n_features, _CHUNK_BYTES // (8 * max(n_features, 1)))


# A product ``block @ W`` runs 2-3x faster on blocks that stay in the cache
# than on 8 MiB ones (measured at 20 and 100 columns): chunks are read as
# they are and multiplied a cache-sized slice at a time.
_CACHE_BYTES = 2**19


def cache_slices(block, n_columns):
    """``(offset, rows)`` over slices of a block of about 512 KiB each.

    ``n_columns`` is the wider of the block's and the product's widths. A
    sparse block is one slice (its products cost ``O(nnz)`` already).
    """
    if sp.issparse(block):
        yield 0, block
        return
    size = max(16, _CACHE_BYTES // (8 * max(n_columns, 1)))
    for offset in range(0, block.shape[0], size):
        yield offset, block[offset : offset + size]


def is_dask_array(X):
    """Whether ``X`` is a Dask array, by duck typing (dask is not imported)."""
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "to_delayed")


def is_row_sliceable(X):
    """Whether ``X`` is read a block at a time rather than converted.

    True for a :class:`numpy.memmap` and for a 2-D array-like that is neither
    an ndarray, a sparse matrix nor a data frame, with a numpy ``dtype`` and
    row slicing (an HDF5, zarr or xarray dataset).
    """
    if isinstance(X, np.memmap):
        return X.ndim == 2  # else scikit-learn's error for the shape
    if isinstance(X, np.ndarray | Rows) or sp.issparse(X) or hasattr(X, "iloc"):
        return False
    shape = getattr(X, "shape", None)
    return (
        isinstance(getattr(X, "dtype", None), np.dtype)
        and hasattr(X, "__getitem__")
        and isinstance(shape, tuple)
        and len(shape) == 2
    )


def _read(base, index):
    """Rows ``index`` (a slice or ascending-or-not int array) of ``base``."""
    if isinstance(index, slice) or isinstance(base, np.ndarray) or sp.issparse(base):
        return base[index]
    # A dataset may not take a list of rows (or only an increasing one):
    # read each run of consecutive rows with one slice.
    order = np.argsort(index, kind="stable")
    ordered = index[order]
    breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
    runs = np.split(ordered, breaks)
    parts = [np.asarray(base[int(r[0]) : int(r[-1]) + 1]) for r in runs if r.size]
    block = np.concatenate(parts) if parts else np.empty((0, base.shape[1]))
    out = np.empty_like(block)
    out[order] = block
    return out


class Rows:
    """Some rows of a sparse or out-of-core table, read a block at a time.

    Parameters
    ----------
    base : scipy sparse matrix (CSR), numpy.memmap or array-like dataset
        The table.
    index : slice or ndarray of int, default=None
        Which rows of ``base`` this view holds (``None``: all).
    shift : int, default=0
        Entries are read as ``base * 2**shift`` (exact).
    ones : bool, default=False
        Whether a constant column of ones follows the table's columns.
    check_finite : bool, default=False
        Raise a ValueError when a block read from a dense table holds NaN or
        infinity (a sparse table's entries are checked once, up front).
    on_block : callable or None, default=None
        Called as ``on_block(start, stop, n_rows)`` after each block of
        the view is read (progress messages).
    """

    ndim = 2
    # Whether the rows live on workers of a cluster (``skfal._dask.DaskRows``).
    distributed = False

    def __init__(
        self,
        base,
        index=None,
        *,
        shift=0,
        ones=False,
        check_finite=False,
        on_block=None,
    ):
        self.base = base
        self.index = slice(0, base.shape[0]) if index is None else index
        self.shift = int(shift)
        self.ones = bool(ones)
        self.check_finite = check_finite
        self.on_block = on_block
        self.sparse = sp.issparse(base)

    def _with(self, **changes):
        params = dict(
            index=self.index,
            shift=self.shift,
            ones=self.ones,
            check_finite=self.check_finite,
            on_block=self.on_block,
        )
        params.update(changes)
        return type(self)(self.base, params.pop("index"), **params)

    # ----------------------------------------------------------- array-like
    @property
    def shape(self):
        if isinstance(self.index, slice):
            n_rows = self.index.stop - self.index.start
        else:
            n_rows = self.index.shape[0]
        return (n_rows, self.base.shape[1] + self.ones)

    @property
    def dtype(self):
        if self.shift or self.ones or self.sparse:
            return np.dtype(np.float64)
        return np.dtype(self.base.dtype)

    @property
    def size(self):
        return self.shape[0] * self.shape[1]

    def __len__(self):
        return self.shape[0]

    def _base_index(self, key):
        """Rows of ``base`` for positions ``key`` (slice or int array) of the view."""
        if isinstance(self.index, slice):
            if isinstance(key, slice):
                start, stop, step = key.indices(self.shape[0])
                if step == 1:
                    stop = max(start, stop)
                    return slice(self.index.start + start, self.index.start + stop)
                return self.index.start + np.arange(start, stop, step)
            return self.index.start + key
        return self.index[key]

    def __getitem__(self, key):
        """A slice is a view (nothing read); int positions are read now.

        ``X[rows]`` returns those rows: an ndarray for a dense table, a
        ``Rows`` holding the rows (still sparse) for a sparse one.
        """
        if isinstance(key, slice) and key.step in (None, 1):
            return self._with(index=self._base_index(key))
        if isinstance(key, slice):
            key = np.arange(*key.indices(self.shape[0]))
        if isinstance(key, tuple) or np.isscalar(key):
            raise TypeError(
                "skfal reads a sparse or out-of-core table by rows only: "
                f"index it with a slice or an array of row positions, not {key!r}."
            )
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        key = key.astype(np.intp, copy=False)
        positions = self._base_index(key)
        if self.sparse:
            return Rows(
                self.base[positions],
                shift=self.shift,
                ones=self.ones,
                check_finite=self.check_finite,
                on_block=self.on_block,
            )
        return self._finish(self._read(positions))

    def take(self, indices, axis=None, out=None, mode="raise"):
        """``numpy.take(X, rows, axis=0)``: a view of those rows (nothing read)."""
        if axis != 0 or out is not None or mode != "raise":
            raise TypeError("Rows.take supports only numpy.take(X, rows, axis=0).")
        indices = np.asarray(indices, dtype=np.intp)
        return self._with(index=self._base_index(indices))

    def __array__(self, dtype=None, copy=None):
        """The view as one dense array: only for the few rows a step needs."""
        block = self.block(0, self.shape[0], dense=True)
        return block if dtype is None else block.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """``numpy.abs`` (for a largest entry); no other ufunc densifies ``X``."""
        if ufunc is np.absolute and method == "__call__" and inputs == (self,):
            return _Absolute(self)
        return NotImplemented

    # --------------------------------------------------------------- blocks
    def _read(self, index):
        """Rows ``index`` (a slice or int array) of ``base``, as stored."""
        return _read(self.base, index)

    def _finish(self, block):
        """A block read from ``base``: float64, scaled, finite, with ones."""
        if sp.issparse(block):
            block = sp.csr_matrix(block, dtype=np.float64)
            if self.shift:
                block.data = np.ldexp(block.data, self.shift)
            if self.ones:
                column = sp.csr_matrix(np.ones((block.shape[0], 1)))
                block = sp.hstack([block, column], format="csr")
            return block
        block = np.asarray(block, dtype=np.float64)
        if self.check_finite and not np.isfinite(block).all():
            raise ValueError(
                "Input X contains NaN or infinity: every entry of the table "
                "must be finite."
            )
        if self.shift:
            block = np.ldexp(block, self.shift)
        if self.ones:
            block = np.hstack([block, np.ones((block.shape[0], 1))])
        return block

    def block(self, start, stop, dense=False):
        """Rows ``start:stop`` of the view, read now (sparse CSR or dense)."""
        block = self._finish(self._read(self._base_index(slice(start, stop))))
        if self.on_block is not None:
            self.on_block(start, start + block.shape[0], self.shape[0])
        return block.toarray() if dense and sp.issparse(block) else block

    def chunks(self, size=None, dense=False):
        """``(start, block)`` over consecutive row blocks of ``size`` rows."""
        size = chunk_size(self.shape[1]) if size is None else size
        for start in range(0, self.shape[0], size):
            yield start, self.block(start, min(start + size, self.shape[0]), dense)

    def with_ones(self):
        """The view with a constant column appended (an intercept's design)."""
        if self.ones:
            raise ValueError("These rows already have a constant column.")
        return self._with(ones=True)

    def scaled(self, shift):
        """The view with entries multiplied by ``2**shift`` (exact)."""
        return self._with(shift=self.shift + int(shift))

    def watched(self, on_block):
        """The view calling ``on_block(start, stop, n_rows)`` for each block read."""
        return self._with(on_block=on_block)

    def max(self, axis=None, initial=None):
        """Largest entry (``axis=None`` only), one block at a time."""
        return _largest(self, absolute=False, initial=initial, axis=axis)


class _Absolute:
    """``numpy.abs(rows)``, only as far as its ``max`` is needed."""

    def __init__(self, rows):
        self.rows = rows

    def max(self, axis=None, initial=None):
        return _largest(self.rows, absolute=True, initial=initial, axis=axis)


def _largest(rows, absolute, initial, axis):
    if axis is not None:
        raise TypeError("Rows.max supports only axis=None.")
    best = -np.inf if initial is None else float(initial)
    if rows.shape[0] == 0:
        if initial is None:
            raise ValueError("max of an empty table with no initial value.")
        return best
    return max([best, *map_pieces(rows, _largest_in, absolute)])


def _largest_in(rows, absolute):
    """Largest entry (of ``|rows|``) of some rows, -inf for none."""
    best = -np.inf
    for _, block in iter_blocks(rows):
        values = block.data if sp.issparse(block) else block
        if sp.issparse(block) and block.nnz < block.shape[0] * block.shape[1]:
            best = max(best, 0.0)  # the zeros not stored
        if values.size:
            best = max(best, float((np.abs(values) if absolute else values).max()))
    return best


class Stacked:
    """Arrays of the same width, as the rows of one table, never copied.

    A kernel run through :func:`map_pieces` runs on each array (a piece)
    and its results are combined as for a cluster's chunks; a FedSVD
    server factors its clients' uploads this way.

    Parameters
    ----------
    arrays : list of ndarray of shape (n_rows_i, n_columns)
    """

    ndim = 2
    distributed = False

    def __init__(self, arrays):
        self.arrays = [np.asarray(a) for a in arrays]
        self.shape = (sum(a.shape[0] for a in self.arrays), self.arrays[0].shape[1])
        self.dtype = np.result_type(*self.arrays)

    @property
    def n_pieces(self):
        """How many pieces :meth:`map_pieces` runs on."""
        return len(self.arrays)

    def map_pieces(self, func, *args):
        """``[func(array, *args)]`` for each array, in order."""
        return [func(a, *args) for a in self.arrays]


# ---------------------------------------------------------------- kernels' side
def map_pieces(X, func, *args):
    """``[func(piece, *args), ...]`` over pieces of ``X``'s rows, in row order.

    One piece, ``X`` itself, for an in-memory or out-of-core table. For rows
    that live on the workers of a cluster (a Dask array,
    :class:`skfal._dask.DaskRows`), one piece per chunk, each an ndarray or
    a ``Rows`` of it, run where the chunk lives: only ``func``'s results
    come back. So a kernel that reduces (a Gram product) adds the pieces'
    results, and one that maps rows (scores) concatenates them.
    """
    pieces = getattr(X, "map_pieces", None)
    if pieces is not None:
        return pieces(func, *args)
    return [func(X, *args)]


# Fewer rows than this are one thread's work: below, asking the BLAS how
# many threads it has, and starting them, costs more than they save.
_THREADED_ROWS = 2**17


def kernel_threads(X):
    """Threads for a kernel pass over ``X``: the BLAS's, for a large dense table.

    As many as the BLAS uses (so ``OMP_NUM_THREADS``, ``threadpoolctl``
    limits and the machine's cores bound them, as they bound NumPy's own
    products), for a dense ndarray or memory-mapped file of at least
    ``_THREADED_ROWS`` rows, called from the main thread; 1 otherwise
    (sparse rows, datasets read through their own library, a view with
    progress messages, a cluster's chunks, and work that a pool runs, such
    as simulated clients or Dask's tasks, which share the cores already).
    """
    if isinstance(X, Rows):
        dense = (
            not X.sparse
            and isinstance(X.base, np.ndarray)
            and isinstance(X.index, slice)
            and X.on_block is None
            and not X.distributed
        )
    else:
        dense = isinstance(X, np.ndarray)
    if (
        not dense
        or X.shape[0] < _THREADED_ROWS
        or threading.current_thread() is not threading.main_thread()
    ):
        return 1
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    return max(1, min(blas, default=1))


def row_ranges(n_rows, size, n_parts):
    """``(start, stop)`` of at most ``n_parts`` contiguous row ranges that
    start at multiples of ``size`` (so each reads the blocks one pass would)."""
    n_blocks = -(-n_rows // size)
    n_parts = max(1, min(n_parts, n_blocks))
    cuts = np.linspace(0, n_blocks, n_parts + 1).astype(int) * size
    return [
        (int(a), int(min(b, n_rows))) for a, b in zip(cuts[:-1], cuts[1:], strict=True)
    ]


@contextmanager
def thread_map(n_threads):
    """A ``map(func, items)`` (a list, in order) on ``n_threads`` threads.

    NumPy releases the GIL in its products and ufuncs, so calls on disjoint
    row ranges run side by side; the BLAS runs one thread per call
    meanwhile (no oversubscription). Each call does exactly what it would
    alone, so results do not depend on the number of threads. One thread:
    a plain loop.
    """
    if n_threads <= 1:
        yield lambda func, items: [func(item) for item in items]
        return
    with (
        threadpool_limits(limits=1, user_api="blas"),
        ThreadPoolExecutor(max_workers=n_threads) as pool,
    ):
        yield lambda func, items: list(pool.map(func, items))


def iter_blocks(X, size=None, dense=False):
    """``(start, block)`` over row blocks of an ndarray (views) or a ``Rows``.

    Blocks of a sparse table are CSR matrices unless ``dense``.
    """
    size = chunk_size(X.shape[1]) if size is None else size
    if isinstance(X, Rows):
        yield from X.chunks(size, dense)
        return
    for start in range(0, X.shape[0], size):
        yield start, X[start : start + size]


def as_dense(block):
    """A block as a float64 ndarray (a sparse block is densified: one block)."""
    if sp.issparse(block):
        return block.toarray()
    return np.asarray(block, dtype=np.float64)


def times(block, M):
    """``block @ M`` as a float64 ndarray, for a dense or sparse block."""
    if sp.issparse(block):
        return np.asarray(block @ M)
    return np.asarray(block, dtype=np.float64) @ M


def dense_rows(X, indices):
    """Rows ``indices`` of ``X`` as a float64 ndarray (reads only those rows)."""
    if isinstance(X, Rows):
        return as_dense(np.asarray(X[indices]))
    return np.asarray(X[indices], dtype=np.float64)


def max_abs(X):
    """Largest ``|entry|`` of ``X``, one block at a time (0 for an empty ``X``)."""
    if isinstance(X, Rows) or hasattr(X, "map_pieces"):
        return _largest(X, absolute=True, initial=0.0, axis=None)
    return float(np.abs(X).max()) if X.size else 0.0


def checked(X):
    """``X`` once every block has been read and found finite: its later reads
    skip the check (a view of the same rows; other inputs as they are)."""
    if isinstance(X, Rows) and X.check_finite:
        return X._with(check_finite=False)
    return X


def check_finite(X):
    """Read every block of an out-of-core ``Rows``, which raises on NaN or inf.

    For an estimator that would not read the values otherwise: the check
    :func:`~sklearn.utils.validation.validate_data` makes of an in-memory X.
    """
    if isinstance(X, Rows) and X.check_finite:
        map_pieces(X, _read_all)


def _read_all(rows):
    """Read every block of ``rows`` (a ``Rows`` checks each for NaN or inf)."""
    if isinstance(rows, Rows):
        for _ in rows.chunks():
            pass


def scale_rows(X, shift):
    """``X * 2**shift`` (exact): a new array, or a ``Rows`` view (nothing read)."""
    if isinstance(X, Rows):
        return X.scaled(shift)
    return np.ldexp(X, shift)


def matvec(X, v):
    """``X @ v`` for every row, one block at a time."""
    if not isinstance(X, Rows):
        return np.asarray(X, dtype=np.float64) @ v
    if X.distributed:
        return np.concatenate(map_pieces(X, matvec, v))
    out = np.empty(X.shape[0])
    for start, block in X.chunks():
        out[start : start + block.shape[0]] = times(block, v)
    return out
