"""What every estimator shares: a documentation link, the samplers' contract."""

import inspect
import re

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import skfal
from skfal._base import DOCS_URL

ESTIMATORS = [
    getattr(skfal, name)
    for name in skfal.__all__
    if isinstance(getattr(skfal, name), type)
]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_html_repr_links_to_the_api_page(cls):
    # The link names the page autosummary generates for the public class
    # (docs/api.rst lists every public name, tests/test_docs.py checks it).
    # A meta-estimator needs the estimator it wraps.
    meta = "estimator" in inspect.signature(cls).parameters
    estimator = cls(LinearRegression()) if meta else cls()
    expected = f"{DOCS_URL}generated/skfal.{cls.__name__}.html"
    assert estimator._get_doc_link() == expected
    assert f'href="{expected}"' in estimator._repr_html_()


@pytest.mark.parametrize(
    "cls", [skfal.LeverageScoreSampler, skfal.SensitivitySampler, skfal.UniformSampler]
)
def test_fit_resample_returns_the_selected_rows_in_the_input_type(cls):
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.standard_normal((60, 2)), columns=["a", "b"])
    y = pd.Series(rng.standard_normal(60), name="t")
    sampler = cls(budget=12, random_state=0)
    X_res, y_res = sampler.fit_resample(X, y)
    assert isinstance(X_res, pd.DataFrame) and isinstance(y_res, pd.Series)
    assert np.array_equal(X_res.index, sampler.sample_indices_)
    assert np.array_equal(y_res.to_numpy(), y.to_numpy()[sampler.sample_indices_])
    (name,) = sampler.get_feature_names_out()
    assert re.fullmatch(r"[a-z_]+", name)


@pytest.mark.parametrize(
    "make",
    [
        lambda: skfal.LeverageScoreSampler(budget=5),
        lambda: skfal.SensitivitySampler(budget=5, n_clusters=1),
        lambda: skfal.UniformSampler(budget=5),
        lambda: skfal.Resampler(skfal.UniformSampler(budget=5)),
    ],
)
def test_fit_resample_without_labels_fails_before_fitting(make):
    # fit_resample returns y[sample_indices_]: with y=None it used to run the
    # whole selection, then fail with a TypeError on indexing None.
    X = np.random.RandomState(0).standard_normal((30, 2))
    sampler = make()
    with pytest.raises(ValueError, match=r"fit_resample .* needs y, but y is None"):
        sampler.fit_resample(X, None)
    assert not hasattr(sampler, "sample_indices_")  # nothing was fitted
