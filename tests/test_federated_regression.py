"""The training protocols, step by step: FALE's securely aggregated solve and
FedAvg."""

import numpy as np
import pytest

from skfal import FederatedActiveRegressor
from skfal._federated import Channel, run_global_training, run_local_training
from skfal._linalg import weighted_least_squares


def clients_data(sizes, d=4, seed=0, scale=1.0, offset=0.0):
    rng = np.random.RandomState(seed)
    return [
        (
            (rng.standard_normal((n, d)) + offset) * scale,
            rng.standard_normal(n),
            rng.uniform(0.5, 2.0, n),
        )
        for n in sizes
    ]


def stacked(clients):
    return [np.concatenate([c[i] for c in clients]) for i in range(3)]


@pytest.mark.parametrize("alpha", [0.0, 0.7])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_global_training_is_the_stacked_weighted_least_squares(alpha, fit_intercept):
    # The rotation and the mixing are orthogonal and the secure sum is exact
    # to ~1e-19 of each column's size, so the R the server factors is an R
    # of the stacked weighted system: the clients solve the same problem.
    clients = clients_data([30, 0, 12, 1])
    channel = Channel(record=True)
    model = run_global_training(
        clients,
        np.random.RandomState(1),
        channel,
        alpha=alpha,
        fit_intercept=fit_intercept,
    )
    coef, intercept = weighted_least_squares(*stacked(clients), alpha, fit_intercept)
    assert np.allclose(model.coef, coef, rtol=1e-9)
    assert model.intercept == pytest.approx(intercept, rel=1e-9, abs=1e-12)
    # The client with no labeled row uploads nothing past the key agreement
    # but still gets the model (and the bounds to decode it, by messages),
    # which it releases as every client does.
    assert {m[0] for m in channel.messages if m[1] == "up" and m[2] == 1} == {
        "key_agreement",
        "model_release",
    }
    assert 1 in {m[2] for m in channel.messages if m[0] == "masked_model"}
    released = [m[3] for m in channel.messages if m[0] == "model_release"]
    assert len(released) == 4
    assert all(np.array_equal(r, released[0]) for r in released)
    assert np.array_equal(released[0], np.append(model.coef, model.intercept))


@pytest.mark.parametrize("scale", [1e-150, 1e-12, 1e-6, 1e6, 1e15, 1e150])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_global_training_equals_centralized_at_any_feature_scale(scale, fit_intercept):
    # Features of size 1e15 next to the constant column of size 1: rotating
    # them together would lose the constant (the intercept came out 0.92
    # instead of 2.99 before). The clients first divide each column by a
    # common power of two, exactly, so the federated fit keeps every digit
    # the centralized one keeps. Offsets of 5 standard deviations make the
    # centering matter.
    clients = clients_data([40, 25, 3, 17], scale=scale, offset=5.0, seed=2)
    model = run_global_training(
        clients, np.random.RandomState(3), Channel(), fit_intercept=fit_intercept
    )
    coef, intercept = weighted_least_squares(*stacked(clients), 0.0, fit_intercept)
    assert np.allclose(model.coef, coef, rtol=1e-8, atol=0)
    assert model.intercept == pytest.approx(intercept, rel=1e-8, abs=1e-300)


def test_regressor_equals_centralized_with_features_times_1e15():
    # The report, end to end: identical rows, features x 1e15.
    rng = np.random.RandomState(4)
    X = rng.standard_normal((400, 3)) * 1e15
    y = X @ [1e-15, -2e-15, 3e-15] + 2.99 + 0.01 * rng.standard_normal(400)
    groups = rng.randint(5, size=400)
    fed = FederatedActiveRegressor(budget=40, random_state=0).fit(X, y, groups=groups)
    idx, w = fed.sample_indices_, fed.sample_weight_
    coef, intercept = weighted_least_squares(X[idx], y[idx], w)
    assert fed.intercept_ == pytest.approx(intercept, rel=1e-8)
    assert np.allclose(fed.coef_, coef, rtol=1e-8)


def test_local_training_is_fedavg_without_single_row_clients():
    # FALE-local: the clients' weighted fits averaged by their numbers of
    # labeled rows. A client with one labeled row would contribute that row's
    # label (its model is (0, ..., 0, y_j)): it sits out, with a warning.
    clients = clients_data([30, 0, 12, 1, 9])
    channel = Channel(record=True)
    with pytest.warns(UserWarning, match=r"clients \[3\]\) and sit out"):
        model = run_local_training(clients, np.random.RandomState(0), channel)
    fits = [weighted_least_squares(*clients[c], 0.0, True) for c in (0, 2, 4)]
    counts = np.array([30, 12, 9]) / 51
    assert np.allclose(model.coef, counts @ np.array([f[0] for f in fits]))
    assert model.intercept == pytest.approx(counts @ np.array([f[1] for f in fits]))
    uploaders = {
        m[2]
        for m in channel.messages
        if m[1] == "up" and m[0] not in ("key_agreement", "model_release")
    }
    assert uploaders == {0, 2, 4}


def test_fale_local_with_no_client_of_two_labeled_rows_is_a_clear_error():
    # Found by a fuzzer: one client holding a single labeled row made the
    # secure sum over no participant raise an IndexError.
    X = np.random.RandomState(0).rand(20, 3)
    reg = FederatedActiveRegressor(budget=1, training="local", random_state=0)
    with (
        pytest.warns(UserWarning, match="sit out"),
        pytest.raises(ValueError, match="none has that many"),
    ):
        reg.fit(X, X.sum(axis=1), groups=np.zeros(20, dtype=int))


@pytest.mark.parametrize("driver", [run_global_training, run_local_training])
def test_one_client_holding_labels_fits_alone_and_says_what_it_reveals(driver):
    # Found by a fuzzer: when one client of several holds labeled rows (a
    # SensitivitySampler's medoids at one client), the secure sum had a
    # single participant and the fit was refused. There is no sum to hide
    # in: that client fits the model on its rows and releases it, and the
    # others receive the model; no factor, mean or label leaves it.
    clients = clients_data([0, 12, 0], d=3, seed=5)
    channel = Channel(record=True)
    with pytest.warns(UserWarning, match="Only client 1 holds labeled rows"):
        model = driver(clients, np.random.RandomState(0), channel)
    X_l, y_l, w = clients[1]
    coef, intercept = weighted_least_squares(X_l, y_l, w)
    assert np.allclose(model.coef, coef, rtol=1e-10)
    assert np.isclose(model.intercept, intercept, rtol=1e-10)
    assert set(channel.summary()) == {"model_release", "global_model"}
    up = [m for m in channel.messages if m[1] == "up"]
    assert [m[2] for m in up] == [1] and up[0][3].shape == (4,)  # the model


def test_one_client_holding_labels_that_keeps_its_model_is_a_clear_error():
    from skfal._federated import InProcessTransport, global_training

    clients = clients_data([0, 5], d=2, seed=6)
    states = [
        {
            "X": X_l,
            "labels": y_l,
            "selection_indices": np.arange(X_l.shape[0]),
            "selection_weights": w,
            "client": c,
            "release_model": False,
        }
        for c, (X_l, y_l, w) in enumerate(clients)
    ]
    transport = InProcessTransport(states, Channel())
    with (
        pytest.warns(UserWarning, match="Only client 1"),
        pytest.raises(ValueError, match="keeps its model"),
    ):
        global_training(transport, {0: 0, 1: 5}, n_features=2)


def test_one_client_holding_a_single_label_is_warned_that_it_gives_it_away():
    clients = clients_data([0, 1], d=2, seed=7)
    with pytest.warns(UserWarning, match="gives that row's label away"):
        run_global_training(clients, np.random.RandomState(0), Channel())


def test_each_training_rotates_its_system_afresh(monkeypatch):
    # The server factors each training's rotated system; two trainings over
    # one federation (an adaptive fit's pilot and final model, estimate_error's
    # fold models) under one rotation would give it their R factors in one
    # frame, where their differences single out the rows one training has
    # and the other lacks. Each training draws its own rotation from the
    # group secret (its public number in the HKDF purpose), and every client
    # of a training draws the same one. Catches the id dropped from the
    # purpose (one rotation per federation, as it was).
    from skfal._federated import _regression
    from skfal._federated._transport import simulated_federation

    drawn = []
    real = _regression.client_shared_rotation

    def spy(n_columns, rng):
        drawn.append(real(n_columns, rng))
        return drawn[-1]

    monkeypatch.setattr(_regression, "client_shared_rotation", spy)
    clients = clients_data([20, 15, 9])
    X = np.concatenate([c[0] for c in clients])
    rows = np.split(np.arange(X.shape[0]), [20, 35])
    transport = simulated_federation(X, rows, 0, Channel())
    for state, (_, y_l, w) in zip(transport.states, clients, strict=True):
        state["labels"] = y_l
        state["selection_indices"] = np.arange(y_l.shape[0])
        state["selection_weights"] = w
    labeled = {c: rows[c].shape[0] for c in range(3)}
    models = [
        _regression.global_training(transport, labeled, n_features=4) for _ in range(2)
    ]
    coef, intercept = weighted_least_squares(*stacked(clients), 0.0, True)
    for result in models:
        assert np.allclose(result.model.coef, coef, rtol=1e-9)
        assert result.model.intercept == pytest.approx(intercept, rel=1e-9)
    # 3 clients x (factor, solve) per training: one rotation per training.
    first, second = drawn[:6], drawn[6:]
    assert len(second) == 6
    assert all(np.array_equal(q, first[0]) for q in first)
    assert all(np.array_equal(q, second[0]) for q in second)
    assert not np.allclose(first[0], second[0])
