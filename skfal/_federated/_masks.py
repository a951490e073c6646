"""Random orthogonal masks for FedSVD-style privacy.

A Haar-distributed orthogonal matrix is the Q factor of a standard Gaussian
matrix with the signs of its columns fixed by the diagonal of R (Mezzadri,
2007); without the sign fix the distribution is not Haar.

A client's row mask ``P_i`` is block diagonal: blocks of ``block_size`` rows
(the last one smaller), each an independent Haar matrix drawn from the client's
own seed. It is never formed: :func:`mask_rows` draws the masked rows
``P_i A`` directly, with the same law (a uniformly random orthonormal frame
times the R factor of each block), from Householder reflectors drawn as
Stewart (1980) does and applied to a batch of blocks at once by matrix
products (the UT transform).

The clients' shared rotation ``Q`` (``d x d``, Haar) comes from a key the
clients agree on and the server never sees. Every Gaussian of a protocol's
mask or rotation is drawn from ChaCha20's keystream
(:class:`~skfal._federated._secure.KeystreamGenerator`), never from a
statistical generator.
"""

import numpy as np

from skfal._federated._secure import KeystreamGenerator

# Blocks masked at once (their reflectors: 1 MB at 100 rows and 20 columns).
_BLOCKS_PER_BATCH = 64


def haar_orthogonal(size, random_state, n_matrices=None):
    """Haar-distributed orthogonal matrices.

    Parameters
    ----------
    size : int
        Each matrix is ``size x size``.
    random_state : numpy.random.RandomState or numpy.random.Generator
    n_matrices : int or None
        ``None`` for one matrix, else a stack of that many.

    Returns
    -------
    Q : ndarray of shape (size, size) or (n_matrices, size, size)
    """
    shape = (size, size) if n_matrices is None else (n_matrices, size, size)
    q, r = np.linalg.qr(random_state.standard_normal(shape))
    signs = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    signs[signs == 0] = 1.0
    return q * signs[..., None, :]


def client_shared_rotation(n_features, random_state):
    """The Haar rotation ``Q`` all clients draw alike.

    ``random_state``: the keystream the clients key from their group
    secret (``_secure.shared_generator``), or an int seed (tests).
    """
    if not hasattr(random_state, "standard_normal"):
        random_state = np.random.RandomState(random_state)
    return haar_orthogonal(n_features, random_state)


def haar_reflectors(size, n_matrices, rng, n_reflectors=None, buffers=None):
    """Householder reflectors of ``n_matrices`` Haar matrices of order ``size``.

    Householder QR of a standard Gaussian ``G`` writes ``G = H_0 ... H_{b-1}
    R``, and ``H_0 ... H_{b-1} diag(sign(R_kk))`` is Haar (Mezzadri's sign
    fix); its first ``k`` columns, ``H_0 ... H_{k-1} diag(sign(R_jj))``
    padded, are a uniformly random orthonormal ``size x k`` frame. ``H_0``
    depends only on ``G``'s first column; the other columns, independent of
    it and rotation invariant, stay i.i.d. Gaussian after ``H_0``. So the
    vector of reflector ``j`` is that of a fresh Gaussian vector of length
    ``size - j``, and the law is the same when the vectors are drawn
    directly (Stewart, SIAM J. Numer. Anal. 1980): about ``size k``
    Gaussians and ``O(size k)`` work per matrix, no factorisation.

    Parameters
    ----------
    size : int
    n_matrices : int
    rng : KeystreamGenerator or numpy.random.Generator
    n_reflectors : int, default=None
        ``k``, the reflectors per matrix (``None``: ``size``, the whole
        matrix).
    buffers : tuple of ndarray, default=None
        Reused between calls (:func:`_buffers` for at least ``n_matrices``):
        fresh memory for every batch costs more than the arithmetic.

    Returns
    -------
    vectors : ndarray of shape (n_matrices, k, size)
        ``vectors[m].T`` is LAPACK's layout (Fortran order, reflector ``j``
        in column ``j`` below the diagonal, its leading 1 implied); a view
        of ``buffers``.
    tau : ndarray of shape (n_matrices, k)
        ``H_j = I - tau_j v_j v_j^T``.
    signs : ndarray of shape (n_matrices, k)
        ``sign(R_jj)``: the frame is ``H_0 ... H_{k-1} diag(signs)``.
    """
    k = size if n_reflectors is None else n_reflectors
    if buffers is None:
        buffers = _buffers(size, k, n_matrices)
    draws, squares, vectors = (a[:n_matrices] for a in buffers)
    rng.standard_normal(out=draws)
    lengths, offsets = _layout(size, k)
    # x_j = draws[:, offsets[j] : offsets[j] + lengths[j]]; as LAPACK's
    # dlarfg, H_j x_j = beta_j e_1 with beta_j = -sign(alpha_j) ||x_j||.
    alpha = draws[:, offsets]
    norm = np.sqrt(np.add.reduceat(np.square(draws, out=squares), offsets, axis=1))
    beta = -np.copysign(norm, alpha)
    degenerate = norm == 0  # x_j = 0 (probability 0): H_j = I
    safe = np.where(degenerate, -1.0, beta)
    tau = np.where(degenerate, 0.0, (beta - alpha) / safe)
    signs = np.where(degenerate, 1.0, np.sign(beta))
    scale = np.where(degenerate, 0.0, 1.0 / np.where(degenerate, 1.0, alpha - beta))
    for j in range(k):
        np.multiply(
            draws[:, offsets[j] + 1 : offsets[j] + lengths[j]],
            scale[:, j, None],
            out=vectors[:, j, j + 1 :],
        )
    return vectors, tau, signs


def _layout(size, k):
    """Lengths and offsets of the reflectors' Gaussian vectors in one draw."""
    lengths = np.arange(size, size - k, -1)
    return lengths, np.concatenate(([0], np.cumsum(lengths)[:-1]))


def _buffers(size, k, n_matrices):
    """Work arrays of :func:`haar_reflectors` (the reflectors' upper part zero)."""
    count = int(_layout(size, k)[0].sum())
    return (
        np.empty((n_matrices, count)),
        np.empty((n_matrices, count)),
        np.zeros((n_matrices, k, size)),
    )


def mask_rows(A, seed, block_size):
    """A draw of ``P A`` for the block-diagonal Haar mask ``P`` of ``seed``.

    For a block ``A_b`` (``b`` rows) with more rows than columns and
    Householder QR ``A_b = F R`` (``F`` an orthonormal ``b x d`` frame),
    ``P_b A_b = (P_b F) R``, and ``P_b F`` is a uniformly random orthonormal
    frame whatever ``F`` is (Haar invariance). So the masked block is drawn
    as ``U R``, ``U`` a uniform frame (:func:`haar_reflectors`, ``d``
    reflectors): the same law as ``P_b A_b`` for every table, hence the same
    privacy, at ``O(b d^2)`` work and about ``b d`` Gaussians per block
    instead of the ``O(b^2 d)`` and ``b^2 / 2`` of a Haar ``P_b``. A block
    with no more rows than columns is multiplied by a Haar ``P_b`` itself
    (``b`` reflectors; no QR). Its Gram matrix is ``A_b^T A_b`` (to
    rounding), as ``P_b`` orthogonal requires. ``P`` is never formed: a
    FedSVD client scores its rows without unmasking.

    The reflectors ``H_0 ... H_{k-1} = I - V T V^T`` of a batch of blocks
    are applied together by matrix products, with ``T^{-1} = striu(V^T V) +
    diag(1 / tau)`` (the UT transform; Joffrain, Low, Quintana-Orti and van
    de Geijn, ACM TOMS 2006): no loop over blocks.

    Parameters
    ----------
    A : ndarray of shape (n_rows, n_columns)
    seed : bytes of 32 or int
        The client's private key (32 bytes of OS randomness, fresh in every
        fit), or an int (tests), used as the key's 32 bytes.
    block_size : int
        Rows per Haar block (the last block holds the rest).

    Returns
    -------
    PA : ndarray of shape (n_rows, n_columns)
        Float64, a new array.
    """
    if isinstance(seed, (int, np.integer)):
        seed = int(seed).to_bytes(32, "little")
    rng = KeystreamGenerator(seed)
    A = np.asarray(A, dtype=np.float64)
    out = np.zeros(A.shape)
    n_rows, n_columns = A.shape
    if out.size == 0:
        return out
    n_full, last = divmod(n_rows, block_size)
    batches = [
        (first * block_size, block_size, min(_BLOCKS_PER_BATCH, n_full - first))
        for first in range(0, n_full, _BLOCKS_PER_BATCH)
    ]
    if last:
        batches.append((n_full * block_size, last, 1))
    buffers = {}
    for start, size, count in batches:
        k = min(size, n_columns)
        if (size, k) not in buffers:
            buffers[size, k] = _buffers(size, k, count)
        vectors, tau, signs = haar_reflectors(size, count, rng, k, buffers[size, k])
        stop = start + size * count
        blocks = A[start:stop].reshape(count, size, n_columns)
        masked = out[start:stop].reshape(count, size, n_columns)
        if k == size:
            # P_b A_b = H_0 ... H_{b-1} diag(signs) A_b.
            masked[:] = signs[:, :, None] * blocks
            top = masked
        else:
            # U R = H_0 ... H_{k-1} [diag(signs) R; 0].
            top = masked[:, :k]
            top[:] = signs[:, :, None] * np.linalg.qr(blocks, mode="r")
        _apply_reflectors(vectors, tau, top, masked)
    return out


def _apply_reflectors(vectors, tau, top, C):
    """``C <- H_0 ... H_{k-1} C`` for a batch, when ``C`` is zero below ``top``.

    ``vectors[m]`` holds block ``m``'s reflectors as rows (LAPACK's layout
    transposed, the leading 1 implied, set here); ``top`` is a view of the
    first rows of ``C`` (all of them, or the first ``k`` when the rest is
    zero). ``H = I - V T V^T`` with ``T^{-1} = striu(V^T V) + diag(1 /
    tau)``: ``C - V T (V^T C)``, and ``V^T C`` needs only ``top``.
    """
    k = vectors.shape[1]
    diagonal = np.arange(k)
    vectors[:, diagonal, diagonal] = 1.0
    inverse = np.triu(vectors @ vectors.transpose(0, 2, 1), 1)
    inverse[:, diagonal, diagonal] = 1.0 / tau
    # T^{-1} is upper triangular with a nonzero diagonal: LU needs no pivot.
    # (NumPy's LAPACK: SciPy's trsm, from another OpenBLAS build between
    # NumPy's products, would make the two thread pools fight for the cores.)
    z = np.linalg.solve(inverse, vectors[:, :, : top.shape[1]] @ top)
    C -= vectors.transpose(0, 2, 1) @ z
