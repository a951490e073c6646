"""The federated clustering protocol: Lloyd rounds, messages, what the server sees."""

import numpy as np
import pytest

from skfal import SensitivitySampler
from skfal._clustering import lloyd_statistics, lloyd_update
from skfal._federated import Channel, _regression, _secure
from skfal._federated import _clustering as protocol
from skfal._federated._transport import simulated_federation
from tests._helpers import blobs


def lloyd_federation(X, parts, init, channel):
    """Clients holding ``X[parts[c]]`` (their whole share as the subsample,
    the working units of ``X`` itself), keys agreed and ``init`` sent as the
    seeded centres: where :func:`protocol.lloyd_rounds` starts. Returns the
    transport and the clients' rotation."""
    transport = simulated_federation(X, parts, 3, channel)
    _secure.key_agreement(transport)
    transport.flush()  # the group secret travels with the next message
    for state, rows in zip(transport.states, parts, strict=True):
        state["row_exponent"] = np.array([0])
        state["sub_rows"] = X[rows]
    rotation = protocol.cluster_rotation(transport.states[0], X.shape[1])
    transport.tell(
        "keep", "lloyd", broadcast=(init @ rotation,), config={"keys": ["centres_rot"]}
    )
    return transport, rotation


@pytest.mark.parametrize("n_clients", [1, 5])
@pytest.mark.parametrize("z", [1, 2])
def test_federated_lloyd_equals_centralized_lloyd(z, n_clients):
    # Per-cluster sums and weights add up across clients and the rotation
    # preserves distances, so federated rounds from the same centres give
    # centralized Lloyd's centres; one client's secure sum is its own sums.
    rng = np.random.RandomState(2)
    X = rng.standard_normal((600, 3)) + np.repeat(
        rng.uniform(-5, 5, (3, 3)), 200, axis=0
    )
    init = X[[0, 250, 450]].copy()
    parts = [np.sort(p) for p in np.array_split(rng.permutation(600), n_clients)]
    transport, rotation = lloyd_federation(X, parts, init, Channel())
    n_iter = protocol.lloyd_rounds(transport, z=z, max_iter=6)
    assert n_iter >= 1
    central = init
    for _ in range(n_iter):
        sums, weights, _ = lloyd_statistics(X, central, z)
        central = lloyd_update(central, sums, weights)
    for state in transport.states:  # every client moved the centres alike
        fed = state["centres_rot"] @ rotation.T
        assert np.allclose(fed, central, rtol=1e-10, atol=1e-10)


def test_server_never_receives_a_raw_row_or_label(monkeypatch):
    X, _ = blobs(n_per=60, seed=3)
    y = X @ [1.0, -1.0] + 0.1
    groups = np.random.RandomState(4).randint(4, size=X.shape[0])
    seen = []
    for module, names in [
        (
            protocol,
            [
                "server_subsample_counts",
                "server_seed_centres",
                "server_medoid_owners",
                "server_probe_plan",
                "server_holder_constants",
            ],
        ),
        (_regression, ["server_factor"]),
        (_secure, ["server_sum_words"]),
    ]:
        for name in names:
            original = getattr(module, name)

            def spy(*args, _original=original):
                for arg in args:
                    items = arg if isinstance(arg, list | tuple) else [arg]
                    for item in items:
                        seen.extend(item if isinstance(item, tuple) else [item])
                return _original(*args)

            monkeypatch.setattr(module, name, spy)
    SensitivitySampler(
        budget=30, n_clusters=5, holder_constant="auto", random_state=0
    ).fit(X, y, groups=groups)
    arrays = [np.atleast_2d(np.asarray(a, dtype=float)) for a in seen if np.ndim(a) > 0]
    assert arrays
    for array in arrays:
        for row in array:
            if row.size == 2:
                assert not np.any(np.all(np.isclose(row, X), axis=1))
        for column in array.T:
            for c in range(4):
                mine = y[groups == c]
                if column.shape == mine.shape:
                    assert not np.allclose(column, mine)


def test_lloyd_rounds_upload_only_masked_sums_and_weights():
    # Each round, each client uploads its k x (d + 1) rotated sums and
    # weights as masked words (plus the secure maximum's marks of d + 1
    # columns) and whether the centres moved; the server passes the sums
    # back and the clients move the centres. No per-cluster counts, nothing
    # in the clear.
    X, _ = blobs(n_per=50, seed=6)
    parts = np.array_split(np.arange(X.shape[0]), 3)
    channel = Channel(record=True)
    init = X[[0, 60, 120, 180]]
    transport, _ = lloyd_federation(X, parts, init, channel)
    n_iter = protocol.lloyd_rounds(transport, z=2, max_iter=4)
    k, d, marks = 4, 2, (2 + 1) * (69 + 32)
    # Down: the seeded centres once, then per round the marks' sums and the
    # total; up: per round the marks and the masked shares, and one flag
    # more than rounds (the last says whether the last total moved them).
    # When the centres stopped before max_iter, that last flag rides on the
    # next round's first marks (coarse bins), which the server drops.
    converged = n_iter < 4
    assert channel.summary()["lloyd"] == {
        "up": 3 * 8 * (n_iter * (marks + k * (d + 1)) + n_iter + 1)
        + converged * 3 * 8 * (d + 1) * 69,
        "down": 3 * 8 * (k * d + n_iter * (marks + k * (d + 1))),
    }
    uploads = [m for m in channel.messages if m[0] == "lloyd" and m[1] == "up"]
    shares = [m[3] for m in uploads if m[3].dtype == np.uint64]
    flags = [m[3] for m in uploads if m[3].dtype != np.uint64]
    assert {a.shape for a in shares} == {(d + 1, 69), (d + 1, 32), (k, d + 1)}
    assert {a.shape for a in flags} == {(1,)}
    # Each client's uploads, all rounds together, are uniform words: the
    # masked sums and weights look like the masked marks, which are mostly
    # zeros in the clear. Catches client_mask replaced by the identity
    # (plain fixed point: sign-extended high bits, zero marks).
    for c in range(3):
        words = np.concatenate(
            [m[3].ravel() for m in uploads if m[2] == c and m[3].dtype == np.uint64]
        )
        bits = np.unpackbits(words.view(np.uint8))
        assert abs(bits.mean() - 0.5) < 6 * 0.5 / np.sqrt(bits.size)
