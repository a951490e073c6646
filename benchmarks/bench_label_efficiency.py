"""Label efficiency on eight real tables: test error and labels saved.

The FALE paper's protocol on each table of ``benchmarks/_tables.py``: a
random 20% test split, the rest spread over 10 clients by
:func:`skfal.non_iid_split` (Dirichlet alpha = 5 over target bins), or one
client with ``--centralized``; learning curves with budgets from 2d to 100d
labels (d = features + intercept). Every method selects its rows and the
model is learned by the same solver, ``FederatedActiveRegressor`` (weighted
least squares, unpenalised intercept, minimum-norm slope), so the figures
measure the selection.

Two reports per table and budget:

* the median test MSE relative to uniform sampling's, and W/T/L: a win
  (loss) is a median more than 2% below (above) uniform's *and* a one-sided
  Mann-Whitney test at p < 0.05 saying the method's errors are
  stochastically smaller (larger); anything else is a tie;
* the labels saved at equal error: uniform sampling's learning curve runs
  from 1d to 300d and every training row; the method's median *excess*
  error (test MSE minus, on the same split, that of the fit on every
  training row) is matched on uniform's median excess-error curve
  (log-log interpolation), giving the labels uniform needs for it; saved =
  1 - budget / those labels, with a 95% bootstrap interval over the splits.

Run: ``python benchmarks/bench_label_efficiency.py --centralized`` (64
repeats; ``--repeats 32`` took about 30 minutes on the shared 2-core
machine for three methods); the federated protocol (no ``--centralized``)
is about ten times slower. ``--methods`` picks the methods (``tempered``:
the default selection fitted with its weights raised to the power, among
0, 1/2 and 1, that the design-weighted cross-validation prefers;
``ridge-cv``: fitted by weighted ridge with the penalty it prefers). ``--quick``
for 8 repeats on three tables and five budgets; ``--ceiling`` for the
variance a residual-aware design could save at most; ``--speed`` for pivotal
selection time against the leverage scores at 1,000,000 rows;
``--adaptive-speed`` for the adaptive fit's time against the one-shot fit's;
``--bias`` for the share of the excess error that is bias, per fit.

The balance study (``--methods "uniform,default,random order,tree
deep,LPM,uniform LPM"``): the default's inclusion probabilities drawn by
pivotal sampling in a random order (no spatial balance), in the order of a
tree split to its last level, and by the local pivotal method (LPM2 of
Grafstrom, Lundstrom and Schelin, 2012, exact nearest neighbours in the
whitened space, ``O(n^2 d)``: tables of a few thousand rows), and uniform
probabilities drawn by LPM2; every selection fitted by the same weighted
least squares. ``LPM pooled``: ``LeverageScoreSampler(balance="local")``,
a scalable LPM (:mod:`skfal._balance`), on every table; ``--lpm-speed``
times it at 1,000,000 rows, ``--lpm-check`` checks its inclusion
frequencies.
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
from skfal._balance import pooled_local_pivotal
from skfal._linalg import (
    leverage_scores,
    weighted_least_squares,
    with_intercept,
)
from skfal._sampling import (
    draw_seed,
    inclusion_probabilities,
    mixed_probabilities,
    pivotal_select,
    pivotal_tournament,
    settle_pending,
    spatial_order,
    tree_depth,
)

# Budgets of the compared methods, in multiples of d; uniform sampling's
# learning curve runs further (up to every training row), so that each
# method's median error can be matched on it.
BUDGET_FACTORS = (2, 3, 5, 10, 20, 50, 100)
UNIFORM_FACTORS = (1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500)
UNIFORM_SHARES = (0.5, 0.7, 0.85)  # of the training rows, also on the curve
QUICK_FACTORS = (2, 5, 10, 20, 50)
N_BOOTSTRAP = 500


# The methods compared by default; uniform is the baseline and comes first.
DEFAULT_METHODS = (
    "uniform",
    "FALE iid",
    "iid mix.5",
    "pivotal",
    "default",
    "adaptive",
    "sensitivity",
    "sens paper",
)


def all_methods():
    """Every method this benchmark knows, by name (``--methods`` picks): the
    :class:`FederatedActiveRegressor` parameters besides the budget."""
    lev = LeverageScoreSampler
    sens = SensitivitySampler
    samplers = {
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
    known = {name: {"sampler": sampler} for name, sampler in samplers.items()}
    # A different lever: the default selection, fitted with the weights
    # raised to the power (0, 1/2 or 1) whose design-weighted 5-fold
    # cross-validated error is smallest (0: the unweighted fit, Ma, Mahoney
    # and Yu's LEVUNW; 1: the importance-weighted fit).
    known["tempered"] = {"sampler": lev(), "refit": "tempered"}
    # Another: the default selection, fitted by weighted ridge regression
    # with the penalty (a share of the total weight, the features being
    # standardized) that the design-weighted 5-fold cross-validation prefers.
    known["ridge-cv"] = {"sampler": lev(), "refit": "ridge-cv"}
    known["uniform ridge-cv"] = {"sampler": UniformSampler(), "refit": "ridge-cv"}
    # The balance study: the default's probabilities (or uniform ones)
    # drawn by other dependent designs (see BALANCES).
    for name in BALANCES:
        known[name] = {"balance": name}
    # The scalable LPM, as the sampler offers it.
    known["LPM pooled"] = {"sampler": lev(balance="local")}
    known["adaptive"] = {"design": "adaptive"}
    known["adaptive p.5"] = {"design": "adaptive", "pilot_share": 0.5}
    return known


def methods(names=DEFAULT_METHODS, baseline="uniform"):
    """The methods compared, uniform first (fitted as ``baseline`` says)."""
    known = all_methods()
    known["uniform"] = known[baseline]
    others = [name for name in names if name != "uniform"]
    return {name: known[name] for name in ("uniform", *others)}


def budgets(factors, d, n_rows):
    """Label budgets ``round(f d)`` that fit in ``n_rows`` (``NaN`` beyond)."""
    out = np.array([round(f * d) for f in factors], dtype=float)
    out[out > n_rows] = np.nan
    return out


def curve_budgets(d, n_train):
    """Uniform sampling's learning curve: ``UNIFORM_FACTORS`` times d and
    ``UNIFORM_SHARES`` of the rows, below ``n_train``, then every row."""
    points = {round(f * d) for f in UNIFORM_FACTORS}
    points |= {round(q * n_train) for q in UNIFORM_SHARES}
    return np.array(sorted(b for b in points if b < n_train) + [n_train], dtype=float)


def one_split(X, y, repeat, specs, factors, centralized):
    """Test MSE of every method at every budget on one random split.

    Returns ``(errors, curve)``: ``errors[m, b]`` of method ``m`` at
    ``factors[b] * d`` labels and uniform sampling's learning curve at
    :func:`curve_budgets`, the last point every training row.
    """
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=repeat
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    groups = (
        None
        if centralized
        else non_iid_split(y_train, n_clients=10, alpha=5.0, random_state=repeat)
    )
    d, n_train = X.shape[1] + 1, X_train.shape[0]

    def error(budget, params):
        if np.isnan(budget):
            return np.nan
        params = dict(params)
        if "balance" in params:
            rows, weights = balanced_selection(
                params["balance"], X_train, int(budget), repeat
            )
            coef, intercept = weighted_least_squares(
                X_train[rows], y_train[rows], weights, 0.0, True
            )
            return mean_squared_error(y_test, X_test @ coef + intercept)
        refit = params.pop("refit", None)
        reg = FederatedActiveRegressor(
            budget=int(budget), random_state=repeat, **params
        ).fit(X_train, y_train, groups=groups)
        if refit is not None:
            rows = reg.sample_indices_
            coef, intercept, _ = REFITS[refit](
                X_train[rows],
                y_train[rows],
                reg.sample_weight_,
                np.random.RandomState(repeat),
            )
            return mean_squared_error(y_test, X_test @ coef + intercept)
        return mean_squared_error(y_test, reg.predict(X_test))

    errors = np.array(
        [
            [error(b, params) for b in budgets(factors, d, n_train)]
            for params in specs.values()
        ]
    )
    curve = np.array([error(b, specs["uniform"]) for b in curve_budgets(d, n_train)])
    return errors, curve


_SNAP = 1e-12


def local_pivotal(Z, pi, rng):
    """LPM2 (Grafstrom, Lundstrom and Schelin, 2012): rows of ``Z`` with
    inclusion probabilities ``pi``; sorted selected rows.

    A uniformly drawn open row and its nearest open row (Euclidean, exact,
    by brute force) duel as in pivotal sampling, until at most one row is
    open, settled by a Bernoulli draw. Each duel keeps both rows' expected
    values, so every inclusion probability is exact, whichever pairs meet.
    """
    p = np.clip(np.asarray(pi, dtype=float), 0.0, 1.0)
    p[p < _SNAP] = 0.0
    p[p > 1.0 - _SNAP] = 1.0
    rows = np.flatnonzero((p > 0.0) & (p < 1.0))  # the open rows, compacted
    A = np.ascontiguousarray(Z[rows], dtype=float)
    sq = np.einsum("ij,ij->i", A, A)
    alive = np.ones(rows.shape[0], dtype=bool)
    n_open = rows.shape[0]
    while n_open > 1:
        if 2 * n_open < rows.shape[0]:  # compact when half have closed
            rows, A, sq = rows[alive], A[alive], sq[alive]
            alive = np.ones(rows.shape[0], dtype=bool)
        live = np.flatnonzero(alive)
        a = live[rng.randint(live.shape[0])]
        distance = sq - 2.0 * (A @ A[a])
        distance[~alive] = np.inf
        distance[a] = np.inf
        b = int(np.argmin(distance))
        i, j = rows[a], rows[b]
        total = p[i] + p[j]
        u = rng.random_sample()
        if total < 1.0:  # one takes the total, the other 0
            i_wins = u * total < p[i]
            p[i], p[j] = (total, 0.0) if i_wins else (0.0, total)
        else:  # one is selected, the other keeps total - 1
            i_wins = u * (2.0 - total) < 1.0 - p[j]
            p[i], p[j] = (1.0, total - 1.0) if i_wins else (total - 1.0, 1.0)
        for position, row in ((a, i), (b, j)):
            if p[row] < _SNAP or p[row] > 1.0 - _SNAP:
                p[row] = float(p[row] > 0.5)
                alive[position] = False
                n_open -= 1
    last = rows[alive]
    if last.shape[0]:
        p[last[0]] = float(rng.random_sample() < p[last[0]])
    return np.flatnonzero(p > 0.5)


def _in_random_order(Z, pi, rng):
    """Pivotal sampling with the rows duelling in a random order."""
    outcome = pivotal_tournament(pi, rng, rng.permutation(pi.shape[0]))
    rows = outcome.selected
    if outcome.pending >= 0 and settle_pending(
        np.array([outcome.pending_probability]), rng
    ):
        rows = np.sort(np.append(rows, outcome.pending))
    return rows


# name: (how the rows are drawn from the probabilities, uniform probabilities)
BALANCES = {
    "random order": (_in_random_order, False),
    # pivotal_select builds the tree to the depth asked (capped at log2 n).
    "tree deep": (lambda Z, pi, rng: pivotal_select(Z, pi, rng, 60).indices, False),
    "LPM": (local_pivotal, False),
    "uniform LPM": (local_pivotal, True),
}


def balanced_selection(name, X, budget, seed):
    """``(rows, weights)``: ``budget`` rows of ``X`` by the design ``name``
    of :data:`BALANCES`, on the default's inclusion probabilities (leverage
    with an intercept, mixed 50/50 with uniform) or uniform ones, in the
    whitened space ``[X, 1] W``, where the squared row norms are the
    leverage scores; Horvitz-Thompson weights ``1 / pi``."""
    draw, uniform = BALANCES[name]
    scores, W = leverage_scores(X, intercept=True)
    Z = with_intercept(X) @ W
    if uniform:
        pi = np.full(X.shape[0], budget / X.shape[0])
    else:
        pi = inclusion_probabilities(mixed_probabilities(scores, 0.5), budget)
    rng = np.random.RandomState(draw_seed(np.random.RandomState(seed)))
    rows = draw(Z, pi, rng)
    return rows, 1.0 / pi[rows]


TEMPER_POWERS = (0.0, 0.5, 1.0)
RIDGE_SHARES = (0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0)


def _tempered(X, y, weights, power):
    return weighted_least_squares(X, y, weights**power, 0.0, True)


def _ridge(X, y, weights, share):
    return weighted_least_squares(X, y, weights, share * weights.sum(), True)


def cv_choice(fit, candidates, X, y, weights, rng, n_folds=5):
    """``fit(X, y, weights, c)`` with the candidate ``c`` whose
    design-weighted cross-validated error ``sum_i w_i (y_i -
    f_{-k(i)}(x_i))^2`` (an estimate of the error on every row) is
    smallest; ``(coef, intercept, c)``."""
    folds = rng.permutation(y.shape[0]) % n_folds
    best = (np.inf, candidates[-1])
    for candidate in candidates:
        cv = 0.0
        for k in range(n_folds):
            train, test = folds != k, folds == k
            coef, intercept = fit(X[train], y[train], weights[train], candidate)
            residual = y[test] - X[test] @ coef - intercept
            cv += weights[test] @ residual**2
        best = min(best, (cv, candidate))
    return (*fit(X, y, weights, best[1]), best[1])


def tempered_fit(X, y, weights, rng):
    """Weighted least squares with the weights raised to the power of
    ``TEMPER_POWERS`` the cross-validation prefers (:func:`cv_choice`)."""
    return cv_choice(_tempered, TEMPER_POWERS, X, y, weights, rng)


def ridge_cv_fit(X, y, weights, rng):
    """Weighted ridge with the penalty ``share * sum(w)`` (``RIDGE_SHARES``)
    the cross-validation prefers (:func:`cv_choice`)."""
    return cv_choice(_ridge, RIDGE_SHARES, X, y, weights, rng)


REFITS = {"tempered": tempered_fit, "ridge-cv": ridge_cv_fit}


def verdict(errors, baseline):
    """'W', 'L' or 'T' for a method's errors against the baseline's."""
    ratio = np.median(errors) / np.median(baseline)
    if ratio < 0.98 and mannwhitneyu(errors, baseline, alternative="less")[1] < 0.05:
        return "W"
    if ratio > 1.02 and mannwhitneyu(errors, baseline, alternative="greater")[1] < 0.05:
        return "L"
    return "T"


def labels_needed(error, points, curve_errors):
    """Labels uniform sampling needs for a median excess ``error``, on its curve.

    The curve (median excess errors at ``points``, made non-increasing) is
    interpolated linearly in log-log; an error above the curve's first
    point or below its last is clamped there (the saving is then a bound).
    """
    n = points
    e = np.maximum(np.minimum.accumulate(curve_errors), 1e-300)
    if error >= e[0]:
        return n[0]
    if error <= e[-1]:
        return n[-1]
    k = int(np.argmax(e <= error))  # first point at or below the error
    t = np.log(e[k - 1] / error) / np.log(e[k - 1] / e[k])
    return float(np.exp(np.log(n[k - 1]) + t * np.log(n[k] / n[k - 1])))


def savings(errors, curve, factors, d, n_train, rng):
    """Labels saved at equal median excess error, ``1 - budget / uniform's
    labels``, per method and budget, and a 95% bootstrap interval over the
    splits.

    The excess error of a fit is its test MSE minus, on the same split, the
    test MSE of the least squares on every training row (the curve's last
    point): the part of the error that labels buy down, without the test
    set's own noise, which all methods share on a split. ``errors`` (split,
    method, budget) and ``curve`` (split, point) are resampled together,
    split by split, so the interval keeps the methods paired on each split.
    """
    n_splits, n_methods, n_budgets = errors.shape
    method_budgets = budgets(factors, d, n_train)
    points = curve_budgets(d, n_train)[:-1]
    full = curve[:, -1]
    excess = errors - full[:, None, None]
    curve_excess = curve[:, :-1] - full[:, None]

    def saved(rows):
        med = np.median(excess[rows], axis=0)
        curve_med = np.median(curve_excess[rows], axis=0)
        out = np.full((n_methods, n_budgets), np.nan)
        for m in range(n_methods):
            for b in range(n_budgets):
                if not np.isnan(method_budgets[b]):
                    need = labels_needed(med[m, b], points, curve_med)
                    out[m, b] = 1.0 - method_budgets[b] / need
        return out

    point = saved(np.arange(n_splits))
    boot = np.stack(
        [saved(rng.randint(n_splits, size=n_splits)) for _ in range(N_BOOTSTRAP)]
    )
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return point, low, high


def quality(
    tables,
    n_repeats,
    n_jobs,
    names,
    factors,
    centralized,
    save=None,
    baseline="uniform",
):
    specs = methods(names, baseline)
    names = list(specs)
    results = {}
    for table in tables:
        X, y = load_table(table)
        runs = Parallel(n_jobs=n_jobs)(
            delayed(one_split)(X, y, r, specs, factors, centralized)
            for r in range(n_repeats)
        )
        errors = np.stack([run[0] for run in runs])  # (repeat, method, budget)
        curve = np.stack([run[1] for run in runs])  # (repeat, point)
        n_train = X.shape[0] - int(np.ceil(0.2 * X.shape[0]))
        results[table] = (errors, curve, X.shape[1] + 1, n_train)
        print(f"{table}: {X.shape[0]} rows, d = {X.shape[1] + 1}", flush=True)
    report(results, names, factors)
    if save:
        np.savez(
            save,
            names=names,
            factors=factors,
            tables=list(results),
            **{f"{t}_errors": r[0] for t, r in results.items()},
            **{f"{t}_curve": r[1] for t, r in results.items()},
            **{f"{t}_shape": r[2:] for t, r in results.items()},
        )
        print(f"saved {save}")
    return results


def load(path):
    """``(results, names, factors)`` of a run saved with ``--save``."""
    saved = np.load(path)
    results = {
        str(t): (
            saved[f"{t}_errors"],
            saved[f"{t}_curve"],
            *(int(v) for v in saved[f"{t}_shape"]),
        )
        for t in saved["tables"]
    }
    return results, [str(n) for n in saved["names"]], tuple(saved["factors"])


def report(results, names, factors):
    """Print the error ratios with verdicts and the labels saved, per cell,
    then the medians over the tables."""
    rng = np.random.RandomState(0)
    print("\nper table and budget: median test MSE / uniform's (W/T/L against")
    print("uniform), labels saved at equal median excess error (over the fit on")
    print("every training row) [95% bootstrap interval]; >= marks a method")
    print("better than uniform at the last point of its curve (a lower bound)")
    tally = {n: {"W": 0, "T": 0, "L": 0} for n in names[1:]}
    ratios = {n: {f: [] for f in factors} for n in names}
    saved = {n: {f: [] for f in factors} for n in names[1:]}
    for table, (errors, curve, d, n_train) in results.items():
        point, low, high = savings(errors, curve, factors, d, n_train, rng)
        points = curve_budgets(d, n_train)[:-1]
        most = 1.0 - budgets(factors, d, n_train) / points[-1]  # clamped there
        for b, factor in enumerate(factors):
            if np.isnan(errors[0, 0, b]):
                continue
            base = errors[:, 0, b]
            cells = []
            for m, name in enumerate(names[1:], start=1):
                ratio = np.median(errors[:, m, b]) / np.median(base)
                mark = verdict(errors[:, m, b], base)
                tally[name][mark] += 1
                ratios[name][factor].append(ratio)
                saved[name][factor].append(point[m, b])
                bound = ">=" if point[m, b] >= most[b] - 1e-12 else ""
                cells.append(
                    f"{name} {ratio:.3f} {mark} {bound}{point[m, b]:+.0%} "
                    f"[{low[m, b]:+.0%}, {high[m, b]:+.0%}]"
                )
            print(f"{table:>15} {str(factor) + 'd':>5}: " + " | ".join(cells))
    print("\nmedian over tables: labels saved at equal error (error ratio)")
    print(f"{'method':>12} " + " ".join(f"{str(f) + 'd':>13}" for f in factors))
    for name in names[1:]:
        cells = [
            f"{np.median(saved[name][f]):+6.0%} ({np.median(ratios[name][f]):.2f})"
            if saved[name][f]
            else f"{'-':>13}"
            for f in factors
        ]
        wtl = "W/T/L {W}/{T}/{L}".format(**tally[name])
        if "FALE iid" in ratios and factors[0] == 2:  # the user guide's column
            to_iid = np.array(ratios[name][2]) / np.array(ratios["FALE iid"][2])
            wtl += f"   2d vs FALE iid {np.median(to_iid):.3f}"
        print(f"{name:>12} " + " ".join(cells) + f"   {wtl}")
    if "default" in names:
        against_default(results, names, factors)
    return saved


def against_default(results, names, factors):
    """Every other method against the default, over the cells: W/T/L (the
    rule of :func:`verdict`), the median error ratio, the cells where the
    median error is below the default's with a one-sided sign test (no
    difference: each cell below with probability 1/2), and the median over
    the cells of the difference in labels saved."""
    from scipy.stats import binomtest

    rng = np.random.RandomState(0)
    point = {t: savings(*r[:2], factors, *r[2:], rng)[0] for t, r in results.items()}
    m0 = names.index("default")
    print("\nagainst the default, over the cells")
    for m, name in enumerate(names[1:], start=1):
        if m == m0:
            continue
        tally, ratios, diffs = {"W": 0, "T": 0, "L": 0}, [], []
        for table, (errors, *_) in results.items():
            for b in range(len(factors)):
                if np.isnan(errors[0, 0, b]):
                    continue
                tally[verdict(errors[:, m, b], errors[:, m0, b])] += 1
                ratios.append(np.median(errors[:, m, b]) / np.median(errors[:, m0, b]))
                diffs.append(point[table][m, b] - point[table][m0, b])
        below = int(np.sum(np.array(ratios) < 1.0))
        p = binomtest(below, len(ratios), alternative="greater").pvalue
        print(
            f"{name:>12}: W/T/L {tally['W']}/{tally['T']}/{tally['L']}, error "
            f"ratio median {np.median(ratios):.3f} [{min(ratios):.3f}, "
            f"{max(ratios):.3f}], below in {below} of {len(ratios)} cells "
            f"(sign test p = {p:.3g}), labels saved minus the default's: "
            f"median {np.median(diffs):+.0%}"
        )


def save_plot(path, results, names, factors):
    """Labels saved at equal error against the budget: the median over the
    tables (thick) and each table (thin), one panel a method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.RandomState(0)
    shown = names[1:]
    fig, axes = plt.subplots(
        1, len(shown), figsize=(3.2 * len(shown), 3.4), sharey=True, squeeze=False
    )
    per_table = {
        t: savings(r[0], r[1], factors, r[2], r[3], rng)[0] for t, r in results.items()
    }
    for ax, (m, name) in zip(axes[0], enumerate(shown, start=1), strict=True):
        for point in per_table.values():
            ax.plot(factors, 100 * point[m], color="0.7", lw=0.8)
        median = np.nanmedian(np.stack([p[m] for p in per_table.values()]), axis=0)
        ax.plot(factors, 100 * median, "o-", color="C0", lw=2, label="median")
        ax.axhline(0, color="k", lw=0.8)
        ax.axhline(100 / 3, color="C3", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(factors, [f"{f}d" for f in factors], fontsize=7)
        ax.set_ylim(-60, 100)
        ax.set_title(name)
        ax.set_xlabel("labels bought")
    axes[0, 0].set_ylabel("labels saved vs uniform (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"saved {path}")


def ceiling(tables):
    """What a residual-aware design could buy at most, per table.

    The first-order variance of an importance-weighted least squares drawn
    with probabilities ``p`` is ``sum_i h_i e_i^2 / p_i`` (``h`` leverage,
    ``e`` residuals of the fit on every row, features standardized);
    printed relative to uniform sampling's, for the default (leverage mixed
    50/50 with uniform), the adaptive design's target with the residual
    scale learned from every row (least squares of ``|e|`` on the features,
    the best its model can do), and the oracle ``sqrt(h) |e|`` (A-optimal,
    knowing every residual). Below 0.67 a design could save a third of the
    labels, for large budgets.
    """
    print("first-order variance relative to uniform sampling's")
    print(f"{'table':>15} {'default':>8} {'learned':>8} {'oracle':>8}")
    for table in tables:
        X, y = load_table(table)
        A = np.hstack([StandardScaler().fit_transform(X), np.ones((len(y), 1))])
        Q, _ = np.linalg.qr(A)
        h = np.einsum("ij,ij->i", Q, Q)
        e = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
        learned = A @ np.linalg.lstsq(A, np.abs(e), rcond=None)[0]
        learned = np.maximum(learned, 0.1 * np.abs(e).mean())
        ratios = [
            first_order_variance(p, h, e)
            for p in (mixed(h), mixed(h * learned), np.sqrt(h) * np.abs(e))
        ]
        print(f"{table:>15} " + " ".join(f"{r:8.2f}" for r in ratios))


def first_order_variance(p, h, e):
    """``sum h e^2 / p`` for probabilities ``p``, relative to uniform's."""
    return np.sum(h * e**2 / (p / p.sum())) / np.sum(h * e**2) / len(e)


def mixed(scores):
    """Scores mixed 50/50 with uniform, as probabilities."""
    return 0.5 * scores / scores.sum() + 0.5 / len(scores)


def bias(tables, n_seeds=40, factors=(5, 20, 50)):
    """How much of each fit's excess error is bias against the fit on every
    row: on one split per table, ``n_seeds`` selections per budget; the
    squared bias is the test-set mean of ``(mean_s f_s(x) - f_full(x))^2``
    (less the Monte Carlo part, ``var / n_seeds``), printed as a share of
    the mean excess error ``E (f_s(x) - f_full(x))^2``, for uniform, the
    default and the refits (an unweighted fit on a leverage sample targets
    another line when the linear model is wrong; a ridge fit is shrunk)."""
    print(
        "share of the excess error that is bias (uniform / default / "
        + " / ".join(REFITS)
        + ")"
    )
    for table in tables:
        X, y = load_table(table)
        X_train, X_test, y_train, _ = train_test_split(
            X, y, test_size=0.2, random_state=0
        )
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        full = FederatedActiveRegressor(budget=1.0).fit(X_train, y_train)
        f_full = full.predict(X_test)
        d = X.shape[1] + 1
        cells = []
        for factor in factors:
            budget = int(round(factor * d))
            if budget >= X_train.shape[0]:
                continue
            preds = {"uniform": [], "default": [], **{r: [] for r in REFITS}}
            for seed in range(n_seeds):
                uni = FederatedActiveRegressor(
                    budget=budget, sampler=UniformSampler(), random_state=seed
                ).fit(X_train, y_train)
                preds["uniform"].append(uni.predict(X_test))
                reg = FederatedActiveRegressor(budget=budget, random_state=seed)
                reg.fit(X_train, y_train)
                preds["default"].append(reg.predict(X_test))
                rows = reg.sample_indices_
                for name, refit in REFITS.items():
                    coef, intercept, _ = refit(
                        X_train[rows],
                        y_train[rows],
                        reg.sample_weight_,
                        np.random.RandomState(seed),
                    )
                    preds[name].append(X_test @ coef + intercept)
            shares = []
            for p in preds.values():
                p = np.array(p)
                var = p.var(axis=0, ddof=1).mean()
                sq_bias = ((p.mean(axis=0) - f_full) ** 2).mean() - var / n_seeds
                shares.append(max(sq_bias, 0.0) / ((p - f_full) ** 2).mean())
            cells.append(f"{factor}d " + "/".join(f"{v:.2f}" for v in shares))
        print(f"{table:>15}: " + "  ".join(cells), flush=True)


def adaptive_speed(n_samples=1_000_000, n_features=20, budget=10_000):
    """The adaptive fit's time against the one-shot fit's (target <= 3)."""
    rng = np.random.RandomState(0)
    X = rng.standard_normal((n_samples, n_features))
    signal = X @ rng.standard_normal(n_features)
    y = signal + (0.5 + np.abs(signal)) * rng.standard_normal(n_samples)
    best = {}
    for _ in range(3):
        for design in ("one-shot", "adaptive"):
            reg = FederatedActiveRegressor(budget=budget, design=design, random_state=0)
            start = time.perf_counter()
            reg.fit(X, y)
            elapsed = time.perf_counter() - start
            best[design] = min(best.get(design, np.inf), elapsed)
    print(
        f"{n_samples} x {n_features}, budget {budget}: one-shot fit "
        f"{best['one-shot']:.2f} s, adaptive fit {best['adaptive']:.2f} s, ratio "
        f"{best['adaptive'] / best['one-shot']:.2f} (target <= 3; scale model "
        f"used: {reg.scale_used_})"
    )


def lpm_check(n_rows=400, n_draws=4000):
    """Inclusion frequencies of :func:`pooled_local_pivotal` against ``pi``.

    Unequal probabilities (two rows certain, two impossible, the rest
    small enough to be pooled), buckets of 16 open rows; prints the largest
    standardized deviation and the chi-square p-value of the sum of the
    squared ones (a check, not a test: the rows' indicators are dependent).
    """
    from scipy.stats import chi2

    rng = np.random.RandomState(0)
    Z = rng.standard_normal((n_rows, 3))
    pi = rng.uniform(0.005, 0.3, n_rows)
    pi *= 30 / pi.sum()
    pi[:2], pi[2:4] = 1.0, 0.0
    order = spatial_order(Z, 9)
    counts, sizes = np.zeros(n_rows), set()
    for _ in range(n_draws):
        rows = pooled_local_pivotal(pi, order, lambda r: Z[r], rng, bucket=16)
        counts[rows] += 1
        sizes.add(rows.shape[0])
    open_ = (pi > 0) & (pi < 1)
    freq = counts / n_draws
    z = (freq[open_] - pi[open_]) / np.sqrt(pi[open_] * (1 - pi[open_]) / n_draws)
    print(
        f"{n_draws} draws of {n_rows} rows, sum(pi) = {pi.sum():.2f}: sizes "
        f"{sorted(sizes)}, certain rows drawn {freq[:2]}, impossible {freq[2:4]}, "
        f"max |z| {np.abs(z).max():.2f}, chi-square p "
        f"{chi2.sf(np.sum(z**2), open_.sum()):.3f}"
    )


def lpm_speed(n_samples=1_000_000, n_features=20, budget=10_000, repeats=2):
    """A fit with ``LeverageScoreSampler(balance="local")`` against the
    default fit (target <= 3)."""
    local = LeverageScoreSampler(balance="local")
    rng = np.random.RandomState(0)
    X = rng.standard_normal((n_samples, n_features))
    y = X @ rng.standard_normal(n_features) + rng.standard_normal(n_samples)
    best = {}
    for _ in range(repeats):
        start = time.perf_counter()
        FederatedActiveRegressor(budget=budget, random_state=0).fit(X, y)
        best["default"] = min(best.get("default", np.inf), time.perf_counter() - start)
        start = time.perf_counter()
        FederatedActiveRegressor(budget=budget, sampler=local, random_state=0).fit(X, y)
        best["LPM"] = min(best.get("LPM", np.inf), time.perf_counter() - start)
    print(
        f"{n_samples} x {n_features}, budget {budget}: default fit "
        f"{best['default']:.2f} s, LPM pooled fit {best['LPM']:.2f} s, ratio "
        f"{best['LPM'] / best['default']:.2f} (target <= 3)"
    )


def speed(n_samples=1_000_000, n_features=20, budget=10_000):
    """Pivotal selection time against computing the leverage scores."""
    from skfal._linalg import leverage_scores
    from skfal._sampling import (
        inclusion_probabilities,
        mixed_probabilities,
        pivotal_select,
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
    parser.add_argument("--adaptive-speed", action="store_true")
    parser.add_argument("--lpm-speed", action="store_true")
    parser.add_argument("--lpm-check", action="store_true")
    parser.add_argument(
        "--bias", action="store_true", help="bias share of the tempered fit's error"
    )
    parser.add_argument(
        "--ceiling", action="store_true", help="variance a design could save at most"
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--tables", help="comma-separated, among the eight")
    parser.add_argument(
        "--centralized",
        action="store_true",
        help="one client",
    )
    parser.add_argument("--plot", help="save a figure of the labels saved to this PNG")
    parser.add_argument(
        "--baseline",
        default="uniform",
        help="the method uniform sampling is fitted as (e.g. 'uniform ridge-cv')",
    )
    parser.add_argument("--save", help="save the errors to this .npz")
    parser.add_argument("--load", help="report (and plot) a run saved with --save")
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated, among: {', '.join(all_methods())}",
    )
    args = parser.parse_args()
    if args.speed:
        speed()
    elif args.adaptive_speed:
        adaptive_speed()
    elif args.lpm_speed:
        lpm_speed()
    elif args.lpm_check:
        lpm_check()
    elif args.bias:
        bias(args.tables.split(",") if args.tables else list(TABLES))
    elif args.ceiling:
        ceiling(list(TABLES))
    elif args.load:
        results, names, factors = load(args.load)
        report(results, names, factors)
        if args.plot:
            save_plot(args.plot, results, names, factors)
    else:
        tables = ["Computers", "Wage", "SLID"] if args.quick else list(TABLES)
        if args.tables:
            tables = args.tables.split(",")
        repeats = args.repeats or (8 if args.quick else 64)
        factors = QUICK_FACTORS if args.quick else BUDGET_FACTORS
        names = args.methods.split(",")
        results = quality(
            tables,
            repeats,
            args.n_jobs,
            names,
            factors,
            args.centralized,
            args.save,
            args.baseline,
        )
        if args.plot:
            save_plot(args.plot, results, list(methods(names)), factors)
