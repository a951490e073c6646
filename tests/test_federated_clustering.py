"""The federated clustering protocol: Lloyd rounds, messages, what the server sees."""

import numpy as np
import pytest
from joblib import Parallel

from skfal import SensitivitySampler
from skfal._clustering import lloyd_statistics, lloyd_update
from skfal._federated import Channel, _regression, _secure
from skfal._federated import _clustering as protocol
from skfal._federated._masks import client_shared_rotation
from tests._helpers import blobs


@pytest.mark.parametrize("z", [1, 2])
def test_federated_lloyd_equals_centralized_lloyd(z):
    # Per-cluster sums and weights add up across clients and the rotation
    # preserves distances, so federated rounds from the same centres give
    # centralized Lloyd's centres.
    rng = np.random.RandomState(2)
    X = rng.standard_normal((600, 3)) + np.repeat(
        rng.uniform(-5, 5, (3, 3)), 200, axis=0
    )
    init = X[[0, 250, 450]].copy()
    parts = np.array_split(rng.permutation(600), 5)
    rotation = client_shared_rotation(3, 7)
    channel = Channel()
    fed, n_iter = protocol.run_lloyd(
        [X[p] for p in parts],
        init @ rotation,
        z,
        rotation,
        6,
        Parallel(),
        channel,
        range(5),
        _secure.run_key_agreement(5, 3, rng, channel),
        rng,
    )
    central = init
    for _ in range(n_iter):
        sums, weights, _ = lloyd_statistics(X, central, z)
        central = lloyd_update(central, sums, weights)
    assert np.allclose(fed @ rotation.T, central, rtol=1e-10, atol=1e-10)


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
    # columns); the server passes the sum back and the clients move the
    # centres. No per-cluster counts, nothing in the clear.
    X, _ = blobs(n_per=50, seed=6)
    parts = np.array_split(np.arange(X.shape[0]), 3)
    rotation = client_shared_rotation(2, 8)
    channel = Channel(record=True)
    rng = np.random.RandomState(0)
    secure = _secure.run_key_agreement(3, 5, rng, channel)
    _, n_iter = protocol.run_lloyd(
        [X[p] for p in parts],
        X[[0, 60, 120, 180]] @ rotation,
        2,
        rotation,
        4,
        Parallel(),
        channel,
        range(3),
        secure,
        rng,
    )
    k, d, marks = 4, 2, (2 + 1) * (69 + 32)
    assert channel.summary()["lloyd"] == {
        "up": n_iter * 3 * 8 * (marks + k * (d + 1)),
        "down": n_iter * 3 * 8 * (marks + k * (d + 1)),
    }
    shares = [m[3] for m in channel.messages if m[0] == "lloyd" and m[1] == "up"]
    assert {a.dtype for a in shares} == {np.dtype(np.uint64)}
    assert {a.shape for a in shares} == {(d + 1, 69), (d + 1, 32), (k, d + 1)}
