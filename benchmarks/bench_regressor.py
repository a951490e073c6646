"""FederatedActiveRegressor with 10 clients: time against centralized, and bytes.

For ``n x d`` data (default 1,000,000 x 50) and a budget of 1,000 labels,
prints

* the fit time of ``FederatedActiveRegressor`` with 10 clients (selection by
  federated leverage scores plus masked training) as a ratio to the same
  estimator fitted centralized (``groups=None``), which selects the same rows;
* the time of the federated training step alone (secure aggregation
  included) as a ratio to a centralized weighted least squares on the same
  selection;
* the bytes communicated per phase for each combination of selection
  protocol and training.

Usage: ``python benchmarks/bench_regressor.py [--n 1000000] [--d 50]``.
"""

import argparse

import numpy as np
from _util import best_time

from skfal import FederatedActiveRegressor, LeverageScoreSampler
from skfal._federated import Channel, run_global_training
from skfal._linalg import weighted_least_squares


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.RandomState(0)
    X = rng.standard_normal((args.n, args.d))
    y = X @ rng.standard_normal(args.d) + rng.standard_normal(args.n)
    groups = np.repeat(np.arange(10), -(-args.n // 10))[: args.n]

    reg = FederatedActiveRegressor(budget=args.budget, random_state=0)
    t_fed = best_time(args.repeat, reg.fit, X, y, groups=groups)
    t_central = best_time(args.repeat, reg.fit, X, y)
    idx, w = reg.sample_indices_, reg.sample_weight_
    clients = [
        (X[idx[groups[idx] == c]], y[idx[groups[idx] == c]], w[groups[idx] == c])
        for c in range(10)
    ]

    def train():
        # The key agreement included, as in a fit.
        run_global_training(clients, np.random.RandomState(0), Channel())

    t_train = best_time(args.repeat, train)
    t_wls = best_time(args.repeat, weighted_least_squares, X[idx], y[idx], w)
    print(f"{args.n} x {args.d}, budget {args.budget}, 10 clients")
    print(f"  fit, 10 clients        {t_fed:8.3f} s")
    print(
        f"  fit, centralized       {t_central:8.3f} s   ratio {t_fed / t_central:.2f}"
    )
    print(f"  training step, 10 cl.  {t_train * 1e3:8.2f} ms")
    print(
        f"  weighted LS, same rows {t_wls * 1e3:8.2f} ms   ratio {t_train / t_wls:.2f}"
    )

    print("\nbytes communicated (up + down), by phase")
    print(f"{'selection':>10} {'training':>9} {'total MB':>9}  phases")
    for selection in ["qr", "fedsvd"]:
        for training in ["global", "local"]:
            reg = FederatedActiveRegressor(
                budget=args.budget,
                sampler=LeverageScoreSampler(protocol=selection),
                training=training,
                random_state=0,
            ).fit(X, y, groups=groups)
            comm = reg.communication_
            total = sum(v["up"] + v["down"] for v in comm.values()) / 1e6
            phases = ", ".join(
                f"{k} {(v['up'] + v['down']) / 1e3:.0f} kB" for k, v in comm.items()
            )
            print(f"{selection:>10} {training:>9} {total:9.2f}  {phases}")


if __name__ == "__main__":
    main()
