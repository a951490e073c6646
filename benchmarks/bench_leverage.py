"""Speed and memory of LeverageScoreSampler.fit, against baselines in the same run.

Prints, for each shape, the fit time of every mode as a ratio to
``np.linalg.qr(X)`` (reduced QR, the textbook route to leverage scores) and to
one pass over ``X`` (``X @ v``), and the peak memory during the fit as a
multiple of the size of ``X`` (``X`` itself included).

Modes: ``centralized``; ``qr, 10`` and ``fedsvd, 10``, 10 clients each holding
a contiguous tenth of the rows; ``qr, 10 mixed``, the same with the clients'
rows scattered over ``X``, so the simulation first gathers each client's rows.

Targets (issue 2): exact fit <= 0.15 x np.linalg.qr at 1,000,000 x 100; the
``qr`` protocol with 10 clients <= 1.5 x centralized; peak memory <= 3 x X.

First, the Gram floor (issues 12 and 23): the centralized fit (default
pivotal selection, and ``sampling="iid"``), and the exact scores alone
(``leverage_scores``), as ratios to one Gram product ``X.T @ X`` on the
same array (float32 against its own float32 product), at 1,000,000 x 20 and
300,000 x 100, float64 and float32, with the path the R factor took.
Target: fit <= 3 x ``X.T @ X``.

``--tree-quality``: the pivotal fit's spatial tree from the fused pass
(whitened principal axes of the design, from its R factor) against the
tree of a sample's principal axes (``spatial_order``, the one the fit used
before issue 23), with the same scores and seeds: on the eight tables of
``benchmarks/_tables.py`` (20% test split, standardized, budgets 2d, 5d and
10d, 32 splits), the median test MSE of the weighted least-squares fit on
the selection, as a ratio, and a two-sided Mann-Whitney p-value.

``--selection``: the pivotal selection after the score pass alone, at
1,000,000 and 10,000,000 rows (budget 1,000, the fit's leaf codes and
scores of 1,000,000 x 20 standard normals, repeated): the whole table as
one party on one thread (``select_rows``' in-memory path, the fit's before
issue 23's parties) against row ranges as parties
(``pivotal_in_parties``) on one thread and on the BLAS's threads, as
ratios to one ``X.T @ X`` of 1,000,000 x 20 in the same run.

Usage: ``python benchmarks/bench_leverage.py [--quick] [--gram-only]
[--tree-quality] [--selection]``.
"""

import argparse

import numpy as np
from _util import best_time, peak_memory

from skfal import LeverageScoreSampler
from skfal._linalg import equilibrated_r_factor, leverage_scores


def gram_floor(n, repeat, rng):
    """Fit and scores time over one ``X.T @ X``, per shape and dtype."""
    print(
        f"{'shape':>14} {'dtype':>8} {'X.T@X s':>8} {'fit s':>7} {'/ gram':>7} "
        f"{'iid fit':>7} {'scores':>7} {'path':>22}"
    )
    # The shapes of issue 23's table: 1,000,000 x 20 and 300,000 x 100.
    for rows, d in ((n, 20), (3 * n // 10, 100)):
        X64 = rng.standard_normal((rows, d))
        for X in (X64, X64.astype(np.float32)):
            t_gram = best_time(repeat, lambda X=X: X.T @ X)
            sampler = LeverageScoreSampler(budget=1000, random_state=0)
            t_fit = best_time(repeat, sampler.fit, X)
            iid = LeverageScoreSampler(budget=1000, sampling="iid", random_state=0)
            t_iid = best_time(repeat, iid.fit, X)
            t_scores = best_time(repeat, leverage_scores, X)
            path = equilibrated_r_factor(X)[2]
            print(
                f"{rows:>8} x {d:<3} {X.dtype.name:>8} {t_gram:8.3f} {t_fit:7.2f} "
                f"{t_fit / t_gram:7.1f} {t_iid / t_gram:7.1f} "
                f"{t_scores / t_gram:7.1f} {path:>22}"
            )


def _one_party(scores, codes, n_bits, budget):
    """The selection as the fit made it before the parties."""
    from skfal._base import select_rows
    from skfal._sampling import stable_order

    select_rows(
        None,
        scores,
        budget,
        np.random.RandomState(0),
        sampling="pivotal",
        uniform_mix=0.2,
        order=stable_order(codes, n_bits),
    )


def _parties(scores, codes, n_bits, budget, n_threads):
    """The selection with row ranges as parties."""
    from skfal._sampling import pivotal_in_parties

    pivotal_in_parties(
        scores,
        codes.copy(),
        n_bits,
        budget,
        np.random.RandomState(0),
        uniform_mix=0.2,
        n_threads=n_threads,
    )


def selection_stage(repeat, rng):
    """The pivotal selection after the score pass: one party against row
    ranges as parties, on one thread and on the BLAS's."""
    from threadpoolctl import threadpool_info

    from skfal._linalg import leverage_scores_and_codes
    from skfal._sampling import tree_depth

    X = rng.standard_normal((1_000_000, 20))
    t_gram = best_time(repeat, lambda: X.T @ X)
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    threads = max(1, min(blas, default=1))
    print(
        f"{'rows':>11} {'X.T@X s':>8} {'one party':>10} {'parties, 1':>11} "
        f"{'parties, ' + str(threads):>11}   (in X.T @ X of 1,000,000 x 20)"
    )
    budget = 1000
    for copies in (1, 10):
        n = copies * X.shape[0]
        depth = tree_depth(n, budget)
        scores, _, codes, n_bits = leverage_scores_and_codes(X, max_depth=depth)
        scores, codes = np.tile(scores, copies), np.tile(codes, copies)

        # Both sort a copy of the codes (the fit sorts them in place): the
        # copy's time is taken off.
        t_copy = best_time(repeat, codes.copy)
        t_one = best_time(repeat, _one_party, scores, codes, n_bits, budget) - t_copy
        t_serial = (
            best_time(repeat, _parties, scores, codes, n_bits, budget, 1) - t_copy
        )
        t_threads = (
            best_time(repeat, _parties, scores, codes, n_bits, budget, threads) - t_copy
        )
        print(
            f"{n:>11,} {t_gram:8.3f} {t_one / t_gram:10.2f} "
            f"{t_serial / t_gram:11.2f} {t_threads / t_gram:11.2f}",
            flush=True,
        )


def tree_quality(n_splits=32):
    """Test MSE with the fused pass's tree against a sample's principal axes."""
    from _tables import TABLES, load_table
    from scipy.stats import mannwhitneyu
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from skfal._base import select_rows
    from skfal._linalg import leverage_scores_and_codes
    from skfal._sampling import stable_order, tree_depth

    print(f"{'table':>15} {'budget':>6} {'MSE fused / sample axes':>24} {'p':>6}")
    for table in TABLES:
        X, y = load_table(table)
        d = X.shape[1] + 1
        for factor in (2, 5, 10):
            errors = {"fused": [], "sample axes": []}
            for split in range(n_splits):
                X_tr, X_te, y_tr, y_te = train_test_split(
                    X, y, test_size=0.2, random_state=split
                )
                scaler = StandardScaler().fit(X_tr)
                X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
                budget = factor * d
                depth = tree_depth(X_tr.shape[0], budget)
                scores, _, codes, n_bits = leverage_scores_and_codes(
                    X_tr, True, max_depth=depth
                )
                orders = {"fused": stable_order(codes, n_bits), "sample axes": None}
                for name, order in orders.items():
                    chosen = select_rows(
                        X_tr,
                        scores,
                        budget,
                        np.random.RandomState(split),
                        sampling="pivotal",
                        uniform_mix=0.5,
                        order=order,
                    )
                    model = LinearRegression().fit(
                        X_tr[chosen.indices],
                        y_tr[chosen.indices],
                        sample_weight=chosen.weights,
                    )
                    residual = y_te - model.predict(X_te)
                    errors[name].append(float(np.mean(residual**2)))
            fused, sample = np.array(errors["fused"]), np.array(errors["sample axes"])
            p = mannwhitneyu(fused, sample, alternative="two-sided")[1]
            ratio = np.median(fused) / np.median(sample)
            print(f"{table:>15} {f'{factor}d':>6} {ratio:24.3f} {p:6.3f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="100,000 rows instead of 1,000,000"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--gram-only", action="store_true", help="only the Gram-floor table"
    )
    parser.add_argument(
        "--selection",
        action="store_true",
        help="the pivotal selection alone: one party against row ranges",
    )
    parser.add_argument(
        "--tree-quality",
        action="store_true",
        help="test MSE with the fused pass's tree against a sample's axes",
    )
    args = parser.parse_args()
    if args.tree_quality:
        tree_quality()
        return
    if args.selection:
        selection_stage(args.repeat, np.random.RandomState(0))
        return
    n = 100_000 if args.quick else 1_000_000
    rng = np.random.RandomState(0)
    gram_floor(n, args.repeat, rng)
    if args.gram_only:
        return
    print(
        f"{'shape':>14} {'mode':>14} {'fit s':>8} {'/ np.qr':>8} {'/ X@v':>8} "
        f"{'/ central':>9} {'peak / X':>9}"
    )
    for d in (20, 100):
        X = rng.standard_normal((n, d))
        # 10 clients of n / 10 rows each, as if each brought its own table; and
        # the same clients with rows scattered over X, which adds the
        # simulation's cost of gathering each client's rows (a real client
        # already holds them).
        groups = np.repeat(np.arange(10), n // 10)
        scattered = rng.permutation(groups)
        v = rng.standard_normal(d)
        t_pass = best_time(args.repeat, np.dot, X, v)
        t_qr = best_time(1, np.linalg.qr, X)
        modes = {
            "centralized": (dict(), None),
            "qr, 10": (dict(protocol="qr"), groups),
            "fedsvd, 10": (dict(protocol="fedsvd"), groups),
            "qr, 10 mixed": (dict(protocol="qr"), scattered),
        }
        t_central = None
        for name, (params, g) in modes.items():
            sampler = LeverageScoreSampler(budget=1000, random_state=0, **params)
            t_fit = best_time(args.repeat, sampler.fit, X, None, g)
            t_central = t_fit if t_central is None else t_central
            peak = (X.nbytes + peak_memory(sampler.fit, X, None, g)) / X.nbytes
            print(
                f"{n:>8} x {d:<3} {name:>14} {t_fit:8.2f} {t_fit / t_qr:8.3f} "
                f"{t_fit / t_pass:8.1f} {t_fit / t_central:9.2f} {peak:9.2f}"
            )
        print(f"{'':>14} baselines: np.linalg.qr(X) {t_qr:.2f} s, X @ v {t_pass:.3f} s")


if __name__ == "__main__":
    main()
