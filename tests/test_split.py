"""non_iid_split: the paper's Dirichlet split over target bins."""

import numpy as np
import pytest

from skfal import non_iid_split


def bin_shares(y, groups, n_clients):
    """Fraction of each client's rows in each target quantile bin."""
    edges = np.quantile(y, np.linspace(0, 1, n_clients + 1)[1:-1])
    bins = np.searchsorted(edges, y, side="right")
    table = np.zeros((n_clients, n_clients))
    np.add.at(table, (groups, bins), 1)
    return table / np.maximum(table.sum(1, keepdims=True), 1)


def test_every_row_gets_a_client_reproducibly():
    y = np.random.RandomState(0).standard_normal(5000)
    a = non_iid_split(y, n_clients=10, alpha=5.0, random_state=1)
    b = non_iid_split(y, n_clients=10, alpha=5.0, random_state=1)
    assert a.shape == y.shape and np.array_equal(a, b)
    assert set(np.unique(a)) <= set(range(10))
    assert not np.array_equal(a, non_iid_split(y, n_clients=10, random_state=2))


def test_small_alpha_is_more_heterogeneous_than_large_alpha():
    # With Dirichlet(alpha) shares, clients' target distributions differ from
    # the overall one (uniform over bins) by more when alpha is small; with a
    # very large alpha the split is close to IID.
    y = np.random.RandomState(3).standard_normal(20000)

    def spread(alpha):
        shares = bin_shares(y, non_iid_split(y, 10, alpha=alpha, random_state=0), 10)
        return np.abs(shares - 0.1).mean()

    assert spread(0.1) > spread(5.0) > spread(1e4)
    assert spread(1e4) < 0.02


def test_client_sizes_differ():
    y = np.arange(10000.0)
    sizes = np.bincount(non_iid_split(y, 10, alpha=5.0, random_state=0), minlength=10)
    assert sizes.sum() == 10000 and sizes.min() != sizes.max()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"alpha": 0}, "alpha"), ({"n_clients": 0}, "n_clients")],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        non_iid_split(np.arange(10.0), **kwargs)


def test_nan_target():
    with pytest.raises(ValueError, match="NaN"):
        non_iid_split(np.array([1.0, np.nan, 2.0]), n_clients=2)
