"""Dask arrays on a ``distributed`` cluster (``skfal._dask``).

The chunks are processed where they live: the fits give the in-memory
selection and model with the same seed, the scores have the in-memory
accuracy, and the table never travels to the client (counted in bytes on the
workers). Skips without the ``dask`` extra (``pip install skfal[dask]``).
"""

import itertools

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from skfal import (  # noqa: E402
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
)
from skfal._dask import (  # noqa: E402
    DaskRows,
    gather_scores,
    iid_on_workers,
    leverage_on_workers,
    pivotal_on_workers,
)
from skfal._linalg import (  # noqa: E402
    equilibrated_r_factor,
    leverage_scores,
    weighted_least_squares,
)
from skfal._sampling import (  # noqa: E402
    inclusion_probabilities,
    mixed_probabilities,
    tree_depth,
)
from skfal._validation import validate_rows  # noqa: E402
from tests._helpers import (  # noqa: E402
    hat_diagonal,
    matrix_with_known_basis,
    monte_carlo_runs,
    rss_growth,
)

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


def _in_memory_pi(sampler, budget):
    """The in-memory fit's inclusion probabilities (of its scores)."""
    p = mixed_probabilities(sampler.scores_, sampler.uniform_mix)
    return inclusion_probabilities(p, budget)


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
    # scores agree to ~1e-15 and the same seed draws the same rows, except
    # where leverage's draw runs on the workers (its chunks draw apart, from
    # their own seeds): then the same probabilities: pivotal weights are
    # 1 / pi of the in-memory fit, i.i.d. weights count / (n_draws p) with
    # the counts adding up to n_draws; test_pivotal_on_chunks_keeps_the_law
    # and test_iid_on_chunks_keeps_the_law check the frequencies.
    X, y = _table()
    Xd = _on_cluster(client, X)
    local = make(sampling).fit(X, y)
    remote = make(sampling).fit(Xd, y)
    on_workers = isinstance(local, LeverageScoreSampler)
    if on_workers:  # per-row state stays on the workers: a Dask array
        assert isinstance(remote.scores_, da.Array)
    scores = np.asarray(remote.scores_)
    np.testing.assert_allclose(scores, local.scores_, rtol=1e-9, atol=1e-15)
    if on_workers:
        assert remote.sample_indices_.shape == (150,)
        assert np.all(np.diff(remote.sample_indices_) > 0)
    if on_workers and sampling == "pivotal":
        pi = _in_memory_pi(local, 150)
        np.testing.assert_allclose(
            remote.sample_weight_, 1 / pi[remote.sample_indices_], rtol=1e-9
        )
    elif on_workers:
        _assert_iid_weights(remote, local.scores_)
    else:
        assert np.array_equal(remote.sample_indices_, local.sample_indices_)
        np.testing.assert_allclose(
            remote.sample_weight_, local.sample_weight_, rtol=1e-9
        )
        assert remote.n_draws_ == local.n_draws_
    np.testing.assert_allclose(
        remote.transform(Xd), local.transform(X), rtol=1e-9, atol=1e-15
    )


def _assert_iid_weights(fit, scores, eligible=None):
    """Hansen-Hurwitz weights of an i.i.d. draw: ``count / (n_draws p)``
    with a whole count of at least 1 per row, the counts adding up to
    ``n_draws`` (``p`` of the in-memory fit's scores; the rows outside
    ``eligible`` were bought, not drawn)."""
    p = mixed_probabilities(scores, fit.uniform_mix, eligible)
    drawn = slice(None) if eligible is None else eligible[fit.sample_indices_]
    rows = fit.sample_indices_[drawn]
    counts = fit.sample_weight_[drawn] * fit.n_draws_ * p[rows]
    np.testing.assert_allclose(counts, np.round(counts), rtol=1e-9)
    assert counts.min() >= 1 - 1e-9
    assert round(counts.sum()) == fit.n_draws_


@pytest.mark.parametrize("z, sampling", [(1, "pivotal"), (2, "pivotal"), (2, "iid")])
def test_sensitivity_keeps_rows_on_workers(client, z, sampling):
    # Distance-only scores (the default): each row's cluster, distance and
    # score stay on the workers. The clustering's subsample is drawn by
    # another stream than in memory (so other centres); given the centres:
    # every row in its nearest cluster, its score d^z to that centre (what
    # transform computes in memory), 0 at the medoids, each the row nearest
    # its centre, and the selection's law the in-memory one for these
    # scores: pivotal weights 1 / pi; i.i.d., every medoid bought (weight
    # 1, as in memory) and the other rows drawn by p over the non-medoids.
    X, _ = _table(seed=2)
    budget = 150
    fit = SensitivitySampler(budget=budget, z=z, sampling=sampling, random_state=0)
    fit.fit(_on_cluster(client, X))
    assert isinstance(fit.scores_, da.Array) and isinstance(fit.labels_, da.Array)
    scores, labels = np.asarray(fit.scores_), np.asarray(fit.labels_)
    distances = np.linalg.norm(X[:, None, :] - fit.cluster_centers_[None], axis=2)
    assert np.array_equal(labels, distances.argmin(axis=1))
    expected = fit.transform(X)[:, 0]
    expected[fit.medoid_indices_] = 0.0
    np.testing.assert_allclose(scores, expected, rtol=1e-9)
    nearest = distances[np.arange(N_ROWS), labels]
    for j, medoid in enumerate(fit.medoid_indices_):
        assert nearest[medoid] == nearest[labels == j].min()
    assert fit.sample_indices_.shape == (budget,)
    if sampling == "iid":
        assert np.isin(fit.medoid_indices_, fit.sample_indices_).all()
        bought = np.isin(fit.sample_indices_, fit.medoid_indices_)
        np.testing.assert_array_equal(fit.sample_weight_[bought], 1.0)
        eligible = np.ones(N_ROWS, dtype=bool)
        eligible[fit.medoid_indices_] = False
        _assert_iid_weights(fit, scores, eligible)
        return
    pi = inclusion_probabilities(mixed_probabilities(scores, fit.uniform_mix), budget)
    np.testing.assert_allclose(
        fit.sample_weight_, 1 / pi[fit.sample_indices_], rtol=1e-9
    )


@pytest.mark.parametrize("sampling", ["pivotal", "iid"])
def test_sensitivity_rows_on_a_centre_stand_in_on_workers(client, sampling):
    # With uniform_mix=0 a row on its cluster's centre scores 0 and no draw
    # reaches it: as in memory, its cluster's medoid is bought and stands
    # in for it (weight 1 plus the number of such rows, counted per cluster
    # by the chunks), the rest of the budget drawn among the rows of
    # positive score; a budget above what those rows allow is refused with
    # the in-memory message. Exact duplicates of small integers (sums and
    # means exact) make clusters whose centre is a row. Checked by hand:
    # no stand-in counted (every medoid at weight 1) fails both.
    rng = np.random.RandomState(5)
    points = np.array([[8.0, 0, 0], [0, 8, 0], [0, 0, 8]])
    X = np.vstack([np.repeat(points, 40, axis=0), rng.standard_normal((180, 3))])
    X = X[rng.permutation(300)]
    Xd = _on_cluster(client, X, (100, 7, 93, 100))
    budget = 30
    fit = SensitivitySampler(
        budget=budget, n_clusters=6, uniform_mix=0.0, sampling=sampling, random_state=0
    ).fit(Xd)
    scores, labels = np.asarray(fit.scores_), np.asarray(fit.labels_)
    medoids = fit.medoid_indices_
    on_centre = scores == 0
    on_centre[medoids] = False
    assert on_centre.sum() >= 3 * 39  # the duplicates
    assert np.isin(medoids, fit.sample_indices_).all()
    bought = np.isin(fit.sample_indices_, medoids)
    stand_in = np.bincount(labels[on_centre], minlength=medoids.size)
    np.testing.assert_array_equal(
        fit.sample_weight_[bought], 1.0 + stand_in[np.argsort(medoids)]
    )
    drawn = fit.sample_indices_[~bought]
    assert drawn.size == budget - medoids.size and np.all(scores[drawn] > 0)
    if sampling == "iid":
        eligible = np.ones(300, dtype=bool)
        eligible[medoids] = False
        _assert_iid_weights(fit, scores, eligible)
    else:
        pi = inclusion_probabilities(mixed_probabilities(scores, 0.0), drawn.size)
        np.testing.assert_allclose(fit.sample_weight_[~bought], 1 / pi[drawn])
    reachable = int(np.sum(scores > 0))
    with pytest.raises(ValueError, match="distinct rows carry information"):
        SensitivitySampler(
            budget=reachable + medoids.size + 1,
            n_clusters=6,
            uniform_mix=0.0,
            sampling=sampling,
            random_state=0,
        ).fit(Xd)


@pytest.mark.parametrize("sampler", [None, SensitivitySampler(n_clusters=5)])
@pytest.mark.parametrize("sampling", ["pivotal", "iid"])
def test_regressor_fits_as_in_memory(client, sampler, sampling):
    # The model is fitted on the gathered selected rows: the same rows and
    # weights give the same coefficients. Rows drawn on the workers (other
    # rows than in memory, the same law): the model is then the in-memory
    # fit on the rows drawn.
    X, y = _table(seed=1)
    Xd = _on_cluster(client, X)
    sampler = (sampler or LeverageScoreSampler()).set_params(sampling=sampling)
    params = dict(budget=200, sampler=sampler, alpha=0.1, random_state=0)
    remote = FederatedActiveRegressor(**params).fit(Xd, y)
    # The rows to label, then the model on them.
    assert np.array_equal(
        FederatedActiveRegressor(**params).query(Xd), remote.sample_indices_
    )
    rows, weights = remote.sample_indices_, remote.sample_weight_
    coef, intercept = weighted_least_squares(X[rows], y[rows], weights, 0.1)
    np.testing.assert_allclose(remote.coef_, coef, rtol=1e-9)
    assert remote.intercept_ == pytest.approx(intercept, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(
        remote.predict(Xd), X @ coef + intercept, rtol=1e-9, atol=1e-12
    )


def test_pivotal_on_chunks_keeps_the_law():
    # The chunks as the parties of the federated tournament: the client
    # computes pi = min(1, c p) by reductions (water-filling rounds), each
    # chunk runs its tournament, the client settles the open rows. Each
    # duel keeps every row's inclusion probability, so over independent
    # draws each row is selected with frequency pi_i (the in-memory pi),
    # each sample has exactly the budget and each weight is 1 / pi_i.
    # Skewed scores (4 rows capped at 1, so the water filling takes rounds)
    # over 11 small uneven chunks (so the open rows matter). The local
    # scheduler: the same tasks, no cluster to start. Checked by hand: a
    # water filling stopped after its first round fails the budget; the
    # open rows settled on their mean probability (each sample still of
    # the budget) fails the frequencies (z about 8).
    X = np.random.RandomState(0).standard_normal((60, 3))
    X[:4] *= 8
    budget, mix = 12, 0.3
    with dask.config.set(scheduler="synchronous"):
        chunks = ((7, 2, 5, 6, 4, 8, 5, 3, 6, 5, 9), 3)
        rows = validate_rows(LeverageScoreSampler(), da.from_array(X, chunks=chunks))
        kept = leverage_on_workers(rows, False, 0.0, max_depth=tree_depth(60, budget))
        scores = gather_scores(kept)
        pi = inclusion_probabilities(mixed_probabilities(scores, mix), budget)
        assert np.sum(pi == 1.0) == 4
        runs, rng = monte_carlo_runs(200), np.random.RandomState(1)
        hits = np.zeros(60)
        for _ in range(runs):
            selection = pivotal_on_workers(kept, budget, rng, uniform_mix=mix)
            assert selection.indices.shape == (budget,)
            np.testing.assert_allclose(
                selection.weights, 1 / pi[selection.indices], rtol=1e-12
            )
            hits[selection.indices] += 1
    np.testing.assert_allclose(scores, hat_diagonal(X), rtol=1e-9)
    se = np.sqrt(pi * (1 - pi) / runs)
    # 4.5 standard errors for the largest of 60 rows; rows at 1 exactly.
    assert np.all(np.abs(hits / runs - pi) <= 4.5 * se + 1e-12)


def _successive_inclusion(p, budget):
    """Exact chance of each row to be among the first ``budget`` distinct
    rows of an i.i.d. draw by ``p``: the sum, over the ordered sequences of
    distinct rows, of the chance of each next row among those not drawn yet
    (enumerated: a few hundred sequences)."""
    n = p.shape[0]
    inclusion = np.zeros(n)
    for sequence in itertools.permutations(range(n), budget):
        chance, left = 1.0, 1.0
        for row in sequence:
            chance *= p[row] / left
            left -= p[row]
        inclusion[list(sequence)] += chance
    return inclusion


def test_iid_on_chunks_keeps_the_law():
    # Each chunk draws its rows' exponentials E_i from its own seed and sends
    # its budget smallest keys E_i / p_i; the budget smallest of those are
    # the first distinct rows of an i.i.d. draw by p, whoever drew each E_i.
    # So each row is selected with the exact chance of the in-memory draw
    # (enumerated), one medoid-like row excluded by the chunk holding it
    # (probability 0, outside the uniform share). 9 rows in 4 uneven
    # chunks, one of a single row, two heavy rows in one chunk. Checked by
    # hand: every chunk seeded alike fails (z about 9), and so does each
    # chunk sending only its smallest key (z about 14).
    X = np.random.RandomState(0).standard_normal((9, 2))
    X[2:4] *= 4  # in one chunk: both often among the first
    budget, mix = 3, 0.2
    with dask.config.set(scheduler="synchronous"):
        rows = validate_rows(
            LeverageScoreSampler(), da.from_array(X, chunks=((2, 3, 1, 3), 2))
        )
        kept = leverage_on_workers(rows, False, 0.0)
        scores = gather_scores(kept)
        excluded = [np.array([1]), None, None, np.array([], dtype=np.intp)]
        eligible = np.ones(9, dtype=bool)
        eligible[1] = False
        p = mixed_probabilities(scores, mix, eligible)
        inclusion = _successive_inclusion(p, budget)
        runs, rng = monte_carlo_runs(400), np.random.RandomState(1)
        hits = np.zeros(9)
        for _ in range(runs):
            selection = iid_on_workers(
                kept,
                budget,
                rng,
                uniform_mix=mix,
                weighting="des-raj",
                excluded=excluded,
            )
            assert selection.indices.shape == (budget,)
            hits[selection.indices] += 1
    assert hits[1] == 0
    se = np.sqrt(inclusion * (1 - inclusion) / runs)
    assert np.all(np.abs(hits / runs - inclusion) <= 4.5 * se + 1e-12)


def test_one_chunk_selects_as_in_memory():
    # A federation of one party is the in-memory fit: its tournament runs
    # over all rows in the same leaf order from the same seed, and the
    # client settles its one open row as in memory. So one chunk selects
    # the in-memory rows; and zero scores make the same error.
    X = np.random.RandomState(0).standard_normal((300, 4))
    X[20:] = 0.0
    with dask.config.set(scheduler="synchronous"):
        Xd = da.from_array(X, chunks=(300, 4))
        for budget in (12, 20):  # 20: every row of positive score, at 1
            params = dict(budget=budget, uniform_mix=0.0, random_state=0)
            local = LeverageScoreSampler(**params).fit(X)
            remote = LeverageScoreSampler(**params).fit(Xd)
            assert np.array_equal(remote.sample_indices_, local.sample_indices_)
            np.testing.assert_allclose(remote.sample_weight_, local.sample_weight_)
        with pytest.raises(ValueError, match="only 20 of the 300 rows have a posi"):
            LeverageScoreSampler(budget=21, uniform_mix=0.0).fit(Xd)


def test_client_memory_stays_small():
    # A billion-row pool needs the client to hold no per-row state: the
    # scores, leaf codes, clusters, distances and probabilities stay with
    # the chunks on the workers (worker processes, apart from this one),
    # and only the selection, O(d^2) factors, the spatial tree's sample of
    # at most 4096 rows and the clustering's subsample come back. The
    # client's resident set (sampled in a thread) must grow by under 5% of
    # the array during the fit; a length-n float64 vector at the client is
    # 10% of this 10-column array, so scores, codes or probabilities
    # gathered there fail it (checked by hand: the kept leverage scores
    # gathered at the client, and kept, measured 27%; the i.i.d. draw over
    # the gathered scores, as before iid_on_workers, fails too). Each estimator first
    # fits a small array, so first-call costs (imports, caches) are not
    # counted.
    n, d = 1_000_000, 10
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        X = client.persist(
            da.random.RandomState(0).standard_normal((n, d), chunks=(n // 8, d))
        )
        small = client.persist(
            da.random.RandomState(1).standard_normal((20_000, d), chunks=(5000, d))
        )
        distributed.wait([X, small])
        y, y_small = np.zeros(n), np.zeros(20_000)
        for make in [
            lambda: LeverageScoreSampler(budget=200, random_state=0),
            lambda: LeverageScoreSampler(budget=200, sampling="iid", random_state=0),
            lambda: FederatedActiveRegressor(budget=200, random_state=0),
            lambda: SensitivitySampler(budget=200, random_state=0),
            lambda: SensitivitySampler(budget=200, sampling="iid", random_state=0),
        ]:
            make().fit(small, y_small)
            _, growth = rss_growth(make().fit, X, y)
            assert growth <= 0.05 * X.nbytes, (make(), growth / X.nbytes)


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
    np.testing.assert_allclose(np.asarray(remote.scores_), local.scores_, rtol=1e-9)
    # The same law (the rows are drawn on the workers).
    pi = _in_memory_pi(local, 100)
    np.testing.assert_allclose(
        remote.sample_weight_, 1 / pi[remote.sample_indices_], rtol=1e-9
    )


def test_table_is_not_gathered(client):
    # What comes back per row: nothing (scores, leaf codes, clusters,
    # distances and the tournament stay on the workers); and only the rows
    # asked for:
    # the spatial order's subsample (every (n // 4096)-th row), the
    # clustering's subsample and the selection. A
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
        (LeverageScoreSampler(budget=budget, random_state=0), 0, axes_sample),
        (
            SensitivitySampler(budget=budget, subsample_size=n_sub, random_state=0),
            0,
            axes_sample + n_sub + budget,
        ),
        (
            FederatedActiveRegressor(budget=budget, random_state=0),
            0,
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
