"""The training protocols, step by step: FALE's masked solve and FedAvg."""

import numpy as np
import pytest

from skfal import FederatedActiveRegressor
from skfal._federated import Channel, run_global_training, run_local_training
from skfal._linalg import weighted_least_squares


def clients_data(sizes, d=4, seed=0):
    rng = np.random.RandomState(seed)
    return [
        (
            rng.standard_normal((n, d)),
            rng.standard_normal(n),
            rng.uniform(0.5, 2.0, n),
        )
        for n in sizes
    ]


@pytest.mark.parametrize("protocol", ["qr", "fedsvd"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_global_training_is_the_stacked_weighted_least_squares(protocol, fit_intercept):
    # Orthogonal masks change neither residuals nor the model's norm, so the
    # masked solve is the weighted ridge on the stacked labeled rows.
    clients = clients_data([30, 0, 12, 1])
    stacked = [np.concatenate([c[i] for c in clients]) for i in range(3)]
    channel = Channel(record=True)
    model = run_global_training(
        clients,
        np.random.RandomState(1),
        channel,
        alpha=0.7,
        fit_intercept=fit_intercept,
        protocol=protocol,
        block_size=5,
    )
    coef, intercept = weighted_least_squares(*stacked, 0.7, fit_intercept)
    assert np.allclose(model.coef, coef, rtol=1e-9)
    assert model.intercept == pytest.approx(intercept, rel=1e-9, abs=1e-12)
    # The client with no labeled row uploads nothing but still gets the model.
    assert 1 not in {m[2] for m in channel.messages if m[1] == "up"}
    assert 1 in {m[2] for m in channel.messages if m[0] == "masked_model"}
    if protocol == "qr":  # an R factor of (d + intercept + label) columns
        width = 4 + fit_intercept + 1
        shapes = {m[3].shape for m in channel.messages if m[0] == "masked_system"}
        assert all(shape[1] == width and shape[0] <= width for shape in shapes)


def test_local_training_small_and_empty_clients():
    # A client with no labeled row sits out; one with fewer labeled rows than
    # features gets the minimum-norm solution rather than an error.
    rng = np.random.RandomState(3)
    X, y = rng.standard_normal((400, 6)), rng.standard_normal(400)
    groups = np.zeros(400, dtype=int)
    groups[:3] = 1  # tiny client
    groups[3:5] = 2
    reg = FederatedActiveRegressor(budget=40, training="local", random_state=0)
    reg.fit(X, y, groups=groups)
    assert np.all(np.isfinite(reg.coef_))
    idx = reg.sample_indices_
    clients = [
        (
            X[idx[groups[idx] == c]],
            y[idx[groups[idx] == c]],
            reg.sample_weight_[groups[idx] == c],
        )
        for c in range(3)
    ]
    channel = Channel(record=True)
    coef, _ = run_local_training(clients, channel)
    senders = {m[2] for m in channel.messages if m[1] == "up"}
    assert senders == {c for c in range(3) if clients[c][0].shape[0] > 0}
    assert np.allclose(coef, reg.coef_)
