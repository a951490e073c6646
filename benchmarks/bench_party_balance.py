"""What cutting the pivotal tournament into parties costs in balance.

The in-memory pivotal fit can run the tournament over row ranges (parties)
on threads (``skfal._sampling.pivotal_in_parties``): each row keeps its
inclusion probability, but each party balances only its own rows, so the
sample is less spread over the space than one tournament over all rows.
This prints the excess error of the weighted least squares fit on the
selection (``(b - beta)^T G (b - beta)``, ``beta`` the fit on every row,
``G`` the Gram matrix over n) with parties of ``2**17`` rows against one
party, on a table with a smooth misspecification (where balance pays),
``--repeats`` seeds per budget, and a two-sided Mann-Whitney test.

    python benchmarks/bench_party_balance.py --repeats 300 --budgets 1500 3000
"""

import argparse

import numpy as np
from scipy.stats import mannwhitneyu

import skfal._sampling as sampling
from skfal import LeverageScoreSampler


def table(n, d, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, d))
    X[:, 1] = np.abs(X[:, 1]) ** 1.5
    y = (
        X @ np.arange(1, d + 1)
        + 3 * np.sin(2 * X[:, 0])
        + np.cos(3 * X[:, 2]) * X[:, 3]
        + 0.5 * rng.standard_normal(n)
    )
    return X, y


def excess_errors(X, y, budget, party_rows, repeats):
    A = np.c_[np.ones(X.shape[0]), X]
    beta = np.linalg.lstsq(A, y, rcond=None)[0]
    G = A.T @ A / X.shape[0]
    saved, sampling._PARTY_ROWS = sampling._PARTY_ROWS, party_rows
    try:
        out = []
        for seed in range(repeats):
            fit = LeverageScoreSampler(budget=budget, random_state=seed).fit(X)
            rows, w = fit.sample_indices_, np.sqrt(fit.sample_weight_)
            b = np.linalg.lstsq(A[rows] * w[:, None], y[rows] * w, rcond=None)[0]
            out.append((b - beta) @ G @ (b - beta))
    finally:
        sampling._PARTY_ROWS = saved
    return np.array(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--features", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--budgets", type=int, nargs="+", default=[300, 1500])
    args = parser.parse_args()
    X, y = table(args.rows, args.features)
    print(f"{args.rows:,} x {args.features}, {args.repeats} seeds per budget")
    for budget in args.budgets:
        parties = excess_errors(X, y, budget, 2**17, args.repeats)
        one = excess_errors(X, y, budget, 2**62, args.repeats)
        print(
            f"budget {budget}: parties of 2**17 rows / one party, mean excess "
            f"error {parties.mean() / one.mean():.3f}, median "
            f"{np.median(parties) / np.median(one):.3f} "
            f"(two-sided Mann-Whitney p = {mannwhitneyu(parties, one).pvalue:.3f})"
        )


if __name__ == "__main__":
    main()
