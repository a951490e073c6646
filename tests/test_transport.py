"""The transport: named client steps, counted messages, the same run anywhere."""

import numpy as np
import pytest

from skfal import LeverageScoreSampler
from skfal._federated import (
    Channel,
    InProcessTransport,
    Transport,
    client_seeds,
    run_client_step,
    simulated_federation,
)
from skfal._federated._transport import client_step, federation_seed
from skfal.federated import transcript


@client_step("test_echo_sum")
def _echo_sum(state, config, *arrays):
    state.setdefault("seen", []).append(config.get("tag"))
    return (np.array([sum(float(a.sum()) for a in arrays) + state["client"]]),)


def test_ask_counts_every_array_and_tell_rides_on_the_next_ask():
    states = [{"client": c} for c in range(3)]
    channel = Channel(record=True)
    transport = InProcessTransport(states, channel)
    transport.tell(
        "test_echo_sum", "first", {0: (np.ones(2),)}, config={"tag": "a"}, clients=[0]
    )
    assert all("seen" not in state for state in states)  # not delivered yet
    assert channel.summary() == {"first": {"up": 0, "down": 16}}
    replies = transport.ask(
        "test_echo_sum", "second", broadcast=(np.ones(3),), config={"tag": "b"}
    )
    assert states[0]["seen"] == ["a", "b"] and states[1]["seen"] == ["b"]
    assert [replies[c][0][0] for c in range(3)] == [3.0, 4.0, 5.0]
    assert channel.summary()["second"] == {"up": 3 * 8, "down": 3 * 24}


def test_unknown_step_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown client step 'nope'"):
        run_client_step({}, "nope", {}, ())
    with pytest.raises(ValueError, match="already registered"):
        client_step("test_echo_sum")(lambda state, config: ())


def test_split_and_rows_are_inverse_in_both_row_orders():
    counts = {0: 3, 1: 2, 2: 3}
    indices = np.array([0, 2, 5, 7])
    plain = Transport(3, Channel())  # client by client: rows 0-2, 3-4, 5-7
    local, positions = plain.split(indices, counts)
    assert [local[c].tolist() for c in range(3)] == [[0, 2], [], [0, 2]]
    assert np.array_equal(plain.rows(local, counts), indices)
    client_rows = [np.array([1, 2, 6]), np.array([3, 7]), np.array([0, 4, 5])]
    states = [{"client": c} for c in range(3)]
    simulated = InProcessTransport(states, Channel(), client_rows)
    local, positions = simulated.split(indices, counts)
    assert [local[c].tolist() for c in range(3)] == [[1], [1], [0, 2]]
    assert [positions[c].tolist() for c in range(3)] == [[1], [3], [0, 2]]
    assert np.array_equal(simulated.rows(local, counts), indices)
    values = {c: rows * 10.0 for c, rows in enumerate(client_rows)}
    assert np.array_equal(simulated.gather(values), np.arange(8) * 10.0)


def test_client_seeds_are_sampling_seeds_only():
    # The federation's seed decides which rows are drawn and nothing secret:
    # keys, masks and shared secrets are drawn fresh in every fit
    # (tests/test_secure.py).
    a, b = client_seeds(7, 0), client_seeds(7, 1)
    assert a == client_seeds(7, 0)
    assert set(a) == {"sampling_seed"}
    assert a["sampling_seed"] != b["sampling_seed"]
    assert client_seeds(8, 0) != a


@pytest.mark.parametrize("protocol", ["qr", "fedsvd"])
def test_server_side_on_a_transport_equals_the_estimators_fit(protocol):
    # The server's side (_fit_federated) over a transport whose clients hold
    # their rows client by client gives the estimator's fit when X's rows
    # are in that order; the transcript adds up to communication_.
    rng = np.random.RandomState(0)
    X = rng.standard_normal((240, 4))
    groups = np.repeat([0, 1, 2], [100, 80, 60])
    fitted = LeverageScoreSampler(budget=12, protocol=protocol, random_state=3)
    fitted.fit(X, groups=groups)

    from skfal._sampling import draw_seed

    server_rng = np.random.RandomState(3)
    federation_seed = draw_seed(server_rng)
    client_rows = [np.flatnonzero(groups == c) for c in range(3)]
    channel = Channel()
    transport = simulated_federation(X, client_rows, federation_seed, channel)
    transport.client_rows = None  # the server's own (client by client) order
    server = LeverageScoreSampler(budget=12, protocol=protocol, random_state=3)
    with transcript() as messages:
        server._fit_federated(transport, X.shape[1], server_rng)
    assert np.array_equal(server.sample_indices_, fitted.sample_indices_)
    assert np.allclose(server.sample_weight_, fitted.sample_weight_, rtol=1e-12)
    assert np.allclose(server.scores_, fitted.scores_, rtol=1e-12)
    assert server.communication_ == fitted.communication_
    assert sum(m.array.nbytes for m in messages) == sum(
        sum(b.values()) for b in server.communication_.values()
    )
    with pytest.raises(AttributeError, match="stays with the clients"):
        server.transform(X)  # the server never received W


def _server_side_regressor(X, y, groups, **params):
    """The regressor's server side over a transport whose clients hold their
    rows client by client and read their labels through a labeling function."""
    from skfal import FederatedActiveRegressor

    client_rows = [np.flatnonzero(groups == c) for c in np.unique(groups)]
    transport = simulated_federation(
        X, client_rows, federation_seed(params["random_state"]), Channel()
    )
    transport.client_rows = None  # the server's own (client by client) order
    asked = []
    for state, rows in zip(transport.states, client_rows, strict=True):

        def reader(local, rows=rows):
            asked.append(rows[local])
            return y[rows][local]

        state["label_reader"] = reader
    server = FederatedActiveRegressor(**params)
    rng = np.random.RandomState(params["random_state"])
    with transcript() as messages:
        server._fit_federated(transport, X.shape[1], rng)
    return server, transport, messages, np.sort(np.concatenate(asked))


@pytest.mark.parametrize("training", ["global", "local"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_regressor_server_side_on_a_transport_equals_the_estimators_fit(
    training, fit_intercept
):
    # The regressor's server side (selection, then training) over a transport
    # gives exactly the in-process fit: the same client steps, seeds and
    # messages. Labels are read only at the selected rows, once; the server
    # receives the released model and no label.
    from skfal import FederatedActiveRegressor

    rng = np.random.RandomState(1)
    X = rng.standard_normal((240, 4))
    y = X @ [1.0, -2.0, 0.5, 3.0] + 1.5 + 0.1 * rng.standard_normal(240)
    groups = np.repeat([0, 1, 2], [100, 80, 60])
    params = dict(
        budget=24, training=training, fit_intercept=fit_intercept, random_state=3
    )
    fitted = FederatedActiveRegressor(**params).fit(X, y, groups=groups)
    server, transport, messages, asked = _server_side_regressor(X, y, groups, **params)
    assert np.array_equal(server.sample_indices_, fitted.sample_indices_)
    assert np.array_equal(asked, fitted.sample_indices_)
    assert np.allclose(server.sample_weight_, fitted.sample_weight_, rtol=1e-12)
    assert np.allclose(server.coef_, fitted.coef_, rtol=1e-10, atol=1e-12)
    assert server.intercept_ == pytest.approx(fitted.intercept_, rel=1e-10, abs=1e-12)
    assert server.communication_ == fitted.communication_
    assert "model_release" in server.communication_
    # Every client keeps the model it released.
    for state in transport.states:
        assert np.array_equal(state["model_coef"], server.coef_)
    received = [m.array for m in messages if m.receiver == "server"]
    labels = y[fitted.sample_indices_]
    for array in received:
        if array.dtype.kind == "f":
            assert not np.isin(array, labels).any()


def test_clients_that_keep_the_model_leave_the_server_the_masked_one():
    from sklearn.exceptions import NotFittedError

    rng = np.random.RandomState(2)
    X = rng.standard_normal((150, 3))
    y = X @ [1.0, 2.0, 3.0] + rng.standard_normal(150)
    groups = np.repeat([0, 1, 2], 50)
    client_rows = [np.flatnonzero(groups == c) for c in range(3)]
    from skfal import FederatedActiveRegressor

    transport = simulated_federation(X, client_rows, 11, Channel())
    for state, rows in zip(transport.states, client_rows, strict=True):
        state["labels"] = y[rows]
        state["release_model"] = False
    server = FederatedActiveRegressor(budget=20, random_state=0)
    server._fit_federated(transport, 3, np.random.RandomState(0))
    assert server.coef_ is None and server.intercept_ is None
    assert "model_release" not in server.communication_  # nothing sent
    assert server.masked_model_.shape == (5, 5)  # R of [1, X, y]: units unknown
    with pytest.raises(NotFittedError, match="release_model=False"):
        server.predict(X)
    # The clients hold the model: the weighted least squares of the selection.
    from skfal._linalg import weighted_least_squares

    idx, w = server.sample_indices_, server.sample_weight_
    coef, _ = weighted_least_squares(X[idx], y[idx], w)
    assert np.allclose(transport.states[0]["model_coef"], coef, rtol=1e-9)


def test_a_client_without_labels_is_a_clear_error():
    rng = np.random.RandomState(3)
    X = rng.standard_normal((90, 3))
    client_rows = [np.arange(30 * c, 30 * c + 30) for c in range(3)]
    from skfal import FederatedActiveRegressor

    transport = simulated_federation(X, client_rows, 5, Channel())
    server = FederatedActiveRegressor(budget=12, random_state=0)
    with pytest.raises(ValueError, match="has no labeling function"):
        server._fit_federated(transport, 3, np.random.RandomState(0))


class _LocalOnlySampler:
    """A sampler without the federated protocol (``_fit_federated``)."""

    _fit_federated = None

    def __init__(self, budget=0.1):
        self.budget = budget

    def get_params(self, deep=True):
        return {"budget": self.budget}

    def set_params(self, **params):
        self.budget = params.get("budget", self.budget)
        return self

    def fit(self, X, y=None, groups=None):
        return self


def test_a_regressor_over_a_transport_needs_a_sampler_that_runs_on_one():
    from skfal import FederatedActiveRegressor

    X = np.random.RandomState(4).standard_normal((60, 2))
    transport = simulated_federation(X, np.array_split(np.arange(60), 3), 1, Channel())
    server = FederatedActiveRegressor(budget=9, sampler=_LocalOnlySampler())
    with pytest.raises(TypeError, match="_LocalOnlySampler does not run over a"):
        server._fit_federated(transport, 2, np.random.RandomState(0))


@pytest.mark.parametrize("sampling", ["iid", "pivotal"])
def test_uniform_regressor_over_a_transport_equals_the_estimators_fit(sampling):
    # UniformSampler runs over any transport: the server's side gives the
    # in-process fit's rows and weights, and its model to rounding.
    from skfal import FederatedActiveRegressor, UniformSampler

    rng = np.random.RandomState(6)
    X = rng.standard_normal((90, 2))
    y = X @ [1.0, -1.0] + rng.standard_normal(90)
    client_rows = np.array_split(np.arange(90), 3)
    groups = np.repeat([0, 1, 2], 30)
    sampler = UniformSampler(sampling=sampling)
    reference = FederatedActiveRegressor(budget=15, sampler=sampler, random_state=2)
    reference.fit(X, y, groups=groups)
    rng = np.random.RandomState(2)
    seed = federation_seed(2)
    transport = simulated_federation(X, client_rows, seed, Channel(), labels=y)
    server = FederatedActiveRegressor(budget=15, sampler=sampler, random_state=2)
    server._fit_federated(transport, 2, rng)
    assert np.array_equal(server.sample_indices_, reference.sample_indices_)
    assert np.allclose(server.sample_weight_, reference.sample_weight_)
    assert np.allclose(server.coef_, reference.coef_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "holder_constant, sampling",
    [(np.inf, "pivotal"), ("auto", "pivotal"), (2.0, "iid")],
)
def test_sensitivity_server_side_on_a_transport_equals_the_estimators_fit(
    holder_constant, sampling
):
    # SensitivitySampler's server side (row counts, the common scale, the
    # clustering, the scores, the selection) over a transport whose clients
    # hold their rows client by client and read labels through a labeling
    # function: exactly the estimator's fit, and the server receives no row
    # and no label.
    from skfal import SensitivitySampler
    from tests.test_federated_leverage import contains_raw_row

    rng = np.random.RandomState(4)
    X = np.vstack([rng.normal(c, 0.3, (60, 3)) for c in (0.0, 3.0, 6.0)])
    y = X @ [1.0, -1.0, 2.0] + 0.1 * rng.standard_normal(180)
    groups = np.repeat([0, 1, 2], [70, 60, 50])
    params = dict(
        budget=24,
        n_clusters=4,
        holder_constant=holder_constant,
        sampling=sampling,
        max_iter=4,
        random_state=2,
    )
    fitted = SensitivitySampler(**params).fit(X, y, groups=groups)
    client_rows = [np.flatnonzero(groups == c) for c in range(3)]
    transport = simulated_federation(X, client_rows, federation_seed(2), Channel())
    transport.client_rows = None  # the server's own (client by client) order
    asked = []
    for state, rows in zip(transport.states, client_rows, strict=True):

        def reader(local, rows=rows):
            asked.append(rows[local])
            return y[rows][local]

        state["label_reader"] = reader
    server = SensitivitySampler(**params)
    server_rng = np.random.RandomState(2)
    from skfal._sampling import draw_seed

    draw_seed(server_rng)  # the dealer's federation seed, in-process
    with transcript() as messages:
        server._fit_federated(transport, 3, server_rng)
    assert np.array_equal(server.sample_indices_, fitted.sample_indices_)
    assert np.allclose(server.sample_weight_, fitted.sample_weight_, rtol=1e-12)
    assert np.array_equal(server.medoid_indices_, fitted.medoid_indices_)
    assert np.array_equal(server.probe_indices_, fitted.probe_indices_)
    assert server.n_iter_ == fitted.n_iter_
    assert server.communication_ == fitted.communication_
    bought = np.union1d(fitted.medoid_indices_, fitted.probe_indices_)
    if holder_constant == np.inf:
        assert not asked  # distance-only scores read no label
    else:
        assert np.array_equal(np.unique(np.concatenate(asked)), bought)
    for m in messages:
        if m.receiver == "server":
            assert not contains_raw_row(m.array, X), m.phase
            if m.array.dtype.kind == "f":
                assert not np.isin(m.array, y).any(), m.phase


def test_every_client_state_entry_is_declared(monkeypatch):
    # A reader sees what a party holds: every entry a client keeps in any
    # protocol is declared, with its type and meaning, in its module's
    # STATE (merged in skfal._federated.CLIENT_STATE). Catches a step that
    # keeps an undeclared entry.
    import warnings

    from sklearn.linear_model import LinearRegression

    from skfal import (
        ActiveEstimator,
        FederatedActiveRegressor,
        SensitivitySampler,
        UniformSampler,
    )
    from skfal._federated import declared
    from tests._helpers import keep_client_states

    kept = keep_client_states(monkeypatch)
    rng = np.random.RandomState(0)
    X = rng.standard_normal((160, 3))
    y = X.sum(axis=1) + rng.standard_normal(160)
    groups = np.arange(160) % 4
    estimators = [
        LeverageScoreSampler(budget=20, random_state=0),
        LeverageScoreSampler(budget=20, protocol="fedsvd", random_state=0),
        SensitivitySampler(budget=40, holder_constant="auto", random_state=0),
        UniformSampler(budget=20, sampling="pivotal", random_state=0),
        FederatedActiveRegressor(budget=20, random_state=0),
        FederatedActiveRegressor(budget=20, training="local", random_state=0),
        FederatedActiveRegressor(design="adaptive", budget=120, random_state=0),
        ActiveEstimator(LinearRegression(), budget=20, n_rounds=2, random_state=0),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for estimator in estimators:
            estimator.fit(X, y, groups=groups)
    names = {name for states in kept for state in states for name in state}
    assert len(names) > 50
    assert not [name for name in sorted(names) if not declared(name)]
