"""Random orthogonal masks for FedSVD-style privacy.

A Haar-distributed orthogonal matrix is the Q factor of a standard Gaussian
matrix with the signs of its columns fixed by the diagonal of R (Mezzadri,
2007); without the sign fix the distribution is not Haar.

A client's row mask ``P_i`` is block diagonal: blocks of ``block_size`` rows
(the last one smaller), each an independent Haar matrix drawn from the client's
own seed. It is regenerated from the seed when needed and never held as a dense
``n_i x n_i`` matrix.

The clients' shared rotation ``Q`` (``d x d``, Haar) comes from a seed the
clients agree on and the server never sees.
"""

import numpy as np

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


def client_shared_rotation(n_features, seed):
    """The Haar rotation ``Q`` all clients derive from their shared seed."""
    return haar_orthogonal(n_features, np.random.RandomState(seed))


def apply_block_mask(A, seed, block_size, transpose=False):
    """Compute ``P A`` (or ``P^T A``) for the block-diagonal mask of ``seed``.

    Parameters
    ----------
    A : ndarray of shape (n_rows, n_columns)
    seed : int
        The client's private seed; the same seed gives the same ``P``.
    block_size : int
        Rows per Haar block.
    transpose : bool, default=False
        Apply ``P^T`` (the inverse mask) instead of ``P``.

    Returns
    -------
    PA : ndarray of shape (n_rows, n_columns)
    """
    rng = np.random.default_rng(seed)
    n_rows = A.shape[0]
    out = np.empty(A.shape, dtype=np.float64)
    n_full, last = divmod(n_rows, block_size)
    for first in range(0, n_full, _BLOCKS_PER_BATCH):
        count = min(_BLOCKS_PER_BATCH, n_full - first)
        rows = slice(first * block_size, (first + count) * block_size)
        blocks = haar_orthogonal(block_size, rng, n_matrices=count)
        if transpose:
            blocks = blocks.transpose(0, 2, 1)
        stacked = np.asarray(A[rows], dtype=np.float64).reshape(count, block_size, -1)
        out[rows] = np.matmul(blocks, stacked).reshape(count * block_size, -1)
    if last:
        block = haar_orthogonal(last, rng)
        tail = np.asarray(A[n_full * block_size :], dtype=np.float64)
        out[n_full * block_size :] = (block.T if transpose else block) @ tail
    return out
