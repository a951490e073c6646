"""Tests for the local pivotal method at scale (skfal/_balance.py)."""

import numpy as np
import pytest
from scipy.stats import chi2

from skfal import LeverageScoreSampler
from skfal._balance import local_pivotal_select, pooled_local_pivotal
from skfal._sampling import (
    inclusion_probabilities,
    mixed_probabilities,
    spatial_order,
)
from tests._helpers import monte_carlo_runs


def test_inclusion_frequencies_match_pi():
    """Every duel (a run's pooling, LPM in a bucket, the last tournament)
    keeps both rows' expected values, so each row's inclusion frequency
    must converge to its pi, whichever pairs meet; with rows that are
    certain and impossible, and pi small enough that runs are pooled.
    Catches a duel whose winner is not drawn with the right odds (a 50/50
    winner gives chi-square p < 1e-10 at these sizes; checked by hand)."""
    rng = np.random.RandomState(0)
    n_rows = 300
    Z = rng.standard_normal((n_rows, 3))
    pi = rng.uniform(0.005, 0.3, n_rows)
    pi *= 25 / pi.sum()
    pi[:2], pi[2:4] = 1.0, 0.0
    order = spatial_order(Z, 9)
    n_runs = monte_carlo_runs(3000)
    counts, sizes = np.zeros(n_rows), set()
    for _ in range(n_runs):
        rows = pooled_local_pivotal(pi, order, lambda r: Z[r], rng, bucket=16)
        counts[rows] += 1
        sizes.add(rows.shape[0])
    assert counts[:2].tolist() == [n_runs, n_runs] and counts[2:4].sum() == 0
    # A fixed-size design: floor or ceiling of sum(pi), never more.
    assert sizes <= {int(np.floor(pi.sum())), int(np.ceil(pi.sum()))}
    free = (pi > 0) & (pi < 1)
    z = (counts[free] / n_runs - pi[free]) / np.sqrt(pi[free] * (1 - pi[free]) / n_runs)
    assert chi2.sf(np.sum(z**2), free.sum()) > 1e-4
    assert np.abs(z).max() < 5.0


def test_sampler_selects_budget_rows_with_horvitz_thompson_weights():
    """balance='local' changes only how the rows are drawn: the budget, the
    scores and the weights 1 / pi of the default's probabilities stay."""
    rng = np.random.RandomState(1)
    X = rng.standard_normal((2000, 4)) * [1.0, 3.0, 0.5, 2.0]
    local = LeverageScoreSampler(
        budget=50, balance="local", fit_intercept=True, random_state=0
    ).fit(X)
    tree = LeverageScoreSampler(budget=50, fit_intercept=True, random_state=0).fit(X)
    np.testing.assert_allclose(local.scores_, tree.scores_)
    pi = inclusion_probabilities(mixed_probabilities(local.scores_, 0.5), 50)
    assert local.sample_indices_.shape == (50,)
    assert np.unique(local.sample_indices_).shape == (50,)
    np.testing.assert_allclose(local.sample_weight_, 1 / pi[local.sample_indices_])


def test_selection_is_reproducible():
    """Randomness only through random_state."""
    rng = np.random.RandomState(2)
    X = rng.standard_normal((500, 3))
    pi = np.full(500, 0.05)
    order = spatial_order(X, 8)
    a = local_pivotal_select(X, pi, np.eye(3), False, order, np.random.RandomState(5))
    b = local_pivotal_select(X, pi, np.eye(3), False, order, np.random.RandomState(5))
    np.testing.assert_array_equal(a.indices, b.indices)


@pytest.mark.parametrize(
    "params, fit_kwargs",
    [({"sampling": "iid"}, {}), ({}, {"groups": np.arange(300) % 3})],
)
def test_local_balance_refused_where_it_does_not_run(params, fit_kwargs):
    """Federated clients and i.i.d. draws do not run it: a clear error
    naming the fix, not a silent tree-order fallback."""
    X = np.random.RandomState(3).standard_normal((300, 3))
    sampler = LeverageScoreSampler(budget=20, balance="local", **params)
    with pytest.raises(ValueError, match="balance='tree'"):
        sampler.fit(X, **fit_kwargs)
