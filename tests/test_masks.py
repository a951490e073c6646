"""Random orthogonal masks: Haar rotations and block-diagonal row masks."""

import numpy as np
import pytest

from skfal._federated._masks import (
    client_shared_rotation,
    haar_orthogonal,
    mask_rows,
)


def test_haar_orthogonal_is_orthogonal_and_sign_corrected():
    rng = np.random.RandomState(5)
    Q = haar_orthogonal(6, rng)
    assert np.allclose(Q.T @ Q, np.eye(6))
    # Haar matrices have E[Q_11] = 0; the raw Q of numpy's QR has a biased
    # diagonal, which the sign correction removes.
    first = haar_orthogonal(4, rng, n_matrices=4000)[:, 0, 0]
    assert abs(first.mean()) < 4 * first.std() / np.sqrt(first.size)


@pytest.mark.parametrize(
    "n_rows, n_columns, block",
    [(10, 4, 3), (9, 4, 3), (5, 2, 100), (1, 1, 1), (250, 3, 100)],
)
def test_masked_blocks_keep_each_blocks_gram(n_rows, n_columns, block):
    # The masked rows are P A for a block-diagonal orthogonal P: each block
    # of rows keeps its Gram matrix (what FedSVD's server factors), and
    # only the block's own rows mix.
    A = np.random.RandomState(6).standard_normal((n_rows, n_columns))
    M = mask_rows(A, 7, block)
    for start in range(0, n_rows, block):
        rows = slice(start, start + block)
        assert np.allclose(M[rows].T @ M[rows], A[rows].T @ A[rows], atol=1e-12)
    assert np.array_equal(M, mask_rows(A, 7, block))  # the seed decides
    if n_rows > 1:
        assert not np.allclose(M, mask_rows(A, 8, block))


@pytest.mark.parametrize("n_columns", [2, 4, 6])
def test_masked_blocks_have_the_law_of_a_haar_mask(n_columns):
    # For Haar P, P A is uniform among the matrices with A's Gram matrix:
    # its law is invariant under any orthogonal map on the left, so each
    # column over its norm is uniform on the sphere: mean 0, E[u_i^2] = 1/b,
    # E[u_i^4] = 3 / (b (b + 2)), E[u_i u_j] = 0. mask_rows draws the frame
    # P F instead of P (Householder reflectors of fresh Gaussians, Stewart,
    # 1980); without Mezzadri's sign fix the frame is biased (E[u_1] != 0),
    # and a wrong reflector law moves the fourth moment. Blocks of b = 4
    # rows, with fewer, as many and more columns than rows.
    b, n = 4, 40_000
    A = np.random.RandomState(3).standard_normal((b, n_columns))
    M = mask_rows(np.tile(A, (n, 1)), 11, b).reshape(n, b, n_columns)
    u = M / np.linalg.norm(A, axis=0)
    checks = [
        (u, 0.0),
        (u**2, 1 / b),
        (u**4, 3 / (b * (b + 2))),
        (u[:, 0] * u[:, 1], 0.0),
    ]
    for values, expected in checks:
        error = np.abs(values.mean(axis=0) - expected)
        # 5 standard errors per entry: a chance failure is far below 1e-4.
        assert np.all(error < 5 * values.std(axis=0) / np.sqrt(n) + 1e-12)


def test_shared_rotation_is_the_same_for_every_client_with_the_seed():
    # Clients agree on Q by sharing a seed: the same seed gives the same
    # orthogonal Q at every client, another seed another Q.
    Q = client_shared_rotation(5, 123)
    assert np.allclose(Q.T @ Q, np.eye(5))
    assert np.array_equal(Q, client_shared_rotation(5, 123))
    assert not np.allclose(Q, client_shared_rotation(5, 124))


def test_mask_accepts_float32():
    A = np.random.RandomState(8).standard_normal((250, 3)).astype(np.float32)
    PA = mask_rows(A, seed=1, block_size=100)
    assert PA.dtype == np.float64
    # Orthogonal on each block: the Gram matrix is unchanged.
    assert np.allclose(PA.T @ PA, A.T.astype(float) @ A, rtol=1e-5)
