"""LeverageScoreSampler, centralized: accuracy, selection, weights, API, errors."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfal import LeverageScoreSampler
from tests._helpers import hat_diagonal, matrix_with_known_basis, monte_carlo_runs


@pytest.mark.parametrize("cond, tol", [(1e2, 1e-10), (1e8, 1e-6)])
def test_scores_match_known_basis(cond, tol):
    # X = U diag(s) V^T: the exact scores are the squared row norms of U. A
    # Gram/Cholesky solution squares cond and is off by ~0.1 at 1e8.
    X, exact = matrix_with_known_basis(3000, 12, cond, random_state=0)
    sampler = LeverageScoreSampler(budget=5, random_state=0).fit(X)
    assert np.max(np.abs(sampler.scores_ - exact) / exact) <= tol
    assert sampler.rank_ == 12


def test_scores_equal_hat_matrix_diagonal():
    X = np.random.RandomState(1).standard_normal((300, 7))
    sampler = LeverageScoreSampler(random_state=0).fit(X)
    assert np.allclose(sampler.scores_, hat_diagonal(X), rtol=1e-10, atol=0)


@pytest.mark.parametrize(
    "make, rank",
    [
        (lambda X: np.hstack([X, X[:, :2] + X[:, 2:4]]), 5),  # dependent columns
        (lambda X: np.hstack([X, np.zeros((X.shape[0], 3))]), 5),  # zero columns
        (lambda X: np.outer(X[:, 0], np.ones(4)), 1),  # rank one
    ],
)
def test_rank_deficient_scores_sum_to_rank(make, rank):
    # Scores are squared row norms of an orthonormal basis of the column
    # space, which has `rank` columns: they sum to the rank, with no NaN.
    X = make(np.random.RandomState(2).standard_normal((200, 5)))
    sampler = LeverageScoreSampler(budget=20, random_state=0).fit(X)
    assert np.all(np.isfinite(sampler.scores_))
    assert sampler.rank_ == rank
    assert sampler.scores_.sum() == pytest.approx(rank, rel=1e-10)
    assert np.allclose(sampler.scores_, hat_diagonal(X), atol=1e-10)


def test_more_columns_than_rows():
    X = np.random.RandomState(3).standard_normal((6, 10))
    sampler = LeverageScoreSampler(budget=6, random_state=0).fit(X)
    assert np.allclose(sampler.scores_, 1.0)  # rank 6 = n: every row is essential


def test_selection_exact_budget_sorted_distinct():
    X = np.random.RandomState(4).standard_normal((500, 4))
    for budget, expected in [(1, 1), (37, 37), (499, 499), (0.1, 50)]:
        for sampling in ("iid", "pivotal"):
            sampler = LeverageScoreSampler(
                budget=budget, sampling=sampling, random_state=1
            ).fit(X)
            idx = sampler.sample_indices_
            assert idx.shape == (expected,)
            assert np.all(np.diff(idx) > 0)
            assert sampler.sample_weight_.shape == (expected,)
            # i.i.d. draws until distinct need at least one draw per row;
            # pivotal sampling draws no i.i.d. index.
            assert sampler.n_draws_ >= expected if sampling == "iid" else True


def test_reproducible_and_seed_dependent():
    X = np.random.RandomState(5).standard_normal((400, 3))
    a = LeverageScoreSampler(budget=30, random_state=7).fit(X)
    b = LeverageScoreSampler(budget=30, random_state=7).fit(X)
    c = LeverageScoreSampler(budget=30, random_state=8).fit(X)
    assert np.array_equal(a.sample_indices_, b.sample_indices_)
    assert np.array_equal(a.sample_weight_, b.sample_weight_)
    assert not np.array_equal(a.sample_indices_, c.sample_indices_)


def test_weights_are_multiplicity_over_draws_times_probability():
    # w_i n_draws p_i is each row's multiplicity: a positive integer, and the
    # multiplicities add up to the number of draws.
    X = np.random.RandomState(6).standard_normal((50, 3))
    X[:3] *= 20
    sampler = LeverageScoreSampler(
        budget=20, sampling="iid", uniform_mix=0.0, random_state=0
    ).fit(X)
    p = sampler.scores_ / sampler.scores_.sum()
    mult = sampler.sample_weight_ * sampler.n_draws_ * p[sampler.sample_indices_]
    assert np.allclose(mult, np.round(mult))
    assert np.all(np.round(mult) >= 1)
    assert np.round(mult).sum() == sampler.n_draws_


def test_high_leverage_rows_are_selected():
    rng = np.random.RandomState(7)
    X = rng.standard_normal((5000, 5))
    X[:5] = 200 * np.eye(5)  # each alone determines one direction: score ~1
    hits = 0
    for seed in range(20):
        sampler = LeverageScoreSampler(budget=25, random_state=seed).fit(X)
        hits += np.isin(np.arange(5), sampler.sample_indices_).sum()
    assert hits >= 95  # uniform sampling would find ~0.5 of the 100


@pytest.mark.parametrize(
    "weighting, tol", [("hansen-hurwitz", 0.02), ("des-raj", 0.005)]
)
def test_weighted_gram_is_unbiased(weighting, tol):
    # sum_i w_i x_i x_i^T estimates X^T X; averaged over many independent
    # draws it approaches X^T X, while one draw is far off. Des Raj weights
    # are exactly unbiased (measured: 0.2% off, Monte Carlo noise);
    # Hansen-Hurwitz ones carry a bias from the random number of draws
    # (measured: 1.3% here). Dropping the multiplicities (39% off) or
    # dividing by the budget instead of n_draws (43% off) fails this.
    rng = np.random.RandomState(8)
    X = rng.standard_normal((300, 3)) * [1.0, 3.0, 0.3]
    X[:4] *= 6
    gram = X.T @ X
    n_seeds = 3000
    estimates = np.empty((n_seeds, 3, 3))
    for seed in range(n_seeds):
        s = LeverageScoreSampler(
            budget=15,
            sampling="iid",
            uniform_mix=0.0,
            weighting=weighting,
            random_state=seed,
        ).fit(X)
        Xs = X[s.sample_indices_]
        estimates[seed] = (Xs * s.sample_weight_[:, None]).T @ Xs
    err = np.linalg.norm(estimates.mean(0) - gram) / np.linalg.norm(gram)
    single = np.median(np.linalg.norm(estimates - gram, axis=(1, 2))) / np.linalg.norm(
        gram
    )
    assert single > 0.1
    assert err < tol


def test_weighted_least_squares_on_selection_is_close():
    # The point of the weights: a weighted fit on a few rows approximates the
    # fit on all rows.
    rng = np.random.RandomState(9)
    X = rng.standard_normal((20000, 5))
    y = X @ np.arange(1.0, 6.0) + rng.standard_normal(20000)
    s = LeverageScoreSampler(budget=200, random_state=0).fit(X)
    sw = np.sqrt(s.sample_weight_)[:, None]
    coef = np.linalg.lstsq(
        X[s.sample_indices_] * sw, y[s.sample_indices_] * sw[:, 0], rcond=None
    )[0]
    assert np.allclose(coef, np.arange(1.0, 6.0), atol=0.3)


def test_transform_is_leverage_against_fitted_space():
    rng = np.random.RandomState(10)
    X = rng.standard_normal((100, 4))
    X_new = rng.standard_normal((7, 4))
    s = LeverageScoreSampler(random_state=0).fit(X)
    assert s.transform(X).shape == (100, 1)
    assert np.allclose(s.transform(X)[:, 0], s.scores_, rtol=1e-12, atol=0)
    expected = np.einsum("ij,jk,ik->i", X_new, np.linalg.pinv(X.T @ X), X_new)
    assert np.allclose(s.transform(X_new)[:, 0], expected, rtol=1e-10)
    assert np.allclose(s.fit_transform(X)[:, 0], s.scores_)


def test_feature_names_and_pandas_output():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(
        np.random.RandomState(11).standard_normal((40, 3)), columns=list("abc")
    )
    s = LeverageScoreSampler(random_state=0).set_output(transform="pandas").fit(X)
    out = s.transform(X)
    assert list(out.columns) == ["leverage_score"]
    assert out.index.equals(X.index)
    assert list(s.get_feature_names_out()) == ["leverage_score"]
    assert list(s.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(ValueError):
        s.get_feature_names_out(["x", "y", "z"])


def test_fit_resample_returns_selected_rows():
    rng = np.random.RandomState(12)
    X = rng.standard_normal((60, 3))
    y = np.full(60, np.nan)  # labels may be missing: none are read in fit
    s = LeverageScoreSampler(budget=9, random_state=3)
    X_res, y_res = s.fit_resample(X, y)
    idx = s.sample_indices_
    assert np.array_equal(X_res, X[idx]) and np.array_equal(
        y_res, y[idx], equal_nan=True
    )
    pd = pytest.importorskip("pandas")
    Xdf, ys = pd.DataFrame(X), pd.Series(np.arange(60.0))
    Xd_res, ys_res = LeverageScoreSampler(budget=9, random_state=3).fit_resample(
        Xdf, ys
    )
    assert Xd_res.index.tolist() == idx.tolist() and ys_res.tolist() == idx.tolist()


def test_in_pipeline():
    X = np.random.RandomState(13).standard_normal((80, 3)) * 10 + 5
    pipe = make_pipeline(StandardScaler(), LeverageScoreSampler(random_state=0))
    assert pipe.fit_transform(X).shape == (80, 1)


@pytest.mark.parametrize(
    "X, kwargs, match",
    [
        (np.array([[1.0, np.nan], [2.0, 3.0]]), {}, "NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0]]), {}, "infinity"),
        (np.arange(5.0), {}, "Expected 2D array"),
        (np.ones((5, 2)), {"budget": 0}, "budget"),
        (np.ones((5, 2)), {"budget": -1}, "budget"),
        (np.ones((5, 2)), {"budget": 1.5}, "budget"),
        (np.ones((5, 2)), {"budget": 6}, "asks for 6 .* n_samples=5"),
        (np.zeros((5, 2)), {"uniform_mix": 0.0}, "all zeros"),
    ],
)
def test_bad_input_clear_error(X, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LeverageScoreSampler(**kwargs).fit(X)


def test_budget_above_rows_with_nonzero_score():
    X = np.zeros((6, 2))
    X[:3] = np.random.RandomState(14).standard_normal((3, 2))
    with pytest.raises(ValueError, match="only 3 of the 6 rows have a positive"):
        LeverageScoreSampler(budget=4, uniform_mix=0.0).fit(X)
    # A uniform share gives every row a chance: the budget can be met.
    assert LeverageScoreSampler(budget=4).fit(X).sample_indices_.size == 4


def test_groups_routed_through_pipeline_and_metadata_routing():
    # groups reach fit by Pipeline's step__param syntax, and by metadata
    # routing once the sampler requests them.
    from sklearn import config_context
    from sklearn.pipeline import Pipeline

    rng = np.random.RandomState(15)
    X, groups = rng.standard_normal((120, 3)), rng.randint(4, size=120)
    pipe = Pipeline(
        [("scale", StandardScaler()), ("lev", LeverageScoreSampler(random_state=0))]
    )
    pipe.fit(X, lev__groups=groups)
    assert len(pipe.named_steps["lev"].clients_) == 4
    with config_context(enable_metadata_routing=True):
        sampler = LeverageScoreSampler(random_state=0).set_fit_request(groups=True)
        routed = Pipeline([("scale", StandardScaler()), ("lev", sampler)])
        routed.fit(X, groups=groups)
        assert len(routed.named_steps["lev"].clients_) == 4
        assert routed.named_steps["lev"].communication_


def test_fit_intercept_scores_the_design_with_a_constant_column():
    # Uncentered X: the leverage of [X, 1] differs from that of X; both must
    # equal their hat-matrix diagonals, in fit and in transform.
    rng = np.random.RandomState(16)
    X = rng.standard_normal((150, 3)) + [5.0, -2.0, 10.0]
    s = LeverageScoreSampler(fit_intercept=True, random_state=0).fit(X)
    design = np.hstack([X, np.ones((150, 1))])
    assert np.allclose(s.scores_, hat_diagonal(design), rtol=1e-10)
    assert not np.allclose(s.scores_, hat_diagonal(X), rtol=1e-2)
    assert s.rank_ == 4 and s.whitener_.shape == (4, 4)
    assert np.allclose(s.transform(X[:7])[:, 0], s.scores_[:7], rtol=1e-10)


@pytest.mark.parametrize("groups", [None, np.array([0, 1, 0, 1, 1])])
def test_every_row_selected_even_with_a_zero_score(groups):
    # An all-zero row has leverage 0, so no i.i.d. draw ever reaches it; a
    # budget of every row is a census instead: inclusion probability 1,
    # weight 1, which is exactly unbiased.
    X = np.random.RandomState(20).standard_normal((5, 2))
    X[2] = 0.0
    for budget in (1.0, 5):
        s = LeverageScoreSampler(budget=budget, random_state=0).fit(X, groups=groups)
        assert np.array_equal(s.sample_indices_, np.arange(5))
        assert np.array_equal(s.sample_weight_, np.ones(5))
        assert s.scores_[2] == 0.0 and s.n_draws_ == 0
    # An all-zero X still has nothing to draw from below a census.
    with pytest.raises(ValueError, match="All sampling scores are zero"):
        LeverageScoreSampler(budget=4, uniform_mix=0.0).fit(np.zeros((5, 2)))
    assert LeverageScoreSampler(budget=1.0).fit(np.zeros((5, 2))).rank_ == 0


@pytest.mark.parametrize("groups", [None, np.arange(300) % 3])
def test_pivotal_weighted_gram_is_unbiased(groups):
    # Horvitz-Thompson: E[sum_i 1{i selected} x_i x_i^T / pi_i] = X^T X
    # exactly, because every row is selected with probability pi_i, here
    # as at each federated client.
    rng = np.random.RandomState(8)
    X = rng.standard_normal((300, 3)) * [1.0, 3.0, 0.3]
    X[:4] *= 6
    gram = X.T @ X
    n_seeds = monte_carlo_runs(1500)
    estimates = np.empty((n_seeds, 3, 3))
    for seed in range(n_seeds):
        s = LeverageScoreSampler(budget=15, random_state=seed).fit(X, groups=groups)
        assert s.sample_indices_.size == 15 and s.n_draws_ == 0
        Xs = X[s.sample_indices_]
        estimates[seed] = (Xs * s.sample_weight_[:, None]).T @ Xs
    err = np.linalg.norm(estimates.mean(0) - gram) / np.linalg.norm(gram)
    spread = np.linalg.norm(estimates.std(0)) / np.sqrt(n_seeds) / np.linalg.norm(gram)
    assert err < 4 * spread  # within Monte Carlo noise (measured: 1.3 spreads)


@pytest.mark.parametrize("sampling", ["pivotal", "iid"])
def test_uniform_mix_bounds_the_weights(sampling):
    # eta / n of the mass stays with every row: pi >= eta * budget / n, so
    # no pivotal weight exceeds n / (eta * budget).
    X = np.random.RandomState(9).standard_normal((400, 3))
    X[:3] *= 100  # three rows take almost all the leverage mass
    s = LeverageScoreSampler(budget=20, uniform_mix=0.25, random_state=0)
    s.set_params(sampling=sampling).fit(X)
    if sampling == "pivotal":
        assert s.sample_weight_.max() <= 400 / (0.25 * 20) + 1e-9
    assert np.all(np.isin([0, 1, 2], s.sample_indices_))
    pure = LeverageScoreSampler(budget=20, uniform_mix=0.0, random_state=0).fit(X)
    assert pure.sample_weight_.max() > s.sample_weight_.max()


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize(
    "groups, protocol",
    [(None, "qr"), (np.arange(200) % 3, "qr"), (np.arange(200) % 3, "fedsvd")],
)
def test_ridge_leverage_is_the_ridge_hat_diagonal(fit_intercept, groups, protocol):
    # x^T (A^T A + alpha D)^{-1} x with D = diag(1, ..., 1, 0): the ridge hat
    # matrix's diagonal, the intercept unpenalised as in the ridge fit;
    # federated clients add the penalty themselves and get the same scores.
    rng = np.random.RandomState(21)
    X = rng.standard_normal((200, 4)) * [1.0, 2.0, 0.1, 5.0] + 3.0
    A = np.hstack([X, np.ones((200, 1))]) if fit_intercept else X
    D = np.diag([1.0] * 4 + [0.0] * fit_intercept)
    truth = np.einsum("ij,ji->i", A, np.linalg.solve(A.T @ A + 7.0 * D, A.T))
    s = LeverageScoreSampler(
        budget=10, alpha=7.0, fit_intercept=fit_intercept, protocol=protocol
    ).fit(X, groups=groups)
    assert np.allclose(s.scores_, truth, rtol=1e-9)
    assert np.allclose(s.transform(X)[:, 0], truth, rtol=1e-9)
    assert s.scores_.sum() < A.shape[1]  # effective degrees of freedom < rank


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_float32_rows_scored_in_float32_within_the_bound(fit_intercept):
    # A pivotal fit multiplies float32 rows by the map in float32 only when
    # the rounding bound rho (2 + rho) of skfal._linalg.float32_map is below
    # 1e-4; the exact scores are those of the same numbers in float64
    # (float32 entries are exact there). Well conditioned: the float32
    # products are taken, and every score is within the bound.
    from skfal._linalg import _FLOAT32_SCORE_TOL

    X32 = np.random.RandomState(3).standard_normal((4000, 10)).astype(np.float32)
    X32 += 0.5
    reference = LeverageScoreSampler(fit_intercept=fit_intercept, sampling="iid")
    exact = reference.fit(X32.astype(np.float64)).scores_
    sampler = LeverageScoreSampler(budget=50, fit_intercept=fit_intercept)
    error = np.abs(sampler.fit(X32).scores_ - exact) / exact
    assert 1e-12 < error.max() <= _FLOAT32_SCORE_TOL  # float32 products, bounded
    # At condition number 1e3 the bound refuses float32: float64 products,
    # exact to CholeskyQR's accuracy.
    X, _ = matrix_with_known_basis(4000, 10, 1e3, random_state=0)
    X32 = X.astype(np.float32)
    exact = reference.fit(X32.astype(np.float64)).scores_
    error = np.abs(sampler.fit(X32).scores_ - exact) / exact
    assert error.max() <= 1e-9


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(
    "where, params",
    [
        ((7, 1), {}),  # the Gram is not finite: its first branch refuses
        ((0, 0), {"sampling": "iid", "fit_intercept": False}),
        ((7, 1), {"verbose": 2}),  # X wrapped to report progress
        ((2, 4), {"n_rows": 4}),  # fewer rows than columns: straight to TSQR
        ((7, 1), {"scale": 1e200}),  # finite squares overflow: a second branch
    ],
)
def test_a_non_finite_entry_is_refused_without_a_validation_scan(bad, where, params):
    # Centralized, X is not scanned for NaN or infinity at validation: the
    # Gram kernel's paths for a Gram that is not finite or not certified
    # scan it first (refuse_non_finite). This catches a path that skips the
    # scan: NaN scores, or a silently wrong selection, instead of the error;
    # and a scan that comes late, after arithmetic on NaN has warned.
    params = dict(params)
    n_rows, scale = params.pop("n_rows", 60), params.pop("scale", 1.0)
    X = np.random.RandomState(0).standard_normal((n_rows, 6)) * scale
    X[where] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
            LeverageScoreSampler(budget=3, random_state=0, **params).fit(X)


def test_huge_finite_entries_are_not_refused():
    # The scan runs where the Gram overflows; finite entries pass it.
    X = np.random.RandomState(0).standard_normal((60, 6)) * 1e200
    scores = LeverageScoreSampler(budget=3, random_state=0).fit(X).scores_
    assert np.allclose(scores, hat_diagonal(X / 1e200), rtol=1e-9)


@pytest.mark.parametrize("dtype, memmap", [(np.float64, False), (np.float32, True)])
def test_kernel_threads_change_no_bit_of_the_fit(monkeypatch, tmp_path, dtype, memmap):
    # A large in-memory table's kernel passes run on the BLAS's threads
    # (skfal._rows.kernel_threads): each thread scores whole cache slices,
    # and the Gram's chunk products are added in chunk order, so the scores,
    # the spatial order and the selection are the serial fit's to the last
    # bit. Catches a thread writing another's rows, a slice scored twice or
    # never, and partial Grams added per thread (a rounding-level change
    # that would make the rows depend on the machine's cores).
    import skfal._linalg as linalg
    import skfal._rows

    X = np.random.RandomState(3).standard_normal((30_000, 7)).astype(dtype)
    X[:, 0] *= 1e4  # so the order in which the Gram is added shows
    if memmap:  # a file's blocks, read by each thread as it scores them
        np.save(tmp_path / "X.npy", X)
        X = np.load(tmp_path / "X.npy", mmap_mode="r")
    fits = {}
    for threads in (1, 3):
        monkeypatch.setattr(linalg, "kernel_threads", lambda X, t=threads: t)
        monkeypatch.setattr(linalg, "_GRAM_WAVE", 1)  # several waves
        monkeypatch.setattr(skfal._rows, "_CHUNK_BYTES", 2**16)  # many blocks
        for sampling in ("pivotal", "iid"):
            fits[threads, sampling] = LeverageScoreSampler(
                budget=300, sampling=sampling, random_state=0
            ).fit(X)
    for sampling in ("pivotal", "iid"):
        serial, threaded = fits[1, sampling], fits[3, sampling]
        assert np.array_equal(serial.scores_, threaded.scores_)
        assert np.array_equal(serial.whitener_, threaded.whitener_)
        assert np.array_equal(serial.sample_indices_, threaded.sample_indices_)
        assert np.array_equal(serial.sample_weight_, threaded.sample_weight_)


def test_kernel_threads_follow_the_blas_limits():
    # A large ndarray gets the BLAS's threads, so OMP_NUM_THREADS and
    # threadpoolctl limits bound skfal's passes as they bound NumPy's.
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from skfal._rows import Rows, kernel_threads

    large = np.empty((2**17, 2))
    with threadpool_limits(limits=1, user_api="blas"):
        assert kernel_threads(large) == 1
    with threadpool_limits(limits=2, user_api="blas"):
        assert kernel_threads(large) == 2
        assert kernel_threads(large[:1000]) == 1  # small: one thread
        assert kernel_threads(Rows(large)) == 2  # a dense table read in blocks
        assert kernel_threads(Rows(large, on_block=print)) == 1  # in order
        assert kernel_threads(Rows(sp.csr_matrix(large))) == 1  # sparse
        # Work a pool runs (Dask's tasks, simulated clients): one thread.
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(kernel_threads, large).result() == 1
