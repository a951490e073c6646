"""Tall-skinny QR, the whitener, row norms and least squares."""

import numpy as np
import pytest

from skfal._linalg import iter_chunks, r_factor, squared_row_norms, whitener


@pytest.mark.parametrize("chunk", [3, 7, 50, 1000])
def test_r_factor_is_the_cholesky_factor_of_the_gram(chunk):
    # TSQR over any chunking gives the unique R with a non-negative diagonal
    # and R^T R = A^T A (for full column rank A, the Cholesky factor).
    rng = np.random.RandomState(0)
    A = rng.standard_normal((120, 6))
    R = r_factor(iter_chunks(A, chunk), 6)
    assert np.allclose(R, np.triu(R))
    assert np.all(np.diag(R) >= 0)
    assert np.allclose(R, np.linalg.cholesky(A.T @ A).T)


def test_r_factor_does_not_touch_input_and_handles_short_blocks():
    rng = np.random.RandomState(1)
    A = np.asfortranarray(rng.standard_normal((40, 5)))
    before = A.copy()
    R = r_factor([A[:2], A[2:3], A[3:], A[:0]], 5)  # blocks shorter than d, one empty
    assert np.array_equal(A, before)
    assert np.allclose(R.T @ R, A.T @ A)


def test_r_factor_fewer_rows_than_columns():
    A = np.random.RandomState(2).standard_normal((3, 8))
    R = r_factor([A], 8)
    assert R.shape == (3, 8)
    assert np.allclose(R.T @ R, A.T @ A)


def test_whitener_rank_deficient():
    # Columns 3 and 4 copy columns 0 and 1: rank 3, and X @ W is orthonormal.
    rng = np.random.RandomState(3)
    X = rng.standard_normal((100, 3))
    X = np.hstack([X, X[:, :2] * 2.0])
    W = whitener(r_factor([X], 5), 100)
    assert W.shape == (5, 3)
    assert np.allclose((X @ W).T @ (X @ W), np.eye(3))
    assert np.allclose(W @ W.T, np.linalg.pinv(X.T @ X))


def test_squared_row_norms_float32_input():
    rng = np.random.RandomState(4)
    X = rng.standard_normal((30, 4)).astype(np.float32)
    W = rng.standard_normal((4, 2))
    out = squared_row_norms(X, W)
    assert out.dtype == np.float64
    assert np.allclose(out, ((X.astype(float) @ W) ** 2).sum(1))
