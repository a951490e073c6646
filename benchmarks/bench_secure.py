"""The federated layer's cost at many clients: key agreement, and whole fits.

Prints, for simulated federations of 10, 100 and 1,000 clients (in one
process, clients run one after another):

- the key agreement of one fit (X25519 key pairs, pair keys with the
  neighbours of the sparse graph, the sealed group secret): seconds, as a
  multiple of one X25519 exchange measured in the same run, and the bytes
  it moves;
- whole fits of a cross-device federation, the largest (1,000 clients of 3
  rows each by default)
  (``LeverageScoreSampler(protocol="qr")``, ``SensitivitySampler``, and
  ``FederatedActiveRegressor`` with both trainings): seconds, as a multiple
  of the same estimator's centralized fit, and bytes per phase.

Usage: ``python benchmarks/bench_secure.py [--clients 10 100 1000] [--skip-fits]``
"""

import argparse
import time
import warnings

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from skfal import (
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
)
from skfal._federated import Channel, InProcessTransport
from skfal._federated._secure import key_agreement, mask_degree


def exchange_seconds(repeat=2000):
    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    public = b.public_key()
    start = time.perf_counter()
    for _ in range(repeat):
        a.exchange(public)
    return (time.perf_counter() - start) / repeat


def key_agreement_cost(n_clients):
    transport = InProcessTransport([{"client": c} for c in range(n_clients)], Channel())
    start = time.perf_counter()
    key_agreement(transport)
    transport.flush()
    seconds = time.perf_counter() - start
    moved = transport.channel.summary()["key_agreement"]
    return seconds, moved["up"] + moved["down"]


def fits(n_clients, rows, features, rng):
    X = rng.standard_normal((n_clients * rows, features))
    y = X @ rng.standard_normal(features) + rng.standard_normal(X.shape[0])
    groups = np.repeat(np.arange(n_clients), rows)
    budget = n_clients  # one label per client on average
    estimators = {
        "leverage qr": LeverageScoreSampler(budget=budget, random_state=0),
        "sensitivity": SensitivitySampler(budget=budget, random_state=0),
        "regressor global": FederatedActiveRegressor(budget=budget, random_state=0),
        "regressor local": FederatedActiveRegressor(
            budget=budget, training="local", random_state=0
        ),
    }
    for name, estimator in estimators.items():
        label = y if "regressor" in name else None
        start = time.perf_counter()
        estimator.fit(X, label)
        centralized = time.perf_counter() - start
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            estimator.fit(X, label, groups=groups)
        federated = time.perf_counter() - start
        moved = sum(t["up"] + t["down"] for t in estimator.communication_.values())
        keys = estimator.communication_.get("key_agreement", {"up": 0, "down": 0})
        print(
            f"  {name:18s} {federated:7.2f} s  ({federated / centralized:7.1f}x "
            f"centralized {centralized:.3f} s)  {moved / 1e6:8.2f} MB moved, "
            f"key agreement {(keys['up'] + keys['down']) / 1e6:.2f} MB"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--features", type=int, default=2)
    parser.add_argument("--skip-fits", action="store_true")
    args = parser.parse_args()
    one = exchange_seconds()
    print(f"one X25519 exchange (cryptography): {one * 1e6:.0f} us")
    print("key agreement of one fit:")
    for k in args.clients:
        seconds, moved = key_agreement_cost(k)
        print(
            f"  {k:5d} clients, {mask_degree(k):3d} neighbours each: "
            f"{seconds:7.3f} s ({seconds / one:8.0f} exchanges), "
            f"{moved / 1e3:9.1f} kB"
        )
    if args.skip_fits:
        return
    # Whole fits at the largest federation only: with one label per client
    # on average, a small federation of 3-row clients has no client with the
    # 2 labeled rows FALE-local needs.
    k = max(args.clients)
    print(f"fits, {k} clients of {args.rows} rows, {args.features} features:")
    fits(k, args.rows, args.features, np.random.default_rng(0))


if __name__ == "__main__":
    main()
