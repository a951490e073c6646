"""SensitivitySampler: the estimator of Theorem 2, clusters, federation, API."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold

from skfal import FederatedActiveRegressor, LeverageScoreSampler, SensitivitySampler
from tests._helpers import blobs, monte_carlo_runs


@pytest.mark.parametrize("with_labels", [False, True])
def test_weighted_loss_sum_is_unbiased_and_concentrates(with_labels):
    # Theorem 2's estimator: medoids and probes count once (their labels are
    # bought), the other rows are sampled with p ~ sensitivity and weighted
    # by Des Raj's weights, which are exactly unbiased given the clustering.
    # So the average of sum_S w l over seeds is sum_D l, and the spread of
    # the estimate shrinks as the budget grows.
    rng = np.random.RandomState(1)
    X = rng.standard_normal((400, 2)) * [2.0, 1.0]
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1]
    loss = (0.3 * X[:, 0] + 0.2 * X[:, 1] - y) ** 2 + 1.0  # Holder-continuous
    truth = loss.sum()
    spreads = []
    for budget in (30, 120):
        estimates = []
        for seed in range(monte_carlo_runs(600)):
            s = SensitivitySampler(
                budget=budget,
                n_clusters=8,
                holder_constant="auto" if with_labels else np.inf,
                weighting="des-raj",
                random_state=seed,
            ).fit(X, y)
            estimates.append(s.sample_weight_ @ loss[s.sample_indices_])
        estimates = np.array(estimates)
        se = estimates.std() / np.sqrt(estimates.size)
        assert abs(estimates.mean() - truth) < 4 * se
        spreads.append(estimates.std())
    assert spreads[1] < 0.7 * spreads[0]


def test_every_tight_cluster_is_represented():
    X, truth = blobs()
    for seed in range(10):
        s = SensitivitySampler(budget=20, n_clusters=4, random_state=seed).fit(X)
        assert set(truth[s.medoid_indices_]) == {0, 1, 2, 3}
        assert set(truth[s.sample_indices_]) == {0, 1, 2, 3}
        # Each found cluster is one true cluster.
        for j in range(4):
            assert len(set(truth[s.labels_ == j])) == 1


def test_labels_read_only_at_medoids_and_probes():
    X, _ = blobs(seed=5)
    y = X @ [0.5, 2.0]
    auto = SensitivitySampler(
        budget=40, n_clusters=4, holder_constant="auto", random_state=0
    )
    s = auto.fit(X, y)
    read = np.union1d(s.medoid_indices_, s.probe_indices_)
    partial = np.full_like(y, np.nan)
    partial[read] = y[read]
    again = SensitivitySampler(**auto.get_params()).fit(X, partial)
    assert np.array_equal(again.sample_indices_, s.sample_indices_)
    assert s.n_queries_ == read.size <= 40
    assert s.sample_indices_.size == 40
    assert s.holder_constants_.shape == (4,) and s.proxy_coef_.shape == (2,)
    # transform scores new rows as fit scored the rows it did not buy:
    # Lambda_j d^z + loss_j.
    others = np.setdiff1d(np.arange(y.size), read)
    assert np.allclose(s.transform(X[others])[:, 0], s.scores_[others])
    assert np.all(s.scores_[others] >= s.medoid_losses_[s.labels_[others]])


def test_budget_exact_weights_and_transform():
    X, _ = blobs(seed=6)
    s = SensitivitySampler(
        budget=50, n_clusters=0.2, sampling="iid", random_state=0
    ).fit(X)
    assert s.sample_indices_.size == 50 and np.all(np.diff(s.sample_indices_) > 0)
    assert s.n_clusters_ == 10 and s.n_queries_ == 0
    assert np.all(np.isin(s.medoid_indices_, s.sample_indices_))
    Xt = s.transform(X)
    assert Xt.shape == (X.shape[0], 1)
    # Scores are distances^z to the centre, zero for medoids (bought).
    assert np.allclose(s.scores_[s.medoid_indices_], 0)
    others = np.setdiff1d(np.arange(X.shape[0]), s.medoid_indices_)
    assert np.allclose(Xt[others, 0], s.scores_[others])
    assert list(s.get_feature_names_out()) == ["sensitivity"]


def test_duplicates_are_represented_by_their_medoid():
    # 30 copies of each of 3 points: every row sits on its centre, so the
    # three medoids stand for all 90 rows (weights 30 each), and a budget
    # above 3 cannot be met with informative rows: a clear error.
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]]), 30, axis=0)
    paper = dict(sampling="iid", uniform_mix=0.0, n_clusters=3, random_state=0)
    s = SensitivitySampler(budget=3, **paper).fit(X)
    assert np.allclose(s.sample_weight_, 30)
    with pytest.raises(ValueError, match="Only 3 distinct rows carry information"):
        SensitivitySampler(budget=10, **paper).fit(X)
    # With a uniform share every row can be drawn: no stand-in is needed and
    # the Horvitz-Thompson weights still add up to the 90 rows on average.
    mixed = SensitivitySampler(budget=10, n_clusters=3, random_state=0).fit(X)
    assert mixed.sample_indices_.size == 10
    assert np.isclose(mixed.sample_weight_.sum(), 90)


@pytest.mark.parametrize(
    "X, kwargs, match",
    [
        (
            np.ones((50, 2)),
            {"budget": 5, "n_clusters": 2, "uniform_mix": 0.0},
            "carry information",
        ),
        (
            np.random.RandomState(0).rand(50, 2),
            {"budget": 5, "n_clusters": 6},
            "fewer than",
        ),
        (
            np.random.RandomState(0).rand(5, 2),
            {"budget": 5, "n_clusters": 6},
            "exceeds",
        ),
        (np.array([[np.nan, 1.0], [1.0, 2.0]]), {}, "NaN"),
    ],
)
def test_bad_input(X, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SensitivitySampler(random_state=0, **kwargs).fit(X)


def test_budget_too_small_for_probes_falls_back_gracefully():
    X, _ = blobs(seed=7)
    y = X.sum(axis=1)
    s = SensitivitySampler(
        budget=6, n_clusters=4, holder_constant="auto", random_state=0
    )
    s.fit(X, y)
    assert s.sample_indices_.size == 6 and s.n_queries_ <= 6
    assert s.probe_indices_.size == 2  # room for two probes after four medoids


@pytest.mark.parametrize("holder", [np.inf, 2.0, "auto"])
def test_a_centralized_fit_is_the_federation_of_one_client(holder):
    # One code path: without groups the sampler runs the federated protocol
    # over a single client holding every row, so it selects, scores and
    # clusters exactly as a fit whose groups name one client; only the
    # message count (and clients_) tell them apart.
    X, _ = blobs(n_per=40, seed=18)
    y = X @ [1.0, -0.5] + np.random.RandomState(19).standard_normal(X.shape[0])
    params = dict(budget=25, n_clusters=4, holder_constant=holder, random_state=0)
    central = SensitivitySampler(**params).fit(X, y)
    one = SensitivitySampler(**params).fit(X, y, groups=np.zeros(X.shape[0]))
    for name in (
        "sample_indices_",
        "sample_weight_",
        "scores_",
        "labels_",
        "cluster_centers_",
        "medoid_indices_",
        "probe_indices_",
        "n_iter_",
        "n_queries_",
    ):
        np.testing.assert_array_equal(getattr(central, name), getattr(one, name))
    for name in ("holder_constants_", "proxy_coef_", "medoid_losses_"):
        assert (getattr(central, name) is None) == (holder == np.inf)
        if holder != np.inf:
            np.testing.assert_array_equal(getattr(central, name), getattr(one, name))
    assert central.communication_ == {} and central.clients_ is None
    assert {"lloyd", "scores", "selection"} <= set(one.communication_)


@pytest.mark.parametrize("with_labels", [False, True])
def test_federated_sampler_runs_and_accounts(with_labels):
    X, truth = blobs(seed=8)
    y = X @ [1.0, 1.0]
    groups = np.array(["a", "b", "c"])[
        np.random.RandomState(9).randint(3, size=X.shape[0])
    ]
    holder = "auto" if with_labels else np.inf
    s = SensitivitySampler(
        budget=40, n_clusters=4, holder_constant=holder, random_state=0
    )
    s.fit(X, y, groups=groups)
    assert s.sample_indices_.size == 40
    assert set(truth[s.medoid_indices_]) == {0, 1, 2, 3}
    assert {"seeding", "lloyd", "assignment", "scores", "selection"} <= set(
        s.communication_
    )
    assert ("masked_system" in s.communication_) == with_labels


def test_drop_in_for_the_regressor_and_grid_search():
    rng = np.random.RandomState(10)
    X = rng.standard_normal((900, 4))
    y = X @ [1.0, 2.0, -1.0, 0.5] + 0.1 * rng.standard_normal(900)
    groups = rng.randint(3, size=900)
    reg = FederatedActiveRegressor(
        budget=60, sampler=SensitivitySampler(), random_state=0
    )
    reg.fit(X, y, groups=groups)
    assert reg.n_queries_ == 60 and reg.score(X, y) > 0.95
    assert reg.sampler_.fit_intercept  # set from the regressor
    search = GridSearchCV(
        FederatedActiveRegressor(sampler=SensitivitySampler(), random_state=0),
        {"budget": [30, 60], "sampler__z": [1, 2]},
        cv=KFold(3),
    ).fit(X, y)
    assert search.best_params_["budget"] == 60
    search = GridSearchCV(
        FederatedActiveRegressor(budget=40, random_state=0),
        {
            "sampler": [
                LeverageScoreSampler(),
                SensitivitySampler(holder_constant=2.0),
            ]
        },
        cv=KFold(3),
    ).fit(X, y)
    assert search.cv_results_["mean_test_score"].min() > 0.9


@pytest.mark.parametrize("groups", [None, np.arange(100) % 3])
def test_query_lists_medoids_then_probes_then_the_rest(groups):
    # A label-dependent selection cannot be listed at once: query asks for
    # the medoids, then the Holder probes (their labels set the scores), then
    # the drawn rows. Labeling each batch in turn buys exactly the rows fit
    # reads, and fit then gives the model of fit with every label at hand.
    rng = np.random.RandomState(11)
    X = rng.standard_normal((100, 2))
    truth = X.sum(axis=1) + 0.1 * rng.standard_normal(100)
    auto = SensitivitySampler(holder_constant="auto", n_clusters=3)
    reg = FederatedActiveRegressor(budget=20, sampler=auto, random_state=0)
    y, batches = np.full(100, np.nan), []
    while (rows := reg.query(X, y, groups=groups)).size:
        assert np.isnan(y[rows]).all()  # never a label already bought
        y[rows] = truth[rows]
        batches.append(rows)
    # Federated, each client's probes are read in turn: a batch per client.
    assert len(batches) == 3 if groups is None else len(batches) >= 3
    assert batches[0].size == 3  # one medoid per cluster
    one_shot = FederatedActiveRegressor(budget=20, sampler=auto, random_state=0)
    one_shot.fit(X, truth, groups=groups)
    bought = np.sort(np.concatenate(batches))
    assert np.array_equal(one_shot.sample_indices_, bought)
    incremental = reg.fit(X, y, groups=groups)
    # Federated, fresh secrets every fit: the model agrees to rounding.
    np.testing.assert_allclose(
        incremental.coef_, one_shot.coef_, rtol=1e-10, atol=1e-12
    )
    # The default (distance-only) selection reads no label: one batch.
    reg = FederatedActiveRegressor(
        budget=20, sampler=SensitivitySampler(), random_state=0
    )
    rows = reg.query(X)
    partial = np.full_like(truth, np.nan)
    partial[rows[:5]] = truth[rows[:5]]
    assert np.array_equal(reg.query(X, partial), rows[5:])  # bought ones count
    partial[rows] = truth[rows]
    assert reg.query(X, partial).size == 0
    assert np.array_equal(reg.fit(X, partial).sample_indices_, rows)


def test_every_row_selected_even_with_duplicates():
    # Duplicated rows sit on their centre (score 0) and are otherwise
    # represented by their medoid; a budget of every row is a census:
    # every row once, weight 1 (no stand-in weight on the medoids).
    X = np.repeat(np.arange(6.0).reshape(3, 2), 4, axis=0)
    for budget in (1.0, 12):
        s = SensitivitySampler(budget=budget, n_clusters=3, random_state=0).fit(X)
        assert np.array_equal(s.sample_indices_, np.arange(12))
        assert np.array_equal(s.sample_weight_, np.ones(12))
    with pytest.raises(ValueError, match="Only 3 distinct rows carry information"):
        SensitivitySampler(budget=6, n_clusters=3, uniform_mix=0.0, random_state=0).fit(
            X
        )


SCALES = [1e-12, 1e12, 1e-150, 1e150]


@pytest.mark.parametrize("federated", [False, True])
@pytest.mark.parametrize("scale", SCALES)
def test_selection_does_not_depend_on_the_feature_scale(scale, federated):
    # Distances scale with X, so their ratios, the clusters and the sampling
    # probabilities do not: the same rows whatever the unit of the features.
    # An absolute cutoff used to zero 39% of the scores at x 1e-9 and call
    # X constant at x 1e-12; d^2 over- or underflowed beyond 1e+-154.
    X, _ = blobs(n_per=40, seed=12)
    groups = None
    if federated:
        groups = np.random.RandomState(13).randint(3, size=X.shape[0])
    params = dict(budget=25, n_clusters=4, random_state=0)
    base = SensitivitySampler(**params).fit(X, groups=groups)
    s = SensitivitySampler(**params).fit(X * scale, groups=groups)
    assert np.array_equal(s.sample_indices_, base.sample_indices_)
    assert np.allclose(s.sample_weight_, base.sample_weight_, rtol=1e-9)
    assert np.array_equal(s.scores_ == 0, base.scores_ == 0)
    # Attributes are in the caller's units: d^2 scales with scale^2.
    assert np.allclose(s.scores_, base.scores_ * scale**2, rtol=1e-9, atol=0)
    assert np.allclose(s.cluster_centers_, base.cluster_centers_ * scale, rtol=1e-9)
    others = np.setdiff1d(np.arange(X.shape[0]), s.medoid_indices_)  # not bought
    assert np.allclose(s.transform(X * scale)[others, 0], s.scores_[others], rtol=1e-9)


def test_extreme_features_give_the_same_selection_and_huge_labels_an_error():
    # X * 1e200 used to give "probabilities contain NaN" (d^2 overflows). The
    # sampler works in a space scaled by powers of two: same rows, finite
    # weights. Labels near 1e200 (numpy's "lam value too large" before) make
    # the losses overflow: a clear error (labels are read only where bought,
    # so the sampler cannot rescale them in advance).
    X, _ = blobs(n_per=40, seed=14)
    y = X @ [1.0, -2.0] + np.random.RandomState(15).standard_normal(X.shape[0])
    params = dict(budget=25, n_clusters=4, holder_constant="auto", random_state=0)
    base = SensitivitySampler(**params).fit(X, y)
    for X_s in (X * 1e200, X * 1e-200):
        s = SensitivitySampler(**params).fit(X_s, y)
        assert np.array_equal(s.sample_indices_, base.sample_indices_)
        assert np.all(np.isfinite(s.sample_weight_))
        assert np.allclose(s.sample_weight_, base.sample_weight_, rtol=1e-9)
    s = SensitivitySampler(**params).fit(X * 1e6, y)
    assert np.allclose(s.proxy_coef_, base.proxy_coef_ / 1e6, rtol=1e-9)
    with pytest.raises(ValueError, match="overflow float64"):
        SensitivitySampler(**params).fit(X, y * 1e200)


def test_a_float_holder_constant_is_in_the_callers_units():
    # Lambda d^z + loss: scaling X by c and Lambda by c^-z leaves every score,
    # so the selection, unchanged.
    X, _ = blobs(n_per=40, seed=16)
    y = X @ [0.5, 1.0] + np.random.RandomState(17).standard_normal(X.shape[0])
    base = SensitivitySampler(budget=20, holder_constant=2.0, random_state=0)
    base.fit(X, y)
    s = SensitivitySampler(budget=20, holder_constant=2.0 / 1e6**2, random_state=0)
    s.fit(X * 1e6, y)
    assert np.array_equal(s.sample_indices_, base.sample_indices_)
    assert np.allclose(s.scores_, base.scores_, rtol=1e-9)
    assert np.allclose(s.holder_constants_, 2.0 / 1e12)
