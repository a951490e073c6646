"""Tall-skinny QR, the whitener, row norms and least squares."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from skfal._linalg import (
    column_exponents,
    column_norms,
    equilibrated_r_factor,
    iter_chunks,
    leverage_scores,
    r_factor,
    squared_row_norms,
    whitener,
)
from skfal._rows import Rows
from tests._helpers import matrix_with_known_basis


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


def _tsqr_scores(X, intercept=False):
    """Scores through the Householder TSQR fallback, as before CholeskyQR."""
    chunks = iter_chunks(X)
    if intercept:
        chunks = (np.hstack([c, np.ones((c.shape[0], 1))]) for c in chunks)
    r = r_factor(chunks, X.shape[1] + intercept)
    scaling = np.diag(np.ldexp(1.0, -column_exponents(r)))
    return squared_row_norms(X, scaling @ whitener(r @ scaling, X.shape[0]), intercept)


@pytest.mark.parametrize(
    "cond, tol, paths",
    [
        # cond 1: the one-pass bound b <= 1e-10 certifies CholeskyQR alone.
        (1e0, 1e-10, {"cholesky-qr"}),
        # Past round 0, CholeskyQR2 is backward stable like Householder QR:
        # the scores are off by ~u cond (1e-14 here), far inside the bound.
        (1e2, 1e-10, {"cholesky-qr2"}),
        # u cond ~ 1e-8, times small polynomial factors in the shape.
        (1e8, 1e-6, {"shifted cholesky-qr3"}),
        # The shift brings round 0 to cond O(u^-1/2) and CholeskyQR2 follows,
        # still backward stable: u cond ~ 1e-6 against the bound 1e-4.
        (1e10, 1e-4, {"shifted cholesky-qr3"}),
        # Within 4x of the rank cut (3000 eps cond ~ 0.7): TSQR decides, and
        # its own error is u cond ~ 1e-4, inside 1e-2.
        (1e12, 1e-2, {"tsqr"}),
    ],
)
def test_cholesky_qr_scores_match_known_basis(cond, tol, paths):
    X, exact = matrix_with_known_basis(3000, 12, cond, random_state=0)
    X = X * np.logspace(-3, 3, 12)  # unequal column scales change no score
    r, exponents, path = equilibrated_r_factor(X)
    assert path in paths
    scores = leverage_scores(X)[0]
    assert np.max(np.abs(scores - exact) / exact) <= tol
    # No worse than Householder TSQR by more than rounding at this cond.
    tsqr_error = np.max(np.abs(_tsqr_scores(X) - exact) / exact)
    assert np.max(np.abs(scores - exact) / exact) <= 10 * tsqr_error + 1e-14


@pytest.mark.parametrize(
    "make",
    [
        lambda X: np.hstack([X, X[:, :2] + X[:, 2:4]]),
        lambda X: np.hstack([X, np.zeros((X.shape[0], 3))]),
        lambda X: np.outer(X[:, 0], np.ones(4)),
    ],
)
def test_cholesky_qr_rank_deficient_falls_back_to_tsqr(make):
    # A rank-deficient Gram has no certified Cholesky factor (it fails, or
    # its condition number reaches the rank cut): TSQR decides the rank and
    # gives the scores exactly as before.
    X = make(np.random.RandomState(2).standard_normal((200, 5)))
    assert equilibrated_r_factor(X)[2] == "tsqr"
    scores, W = leverage_scores(X)
    assert np.array_equal(scores, _tsqr_scores(X))
    assert W.shape[1] == np.linalg.matrix_rank(X)


def test_cholesky_qr_float32_and_intercept():
    # float32 entries are exact in float64, so the float64 Gram of float32
    # chunks is the Gram of the same numbers: the scores are those of the
    # float64 copy, to the CholeskyQR2 accuracy u cond (cond 1e3 here).
    X, _ = matrix_with_known_basis(3000, 8, 1e3, random_state=1)
    X32 = (X * 100 + 3).astype(np.float32)
    X64 = X32.astype(np.float64)
    for intercept in (False, True):
        assert equilibrated_r_factor(X32, intercept)[2] != "tsqr"
        scores = leverage_scores(X32, intercept)[0]
        reference = _tsqr_scores(X64, intercept)
        assert scores.dtype == np.float64
        assert np.max(np.abs(scores - reference) / reference) <= 1e-9


def test_cholesky_qr_extreme_column_scales():
    # Columns at 1e200 and 1e-200 over- and underflow the raw Gram; their
    # power-of-two scaling before the product is exact, so the scores are
    # those of the unscaled matrix.
    X, exact = matrix_with_known_basis(2000, 6, 1e2, random_state=2)
    scaled = X * np.array([1e200, 1e200, 1e-200, 1e-200, 1.0, 1.0])
    assert equilibrated_r_factor(scaled)[2] != "tsqr"
    scores = leverage_scores(scaled)[0]
    assert np.max(np.abs(scores - exact) / exact) <= 1e-10


@pytest.mark.parametrize(
    "magnitude, kind",
    [(m, k) for m in (1.0, 1e-170, 1e170, 1e-310) for k in ("dense", "csr")]
    + [(1.0, "float32")],  # float32 holds no entries of 1e+-170
)
@pytest.mark.parametrize("zero_column", [False, True])
def test_column_norms_at_every_scale(magnitude, kind, zero_column):
    # Plain sums of squares serve while they neither overflow nor fall near
    # the float64 underflow range; at 1e+-170 the squares of entries of
    # 1e+-170 leave it (1e+-340) and the scaled pass (as LAPACK's dnrm2)
    # must answer, as it must for a zero column (a square sum of 0 is not
    # told from an underflow). Reference: each column's norm as math.hypot
    # folds it (correctly scaled whatever the magnitude).
    rng = np.random.RandomState(4)
    A = rng.standard_normal((3000, 4)) * magnitude
    if zero_column:
        A[:, 2] = 0.0
    if kind == "float32":
        A = A.astype(np.float32)
    X = Rows(sp.csr_matrix(A)) if kind == "csr" else A
    expected = [math.hypot(*A[:, j].astype(np.float64)) for j in range(4)]
    got = column_norms(X)
    assert np.allclose(got, expected, rtol=1e-12, atol=0.0)
    assert (got[2] == 0.0) == zero_column
