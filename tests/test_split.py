"""non_iid_split: the paper's Dirichlet split over target bins."""

import warnings

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


@pytest.mark.parametrize("alpha", [1e-4, 1e-5, 1e-300])
def test_tiny_alpha_gives_each_bin_to_one_random_client(alpha):
    # Dirichlet(alpha) with alpha -> 0 puts all of a bin's mass on one client,
    # each equally likely. numpy's Gamma variates underflowed to 0 (NaN shares,
    # cast to int): every row went to one client with a RuntimeWarning.
    y = np.random.RandomState(4).standard_normal(2000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        groups = non_iid_split(y, n_clients=10, alpha=alpha, random_state=0)
    table = bin_shares(y, groups, 10)
    # Every client that got rows got a whole number of bins (200 rows each)...
    sizes = np.bincount(groups, minlength=10)
    assert np.all(sizes % 200 == 0)
    # ... and ten bins, each on a uniformly random client, land on at most
    # two clients with probability 5e-6 only (the old bug: on one).
    assert (sizes > 0).sum() >= 3 and table.max() == 1.0


def test_small_alpha_shares_have_the_dirichlet_moments():
    # Below alpha = 1 the shares are drawn from log-space Gammas: their mean
    # must be 1 / K and variance (1/K)(1 - 1/K) / (K alpha + 1).
    from skfal._split import dirichlet_shares

    rng = np.random.RandomState(5)
    K, alpha, reps = 3, 0.3, 20000
    shares = np.array([dirichlet_shares(K, alpha, rng) for _ in range(reps)])
    assert np.allclose(shares.sum(axis=1), 1.0)
    var = (1 / K) * (1 - 1 / K) / (K * alpha + 1)
    assert np.allclose(shares.mean(axis=0), 1 / K, atol=4 * np.sqrt(var / reps))
    assert np.allclose(shares.var(axis=0), var, rtol=0.05)


def test_empty_target():
    with pytest.raises(ValueError, match="y is empty"):
        non_iid_split(np.array([]), n_clients=3)
