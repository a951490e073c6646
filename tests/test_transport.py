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
from skfal._federated._transport import client_step
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


def test_client_seeds_are_the_federations_and_each_clients_own():
    a, b = client_seeds(7, 0), client_seeds(7, 1)
    assert a == client_seeds(7, 0)
    assert a["shared_seed"] == b["shared_seed"]  # Q, M, the bins: shared
    assert a["sampling_seed"] != b["sampling_seed"]
    assert a["secret_seed"] != b["secret_seed"]
    assert client_seeds(8, 0)["shared_seed"] != a["shared_seed"]


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
