"""Random orthogonal masks: Haar rotations and block-diagonal row masks."""

import numpy as np
import pytest

from skfal._federated._masks import (
    apply_block_mask,
    client_shared_rotation,
    haar_orthogonal,
)


def test_haar_orthogonal_is_orthogonal_and_sign_corrected():
    rng = np.random.RandomState(5)
    Q = haar_orthogonal(6, rng)
    assert np.allclose(Q.T @ Q, np.eye(6))
    # Haar matrices have E[Q_11] = 0; the raw Q of numpy's QR has a biased
    # diagonal, which the sign correction removes.
    first = haar_orthogonal(4, rng, n_matrices=4000)[:, 0, 0]
    assert abs(first.mean()) < 4 * first.std() / np.sqrt(first.size)


@pytest.mark.parametrize("n_rows, block", [(10, 3), (9, 3), (5, 100), (1, 1)])
def test_block_mask_is_orthogonal_block_diagonal_and_invertible(n_rows, block):
    A = np.random.RandomState(6).standard_normal((n_rows, 4))
    P = apply_block_mask(np.eye(n_rows), seed=7, block_size=block)
    assert np.allclose(P.T @ P, np.eye(n_rows))
    starts = np.arange(n_rows) // block
    assert np.all(P[starts[:, None] != starts[None, :]] == 0)  # block diagonal
    assert np.allclose(apply_block_mask(A, 7, block), P @ A)
    assert np.allclose(apply_block_mask(P @ A, 7, block, transpose=True), A)


def test_shared_rotation_is_the_same_for_every_client_with_the_seed():
    # Clients agree on Q by sharing a seed: the same seed gives the same
    # orthogonal Q at every client, another seed another Q.
    Q = client_shared_rotation(5, 123)
    assert np.allclose(Q.T @ Q, np.eye(5))
    assert np.array_equal(Q, client_shared_rotation(5, 123))
    assert not np.allclose(Q, client_shared_rotation(5, 124))


def test_block_mask_accepts_float32_and_preserves_norms():
    A = np.random.RandomState(8).standard_normal((250, 3)).astype(np.float32)
    PA = apply_block_mask(A, seed=1, block_size=100)
    assert PA.dtype == np.float64
    # Orthogonal on each block: column norms (and the Gram matrix) unchanged.
    assert np.allclose(PA.T @ PA, A.T.astype(float) @ A, rtol=1e-5)
