"""Label efficiency on eight real tables: test error against uniform sampling.

The FALE paper's protocol on each table of ``benchmarks/_tables.py``: a
random 20% test split, the rest spread over 10 clients by
:func:`skfal.non_iid_split` (Dirichlet alpha = 5 over target bins), budgets
of 2d, 5d and 10d labels (d = features + intercept). Every method selects
its rows across the clients and the model is learned by the same solver,
``FederatedActiveRegressor(training="global")`` (weighted least squares,
unpenalised intercept, minimum-norm slope), so the figures measure the
selection. Each cell: median test MSE over the repeats relative to uniform
sampling's, and W/T/L: a win (loss) is a median more than 2% below (above)
uniform's *and* a one-sided Mann-Whitney test at p < 0.05 saying the
method's errors are stochastically smaller (larger); anything else is a tie.

Run: ``python benchmarks/bench_label_efficiency.py`` (64 repeats, a few
minutes on 2 cores); ``--quick`` for 8 repeats on three tables;
``--speed`` for pivotal selection time against the leverage scores at
1,000,000 rows.
"""

import argparse
import time

import numpy as np
from _tables import TABLES, load_table
from joblib import Parallel, delayed
from scipy.stats import mannwhitneyu
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skfal import (
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
    UniformSampler,
    non_iid_split,
)

BUDGET_FACTORS = (2, 5, 10)


# The samplers compared by default; uniform is the baseline and comes first.
DEFAULT_METHODS = (
    "uniform",
    "FALE iid",
    "iid mix.5",
    "pivotal",
    "default",
    "sensitivity",
    "sens paper",
)


def all_methods():
    """Every sampler this benchmark knows, by name (``--methods`` picks)."""
    lev = LeverageScoreSampler
    sens = SensitivitySampler
    return {
        "uniform": UniformSampler(),
        "FALE iid": lev(sampling="iid", uniform_mix=0.0),  # the paper's rule
        "iid mix.5": lev(sampling="iid", uniform_mix=0.5),
        "pivotal": lev(sampling="pivotal", uniform_mix=0.0),
        "piv mix.2": lev(sampling="pivotal", uniform_mix=0.2),
        "piv mix.5": lev(sampling="pivotal", uniform_mix=0.5),
        "piv mix.8": lev(sampling="pivotal", uniform_mix=0.8),
        "piv unif": lev(sampling="pivotal", uniform_mix=1.0),
        "default": lev(),
        "sensitivity": sens(),
        "sens paper": sens(sampling="iid", uniform_mix=0.0, n_clusters=0.2),
        "sens k.2 mix.5": sens(n_clusters=0.2, uniform_mix=0.5),
    }


def methods(names=DEFAULT_METHODS):
    """The samplers compared, uniform first."""
    known = all_methods()
    others = [name for name in names if name != "uniform"]
    return {name: known[name] for name in ("uniform", *others)}


def one_split(X, y, repeat, samplers):
    """Test MSE of every sampler at every budget on one random split."""
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=repeat
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    groups = non_iid_split(y_train, n_clients=10, alpha=5.0, random_state=repeat)
    d = X.shape[1] + 1
    out = np.empty((len(samplers), len(BUDGET_FACTORS)))
    for m, sampler in enumerate(samplers.values()):
        for b, factor in enumerate(BUDGET_FACTORS):
            reg = FederatedActiveRegressor(
                budget=factor * d, sampler=sampler, random_state=repeat
            ).fit(X_train, y_train, groups=groups)
            out[m, b] = mean_squared_error(y_test, reg.predict(X_test))
    return out


def verdict(errors, baseline):
    """'W', 'L' or 'T' for a method's errors against the baseline's."""
    ratio = np.median(errors) / np.median(baseline)
    if ratio < 0.98 and mannwhitneyu(errors, baseline, alternative="less")[1] < 0.05:
        return "W"
    if ratio > 1.02 and mannwhitneyu(errors, baseline, alternative="greater")[1] < 0.05:
        return "L"
    return "T"


def quality(tables, n_repeats, n_jobs, names=DEFAULT_METHODS, plot=None):
    samplers = methods(names)
    names = list(samplers)
    results = {}
    for table in tables:
        X, y = load_table(table)
        runs = Parallel(n_jobs=n_jobs)(
            delayed(one_split)(X, y, r, samplers) for r in range(n_repeats)
        )
        results[table] = np.stack(runs)  # (repeat, method, budget)
        print(f"{table}: {X.shape[0]} rows, d = {X.shape[1] + 1}", flush=True)
    print()
    header = f"{'table':>15} {'budget':>6} " + " ".join(f"{n:>11}" for n in names)
    print("median test MSE / uniform's (W/T/L against uniform)")
    print(header)
    tally = {n: {"W": 0, "T": 0, "L": 0} for n in names[1:]}
    ratios = {n: {f: [] for f in BUDGET_FACTORS} for n in names}
    for table, errors in results.items():
        for b, factor in enumerate(BUDGET_FACTORS):
            base = errors[:, 0, b]
            cells = []
            for m, name in enumerate(names):
                ratio = np.median(errors[:, m, b]) / np.median(base)
                ratios[name][factor].append(ratio)
                mark = "" if m == 0 else verdict(errors[:, m, b], base)
                if m:
                    tally[name][mark] += 1
                cells.append(f"{ratio:9.3f} {mark:1}")
            print(f"{table:>15} {str(factor) + 'd':>6} " + " ".join(cells))
    print()
    print("median over tables of the ratio to uniform, and to FALE iid at 2d")
    for name in names:
        per_budget = " ".join(
            f"{f}d {np.median(ratios[name][f]):.3f}" for f in BUDGET_FACTORS
        )
        reference = ratios.get("FALE iid", ratios["uniform"])[2]
        to_iid = np.median(np.array(ratios[name][2]) / np.array(reference))
        wtl = "" if name == names[0] else "W/T/L {W}/{T}/{L}".format(**tally[name])
        print(f"{name:>12}: {per_budget}   2d vs FALE iid {to_iid:.3f}   {wtl}")
    if plot:
        save_plot(plot, list(results), names, ratios)


def save_plot(path, tables, names, ratios):
    """Median test MSE relative to uniform's, per table, one panel a budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(BUDGET_FACTORS), figsize=(11, 3.8), sharey=True)
    positions = np.arange(len(tables))
    for ax, factor in zip(axes, BUDGET_FACTORS, strict=True):
        for m, name in enumerate(names[1:]):
            offset = (m - (len(names) - 2) / 2) * 0.12
            ax.plot(
                np.array(ratios[name][factor]),
                positions + offset,
                "o",
                ms=4,
                label=name,
            )
        ax.axvline(1.0, color="k", lw=1)
        ax.set_title(f"{factor}d labels")
        ax.set_xlabel("median test MSE / uniform's")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(positions, tables)
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    print(f"saved {path}")


def speed(n_samples=1_000_000, n_features=20, budget=10_000):
    """Pivotal selection time against computing the leverage scores."""
    from skfal._linalg import leverage_scores
    from skfal._sampling import (
        inclusion_probabilities,
        mixed_probabilities,
        pivotal_select,
        tree_depth,
    )

    X = np.random.RandomState(0).standard_normal((n_samples, n_features))
    best_scores = best_select = np.inf
    for _ in range(3):
        start = time.perf_counter()
        scores, _ = leverage_scores(X)
        best_scores = min(best_scores, time.perf_counter() - start)
        start = time.perf_counter()
        pi = inclusion_probabilities(mixed_probabilities(scores, 0.5), budget)
        pivotal_select(X, pi, np.random.RandomState(1), tree_depth(n_samples, budget))
        best_select = min(best_select, time.perf_counter() - start)
    print(
        f"{n_samples} x {n_features}, budget {budget}: leverage scores "
        f"{best_scores:.3f} s, pivotal selection {best_select:.3f} s, "
        f"ratio {best_select / best_scores:.2f} (target <= 2)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--plot", help="save a figure of the ratios to this PNG")
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated, among: {', '.join(all_methods())}",
    )
    args = parser.parse_args()
    if args.speed:
        speed()
    else:
        tables = ["Computers", "Wage", "SLID"] if args.quick else list(TABLES)
        repeats = args.repeats or (8 if args.quick else 64)
        quality(tables, repeats, args.n_jobs, args.methods.split(","), args.plot)
