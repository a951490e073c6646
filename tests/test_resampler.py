"""Resampler: skfal samplers as imbalanced-learn resampling steps."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from skfal import (
    LeverageScoreSampler,
    Resampler,
    SensitivitySampler,
    UniformSampler,
)

imblearn_pipeline = pytest.importorskip("imblearn.pipeline")


def make_data(n=400, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, 3))
    X[:5] *= 20  # high-leverage rows
    y = X @ [1.0, -2.0, 0.5] + rng.standard_normal(n)
    return X, y, rng.randint(4, size=n)


def test_a_bare_sampler_is_refused_and_the_adapter_is_accepted():
    # imbalanced-learn refuses a step with both transform and fit_resample;
    # the adapter has fit_resample only.
    X, y, _ = make_data()
    bare = imblearn_pipeline.Pipeline(
        [("select", LeverageScoreSampler(budget=20)), ("model", LinearRegression())]
    )
    with pytest.raises(TypeError, match="implements both"):
        bare.fit(X, y)
    assert not hasattr(Resampler(), "transform")


@pytest.mark.parametrize(
    "sampler",
    [
        LeverageScoreSampler(budget=30, random_state=0),
        UniformSampler(budget=30, random_state=0),
        SensitivitySampler(budget=30, n_clusters=5, random_state=0),
    ],
)
def test_next_step_is_fitted_on_exactly_the_selected_rows(sampler):
    # The pipeline's final estimator sees X[idx], y[idx] and nothing else
    # (unweighted: imbalanced-learn does not pass weights on); at predict
    # time the resampler is skipped, so every row is predicted.
    X, y, _ = make_data()
    pipe = imblearn_pipeline.Pipeline(
        [("select", Resampler(sampler)), ("model", LinearRegression())]
    ).fit(X, y)
    idx = pipe.named_steps["select"].sample_indices_
    alone = sampler.fit(X)  # the same seed selects the same rows
    assert np.array_equal(idx, alone.sample_indices_)
    assert np.array_equal(
        pipe.named_steps["select"].sample_weight_, alone.sample_weight_
    )
    direct = LinearRegression().fit(X[idx], y[idx])
    assert np.allclose(pipe.named_steps["model"].coef_, direct.coef_)
    assert pipe.predict(X).shape == (400,)


def test_groups_reach_the_sampler_by_metadata_routing():
    # imbalanced-learn hands a resampling step its metadata only through
    # scikit-learn's metadata routing (without it, step__groups is dropped).
    from sklearn import config_context

    X, y, groups = make_data(seed=1)
    sampler = LeverageScoreSampler(
        budget=25, protocol="fedsvd", sampling="iid", random_state=2
    )
    with config_context(enable_metadata_routing=True):
        adapter = (
            Resampler(sampler)
            .set_fit_request(groups=True)
            .set_fit_resample_request(groups=True)
        )
        pipe = imblearn_pipeline.Pipeline(
            [("select", adapter), ("model", LinearRegression())]
        ).fit(X, y, groups=groups)
    fitted = pipe.named_steps["select"].sampler_
    assert list(fitted.clients_) == [0, 1, 2, 3]
    assert "masked_data" in fitted.communication_
    # Federated and centralized selections agree for one seed.
    assert np.array_equal(fitted.sample_indices_, sampler.fit(X).sample_indices_)
    # Called directly, the adapter takes groups as the samplers do.
    direct = Resampler(sampler).fit(X, y, groups=groups)
    assert np.array_equal(direct.sample_indices_, fitted.sample_indices_)


def test_labels_reach_a_sampler_that_reads_them_and_nothing_else():
    # Algorithm 2 reads labels at medoids and probes only: NaN elsewhere is
    # fine, and the selection equals the sampler's own on the full labels.
    X, y, _ = make_data(seed=3)
    sampler = SensitivitySampler(
        budget=30, n_clusters=5, holder_constant="auto", random_state=0
    )
    full = Resampler(sampler).fit(X, y)
    read = np.union1d(full.sampler_.medoid_indices_, full.sampler_.probe_indices_)
    partial = np.full_like(y, np.nan)
    partial[full.sample_indices_] = y[full.sample_indices_]
    partial[read] = y[read]
    X_res, y_res = Resampler(sampler).fit_resample(X, partial)
    assert np.array_equal(X_res, X[full.sample_indices_])
    assert np.array_equal(y_res, y[full.sample_indices_])
    assert full.sampler_.n_queries_ == read.size > 0


def test_default_sampler_clone_and_bad_sampler():
    X, y, _ = make_data(seed=4)
    sampler = UniformSampler(budget=10, random_state=0)
    adapter = Resampler(sampler).fit(X, y)
    assert not hasattr(sampler, "sample_indices_") and adapter.sampler_ is not sampler
    assert adapter.n_features_in_ == 3
    default = Resampler().fit(X)
    assert isinstance(default.sampler_, LeverageScoreSampler)
    assert default.sample_indices_.shape == (40,)  # the default budget, 10%
    with pytest.raises(ValueError, match="'sampler' parameter"):
        Resampler(sampler=LinearRegression()).fit(X, y)
