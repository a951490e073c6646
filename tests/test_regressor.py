"""FederatedActiveRegressor: FALE and FALE-local against independent references."""

import pickle

import numpy as np
import pytest
from sklearn import config_context
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skfal import FederatedActiveRegressor, LeverageScoreSampler, UniformSampler


def make_data(n=600, d=5, n_clients=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 3, size=d) + rng.uniform(
        -2, 2, d
    )
    y = X @ rng.standard_normal(d) + 1.5 + 0.3 * rng.standard_normal(n)
    return X, y, rng.randint(n_clients, size=n)


def reference_fit(X, y, reg):
    """Centralized importance-weighted least squares on the same selection."""
    idx, w = reg.sample_indices_, reg.sample_weight_
    if reg.alpha > 0:
        model = Ridge(alpha=reg.alpha, fit_intercept=reg.fit_intercept)
    else:
        model = LinearRegression(fit_intercept=reg.fit_intercept)
    return model.fit(X[idx], y[idx], sample_weight=w)


@pytest.mark.parametrize("n_clients", [1, 2, 10])
@pytest.mark.parametrize("alpha", [0.0, 2.5])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_global_training_equals_centralized_weighted_least_squares(
    n_clients, alpha, fit_intercept
):
    # Secure aggregation adds the clients' shares exactly (fixed point), and
    # the rotation and mixing are orthogonal, so the server's R is an R
    # factor of the weighted system on the selected rows: the solutions
    # agree to rounding. The reference is scikit-learn's own
    # (Ridge / LinearRegression with sample_weight), which centers with the
    # weighted mean and leaves the intercept unpenalised.
    X, y, groups = make_data(n_clients=n_clients)
    reg = FederatedActiveRegressor(
        budget=60,
        alpha=alpha,
        fit_intercept=fit_intercept,
        random_state=0,
    ).fit(X, y, groups=groups)
    ref = reference_fit(X, y, reg)
    assert np.allclose(reg.coef_, ref.coef_, rtol=1e-8, atol=1e-10)
    assert reg.intercept_ == pytest.approx(ref.intercept_, rel=1e-8, abs=1e-10)
    # With the server's i.i.d. draw the centralized fit selects the same rows.
    iid = dict(budget=60, alpha=alpha, fit_intercept=fit_intercept, random_state=0)
    iid["sampler"] = LeverageScoreSampler(sampling="iid")
    central = FederatedActiveRegressor(**iid).fit(X, y)
    fed = FederatedActiveRegressor(**iid).fit(X, y, groups=groups)
    assert np.array_equal(central.sample_indices_, fed.sample_indices_)
    assert np.allclose(central.coef_, fed.coef_, rtol=1e-8, atol=1e-10)


def test_global_training_underdetermined_gives_minimum_norm():
    # Fewer labels than features: LinearRegression's lstsq gives the
    # minimum-norm solution, and so must the masked solve (||Q t|| = ||t||).
    rng = np.random.RandomState(1)
    X, y = rng.standard_normal((300, 12)), rng.standard_normal(300)
    reg = FederatedActiveRegressor(budget=6, random_state=0).fit(
        X, y, groups=rng.randint(3, size=300)
    )
    ref = reference_fit(X, y, reg)
    assert np.allclose(reg.coef_, ref.coef_, rtol=1e-7, atol=1e-9)
    assert reg.intercept_ == pytest.approx(ref.intercept_, rel=1e-7)


def test_local_training_is_fedavg_of_client_fits():
    # FALE-local: each client's weighted fit on its selected rows, averaged
    # with weights proportional to its number of labels.
    X, y, groups = make_data(n=800, n_clients=3, seed=2)
    reg = FederatedActiveRegressor(
        budget=90, training="local", alpha=0.5, random_state=0
    )
    reg.fit(X, y, groups=groups)
    idx, w = reg.sample_indices_, reg.sample_weight_
    coefs, intercepts, counts = [], [], []
    for c in range(3):
        mine = groups[idx] == c
        model = Ridge(alpha=0.5).fit(X[idx[mine]], y[idx[mine]], sample_weight=w[mine])
        coefs.append(model.coef_)
        intercepts.append(model.intercept_)
        counts.append(mine.sum())
    counts = np.array(counts) / np.sum(counts)
    assert np.allclose(reg.coef_, counts @ np.array(coefs), rtol=1e-8)
    assert reg.intercept_ == pytest.approx(counts @ np.array(intercepts), rel=1e-8)


def test_nan_labels_outside_selection_are_never_read():
    X, y, groups = make_data(seed=4)
    full = FederatedActiveRegressor(budget=50, random_state=0).fit(X, y, groups=groups)
    partial = np.full_like(y, np.nan)
    partial[full.sample_indices_] = y[full.sample_indices_]
    reg = FederatedActiveRegressor(budget=50, random_state=0).fit(
        X, partial, groups=groups
    )
    # Fresh secrets every fit: the model agrees to rounding.
    assert np.allclose(reg.coef_, full.coef_, rtol=1e-10, atol=1e-12)
    assert reg.n_queries_ == 50


@pytest.mark.parametrize("sampler", [None, UniformSampler()])
def test_labeling_loop_query_then_fit(sampler):
    # The documented loop: query() lists the rows to label before any label
    # exists; fit then reads exactly those (and nothing else).
    X, y, groups = make_data(seed=5)
    reg = FederatedActiveRegressor(budget=30, sampler=sampler, random_state=7)
    rows = reg.query(X, groups=groups)
    assert not hasattr(reg, "coef_")
    partial = np.full_like(y, np.nan)
    partial[rows] = y[rows]
    reg.fit(X, partial, groups=groups)
    assert np.array_equal(reg.sample_indices_, rows)
    if sampler is None:  # a standalone sampler configured alike selects the same
        alike = LeverageScoreSampler(budget=30, fit_intercept=True, random_state=7)
        assert np.array_equal(alike.fit(X, groups=groups).sample_indices_, rows)


@pytest.mark.parametrize(
    "random_state, sampler",
    [
        (None, None),
        (np.random.RandomState(0), None),
        (None, LeverageScoreSampler(random_state=np.random.RandomState(1))),
    ],
)
def test_query_refuses_a_selection_that_fit_would_not_repeat(random_state, sampler):
    # Without an int seed, query and fit draw different rows: query would
    # silently list rows fit never reads. It must say so instead.
    X, _, groups = make_data(seed=5)
    reg = FederatedActiveRegressor(
        budget=30, sampler=sampler, random_state=random_state
    )
    with pytest.raises(ValueError, match="Set random_state to an int"):
        reg.query(X, groups=groups)
    # A sampler with its own int seed is reproducible: query is allowed.
    reg = FederatedActiveRegressor(
        budget=30, sampler=LeverageScoreSampler(random_state=3)
    )
    rows = reg.query(X, groups=groups)
    assert np.array_equal(rows, reg.query(X, groups=groups))


@pytest.mark.parametrize("groups", [None, np.arange(40) % 4])
@pytest.mark.parametrize("training", ["global", "local"])
def test_every_row_selected_is_ordinary_least_squares(groups, training):
    # budget=1.0 reads every label with weight 1: the model is the ordinary
    # fit on all rows (for "local": FedAvg of local fits, which equals it
    # when the clients' models agree, so only "global" is compared there).
    rng = np.random.RandomState(21)
    X = rng.standard_normal((40, 3))
    X[5] = 0.0  # a zero-leverage row is still selected
    y = X @ [1.0, 2.0, 3.0] + 0.5 + 0.1 * rng.standard_normal(40)
    reg = FederatedActiveRegressor(budget=1.0, training=training, random_state=0)
    reg.fit(X, y, groups=groups)
    assert reg.n_queries_ == 40 and np.array_equal(reg.sample_weight_, np.ones(40))
    if groups is None or training == "global":
        ols = LinearRegression().fit(X, y)
        assert np.allclose(reg.coef_, ols.coef_, atol=1e-10)
        assert np.isclose(reg.intercept_, ols.intercept_, atol=1e-10)


def test_missing_selected_labels_are_reported():
    X, y, _ = make_data(seed=6)
    reg = FederatedActiveRegressor(budget=20, random_state=0).fit(X, y)
    partial = y.copy()
    partial[reg.sample_indices_[:3]] = np.nan
    with pytest.raises(
        ValueError, match=r"3 of the 20 selected rows have no label .* rows \["
    ):
        FederatedActiveRegressor(budget=20, random_state=0).fit(X, partial)


@pytest.mark.parametrize(
    "y, match",
    [
        (np.full(50, np.nan), "^Input y contains NaN"),
        (np.r_[np.ones(49), np.inf], "^Input y contains infinity"),
        (np.ones(49), "inconsistent numbers of samples"),
        (None, "requires y to be passed"),
    ],
)
def test_bad_targets(y, match):
    X = np.random.RandomState(7).standard_normal((50, 2))
    with pytest.raises(ValueError, match=match):
        FederatedActiveRegressor().fit(X, y)


def test_sampler_is_cloned_and_budget_overridden():
    X, y, groups = make_data(seed=8)
    sampler = LeverageScoreSampler(budget=5, random_state=3)
    reg = FederatedActiveRegressor(budget=25, sampler=sampler).fit(X, y, groups=groups)
    assert not hasattr(sampler, "sample_indices_") and sampler.budget == 5
    assert reg.sampler_.budget == 25 and reg.n_queries_ == 25
    assert reg.sampler_ is not sampler
    with pytest.raises(ValueError, match="has no budget parameter"):
        FederatedActiveRegressor(sampler=StandardScaler()).fit(X, y)


def test_leverage_beats_uniform_with_high_leverage_rows():
    # A few rows carry all the information about two directions. Uniform
    # sampling of 30 out of 5000 rows almost never sees them, so its fit of
    # those coefficients is poor; leverage sampling picks them up.
    rng = np.random.RandomState(11)
    n, d = 5000, 6
    X = rng.standard_normal((n, d))
    X[:, 4:] *= 0.01
    X[:10, 4:] = rng.standard_normal((10, 2)) * 10
    coef = np.array([1.0, -1.0, 0.5, 2.0, 3.0, -4.0])
    y = X @ coef + 0.1 * rng.standard_normal(n)
    X_test = rng.standard_normal((2000, d))
    y_test = X_test @ coef
    groups = rng.randint(5, size=n)
    mse = {"leverage": [], "uniform": []}
    for seed in range(10):
        for name, sampler in [
            ("leverage", LeverageScoreSampler()),
            ("uniform", UniformSampler()),
        ]:
            reg = FederatedActiveRegressor(
                budget=30, sampler=sampler, random_state=seed
            )
            reg.fit(X, y, groups=groups)
            mse[name].append(np.mean((reg.predict(X_test) - y_test) ** 2))
    assert np.median(mse["leverage"]) < 0.1 * np.median(mse["uniform"])


def test_pipeline_with_groups():
    X, y, groups = make_data(seed=12)
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("fale", FederatedActiveRegressor(budget=40, random_state=0)),
        ]
    )
    pipe.fit(X, y, fale__groups=groups)
    assert pipe.score(X, y) > 0.9
    assert pipe.named_steps["fale"].communication_


def test_grid_search_over_budget_and_sampler_with_routing():
    X, y, groups = make_data(n=900, seed=13)
    with config_context(enable_metadata_routing=True):
        reg = FederatedActiveRegressor(random_state=0).set_fit_request(groups=True)
        search = GridSearchCV(
            reg,
            {"budget": [12, 40], "sampler": [LeverageScoreSampler(), UniformSampler()]},
            cv=KFold(3),
        )
        search.fit(X, y, groups=groups)
        assert search.best_params_["budget"] == 40
        assert search.best_estimator_.communication_  # groups reached fit
        scores = cross_val_score(reg, X, y, cv=KFold(3), params={"groups": groups})
        assert scores.shape == (3,) and np.all(scores > 0.8)


def test_clone_pickle_and_dataframe():
    pd = pytest.importorskip("pandas")
    X, y, groups = make_data(seed=14)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    reg = FederatedActiveRegressor(budget=30, random_state=0).fit(
        frame, pd.Series(y), groups=groups
    )
    assert list(reg.feature_names_in_) == list(frame.columns)
    again = pickle.loads(pickle.dumps(reg))
    assert np.array_equal(again.predict(frame), reg.predict(frame))
    fresh = clone(reg)
    assert not hasattr(fresh, "coef_") and fresh.get_params() == reg.get_params()


@pytest.mark.parametrize("training", ["global", "local"])
@pytest.mark.parametrize("federated", [False, True])
def test_overflowing_coefficients_are_a_clear_error(training, federated):
    # Labels near 1e300 on features near 1e-300: coefficients near 1e600 are
    # not representable; an error says so (not inf, nor a wrapped sum).
    X, y, groups = make_data(seed=21)
    reg = FederatedActiveRegressor(budget=80, training=training, random_state=0)
    with pytest.raises(ValueError, match="overflow float64"):
        reg.fit(X * 1e-300, y * 1e300, groups=groups if federated else None)
