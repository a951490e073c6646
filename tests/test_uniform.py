"""UniformSampler: the baseline's law, its weights and its federated messages."""

import numpy as np

from skfal import UniformSampler


def test_contract_and_inclusion_probability():
    X = np.random.RandomState(10).standard_normal((50, 2))
    hits = np.zeros(50)
    for seed in range(2000):
        s = UniformSampler(budget=10, random_state=seed).fit(X)
        assert s.sample_indices_.shape == (10,)
        assert np.all(np.diff(s.sample_indices_) > 0)
        hits[s.sample_indices_] += 1
    # The weight is the inverse inclusion probability n / budget ...
    assert np.allclose(s.sample_weight_, 5.0)
    # ... and each row is included with probability budget / n = 0.2.
    assert np.all(np.abs(hits / 2000 - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 2000))


def test_federated_selects_the_centralized_rows_and_counts_messages():
    # The server draws among the n rows it learns from the clients' counts,
    # so the law (and, with one seed, the rows) is the centralized one.
    X = np.random.RandomState(11).standard_normal((50, 2))
    groups = np.arange(50) % 3
    central = UniformSampler(budget=10, random_state=0).fit(X)
    fed = UniformSampler(budget=10, random_state=0).fit(X, groups=groups)
    assert np.array_equal(fed.sample_indices_, central.sample_indices_)
    assert np.array_equal(fed.sample_weight_, central.sample_weight_)
    assert list(fed.clients_) == [0, 1, 2]
    # Up: one int64 row count per client. Down: local index and weight per row.
    assert fed.communication_ == {
        "row_counts": {"up": 3 * 8, "down": 0},
        "selection": {"up": 0, "down": 10 * (8 + 8)},
    }
    assert central.communication_ == {} and central.clients_ is None


def test_every_row_is_a_census_with_weight_one():
    X = np.random.RandomState(12).standard_normal((7, 2))
    for budget in (1.0, 7):
        s = UniformSampler(budget=budget, random_state=0).fit(X)
        assert np.array_equal(s.sample_indices_, np.arange(7))
        assert np.array_equal(s.sample_weight_, np.ones(7))
        assert s.n_draws_ == 0


def test_transform_is_constant():
    X = np.random.RandomState(13).standard_normal((9, 3))
    s = UniformSampler(budget=3, random_state=0).fit(X)
    assert np.array_equal(s.transform(X[:4]), np.ones((4, 1)))
    assert list(s.get_feature_names_out()) == ["uniform_score"]
