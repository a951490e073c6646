"""SensitivitySampler: speed and memory against leverage, and quality on diamonds.

Speed: fit time of ``SensitivitySampler(budget=1000)`` on 1,000,000 x 20 and
1,000,000 x 100 as a ratio to ``LeverageScoreSampler(budget=1000).fit`` on
the same data in the same run, and peak memory as a multiple of the size of
``X``. Target: <= 10 x the leverage fit at 1,000,000 x 20.

Method: the clustering (D^z seeding and Lloyd rounds) runs on a uniform
subsample of ``max(10000, 40 k)`` rows, then every row is assigned to its
nearest centre in one chunked pass: seeding k = 200 centres on all 1,000,000
rows (the naive route) costs 100-500 x a leverage fit.

Quality: the diamonds protocol of ``examples/plot_fale_diamonds.py`` (20%
test, 10 non-IID clients, 10 repeats): median test MSE of
``FederatedActiveRegressor`` with sensitivity, leverage and uniform sampling
at budgets 2d, 5d and 10d. Target: sensitivity within 1.25 x leverage at 5d
and 10d, and below uniform at every budget.

Usage: ``python benchmarks/bench_sensitivity.py [--quick] [--skip-speed]``.
"""

import argparse

import numpy as np
from _util import best_time, peak_memory

from skfal import (
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
    UniformSampler,
    load_diamonds,
    non_iid_split,
)


def speed(n, repeat):
    rng = np.random.RandomState(0)
    header = f"{'leverage s':>11} {'sensitivity s':>14} {'ratio':>6} {'peak / X':>9}"
    print(f"{'shape':>14} {header}")
    for d in (20, 100):
        X = rng.standard_normal((n, d))
        leverage = LeverageScoreSampler(budget=1000, random_state=0)
        sensitivity = SensitivitySampler(budget=1000, random_state=0)
        t_lev = best_time(repeat, leverage.fit, X)
        t_sens = best_time(repeat, sensitivity.fit, X)
        memory = (X.nbytes + peak_memory(sensitivity.fit, X)) / X.nbytes
        ratio = t_sens / t_lev
        print(
            f"{n:>8} x {d:<3} {t_lev:11.2f} {t_sens:14.2f} {ratio:6.1f} {memory:9.2f}"
        )


def quality(n_repeats):
    from sklearn.metrics import mean_squared_error
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X_all, y_all = load_diamonds()
    d = X_all.shape[1] + 1
    samplers = {
        "sensitivity": SensitivitySampler(),
        "leverage": LeverageScoreSampler(),
        "uniform": UniformSampler(),
    }
    budgets = [2 * d, 5 * d, 10 * d]
    mse = {name: np.zeros((n_repeats, len(budgets))) for name in samplers}
    for r in range(n_repeats):
        X_train, X_test, y_train, y_test = train_test_split(
            X_all, y_all, test_size=0.2, random_state=r
        )
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        groups = non_iid_split(y_train, 10, alpha=5.0, random_state=r)
        for b, budget in enumerate(budgets):
            for name, sampler in samplers.items():
                reg = FederatedActiveRegressor(
                    budget=budget, sampler=sampler, random_state=r
                )
                reg.fit(X_train, y_train, groups=groups)
                mse[name][r, b] = mean_squared_error(y_test, reg.predict(X_test))
    median = {name: np.median(m, axis=0) for name, m in mse.items()}
    print(f"\ndiamonds, d = {d}, 10 non-IID clients, median test MSE over {n_repeats}")
    print(f"{'budget':>8}" + "".join(f"{name:>13}" for name in samplers) + "  sens/lev")
    for b, budget in enumerate(budgets):
        row = "".join(f"{median[name][b]:13.4f}" for name in samplers)
        ratio = median["sensitivity"][b] / median["leverage"][b]
        print(f"{budget:>8}{row}  {ratio:8.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 3 repeats")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.skip_speed:
        speed(100_000 if args.quick else 1_000_000, args.repeat)
    quality(3 if args.quick else 10)


if __name__ == "__main__":
    main()
