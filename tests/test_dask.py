"""Dask arrays on a ``distributed`` cluster (``skfal._dask``).

The chunks are processed where they live: the fits give the in-memory
selection and model with the same seed, the scores have the in-memory
accuracy, and the table never travels to the client (counted in bytes on the
workers). Skips without the ``dask`` extra (``pip install skfal[dask]``).
"""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from skfal import (  # noqa: E402
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
)
from skfal._dask import DaskRows  # noqa: E402
from skfal._linalg import equilibrated_r_factor, leverage_scores  # noqa: E402
from skfal._validation import validate_rows  # noqa: E402
from tests._helpers import hat_diagonal, matrix_with_known_basis  # noqa: E402

# Uneven row chunks, one of them shorter than the number of columns.
CHUNKS = (1500, 3, 997, 2000, 1500)
N_ROWS = sum(CHUNKS)


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _table(n=N_ROWS, d=6, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, d)) * np.logspace(-2, 2, d)
    X[:20] *= 30  # high-leverage rows
    y = X @ rng.standard_normal(d) + rng.standard_normal(n)
    return X, y


def _on_cluster(client, X, chunks=CHUNKS):
    """``X`` as a Dask array whose chunks sit on the workers."""
    return client.persist(da.from_array(X, chunks=(chunks, X.shape[1])))


def _bytes_to_client(client, run):
    """Bytes the workers send to anyone but each other while ``run()`` runs.

    Transfers between workers (the scheduler moving a chunk to balance the
    load) are left out: they do not reach the client. The workers' logs
    are emptied first (they keep only the last entries).
    """
    workers = set(client.scheduler_info()["workers"])

    def clear(dask_worker):
        dask_worker.transfer_outgoing_log.clear()

    def sent(dask_worker):
        return sum(
            entry["total"]
            for entry in dask_worker.transfer_outgoing_log
            if entry.get("who") not in workers
        )

    client.run(clear)
    run()
    return sum(client.run(sent).values())


@pytest.mark.parametrize("sampling", ["pivotal", "iid"])
@pytest.mark.parametrize(
    "make",
    [
        lambda s: LeverageScoreSampler(budget=150, sampling=s, random_state=0),
        lambda s: LeverageScoreSampler(
            budget=150, sampling=s, fit_intercept=True, alpha=0.5, random_state=3
        ),
        lambda s: SensitivitySampler(
            budget=150, sampling=s, holder_constant="auto", random_state=0
        ),
    ],
)
def test_samplers_select_as_in_memory(client, make, sampling):
    # Every kernel pass is the in-memory arithmetic on each chunk; reductions
    # (Gram products) add the same terms in another order (rounding), so the
    # scores agree to ~1e-15 and the same seed draws the same rows.
    X, y = _table()
    Xd = _on_cluster(client, X)
    local = make(sampling).fit(X, y)
    remote = make(sampling).fit(Xd, y)
    assert np.array_equal(remote.sample_indices_, local.sample_indices_)
    np.testing.assert_allclose(remote.sample_weight_, local.sample_weight_, rtol=1e-9)
    np.testing.assert_allclose(remote.scores_, local.scores_, rtol=1e-9, atol=1e-15)
    assert remote.n_draws_ == local.n_draws_
    np.testing.assert_allclose(
        remote.transform(Xd), local.transform(X), rtol=1e-9, atol=1e-15
    )


@pytest.mark.parametrize("sampler", [None, SensitivitySampler(n_clusters=5)])
@pytest.mark.parametrize("sampling", ["pivotal", "iid"])
def test_regressor_fits_as_in_memory(client, sampler, sampling):
    # The model is fitted on the gathered selected rows: the same rows and
    # weights give the same coefficients.
    X, y = _table(seed=1)
    Xd = _on_cluster(client, X)
    sampler = (sampler or LeverageScoreSampler()).set_params(sampling=sampling)
    params = dict(budget=200, sampler=sampler, alpha=0.1, random_state=0)
    # The rows to label, then the model on them.
    assert np.array_equal(
        FederatedActiveRegressor(**params).query(Xd),
        FederatedActiveRegressor(**params).query(X),
    )
    local = FederatedActiveRegressor(**params).fit(X, y)
    remote = FederatedActiveRegressor(**params).fit(Xd, y)
    assert np.array_equal(remote.sample_indices_, local.sample_indices_)
    np.testing.assert_allclose(remote.coef_, local.coef_, rtol=1e-9)
    assert remote.intercept_ == pytest.approx(local.intercept_, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(remote.predict(Xd), local.predict(X), rtol=1e-9)


@pytest.mark.parametrize(
    "cond, tol",
    # The in-memory targets of tests/test_linalg.py: ~u cond of a
    # backward-stable QR (CholeskyQR2, shifted CholeskyQR3, TSQR at 1e12).
    [(1e2, 1e-10), (1e8, 1e-6), (1e12, 1e-2)],
)
def test_scores_accuracy_on_the_cluster(client, cond, tol):
    X, exact = matrix_with_known_basis(3000, 12, cond, random_state=0)
    X = X * np.logspace(-3, 3, 12)  # unequal column scales change no score
    rows = validate_rows(LeverageScoreSampler(), _on_cluster(client, X, 700))
    assert isinstance(rows, DaskRows)
    # The same path as in memory: the bound is computed from the same Gram.
    assert equilibrated_r_factor(rows)[2] == equilibrated_r_factor(X)[2]
    scores = leverage_scores(rows)[0]
    assert np.max(np.abs(scores - exact) / exact) <= tol
    in_memory = leverage_scores(X)[0]
    assert np.max(np.abs(scores - in_memory) / exact) <= tol


@pytest.mark.parametrize(
    "make",
    [
        lambda X: np.hstack([X, X[:, :2] + X[:, 2:4]]),
        lambda X: np.hstack([X, np.zeros((X.shape[0], 3))]),
        lambda X: np.outer(X[:, 0], np.ones(4)),
    ],
)
def test_rank_deficient_scores_on_the_cluster(client, make):
    # No certified Cholesky factor: each chunk's TSQR factor is computed on
    # its worker and the factors are stacked and factored again (the "qr"
    # protocol's server step); the rank and the hat diagonal come out right.
    X = make(np.random.RandomState(2).standard_normal((900, 5)))
    rows = validate_rows(LeverageScoreSampler(), _on_cluster(client, X, 200))
    assert equilibrated_r_factor(rows)[2] == "tsqr"
    scores, W = leverage_scores(rows)
    assert W.shape[1] == np.linalg.matrix_rank(X)
    np.testing.assert_allclose(scores, hat_diagonal(X), rtol=1e-8, atol=1e-12)


def test_float32_chunks_score_as_in_memory(client):
    X, _ = _table()
    X32 = X.astype(np.float32)
    remote = LeverageScoreSampler(budget=100, random_state=0).fit(
        _on_cluster(client, X32)
    )
    local = LeverageScoreSampler(budget=100, random_state=0).fit(X32)
    assert np.array_equal(remote.sample_indices_, local.sample_indices_)
    np.testing.assert_allclose(remote.scores_, local.scores_, rtol=1e-9)


def test_table_is_not_gathered(client):
    # What comes back per row: a score and a leaf code of the spatial order
    # (8 bytes each), a cluster label and distance for the clustering; and
    # only the rows asked for: the spatial order's subsample (every
    # (n // 4096)-th row), the clustering's subsample and the selection. A
    # gather of the table sends all its 320 bytes a row to the client
    # (checked first, so the counter is shown to count it).
    n, d, budget, n_sub = 40_000, 40, 200, 2000
    Xd = client.persist(
        da.random.RandomState(0).standard_normal((n, d), chunks=(5000, d))
    )
    assert _bytes_to_client(client, lambda: np.asarray(Xd)) >= Xd.nbytes
    y = np.zeros(n)
    axes_sample = -(-n // (n // 4096))
    for estimator, per_row, rows_asked in [
        (LeverageScoreSampler(budget=budget, random_state=0), 16, axes_sample),
        (
            SensitivitySampler(budget=budget, subsample_size=n_sub, random_state=0),
            32,
            axes_sample + n_sub + budget,
        ),
        (
            FederatedActiveRegressor(budget=budget, random_state=0),
            16,
            axes_sample + budget,
        ),
    ]:
        sent = _bytes_to_client(client, lambda e=estimator: e.fit(Xd, y))
        # 200 kB for the messages' framing and the d x d factors.
        assert sent <= per_row * n + 8 * d * rows_asked + 200_000, estimator
        assert sent < Xd.nbytes / 4, estimator


def test_bad_dask_input_gets_a_clear_error():
    X, y = _table(n=400)
    sampler = LeverageScoreSampler(budget=10, random_state=0)
    with pytest.raises(ValueError, match=r"rechunk\(\{1: -1\}\)"):
        sampler.fit(da.from_array(X, chunks=(100, 3)))
    lazy = da.from_array(X, chunks=(100, X.shape[1]))
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        sampler.fit(lazy[lazy[:, 0] > 0])
    with pytest.raises(ValueError, match="groups cannot be combined"):
        sampler.fit(lazy, groups=np.arange(400) % 2)
    with pytest.raises(ValueError, match="groups cannot be combined"):
        FederatedActiveRegressor(budget=10).fit(lazy, y, groups=np.arange(400) % 2)
    bad = X.copy()
    bad[250, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        sampler.fit(da.from_array(bad, chunks=(100, X.shape[1])))


def test_verbose_reports_the_chunks(client, capsys):
    X, _ = _table()
    LeverageScoreSampler(budget=50, random_state=0, verbose=2).fit(
        _on_cluster(client, X)
    )
    out = capsys.readouterr().out
    assert f"X: {N_ROWS:,} x 6 (float64, Dask array in {len(CHUNKS)} row chunks)" in out
    # Each pass reports every chunk's rows once its results are back.
    assert f"read rows 1,500-1,503 of {N_ROWS:,}" in out
