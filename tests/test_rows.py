"""Sparse, memory-mapped and duck-typed tables: read by blocks, never whole.

Every estimator must give on a sparse matrix, a memmap or an array-like
dataset the scores, selection and model it gives on the dense in-memory
copy (the reference), without densifying or loading the table.
"""

import hashlib

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import skfal._rows
from skfal import (
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
    UniformSampler,
)
from skfal._linalg import (
    _exact_rank_deficient,
    equilibrated_r_factor,
    gram_is_exact,
    leverage_scores,
)
from skfal._rows import Rows, is_row_sliceable, max_abs
from tests._helpers import matrix_with_known_basis


class Dataset:
    """The least an HDF5 or zarr dataset offers: shape, dtype, row slices.

    Anything else (a list of rows, ``numpy.asarray`` of the whole) raises,
    so a test passing through it proves the table was read by slices.
    """

    def __init__(self, array):
        self._array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.rows_read = 0

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError(f"Dataset takes row slices only, got {key!r}")
        block = np.array(self._array[key])
        self.rows_read += block.shape[0]
        return block

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole dataset was loaded")


def _table(n=1500, d=8, seed=0):
    """Sparse-ish rows (70% zeros), labels and four clients."""
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, d)) * (rng.rand(n, d) < 0.3)
    X[:, 0] += 1.0  # no all-zero row
    y = X @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)
    return X, y, rng.randint(4, size=n)


@pytest.fixture
def memmap_of(tmp_path):
    """Write an array to a file and open it read-only as a memmap."""

    def make(array):
        path = tmp_path / f"table{len(list(tmp_path.iterdir()))}.dat"
        writer = np.memmap(path, dtype=array.dtype, mode="w+", shape=array.shape)
        writer[:] = array
        writer.flush()
        del writer
        return np.memmap(path, dtype=array.dtype, mode="r", shape=array.shape), path

    return make


def _kinds(memmap_of):
    return {
        "csr": sp.csr_matrix,
        "csc": sp.csc_matrix,
        "coo": sp.coo_matrix,
        "memmap": lambda X: memmap_of(X)[0],
        "dataset": Dataset,
    } | ({"csr_array": sp.csr_array} if hasattr(sp, "csr_array") else {})


SAMPLERS = [
    LeverageScoreSampler(budget=40, random_state=0),
    LeverageScoreSampler(budget=40, fit_intercept=True, alpha=0.5, random_state=1),
    LeverageScoreSampler(
        budget=40, sampling="iid", weighting="des-raj", random_state=2
    ),
    SensitivitySampler(budget=50, random_state=0),
    SensitivitySampler(budget=50, z=1, holder_constant="auto", random_state=3),
    UniformSampler(budget=40, sampling="pivotal", random_state=0),
]


@pytest.mark.parametrize("federated", [False, True])
@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
@pytest.mark.parametrize("kind", ["csr", "csc", "memmap", "dataset", "csr_array"])
def test_samplers_match_the_dense_table(sampler, kind, federated, memmap_of):
    kinds = _kinds(memmap_of)
    if kind not in kinds:
        pytest.skip("scipy without sparse arrays")
    X, y, groups = _table()
    groups = groups if federated else None
    dense = sampler.fit(X, y, groups=groups)
    indices, weights, scores = (
        dense.sample_indices_.copy(),
        dense.sample_weight_.copy(),
        dense.scores_.copy(),
    )
    reference = dense.transform(X[:100])
    other = sampler.fit(kinds[kind](X), y, groups=groups)
    assert np.max(np.abs(other.scores_ - scores) / np.abs(scores).max()) <= 1e-10
    assert np.array_equal(other.sample_indices_, indices)
    assert np.allclose(other.sample_weight_, weights, rtol=1e-10, atol=0)
    assert other.n_features_in_ == X.shape[1]
    transformed = other.transform(kinds[kind](X[:100]))
    assert np.allclose(transformed, reference, rtol=1e-9)


def test_fedsvd_protocol_on_sparse_rows():
    # FedSVD uploads each client's masked rows P_i X_i Q, dense by design;
    # the scores are still those of the dense table.
    X, _, groups = _table()
    sampler = LeverageScoreSampler(budget=40, protocol="fedsvd", random_state=0)
    dense = sampler.fit(X, groups=groups).scores_.copy()
    assert np.allclose(sampler.fit(sp.csr_matrix(X), groups=groups).scores_, dense)


@pytest.mark.parametrize("training", ["global", "local"])
@pytest.mark.parametrize("federated", [False, True])
@pytest.mark.parametrize("kind", ["csr", "csc", "memmap", "dataset"])
def test_regressor_matches_the_dense_table(kind, federated, training, memmap_of):
    X, y, groups = _table()
    groups = groups if federated else None
    reg = FederatedActiveRegressor(budget=100, training=training, random_state=0)
    coef = reg.fit(X, y, groups=groups).coef_.copy()
    intercept, chosen, pred = reg.intercept_, reg.sample_indices_, reg.predict(X)
    table = _kinds(memmap_of)[kind](X)
    reg.fit(table, y, groups=groups)
    assert np.array_equal(reg.sample_indices_, chosen)
    assert np.allclose(reg.coef_, coef, rtol=1e-10, atol=1e-12)
    assert np.isclose(reg.intercept_, intercept, rtol=1e-10, atol=1e-12)
    assert np.allclose(reg.predict(table), pred, rtol=1e-10, atol=1e-10)


def _categorical(n=2000, seed=0):
    rng = np.random.RandomState(seed)
    cats = np.column_stack([rng.randint(k, size=n) for k in (5, 7, 11)])
    effects = [rng.standard_normal(k) for k in (5, 7, 11)]
    y = sum(e[cats[:, j]] for j, e in enumerate(effects)) + 0.1 * rng.randn(n)
    return cats, y


def test_one_hot_pipeline_equals_the_dense_encoding():
    # The new user's pipeline: OneHotEncoder's sparse output goes straight in.
    cats, y = _categorical()
    sparse_pipe = make_pipeline(
        OneHotEncoder(), FederatedActiveRegressor(budget=200, random_state=0)
    ).fit(cats, y)
    dense_pipe = make_pipeline(
        OneHotEncoder(sparse_output=False),
        FederatedActiveRegressor(budget=200, random_state=0),
    ).fit(cats, y)
    sparse_reg, dense_reg = sparse_pipe[-1], dense_pipe[-1]
    assert np.array_equal(sparse_reg.sample_indices_, dense_reg.sample_indices_)
    assert np.allclose(sparse_reg.coef_, dense_reg.coef_, rtol=1e-10, atol=1e-10)
    assert np.allclose(sparse_pipe.predict(cats), dense_pipe.predict(cats))
    # The model is a good one: one-hot effects are linear in the encoding.
    assert sparse_pipe.score(cats, y) > 0.95


def test_one_hot_pipeline_in_grid_search():
    cats, y = _categorical(n=1200, seed=1)
    grids = []
    for sparse_output in (True, False):
        pipe = make_pipeline(
            OneHotEncoder(sparse_output=sparse_output),
            FederatedActiveRegressor(budget=150, random_state=0),
        )
        search = GridSearchCV(
            pipe, {"federatedactiveregressor__alpha": [0.0, 1.0, 100.0]}, cv=3
        ).fit(cats, y)
        grids.append(search)
    sparse_search, dense_search = grids
    assert sparse_search.best_params_ == dense_search.best_params_
    assert np.allclose(
        sparse_search.cv_results_["mean_test_score"],
        dense_search.cv_results_["mean_test_score"],
        rtol=1e-10,
    )


@pytest.mark.parametrize(
    "sampler",
    [
        LeverageScoreSampler(budget=40, random_state=0),
        SensitivitySampler(budget=50, random_state=0),
        FederatedActiveRegressor(budget=60, random_state=0),
    ],
    ids=repr,
)
@pytest.mark.parametrize("federated", [False, True])
def test_sparse_rows_are_densified_a_block_at_a_time(sampler, federated, monkeypatch):
    # Blocks of 64 rows of a table of 20,000: no densification of more rows
    # than a block, or than a spatial tree's subsample (every n // 4096-th
    # row of a party's rows, fewer than 2 * 4096, whose principal axes it
    # takes), or the selected rows.
    monkeypatch.setattr(skfal._rows, "_CHUNK_BYTES", 64 * 8 * 8)
    X, y, groups = _table(n=20_000)
    largest = []
    original = sp.csr_matrix.toarray

    def toarray(self, *args, **kwargs):
        largest.append(self.shape[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", toarray)
    sampler.fit(sp.csr_matrix(X), y, groups=groups if federated else None)
    assert largest and max(largest) < 2 * 4096 < X.shape[0] / 2


@pytest.mark.parametrize("kind", ["ndarray", "csr", "memmap", "dataset"])
@pytest.mark.parametrize(
    "cond, tol", [(1e2, 1e-10), (1e8, 1e-6), (1e12, 1e-2)], ids=str
)
def test_scores_match_known_basis_on_every_input(kind, cond, tol, memmap_of):
    # The accuracy targets of the in-memory kernel hold on every path.
    X, exact = matrix_with_known_basis(3000, 10, cond, random_state=0)
    rows = {
        "ndarray": lambda A: A,
        "csr": lambda A: Rows(sp.csr_matrix(A)),
        "memmap": lambda A: Rows(memmap_of(A)[0], check_finite=True),
        "dataset": lambda A: Rows(Dataset(A), check_finite=True),
    }[kind](X)
    scores = leverage_scores(rows)[0]
    assert np.max(np.abs(scores - exact) / exact) <= tol
    assert equilibrated_r_factor(rows)[2] == equilibrated_r_factor(X)[2]


@pytest.mark.parametrize("kind", ["csr", "memmap"])
def test_rank_deficient_input_on_every_path(kind, memmap_of):
    rng = np.random.RandomState(2)
    X = rng.standard_normal((400, 5)) * (rng.rand(400, 5) < 0.5)
    X = np.hstack([X, X[:, :2] + X[:, 2:4], np.zeros((400, 1))])
    table = sp.csr_matrix(X) if kind == "csr" else memmap_of(X)[0]
    sampler = LeverageScoreSampler(budget=30, random_state=0)
    dense = sampler.fit(X).scores_.copy()
    other = sampler.fit(table)
    assert other.rank_ == np.linalg.matrix_rank(X) == 5
    assert np.allclose(other.scores_, dense, rtol=1e-10, atol=1e-12)


def test_float32_memmap_scores_as_float64(memmap_of):
    X, _, _ = _table()
    X32 = X.astype(np.float32)
    table, _ = memmap_of(X32)
    scores = LeverageScoreSampler(random_state=0).fit(table).scores_
    reference = LeverageScoreSampler(random_state=0).fit(X32.astype(np.float64))
    assert scores.dtype == np.float64
    assert np.allclose(scores, reference.scores_, rtol=1e-10)


def test_read_only_memmap_is_never_written(memmap_of):
    X, y, groups = _table()
    table, path = memmap_of(X)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for estimator in [*SAMPLERS, FederatedActiveRegressor(budget=100)]:
        for g in (None, groups):
            # A write into a mode="r" memmap raises; the bytes stay the same.
            estimator.fit(table, y, groups=g)
    assert not table.flags.writeable
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_memmap_peak_memory_is_blocks_and_vectors(memmap_of, monkeypatch):
    # Peak extra memory O(block d + d^2 + n): with 256 KiB blocks, far below
    # the table (100,000 x 64 float64, 51 MB), whatever the estimator.
    import tracemalloc

    monkeypatch.setattr(skfal._rows, "_CHUNK_BYTES", 2**18)
    rng = np.random.RandomState(0)
    X = rng.standard_normal((100_000, 64))
    y = X[:, 0] + X[:, 1]
    table, _ = memmap_of(X)
    del X
    for estimator in [
        LeverageScoreSampler(budget=500, random_state=0),
        SensitivitySampler(budget=500, random_state=0),
        FederatedActiveRegressor(budget=500, random_state=0),
    ]:
        tracemalloc.start()
        estimator.fit(table, y)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 0.3 * table.nbytes, (estimator, peak / table.nbytes)


def test_dataset_reads_each_pass_by_slices():
    # Leverage scores and a pivotal selection: a few passes, each by slices
    # of at most a block (the Dataset refuses anything else), plus the
    # subsample of the spatial tree.
    X, _, _ = _table(n=3000)
    data = Dataset(X)
    sampler = LeverageScoreSampler(budget=40, random_state=0).fit(data)
    assert np.array_equal(
        sampler.sample_indices_,
        LeverageScoreSampler(budget=40, random_state=0).fit(X).sample_indices_,
    )
    assert data.rows_read <= 5 * X.shape[0]


@pytest.mark.parametrize("kind", ["memmap", "dataset"])
def test_non_finite_out_of_core_table_is_a_clear_error(kind, memmap_of):
    X, y, _ = _table()
    X[700, 3] = np.nan
    table = memmap_of(X)[0] if kind == "memmap" else Dataset(X)
    for estimator in [
        LeverageScoreSampler(),
        SensitivitySampler(),
        UniformSampler(),
        FederatedActiveRegressor(),
    ]:
        with pytest.raises(ValueError, match="NaN or infinity"):
            estimator.fit(table, y)


def test_bad_out_of_core_tables_are_clear_errors(memmap_of):
    with pytest.raises(ValueError, match="must hold numbers"):
        LeverageScoreSampler().fit(Dataset(np.array([["a", "b"]] * 5)))
    with pytest.raises(ValueError, match="0 sample"):
        LeverageScoreSampler().fit(Dataset(np.empty((0, 3))))
    sampler = LeverageScoreSampler(budget=3).fit(Dataset(np.ones((10, 3))))
    with pytest.raises(ValueError, match="3 features"):
        sampler.transform(Dataset(np.ones((4, 2))))


def test_sparse_nan_is_a_clear_error():
    X = sp.random(50, 4, density=0.5, format="csr", random_state=0)
    X.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LeverageScoreSampler().fit(X)


def test_rows_views_read_nothing_until_asked():
    base = Dataset(np.arange(40.0).reshape(10, 4))
    rows = Rows(base)
    view = rows[2:8][1:4]  # rows 3, 4, 5
    assert base.rows_read == 0 and view.shape == (3, 4)
    assert np.array_equal(np.asarray(view), base._array[3:6])
    taken = np.take(rows, np.array([9, 0, 4]), axis=0)
    assert np.array_equal(taken[np.array([0, 2])], base._array[[9, 4]])
    assert np.array_equal(rows[::4], base._array[::4])
    assert np.array_equal(
        np.asarray(rows.scaled(-2).with_ones()[5:6]),
        [[5.0, 5.25, 5.5, 5.75, 1.0]],
    )
    assert np.abs(rows.scaled(1)).max(initial=0.0) == 78.0
    with pytest.raises(TypeError, match="by rows only"):
        rows[:, 1]
    with pytest.raises(TypeError):
        np.exp(rows)  # no ufunc densifies the table


def test_sparse_rows_keep_their_zeros_in_the_largest_entry():
    negative = sp.csr_matrix(np.array([[-3.0, 0.0], [0.0, -1.0]]))
    assert Rows(negative).max() == 0.0  # the zeros not stored count
    assert max_abs(Rows(negative)) == 3.0
    assert isinstance(Rows(negative)[np.array([1])], Rows)  # still sparse


def test_what_is_read_by_blocks():
    assert is_row_sliceable(Dataset(np.ones((3, 2))))
    assert not is_row_sliceable(np.ones((3, 2)))
    assert not is_row_sliceable(sp.csr_matrix(np.ones((3, 2))))
    assert not is_row_sliceable(Dataset(np.ones(3)))  # 1-D: scikit-learn's error


def test_one_dimensional_memmap_gets_scikit_learns_error(memmap_of):
    with pytest.raises(ValueError, match="Expected 2D array"):
        LeverageScoreSampler().fit(memmap_of(np.ones(10))[0])


def test_integer_sparse_gram_is_exact_and_certified_in_one_pass():
    # Integer entries: every Gram product and partial sum is an integer
    # below 2^53, so exact; the bound drops the Gram's rounding and one pass
    # is certified, with the scores of the dense table's Householder QR.
    rng = np.random.RandomState(0)
    dense = rng.randint(-3, 4, size=(4000, 6)) * (rng.rand(4000, 6) < 0.5)
    # A column close to another (condition number ~100): certified in one
    # pass only without the Gram's rounding in the bound.
    noise = rng.randint(-1, 2, size=4000) * (rng.rand(4000) < 0.3)
    dense[:, 5] = 10 * dense[:, 4] + noise
    rows = Rows(sp.csr_matrix(dense.astype(np.float64)))
    assert gram_is_exact(rows)
    assert equilibrated_r_factor(rows)[2] == "cholesky-qr"
    assert equilibrated_r_factor(dense.astype(np.float64))[2] != "cholesky-qr"
    Q = np.linalg.qr(dense.astype(np.float64))[0]
    exact = np.einsum("ij,ij->i", Q, Q)
    scores = leverage_scores(rows)[0]
    assert np.max(np.abs(scores - exact) / exact.max()) <= 1e-10
    # Not integers, or sums past 2^53: no such claim.
    assert not gram_is_exact(Rows(sp.csr_matrix(dense * 0.1)))
    assert not gram_is_exact(Rows(sp.csr_matrix(dense * 2.0**26)))
    assert not gram_is_exact(dense.astype(np.float64))


@pytest.mark.parametrize("intercept", [False, True])
def test_one_hot_rank_deficiency_is_decided_on_the_exact_gram(intercept):
    # OneHotEncoder() without drop: each categorical's indicators sum to the
    # constant column, so the table has rank d - (categoricals - 1) (one less
    # with an intercept). Its Gram is exact: pivoted Cholesky picks
    # independent columns, one O(nnz k) pass shows the others are exact
    # combinations of them, and the R factor [R11, R11 C] gives the scores
    # of the dense table's Householder TSQR (which decides the rank as
    # numpy.linalg.matrix_rank does), never densifying the rows.
    rng = np.random.RandomState(4)
    categories = np.c_[rng.randint(0, 4, 3000), rng.randint(0, 7, 3000)]
    onehot = OneHotEncoder().fit_transform(categories).tocsr()
    rows = Rows(onehot)
    assert equilibrated_r_factor(rows, intercept)[2] == "pivoted cholesky"
    dense = onehot.toarray()
    assert equilibrated_r_factor(dense, intercept)[2] == "tsqr"
    scores, W = leverage_scores(rows, intercept)
    reference, W_dense = leverage_scores(dense, intercept)
    assert np.max(np.abs(scores - reference)) <= 1e-12
    assert (
        W.shape[1]
        == W_dense.shape[1]
        == np.linalg.matrix_rank(np.c_[dense, np.ones(3000)] if intercept else dense)
    )
    # The same generalized inverse of the Gram as the dense path's.
    assert np.allclose(W @ W.T, W_dense @ W_dense.T, atol=1e-12)
    # One more indicator in one row breaks the relation between the two
    # categoricals (their indicators no longer sum alike): without an
    # intercept the table has full rank and no pivoting is certified; with
    # one, the second categorical still sums to the constant column. The
    # rank and scores are TSQR's either way.
    almost = onehot.toarray()
    almost[7, 0] += 1.0
    near = Rows(sp.csr_matrix(almost))
    # The dependency is checked on the rows, not taken from the Gram: handed
    # the one-hot table's Gram, the pass over these rows finds the residual.
    gram = (onehot.T @ onehot).toarray()
    if intercept:
        column_sums = np.asarray(onehot.sum(axis=0)).ravel()
        gram = np.block([[gram, column_sums[:, None]], [column_sums[None], 3000.0]])
    scale = np.ldexp(1.0, -np.frexp(np.sqrt(np.diag(gram)))[1])
    gram = gram * scale[:, None] * scale
    assert _exact_rank_deficient(rows, intercept, gram, scale, 3000) is not None
    assert _exact_rank_deficient(near, intercept, gram, scale, 3000) is None
    if not intercept:
        assert equilibrated_r_factor(near)[2] != "pivoted cholesky"
    scores, W = leverage_scores(near, intercept)
    design = np.c_[almost, np.ones(3000)] if intercept else almost
    assert W.shape[1] == np.linalg.matrix_rank(design)
    assert np.allclose(
        scores, leverage_scores(almost, intercept)[0], rtol=1e-10, atol=1e-12
    )


def test_dask_array_without_a_cluster_selects_as_in_memory():
    # Without a distributed Client a Dask array's chunks are processed by
    # dask's local scheduler, with the in-memory arithmetic on each chunk
    # (tests/test_dask.py runs them on a cluster). I.i.d. draws and the
    # pivotal tournament run per chunk, on the in-memory scores: the same
    # law, other rows (tests/test_dask.py checks the laws:
    # test_iid_on_chunks_keeps_the_law and the pivotal one).
    da = pytest.importorskip("dask.array")
    X, y, _ = _table()
    lazy = da.from_array(X, chunks=(400, X.shape[1]))
    for estimator in [
        LeverageScoreSampler(budget=40, sampling="iid", random_state=0),
        SensitivitySampler(budget=50, sampling="iid", random_state=0),
    ]:
        expected = np.asarray(estimator.fit(X).scores_).copy()
        fitted = estimator.fit(lazy)
        if isinstance(estimator, LeverageScoreSampler):
            # (the sensitivity scores come from another subsample's centres)
            assert np.allclose(np.asarray(fitted.scores_), expected, rtol=1e-12)
        rows = fitted.sample_indices_
        assert np.unique(rows).shape == rows.shape == (estimator.budget,)
        assert np.all(fitted.sample_weight_ > 0)
    pivotal = LeverageScoreSampler(budget=40, random_state=0)
    expected = pivotal.fit(X).scores_.copy()
    assert np.allclose(np.asarray(pivotal.fit(lazy).scores_), expected, rtol=1e-12)
    assert pivotal.sample_indices_.shape == (40,)
