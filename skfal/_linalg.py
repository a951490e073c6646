"""Numerical kernels for leverage scores: tall-skinny QR and row norms, in chunks.

The leverage score of row ``x_j`` of ``X`` is ``x_j^T (X^T X)^+ x_j``, the squared
norm of row ``j`` of any orthonormal basis of the column space of ``X``. Forming
``X^T X`` squares the condition number (a Cholesky-based answer is off by
several percent at condition number 1e8), so we never do. Instead:

1. :func:`r_factor`: the ``R`` of ``X = Q R`` by TSQR -- Householder QR
   (LAPACK ``geqrf`` through :func:`numpy.linalg.qr`) of row chunks, whose
   ``R`` factors are stacked and factored again. Backward stable like one
   big QR, but it streams over ``X`` in cache-sized chunks and never forms
   ``Q``.
2. :func:`whitener`: the SVD ``R = U S V^T`` gives ``W = V_k S_k^{-1}`` over the
   ``k`` numerically non-zero singular values, so that ``X W = Q U_k`` has
   orthonormal columns spanning the column space of ``X``, rank-deficient or
   not, and ``W W^T = (X^T X)^+``.
3. :func:`squared_row_norms`: the scores ``||x_j W||^2``, one more pass.

The same three kernels serve the centralized estimator and both federated
protocols (where ``X`` is replaced by masked or rotated client data).

Centrally, step 1 first tries :func:`cholesky_qr_r`, (shifted) CholeskyQR on
chunked float64 Gram products, several times faster than Householder QR:
each round's loss of orthogonality is bounded from the computed factor
itself, the rounds stop once the bound is below the accuracy the scores
need, and whatever the rounds cannot certify (rank deficiency, condition
numbers near the rank cut) goes to TSQR as before.
"""

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular
from scipy.linalg.lapack import dpstrf
from sklearn.utils import assert_all_finite

from skfal._rows import (
    Rows,
    as_dense,
    cache_slices,
    checked,
    chunk_size,
    dense_rows,
    iter_blocks,
    kernel_threads,
    map_pieces,
    row_ranges,
    thread_map,
    times,
)
from skfal._sampling import code_block, whitened_tree


def iter_chunks(X, size=None):
    """Yield consecutive row blocks of ``X``.

    Views in X's dtype for an ndarray; for a :class:`~skfal._rows.Rows`
    (sparse or out-of-core rows) float64 blocks read one at a time, CSR
    matrices for a sparse table.
    """
    for _, block in iter_blocks(X, size):
        yield block


def _householder_r(block):
    """R factor of one block, rows made non-negative on the diagonal.

    NumPy's LAPACK (not SciPy's) throughout: the two libraries bundle separate
    OpenBLAS builds whose thread pools otherwise fight for the cores.
    """
    r = np.linalg.qr(as_dense(block), mode="r")
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    return r * signs[:, None]


def r_factor(blocks, n_features):
    """The R factor of the matrix made by stacking ``blocks`` vertically.

    Parameters
    ----------
    blocks : iterable of ndarray of shape (n_rows_b, n_features)
        Row blocks; any number of rows each, including fewer than
        ``n_features``.
    n_features : int
        Number of columns.

    Returns
    -------
    R : ndarray of shape (min(n_rows, n_features), n_features)
        Upper triangular (trapezoidal when there are fewer rows than
        columns) with a non-negative diagonal, so ``R^T R = A^T A`` and, when
        ``A`` has full column rank, ``R`` is the Cholesky factor of ``A^T A``.
    """
    pending, pending_rows = [], 0
    for block in blocks:
        if block.shape[0] == 0:
            continue
        pending.append(
            _householder_r(block) if block.shape[0] > n_features else as_dense(block)
        )
        pending_rows += pending[-1].shape[0]
        if pending_rows > 8 * n_features and len(pending) > 1:
            pending = [_householder_r(np.vstack(pending))]
            pending_rows = pending[0].shape[0]
    if not pending:
        return np.zeros((0, n_features))
    return _householder_r(np.vstack(pending))


def whitener(r, n_rows):
    """Map ``W`` such that ``A @ W`` is an orthonormal basis of ``A``'s columns.

    Parameters
    ----------
    r : ndarray of shape (k, n_features)
        An R factor of ``A`` (any ``r`` with ``r^T r = A^T A``).
    n_rows : int
        Number of rows of ``A``; sets the rank tolerance
        ``max(n_rows, n_features) * eps * s_max`` (as
        :func:`numpy.linalg.matrix_rank`).

    Returns
    -------
    W : ndarray of shape (n_features, rank)
        ``V_k / s_k`` from the SVD of ``r``; ``W @ W.T`` is ``(A^T A)^+``.
    """
    n_features = r.shape[1]
    if r.shape[0] == 0:
        return np.zeros((n_features, 0))
    _, s, vt = np.linalg.svd(r, full_matrices=False)
    tol = (s[0] if s.size else 0.0) * max(n_rows, n_features) * np.finfo(np.float64).eps
    rank = int(np.count_nonzero(s > tol))
    return vt[:rank].T / s[:rank]


def ridge_r_factor(r, alpha, n_penalised, rotation=None):
    """An R factor of ``r^T r + alpha Q^T D Q``, ``D`` the penalty's diagonal.

    ``D`` has ones on the first ``n_penalised`` coordinates (the features)
    and zeros after them (the intercept's constant column is not
    penalised); ``rotation`` is ``Q`` when ``r`` belongs to rotated data
    ``A Q`` (``None``: no rotation). The penalty enters as the rows
    ``sqrt(alpha) [I, 0] Q`` stacked under ``r``, so ``X^T X + alpha D`` is
    never formed.
    """
    if alpha <= 0:
        return r
    penalty = np.sqrt(alpha) * np.eye(n_penalised, r.shape[1])
    if rotation is not None:
        penalty = penalty @ rotation
    return r_factor([np.vstack([r, penalty])], r.shape[1])


def r_from_whitener(W):
    """An ``r`` with ``r^T r = (W W^T)^+``: ``diag(1/s) U^T`` from ``W = U S V^T``."""
    U, s, _ = np.linalg.svd(W, full_matrices=False)
    return (U / s).T


def with_intercept(X):
    """``[X, 1]``: the design matrix of a linear model with an intercept.

    A sparse block stays sparse; a :class:`~skfal._rows.Rows` becomes a view
    with the constant column (nothing is read).
    """
    if isinstance(X, Rows):
        return X.with_ones()
    if sp.issparse(X):
        ones = sp.csr_matrix(np.ones((X.shape[0], 1)))
        return sp.hstack([X, ones], format="csr", dtype=np.float64)
    return np.hstack([np.asarray(X, dtype=np.float64), np.ones((X.shape[0], 1))])


def squared_row_norms(X, W, intercept=False):
    """``||x_j W||^2`` (``||[x_j, 1] W||^2`` with ``intercept``) for every row.

    One pass over ``X``'s row blocks: ``O(n d k)`` for dense rows,
    ``O(nnz k)`` for sparse ones. Rows on a cluster's workers are scored
    there; only the ``n`` scores come back. Dense rows are multiplied a
    cache-sized slice at a time into one reused buffer, by NumPy's BLAS
    (SciPy's ``trmm`` would halve the flops of a triangular ``W``, but
    SciPy bundles another OpenBLAS build, and its thread pool and NumPy's
    fighting for the cores made the 1,000,000 x 20 scores 3 times slower).
    """
    return np.concatenate(map_pieces(X, _squared_row_norms, W, intercept))


def _squared_row_norms(X, W, intercept, tree=None, W32=None):
    """The scores of a piece's rows; with ``tree``, also their leaf codes, from
    the same products ``x W`` (the tree's axes are ``W``'s first columns).

    ``W32``: ``W`` in float32, for the blocks that are float32 rows (an
    in-memory table, a Dask chunk; blocks read from a memmap come as
    float64), multiplied in float32 arithmetic (:func:`float32_map`).
    A large dense table's rows are cut into :func:`~skfal._rows.kernel_threads`
    ranges scored side by side, each slice multiplied as it would be alone.
    """
    out = np.empty(X.shape[0], dtype=np.float64)
    codes = None if tree is None else np.empty(X.shape[0], dtype=np.uint64)
    maps = {np.dtype(np.float64): W}
    if W32 is not None:
        maps[np.dtype(np.float32)] = W32

    def score(slices):
        buffers = {}
        for begin, block in slices:
            M = W if sp.issparse(block) else maps.get(block.dtype, W)
            M_x = M[:-1] if intercept else M
            if sp.issparse(block):
                y = times(block, M_x)
            else:
                buffer = buffers.get(M.dtype)
                if buffer is None or buffer.shape[0] < block.shape[0]:
                    buffer = np.empty((block.shape[0], W.shape[1]), dtype=M.dtype)
                    buffers[M.dtype] = buffer
                y = np.matmul(block, M_x, out=buffer[: block.shape[0]])
            if intercept:
                y += M[-1]
            # Squares summed in float64 (float32 products: see float32_map).
            np.einsum(
                "ij,ij->i",
                y,
                y,
                out=out[begin : begin + block.shape[0]],
                dtype=np.float64,
            )
            if tree is not None:
                code_block(y, tree, out=codes[begin : begin + block.shape[0]])

    def slices(rows):
        begin, stop = rows
        for start, chunk in iter_blocks(X[begin:stop]):
            for offset, block in cache_slices(chunk, max(W.shape)):
                yield begin + start + offset, block

    n_threads = kernel_threads(X)
    ranges = row_ranges(X.shape[0], chunk_size(X.shape[1]), n_threads)
    with thread_map(n_threads) as parallel:  # blocks read as they are scored
        parallel(lambda rows: score(slices(rows)), ranges)
    return out if tree is None else (out, codes)


def _score_maps(X, intercept, alpha):
    """The map ``T`` that scores the rows (``||x T||^2``), ``W``, and ``U``.

    ``W`` is the whitener (:func:`whitener`); ``T`` is ``W`` itself, or for
    a certified CholeskyQR factor of full rank ``D R^{-1}``, the map
    CholeskyQR itself uses, which gives the scores to its accuracy.
    ``x T U`` are then the coordinates of ``x`` along the whitened
    principal axes, largest singular value first (``U`` None: ``x T`` are).
    """
    r, exponents, path = equilibrated_r_factor(X, intercept)
    # The rank decision and the scores work on the equilibrated design (its
    # columns divided by powers of two near their norms, exactly), so they
    # do not depend on the columns' scales (leverage scores do not).
    scale = np.ldexp(1.0, -exponents)
    ridge = ridge_r_factor(r, alpha, X.shape[1], np.diag(scale))
    W = scale[:, None] * whitener(ridge, X.shape[0])
    if path != "tsqr" and W.shape[1] == ridge.shape[0] == ridge.shape[1]:
        # (NumPy's LAPACK: the LU of a triangular matrix needs no pivot, and
        # back substitution leaves the lower triangle exactly zero.)
        T = scale[:, None] * np.linalg.inv(ridge)
        return T, W, np.linalg.svd(ridge)[0]
    return W, W, None


def leverage_scores(X, intercept=False, alpha=0.0):
    """Exact (ridge) leverage scores of ``X`` (or ``[X, 1]``) and the map ``W``.

    With ``alpha > 0`` the ridge leverage ``x^T (X^T X + alpha D)^{-1} x``,
    ``D`` penalising the features and not the intercept.
    """
    T, W, _ = _score_maps(X, intercept, alpha)
    X = checked(X)  # every row was read, and checked, by the R factor's pass
    return squared_row_norms(X, T, intercept), W


# The relative error of every score that the float32 products of
# float32 rows may leave (float32_map): far below what sampling can detect,
# and about what rounding the rows to float32 did to the scores already.
_FLOAT32_SCORE_TOL = 1e-4


def float32_map(M):
    """``M`` in float32 when float32 products ``x M`` give the scores to
    ``_FLOAT32_SCORE_TOL``; else None (float64 products).

    For float32 rows ``x`` (exact), the products with ``M32 = fl(M)`` in
    float32 arithmetic (and the intercept's row added) err by at most
    ``gamma_{k+2} |x| |M|`` entrywise (``k`` the rows of ``M``; Higham,
    Accuracy and Stability of Numerical Algorithms, 3.5), so
    ``||y - x M|| <= rho ||x M||`` with
    ``rho = gamma_{k+2} || |M| ||_2 / s_min(M)`` for a square ``M`` of full
    rank, and the score ``||y||^2``, its squares summed in float64, is off
    by at most ``rho (2 + rho)`` relative. ``tests/test_leverage.py``
    checks the float32 scores against the float64 ones within that bound.
    """
    k = M.shape[0]
    if M.shape[1] != k or k == 0:
        return None
    u = np.finfo(np.float32).eps / 2
    gamma = (k + 2) * u / (1 - (k + 2) * u)
    s_min = np.linalg.svd(M, compute_uv=False)[-1]
    if not s_min > 0:
        return None
    rho = gamma * np.linalg.norm(np.abs(M), 2) / s_min
    return M.astype(np.float32) if rho * (2 + rho) <= _FLOAT32_SCORE_TOL else None


def leverage_scores_and_codes(X, intercept=False, alpha=0.0, *, max_depth):
    """:func:`leverage_scores` and each row's leaf in a k-d tree, in one pass.

    The tree (:func:`~skfal._sampling.whitened_tree`, ``max_depth`` levels)
    splits the whitened principal axes of the design in turn, at the
    quantiles of a deterministic sample of at most 4096 rows: the space of
    the scores, where a least-squares fit's geometry is. A row's
    coordinates on those axes are ``x T U``, whose squared norm is its
    score, so each block of rows is multiplied once and gives both.

    Returns
    -------
    scores : ndarray of shape (n_samples,)
    W : ndarray of shape (n_columns, rank)
    codes : ndarray of shape (n_samples,) of uint64
        Leaf codes with ``n_bits`` bits, read from the root.
    n_bits : int
    """
    M, W, tree, M32 = score_plan(X, intercept, alpha, max_depth)
    X = checked(X)  # every row was read, and checked, by the R factor's pass
    n = X.shape[0]
    if tree is None:
        scores = squared_row_norms(X, M, intercept)
        return scores, W, np.zeros(n, dtype=np.uint64), 0
    pieces = map_pieces(X, _squared_row_norms, M, intercept, tree, M32)
    if len(pieces) == 1:  # no copy of the n scores and codes
        return pieces[0][0], W, pieces[0][1], tree.n_bits
    scores = np.concatenate([piece[0] for piece in pieces])
    codes = np.concatenate([piece[1] for piece in pieces])
    return scores, W, codes, tree.n_bits


def score_plan(X, intercept, alpha, max_depth):
    """What the fused pass multiplies each row by: ``(M, W, tree, M32)``.

    ``M`` maps a row to its coordinates on the whitened principal axes (the
    tree's axes first), whose squared norm is its score; ``tree`` is the
    spatial tree over them (:func:`~skfal._sampling.whitened_tree`,
    planned from a deterministic sample of at most 4096 rows; None, and
    ``M`` the scoring map, when no axis can be split); ``M32`` is ``M`` in
    float32 for float32 rows (:func:`float32_map`), else None. One pass
    over ``X`` (the R factor's) and the sample's rows are read.
    """
    T, W, U = _score_maps(X, intercept, alpha)
    n = X.shape[0]
    if n <= 2:
        return T, W, None, None
    M = T if U is None else T @ U
    # An axis is fixed up to its sign, which rounding may flip (X * 10
    # against X): the largest entry of each is made positive, so the codes
    # do not depend on the unit of X.
    if M.shape[1]:
        largest = M[np.abs(M).argmax(axis=0), np.arange(M.shape[1])]
        M = M * np.where(largest < 0, -1.0, 1.0)
    sample = dense_rows(X, np.arange(0, n, max(1, n // 4096)))
    sample_z = sample @ (M[:-1] if intercept else M)
    if intercept:
        sample_z += M[-1]
    tree, columns = whitened_tree(sample_z, max_depth)
    if tree is None:
        return T, W, None, None
    M = np.ascontiguousarray(M[:, columns])
    M32 = float32_map(M) if X.dtype == np.float32 and U is not None else None
    return M, W, tree, M32


def equilibrated_r_factor(X, intercept=False):
    """An R factor of the design ``[X(, 1)] D``, ``D`` powers of two.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Float64 or float32; never copied whole.
    intercept : bool, default=False
        Whether the design has a constant last column.

    Returns
    -------
    r : ndarray of shape (k, n_columns)
        R factor of the equilibrated design.
    exponents : ndarray of shape (n_columns,)
        ``D = diag(2^-exponents)``, ``2^(e-1) <= ||column|| < 2^e`` (to
        rounding; 0 for a zero column).
    path : str
        How ``r`` was computed: ``"cholesky-qr"``, ``"cholesky-qr2"``,
        ``"shifted cholesky-qr3"`` (see :func:`cholesky_qr_r`) or
        ``"tsqr"`` (:func:`r_factor`, the fallback).
    """
    found = cholesky_qr_r(X, intercept)
    if found is not None:
        return found
    refuse_non_finite(X)
    # Each piece's R factor (one piece in memory; a cluster's chunks each
    # factor their own rows), stacked and factored again, as the "qr"
    # protocol's server combines its clients' factors.
    r = stack_r_factors(map_pieces(X, _tsqr_r, intercept), X.shape[1] + intercept)
    # Householder QR is backward stable column by column, so dividing R's
    # columns by powers of two (exactly) gives an accurate R of the
    # equilibrated design.
    exponents = column_exponents(r)
    return np.ldexp(r, -exponents), exponents, "tsqr"


def refuse_non_finite(X):
    """Raise scikit-learn's ValueError when an in-memory ``X`` holds NaN or inf.

    The estimators whose first pass is this module's Gram kernel skip the
    scan of a dense ``X`` at validation (``validate_rows(...,
    finite_by_gram=True)``): a finite Gram matrix certifies every entry
    (its diagonal sums their squares), and the kernel's paths for a Gram
    that is not finite, or not certified, come here first. Rows read in
    blocks check themselves as they are read.
    """
    if isinstance(X, np.ndarray):
        assert_all_finite(X, input_name="X")
    elif isinstance(X, Rows) and not X.check_finite:  # in memory, wrapped
        for _, block in iter_blocks(X):
            assert_all_finite(block, input_name="X")


def _tsqr_r(X, intercept):
    """TSQR of ``[X(, 1)]`` over its row chunks."""
    chunks = iter_chunks(X)
    if intercept:
        chunks = (with_intercept(chunk) for chunk in chunks)
    return r_factor(chunks, X.shape[1] + intercept)


def stack_r_factors(factors, n_columns):
    """The R factor of the stacked matrices whose R ``factors`` are given.

    One factor is returned as it is.
    """
    if len(factors) == 1:
        return factors[0]
    return r_factor(factors, n_columns)


# Rows per chunk of the Gram products: the length of each float64 dot
# product the BLAS accumulates, which enters the error bound below (shorter
# chunks give a tighter bound; much shorter ones slow the products down).
_GRAM_ROWS = 4096
# The relative error of the scores that one CholeskyQR round may leave; 1e-10
# of a sampling probability is far below anything sampling can detect.
_SCORE_TOL = 1e-10
# A round whose bound stays below this leaves a basis so close to orthonormal
# that the next round is accurate to rounding (the CholeskyQR2 argument).
_ROUND_OK = 0.5
# Smallest squared column norm of the raw Gram trusted against underflow:
# squares below the float64 normal range (2^-1022) then lose at most
# n * 2^-1074, far below 2^-900 * eps.
_SAFE_MIN = 2.0**-900


def _design_chunks(X, intercept, scale=None):
    """Float64 row chunks of ``[X(, 1)]``, times ``scale`` if given (exact).

    Chunks of sparse rows stay sparse (CSR).
    """
    for chunk in iter_chunks(X, _gram_rows(X)):
        yield _design_block(chunk, intercept, scale)


def _gram_rows(X):
    """Rows per chunk of the Gram products."""
    return max(_GRAM_ROWS, 2 * X.shape[1] + 2)


def _design_block(chunk, intercept, scale):
    """One chunk of the (scaled) design, as :func:`_design_chunks` makes it."""
    if intercept:
        block = with_intercept(chunk)
    elif sp.issparse(chunk):
        block = chunk
    else:
        block = np.asarray(chunk, np.float64)
    if scale is not None:
        block = block @ sp.diags(scale) if sp.issparse(block) else block * scale
    return block


def _gram(X, intercept, M=None, scale=None):
    """``sum_c (C M)^T (C M)`` over the chunks ``C`` of the (scaled) design.

    For a sparse chunk ``C^T C`` costs ``O(nnz d)`` and ``C M`` is dense.
    On a cluster each chunk's Gram is formed where it lives and the ``d x
    d`` results are added up here.
    """
    parts = [G for G in map_pieces(X, _gram_of, intercept, M, scale) if G is not None]
    return sum(parts[1:], parts[0]) if parts else None


def _chunk_gram(block, M):
    """``(C M)^T (C M)`` of one chunk of the design."""
    if M is not None:
        block = times(block, M)
    if sp.issparse(block):
        return (block.T @ block).toarray()
    # ``block.T @ block`` is one symmetric rank-k update (BLAS syrk).
    return block.T @ block


# Chunks whose products are formed side by side before they are added up
# (in order), per thread: a bounded number of d x d products in memory.
_GRAM_WAVE = 8


def _gram_of(X, intercept, M, scale):
    """The Gram of a piece's chunks, added up in chunk order.

    A large dense table's chunk products are formed on
    :func:`~skfal._rows.kernel_threads` threads, a wave at a time, and
    added in the same order as one thread adds them: the same sum, to the
    last bit, whatever the number of threads.
    """
    n_threads = kernel_threads(X)
    if n_threads == 1:
        G = None
        for block in _design_chunks(X, intercept, scale):
            product = _chunk_gram(block, M)
            G = product if G is None else G + product
        return G
    rows = _gram_rows(X)
    starts = list(range(0, X.shape[0], rows))

    def product(start):
        chunk = next(iter_chunks(X[start : start + rows], rows))
        return _chunk_gram(_design_block(chunk, intercept, scale), M)

    G = None
    with thread_map(n_threads) as parallel:
        for wave in range(0, len(starts), _GRAM_WAVE * n_threads):
            for part in parallel(product, starts[wave : wave + _GRAM_WAVE * n_threads]):
                G = part if G is None else G + part
    return G


def _upper_cholesky(G):
    """Upper ``R`` with ``R^T R = G``, or None when ``G`` is not numerically PD."""
    try:
        r = np.linalg.cholesky(G).T
    except np.linalg.LinAlgError:
        return None
    return r if np.all(np.isfinite(r)) else None


def cholesky_qr_r(X, intercept=False):
    """R factor of the equilibrated design by (shifted) CholeskyQR, if certified.

    Round ``k`` forms the Gram matrix ``G`` of ``Z = [X(, 1)] D M`` chunk by
    chunk in float64 (``D`` powers of two near the column norms, ``M`` the
    inverse of the factor so far; round 0 has ``M = I``) and takes its
    Cholesky factor ``R_k``; the answer is ``R = R_k ... R_0``. With
    ``Y = Z R_k^{-1}``, ``Y^T Y - I = -R_k^{-T} (dG + dC) R_k^{-1}``, where
    ``dG`` is the rounding of the Gram product (``|dG_ij| <= gamma
    ||z_i|| ||z_j||``, ``gamma = (rows per chunk + chunks) u``) and ``dC``
    that of the Cholesky factorisation (``gamma_{n+1} || |R_k| ||_2^2``,
    :func:`_cholesky_error`), so

        ``||Y^T Y - I|| <= b = (gamma tr(G) + gamma_{n+1} || |R_k| ||_2^2)
        / s_min(R_k)^2``.

    The scores from ``R`` are then off by a relative ``b / (1 - b)`` at most
    (first order), on top of the ``u cond`` of any backward-stable QR.

    * ``b <= _SCORE_TOL`` after round 0: one pass, ``"cholesky-qr"``.
    * ``b <= 1/2``: one more round, whose Gram is that of a nearly
      orthonormal matrix, is accurate to rounding: ``"cholesky-qr2"``
      (Yamamoto, Nakatsukasa, Yanagisawa and Fukaya, 2015).
    * Otherwise (or when the Cholesky factorisation fails) round 0 is
      redone on the same Gram with the shift ``s = 11 (m n + n (n + 1)) u
      tr(G)`` (``m`` the length of the accumulated sums), which leaves
      ``Z R_0^{-1}`` with condition number ``O(u^{-1/2})``, and CholeskyQR2
      follows: ``"shifted cholesky-qr3"`` (Fukaya, Kannan, Nakatsukasa,
      Yamamoto and Yanagisawa, SIAM J. Sci. Comput. 2020).

    When the Gram product is exact (:func:`gram_is_exact`: sparse integer
    entries, such as one-hot indicators, whose sums stay below ``2^53``),
    round 0 has ``dG = 0``, only the Cholesky term remains in ``b``, and
    a well-conditioned table is certified after one pass of ``O(nnz d)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or Rows
        Float64 or float32 (chunks are converted, ``X`` is never copied),
        or sparse or out-of-core rows (:class:`~skfal._rows.Rows`).
    intercept : bool, default=False
        Whether the design has a constant last column.

    Returns
    -------
    result : tuple (r, exponents, path) or None
        As :func:`equilibrated_r_factor`; None when a round fails, or the
        factor's condition number comes within a factor 4 of the rank cut of
        :func:`whitener` (so that the rank is decided by TSQR, as before, and
        a rank-deficient design always falls back).
    """
    n_rows = X.shape[0]
    n = X.shape[1] + intercept
    if n == 0 or n_rows < n:
        return None
    eps = np.finfo(np.float64).eps
    u = eps / 2
    rows = min(n_rows, max(_GRAM_ROWS, 2 * X.shape[1] + 2))
    # One chunk's sum, then the sum over chunks: pieces (a cluster's chunks)
    # each end in a partial chunk of their own.
    chunks = -(-n_rows // rows) + getattr(X, "n_pieces", 1) - 1
    length = rows + chunks
    gamma = (length + n + 1) * u

    with np.errstate(over="ignore", invalid="ignore"):
        G = _gram(X, intercept)
    squares = np.diag(G).copy()
    if np.all(np.isfinite(G)) and np.all(squares >= _SAFE_MIN):
        # Scaling the Gram by powers of two is exact: no extra pass over X.
        exponents = np.frexp(np.sqrt(squares))[1]
        scale = np.ldexp(1.0, -exponents)
        G = G * scale[:, None] * scale
    else:
        # Some column's squares over- or underflow, or X holds NaN or
        # infinity (then its Gram does, and the error is raised here): scale
        # X's columns (by powers of two, exactly) before the product.
        refuse_non_finite(X)
        norms = column_norms(X)
        if intercept:
            norms = np.append(norms, np.sqrt(n_rows))
        if not np.all(norms > 0):
            return None  # a zero column: rank deficient
        exponents = np.frexp(norms)[1]
        scale = np.ldexp(1.0, -exponents)
        G = _gram(X, intercept, scale=scale)
        if not np.all(np.isfinite(G)):
            return None

    exact = gram_is_exact(X)
    if exact:
        r = _exact_rank_deficient(X, intercept, G, scale, n_rows)
        if r is not None:
            return r, exponents, "pivoted cholesky"

    def round_(G, shift=0.0, gamma=gamma):
        r = _upper_cholesky(G + shift * np.eye(n) if shift else G)
        if r is None:
            return None, np.inf
        s_min = np.linalg.svd(r, compute_uv=False)[-1]
        bound = (gamma * np.trace(G) + shift + _cholesky_error(r)) / (
            s_min**2 if s_min > 0 else 0.0
        )
        return r, bound

    with np.errstate(divide="ignore"):
        r, bound = round_(G, gamma=0.0 if exact else gamma)
        path = "cholesky-qr2"
        if bound > _ROUND_OK:
            shift = 11.0 * (length * n + n * (n + 1)) * u * np.trace(G)
            r, bound = round_(G, shift)
            path = "shifted cholesky-qr3"
        if r is None:
            return None
        if bound <= _SCORE_TOL:
            path = "cholesky-qr"
        M = np.diag(scale) @ np.linalg.inv(r)
        while bound > _SCORE_TOL:
            previous = bound
            r_k, bound = round_(_gram(X, intercept, M))
            if r_k is None or bound > _ROUND_OK:
                return None
            r = r_k @ r
            if previous <= _ROUND_OK:
                break
            M = M @ np.linalg.inv(r_k)
    s = np.linalg.svd(r, compute_uv=False)
    if not s[-1] > 4 * max(n_rows, n) * eps * s[0]:
        return None
    return r, exponents, path


def _cholesky_error(r):
    """Bound on ``||dG||_2`` for the computed Cholesky factor ``r`` of ``G``.

    ``|dG| <= gamma_{n+1} |r|^T |r|`` entrywise (Higham, Accuracy and
    Stability of Numerical Algorithms, Thm 10.3), so ``||dG||_2 <=
    gamma_{n+1} || |r| ||_2^2``, at most ``gamma_{n+1} tr(G)`` and often
    ``n`` times less.
    """
    n = r.shape[0]
    u = np.finfo(np.float64).eps / 2
    return (n + 1) * u * np.linalg.norm(np.abs(r), 2) ** 2


def _exact_rank_deficient(X, intercept, G, scale, n_rows):
    """R factor of a rank-deficient design whose Gram ``G`` is exact, if certified.

    One-hot tables (``OneHotEncoder()`` without ``drop``) are rank
    deficient by construction: each categorical's indicators sum to the
    constant column. Pivoted Cholesky of the exact ``G`` (LAPACK ``dpstrf``)
    picks ``r`` independent columns ``X_1``; the others are ``X_2 = X_1 C +
    E`` with ``C = G_11^{-1} G_12``. One pass of ``O(nnz k)`` computes
    ``E`` (``k`` dependent columns); when ``||E||_F`` plus its rounding stays
    below the rank cut of TSQR (``max(n, d) eps s_max``, as
    :func:`numpy.linalg.matrix_rank`), the table has rank ``r`` as TSQR
    would decide and ``R = [R_11, R_11 C]`` (columns in place) is its R
    factor, ``R^T R = X^T X`` to rounding. ``R_11`` must be certified by one
    CholeskyQR round on the exact ``G_11`` (:func:`cholesky_qr_r`).

    Returns None when ``G`` has full numerical rank, or any check fails
    (TSQR decides then).
    """
    n = G.shape[0]
    eps = np.finfo(np.float64).eps
    u = eps / 2
    _, piv, rank, info = dpstrf(G, tol=-1.0)
    if info == 0 or rank == 0:  # full rank (or a zero table): not this case
        return None
    order = piv - 1
    keep, drop = np.sort(order[:rank]), np.sort(order[rank:])
    G11 = G[np.ix_(keep, keep)]
    r11 = _upper_cholesky(G11)
    if r11 is None:
        return None
    s11 = np.linalg.svd(r11, compute_uv=False)
    if not _cholesky_error(r11) <= _SCORE_TOL * s11[-1] ** 2:
        return None
    C = solve_triangular(r11, solve_triangular(r11, G[np.ix_(keep, drop)], trans="T"))
    residual = 0.0
    for block in _design_chunks(X, intercept, scale):
        E = as_dense(block[:, drop]) - times(block[:, keep], C)
        residual += float(np.einsum("ij,ij->", E, E))
    s_max = np.sqrt(max(np.linalg.eigvalsh(G)[-1], 0.0))
    # Rounding of E entry by entry: gamma_{r+1} (|X_1| |C| + |X_2|).
    noise = (
        (rank + 2)
        * u
        * (
            np.sqrt(np.trace(G11)) * np.linalg.norm(C)
            + np.sqrt(np.trace(G) - np.trace(G11))
        )
    )
    cut = max(n_rows, n) * eps * s_max
    if not np.sqrt(residual) + noise <= cut:
        return None
    r = np.zeros((rank, n))
    r[:, keep] = r11
    r[:, drop] = r11 @ C
    s = np.linalg.svd(r, compute_uv=False)
    if not s[-1] > 4 * cut:
        return None
    return r


def gram_is_exact(X):
    """Whether every Gram product of ``[X(, 1)]`` is exact in float64.

    True for sparse rows (:class:`~skfal._rows.Rows`) whose stored entries
    are integers (scaled by a power of two, if at all) with
    ``n_rows * max|x|^2 < 2^53``: every product and partial sum is then an
    integer times a power of two that float64 holds, in any order. Checked
    in ``O(nnz)``, on the whole sparse table the rows belong to.
    """
    if not (isinstance(X, Rows) and X.sparse):
        return False
    data = X.base.data
    if data.size == 0:
        return True
    largest = max(float(np.abs(data).max()), 1.0)
    return bool(
        np.all(data == np.rint(data)) and X.base.shape[0] * largest**2 < 2.0**53
    )


def column_exponents(r):
    """``e`` with ``2^(e-1) <= ||column|| < 2^e`` (0 for a zero column)."""
    return np.frexp(column_norms(r))[1]


def column_norms(X):
    """The norm of every column of ``X``, in one pass over its row chunks.

    Plain sums of squares when they neither overflow nor fall below
    ``_SAFE_MIN`` (squares under the normal range then lose at most ``n
    2^-1074``, far below ``2^-900 eps``); otherwise a second pass
    accumulates them relative to the running largest entry (as LAPACK's
    ``dnrm2``), so no square under- or overflows at any scale.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        squares = sum(map_pieces(X, _plain_squares))
    if np.all(np.isfinite(squares)) and np.all(squares >= _SAFE_MIN):
        return np.sqrt(squares)
    parts = map_pieces(X, _scaled_squares)
    scale = np.max([p[0] for p in parts], axis=0)
    safe = np.where(scale > 0, scale, 1.0)
    squares = sum(p[1] * (p[0] / safe) ** 2 for p in parts)
    return np.sqrt(squares) * scale


def _plain_squares(X):
    """Each column's sum of squares, in float64 (a chunk at a time)."""
    squares = np.zeros(X.shape[1])
    for chunk in iter_chunks(X):
        if sp.issparse(chunk):
            squares += np.asarray(chunk.multiply(chunk).sum(axis=0)).ravel()
        else:
            block = np.asarray(chunk, dtype=np.float64)
            squares += np.einsum("ij,ij->j", block, block)
    return squares


def _scaled_squares(X):
    """``(s, q)``: each column's largest ``|entry|`` and squares over ``s^2``."""
    scale = np.zeros(X.shape[1])
    squares = np.zeros(X.shape[1])
    for chunk in iter_chunks(X):
        block = np.abs(as_dense(chunk))
        new_scale = np.maximum(scale, block.max(axis=0, initial=0.0))
        safe = np.where(new_scale > 0, new_scale, 1.0)
        squares = squares * (scale / safe) ** 2 + np.einsum(
            "ij,ij->j", block / safe, block / safe
        )
        scale = new_scale
    return scale, squares


def solve_least_squares(r, alpha, norms=None):
    """Solve ``min ||A t - b||^2 + alpha ||t||^2`` from an R factor of ``[A, b]``.

    Parameters
    ----------
    r : ndarray of shape (k, n_columns + 1)
        Any ``r`` with ``r^T r = [A, b]^T [A, b]`` (e.g. the R factor of
        ``[A, b]``); the last column belongs to ``b``.
    alpha : float
        Ridge penalty; with ``alpha == 0`` and a rank-deficient ``A`` the
        minimum-norm solution.
    norms : ndarray of shape (n_columns,), default=None
        The size of each column the rank decision is relative to: for
        centered columns, their norms *before* centering, so that what
        centering leaves of a constant column (rounding) counts as zero.
        ``None``: the norms of ``A``'s columns.

    Returns
    -------
    t : ndarray of shape (n_columns,)
    """
    A, b = r[:, :-1], r[:, -1]
    t = np.zeros(A.shape[1])
    # An exactly zero column (a constant feature, centered) gets coefficient
    # 0, its minimum-norm value; the others are solved together.
    live = np.flatnonzero(np.any(A != 0, axis=0))
    A = A[:, live]
    n = live.size
    # Columns divided by powers of two near their sizes (exact), so that a
    # column of size 1 next to one of size 1e140 is not taken for zero by
    # the rank cut. With a unique solution (ridge, or full column rank) that
    # changes nothing else; otherwise the minimum-norm solution is the one
    # of the unscaled problem.
    exponents = column_exponents(A) if norms is None else np.frexp(norms[live])[1]
    scaled = np.ldexp(A, -exponents)
    if alpha > 0:
        scaled = np.vstack([scaled, np.diag(np.ldexp(np.sqrt(alpha), -exponents))])
        b = np.concatenate([b, np.zeros(n)])
    u, _, rank, _ = np.linalg.lstsq(scaled, b, rcond=None)
    if alpha > 0 or rank == n:
        t[live] = np.ldexp(u, -exponents)
    else:
        t[live] = np.linalg.lstsq(A, b, rcond=None)[0]
    return t


def weighted_mean(X, weights):
    """The weighted mean of the rows, corrected by the mean residual.

    One pass gives ``m = sum w x / sum w`` to rounding; adding
    ``sum w (x - m) / sum w`` makes a constant column's mean exact, so that
    centering leaves exactly zero (not rounding noise, which the rank
    decision could take for a feature).
    """
    total = weights.sum()
    mean = weights @ X / total
    return mean + weights @ (X - mean) / total


def solve_centered(r, alpha, x_mean):
    """``(coef, intercept)`` from an R factor of ``S [1, X - x_mean, y]``.

    With the constant column first, the rest of the R factor is the R of the
    weighted centered features and labels (the constant projected out, in
    exact arithmetic), from which the model is solved with the features'
    sizes before centering as the scale of the rank decision; the first row
    gives the constant. Centralized and federated fits both end here.
    """
    sizes = np.hypot(column_norms(r[:, 1:-1]), r[0, 0] * np.abs(x_mean))
    coef = solve_least_squares(r[1:, 1:], alpha, sizes)
    constant = (r[0, -1] - r[0, 1:-1] @ coef) / r[0, 0]
    return coef, float(constant - x_mean @ coef)


def weighted_least_squares(X, y, weights, alpha=0.0, fit_intercept=True):
    """Weighted (ridge) least squares with an unpenalised intercept.

    ``min_{coef, b} sum_i w_i (y_i - x_i coef - b)^2 + alpha ||coef||^2``, the
    minimum-norm ``coef`` when the problem is underdetermined (fewer rows
    than features) and ``alpha == 0``.

    Returns
    -------
    coef : ndarray of shape (n_features,)
    intercept : float
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)[:, None]
    root = np.sqrt(weights)[:, None]
    if not fit_intercept:
        return solve_least_squares(np.hstack([X, y]) * root, alpha), 0.0
    x_mean = weighted_mean(X, weights)
    system = np.hstack([np.ones_like(y), X - x_mean, y]) * root
    return solve_centered(r_factor([system], system.shape[1]), alpha, x_mean)
