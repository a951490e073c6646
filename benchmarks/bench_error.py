"""Coverage of :func:`skfal.estimate_error`'s interval on real tables.

Every label of the tables is known, so the fitted model's true error on the
pool can be computed and compared with the interval built from the bought
rows alone. Per split: a random 80% of the table is the pool (the FALE
protocol's training split, features standardized on it; the 20% test part
plays no role here), a :class:`skfal.FederatedActiveRegressor` buys
``budget`` labels (budgets 2d, 5d, 10d, 20d, 50d, ``d`` features +
intercept; ``min(budget, pool / 2)``) with a selection that changes with the
split, and its true mean squared error over the pool is the target.

Methods estimating it (nominal 90%):

* ``local + nested`` / ``hajek + nested``: :func:`skfal.estimate_error`
  (10 folds, 5 nested repeats, one call per split) with the local-mean
  (Grafström-Schelin) or Hájek design variance plus nested
  cross-validation's term; the default is the local one for pivotal
  samples, Hájek's for i.i.d. draws;
* ``local design only`` / ``hajek design only``: the same estimate with
  the design variance alone (the interval before nested cross-validation);
* ``in-sample``: the unweighted mean of the model's squared errors at its
  own training rows, +- 1.645 s / sqrt(n) (what one gets by ignoring both
  the overfitting and the design);
* ``plain CV``: 10-fold cross-validation over the bought rows, unweighted
  fits and means (it ignores the design), +- 1.645 s / sqrt(n).
* ``default`` (the normal quantile), ``default t`` (Student's t with
  ``cv - 1`` degrees of freedom, what ``estimate_error`` reports) and
  ``default log`` (the log scale): the interval of the default variance,
  from the call's estimate and variance.

Each cell: coverage (share of splits whose interval holds the true error),
the median of ``|estimate - truth| / truth`` and the median interval width
relative to the truth. A coverage is flagged ``*`` when its binomial
95% interval lies wholly outside [0.85, 0.95].

``--active``: the same for :class:`skfal.ActiveEstimator` wrapping
``LogisticRegression`` on scikit-learn's digits (a random 70% as the pool,
budgets of 10% and 20% of it, the default model-based selection and uniform
sampling; the error rate, 5 folds).

``--classification [TABLE ...]``: :class:`skfal.ActiveEstimator`
(``LogisticRegression``) on ``bench_any_model.py``'s classification tables
at 1%, 2%, 5% and 10% of the pool, with the doubt-driven default,
Algorithm 1 and uniform rounds; a refused estimate (a rare class missing
from a fold) is counted.

``--synthetic``: the variance check on 4,000 synthetic rows (budgets 5d,
10d, 20d; uniform i.i.d. and leverage pivotal; ``--repeats`` selections):
the true variance of ``estimate - truth`` over the mean design variance,
and the coverage of both intervals.

``--doubt``: :class:`skfal.ActiveEstimator` (``LogisticRegression``, 100
labels of a two-class table of 800 rows, one table per seed) with its
doubt-driven default selection and with Algorithm 1: how often each
interval holds the true error rate, how often it lies below it, and the
weighted estimate's error for a fixed model (fitted on fresh rows), which
correct weights make zero on average.

``--stopping``: the stopping rule against fixed budgets. A labeling loop
buys batches of ``2d`` labels (a nested selection: leverage i.i.d. draws
mixed with uniform, one seed per session) from ``2d`` up to ``40d``, and
stops when :meth:`expected_gain`'s upper bound for the next batch is below
1% of the estimated error. The oracle knows the mean true learning curve
over the sessions and stops at the first budget whose next batch improves
it by less than 1%. Reported: the median labels the rule spends, the
median ratio of its true error to the error at the oracle's budget (same
session), and that ratio for fixed budgets of 10d, 20d and 40d.

Run: ``python benchmarks/bench_error.py --repeats 100`` (tables one after
another, each cell printed when done; selections run as joblib tasks,
``--n-jobs``); ``--quick`` for three tables, 20 splits, budgets 5d and 20d.
Output: Markdown tables on standard output.
"""

import argparse
import time
import warnings

import numpy as np
from _tables import TABLES, load_table
from joblib import Parallel, delayed
from scipy.stats import binomtest, norm
from scipy.stats import t as student_t
from sklearn.datasets import load_digits
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import KFold, train_test_split
from sklearn.preprocessing import StandardScaler

from skfal import (
    ActiveEstimator,
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
    UniformSampler,
    estimate_error,
)
from skfal._error import _combined_variance
from skfal._federated._error import (
    hajek_variance,
    local_variance,
    neighbourhoods,
    scaled_points,
)

BUDGET_FACTORS = (2, 5, 10, 20, 50)
CONFIDENCE = 0.9
Z = norm.ppf(0.5 + CONFIDENCE / 2)
SAMPLERS = {
    "leverage pivotal": lambda: LeverageScoreSampler(),
    "leverage iid": lambda: LeverageScoreSampler(sampling="iid", uniform_mix=0.0),
    "uniform pivotal": lambda: UniformSampler(sampling="pivotal"),
    "uniform iid": lambda: UniformSampler(),
}
ESTIMATORS = ("design local", "design hajek", "in-sample", "plain CV")


def _plain(values):
    mean = float(np.mean(values))
    half = Z * float(np.std(values, ddof=1)) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def _design_intervals(r, X_rows):
    """The interval of ``r`` with each variance: the local and Hajek design
    variances alone (``design only``), and each combined with the nested
    cross-validation's (what :func:`skfal.estimate_error` reports)."""
    n_folds = int(r.fold.max()) + 1
    designs = {
        "local": local_variance(
            r.held_out, r.sample_weight, neighbourhoods(scaled_points(X_rows), 3)
        ),
        "hajek": hajek_variance(r.held_out, r.sample_weight),
    }
    out = {}
    for name, total in designs.items():
        design = total / r.n_samples**2
        for label, var in (
            (f"{name} design only", design),
            (f"{name} + nested", _combined_variance(design, r.nested_excess, n_folds)),
        ):
            half = Z * np.sqrt(var)
            out[label] = (r.estimate, max(r.estimate - half, 0.0), r.estimate + half)
    out.update(_shapes(r, n_folds))
    return out


def _shapes(r, n_folds):
    """Candidate shapes of the default interval, from its estimate and
    variance alone (what every party holds, over clients too): normal (what
    ``estimate_error`` reports), on the log scale (delta method: ``estimate
    exp(-+ z sd / estimate)``, wider above for a skewed loss), and Student's
    ``t`` with ``cv - 1`` degrees of freedom (the fold-level noise)."""
    sd = np.sqrt(r.variance)
    estimate = r.estimate
    out = {"default": (estimate, r.low, r.high)}
    if estimate > 0:
        spread = np.exp(Z * sd / estimate)
        out["default log"] = (estimate, estimate / spread, estimate * spread)
    else:
        out["default log"] = (estimate, r.low, r.high)
    half = student_t.ppf(0.5 + CONFIDENCE / 2, n_folds - 1) * sd
    out["default t"] = (estimate, max(estimate - half, 0.0), estimate + half)
    return out


def one_split(table, X, y, repeat, factor, sampler_name):
    """Every estimator's (estimate, low, high) and the true pool error."""
    X_pool, _, y_pool, _ = train_test_split(X, y, test_size=0.2, random_state=repeat)
    X_pool = StandardScaler().fit_transform(X_pool)
    n_samples = X_pool.shape[0]
    budget = min(factor * (X_pool.shape[1] + 1), n_samples // 2)
    reg = FederatedActiveRegressor(
        budget=budget, sampler=SAMPLERS[sampler_name](), random_state=repeat
    ).fit(X_pool, y_pool)
    truth = float(np.mean((reg.predict(X_pool) - y_pool) ** 2))
    y_bought = np.full(n_samples, np.nan)
    rows = reg.sample_indices_
    y_bought[rows] = y_pool[rows]
    r = estimate_error(reg, X_pool, y_bought, random_state=repeat)
    out = _design_intervals(r, X_pool[rows])
    X_rows, y_rows = X_pool[rows], y_pool[rows]
    out["in-sample"] = _plain((reg.predict(X_rows) - y_rows) ** 2)
    held_out = np.empty(rows.size)
    for train, test in KFold(10, shuffle=True, random_state=repeat).split(X_rows):
        model = LinearRegression().fit(X_rows[train], y_rows[train])
        held_out[test] = (model.predict(X_rows[test]) - y_rows[test]) ** 2
    out["plain CV"] = _plain(held_out)
    return table, f"{factor}d", sampler_name, truth, out


def one_active_split(repeat, fraction, sampler_name):
    """``ActiveEstimator`` on digits: the same estimators, for the error rate."""
    X, y = load_digits(return_X_y=True)
    X_pool, _, y_pool, _ = train_test_split(X, y, test_size=0.3, random_state=repeat)
    X_pool = StandardScaler().fit_transform(X_pool)
    sampler = UniformSampler() if sampler_name == "uniform" else None
    est = ActiveEstimator(
        LogisticRegression(max_iter=500),
        sampler=sampler,
        budget=fraction,
        random_state=repeat,
    ).fit(X_pool, y_pool)
    truth = float(np.mean(est.predict(X_pool) != y_pool))
    rows = est.sample_indices_
    y_bought = np.full(y_pool.shape[0], -1)
    y_bought[rows] = y_pool[rows]
    r = estimate_error(est, X_pool, y_bought, cv=5, random_state=repeat)
    out = _design_intervals(r, X_pool[rows])
    X_rows, y_rows = X_pool[rows], y_pool[rows]
    out["in-sample"] = _plain(est.predict(X_rows) != y_rows)
    held_out = np.empty(rows.size)
    for train, test in KFold(5, shuffle=True, random_state=repeat).split(X_rows):
        model = LogisticRegression(max_iter=500).fit(X_rows[train], y_rows[train])
        held_out[test] = model.predict(X_rows[test]) != y_rows[test]
    out["plain CV"] = _plain(held_out)
    return "digits", f"{fraction:.0%}", sampler_name, truth, out


ACTIVE_SELECTIONS = ("doubt", "algorithm 1", "uniform")


def classification_split(table, X, y, repeat, fraction, selection):
    """:class:`skfal.ActiveEstimator` (``LogisticRegression``) on a
    classification table of ``bench_any_model.py`` (its 30% stratified test
    split dropped, the rest the pool, features standardized), ``fraction``
    of the pool bought by the doubt-driven default, Algorithm 1 or uniform
    rounds; :func:`skfal.estimate_error` at its defaults (10 folds, the
    error rate). Returns ``None`` as ``out`` where the fit or the estimate
    is refused (a rare class missing from a fold's training rows)."""
    X_pool, _, y_pool, _ = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=repeat
    )
    X_pool = StandardScaler().fit_transform(X_pool)
    sampler = {
        "doubt": None,
        "algorithm 1": SensitivitySampler(holder_constant="auto"),
        "uniform": UniformSampler(),
    }[selection]
    est = ActiveEstimator(
        LogisticRegression(max_iter=1000),
        sampler=sampler,
        budget=fraction,
        random_state=repeat,
    )
    cell = (table, f"{fraction:.0%}", selection)
    try:
        est.fit(X_pool, y_pool)
        rows = est.sample_indices_
        y_bought = np.full(y_pool.shape[0], -1)
        y_bought[rows] = y_pool[rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the doubt warning
            r = estimate_error(est, X_pool, y_bought, random_state=repeat)
    except ValueError:
        return (*cell, np.nan, None)
    truth = float(np.mean(est.predict(X_pool) != y_pool))
    out = _design_intervals(r, X_pool[rows])
    out["in-sample"] = _plain(est.predict(X_pool[rows]) != y_pool[rows])
    return (*cell, truth, out)


def synthetic_split(repeat, factor, sampler_name):
    """One selection from the synthetic pool: truth, estimate, variances."""
    rng = np.random.RandomState(0)
    X = rng.standard_normal((4000, 8))
    coef = rng.standard_normal(8)
    noise = (1 + 0.5 * np.abs(X[:, 1])) * rng.standard_normal(4000)
    y = X @ coef + np.sin(2 * X[:, 0]) + noise
    reg = FederatedActiveRegressor(
        budget=factor * 9, sampler=SAMPLERS[sampler_name](), random_state=repeat
    ).fit(X, y)
    y_bought = np.full(4000, np.nan)
    y_bought[reg.sample_indices_] = y[reg.sample_indices_]
    r = estimate_error(reg, X, y_bought, random_state=repeat)
    truth = float(np.mean((reg.predict(X) - y) ** 2))
    return truth, r.estimate, r.design_variance, r.variance


def synthetic_report(repeats, n_jobs):
    """Per cell: var(estimate - truth) over the mean design variance, and the
    coverage of the design-only and the nested intervals."""
    lines = [
        "| budget | sampler | var(error) / design variance | "
        "design-only coverage | + nested coverage |",
        "|---|---|---|---|---|",
    ]
    for factor in (5, 10, 20):
        for name in ("uniform iid", "leverage pivotal"):
            out = np.array(
                Parallel(n_jobs=n_jobs)(
                    delayed(synthetic_split)(r, factor, name) for r in range(repeats)
                )
            )
            truth, estimate, design, combined = out.T
            error = np.abs(estimate - truth)
            lines.append(
                f"| {factor}d | {name} | {(estimate - truth).var() / design.mean():.2f}"
                f" | {np.mean(error <= Z * np.sqrt(design)):.2f}"
                f" | {np.mean(error <= Z * np.sqrt(combined)):.2f} |"
            )
    return "\n".join(lines)


def doubt_seed(seed, selection):
    """ActiveEstimator(LogisticRegression) on a two-class table of 800 rows,
    100 labels: whether each interval holds the true error rate."""
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((800, 2))
    y = np.where(X[:, 0] + 0.5 * rng.standard_normal(800) > 0, "yes", "no")
    # A fixed model, fitted on 200 fresh rows of the same law: its losses do
    # not depend on the selection, so correct weights estimate its error
    # rate without bias.
    X_fixed = rng.standard_normal((200, 2))
    noise = 0.5 * rng.standard_normal(200)
    fixed = LogisticRegression().fit(
        X_fixed, np.where(X_fixed[:, 0] + noise > 0, "yes", "no")
    )
    sampler = None
    if selection != "doubt":
        sampler = SensitivitySampler(holder_constant="auto")
    model = ActiveEstimator(
        LogisticRegression(), budget=100, sampler=sampler, random_state=seed
    ).fit(X, y)
    y_bought = np.full(800, None, dtype=object)
    y_bought[model.sample_indices_] = y[model.sample_indices_]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the doubt-driven warning
        r = estimate_error(model, X, y_bought, cv=5, random_state=seed)
    truth = float(np.mean(model.predict(X) != y))
    design = abs(r.estimate - truth) <= Z * np.sqrt(r.design_variance)
    loss = (fixed.predict(X) != y).astype(np.float64)
    rows, w = model.sample_indices_, model.sample_weight_
    fixed_error = w @ loss[rows] / 800 - loss.mean()
    return design, r.low <= truth <= r.high, r.high < truth, fixed_error


def stopping_session(table, X, y, repeat, max_factor=40, relative=0.01):
    """A labeling loop by batches of 2d labels: where the rule stops.

    The loop grows the budget of a nested selection (leverage i.i.d. draws
    mixed with uniform, one seed) and records, at each budget, the true pool
    error and the rule's verdict: stop when the upper bound on the next
    batch's gain is below ``relative`` times the estimated error.
    """
    X_pool, _, y_pool, _ = train_test_split(X, y, test_size=0.2, random_state=repeat)
    X_pool = StandardScaler().fit_transform(X_pool)
    d = X_pool.shape[1] + 1
    sampler = LeverageScoreSampler(sampling="iid", uniform_mix=0.5)
    truths, stops = [], []
    for factor in range(2, max_factor + 1, 2):
        reg = FederatedActiveRegressor(
            budget=factor * d, sampler=sampler, random_state=repeat
        ).fit(X_pool, y_pool)
        truths.append(float(np.mean((reg.predict(X_pool) - y_pool) ** 2)))
        # The rule reads the learning curve and the point estimate, which
        # nested cross-validation (the interval's extra term) leaves alone.
        r = estimate_error(reg, X_pool, y_pool, nested=0, random_state=repeat)
        stops.append(r.expected_gain(2 * d).upper < relative * r.estimate)
    return table, np.array(truths), np.array(stops)


def stopping_report(sessions, max_factor=40, relative=0.01):
    """Labels spent and error reached: the rule, the oracle, fixed budgets."""
    factors = np.arange(2, max_factor + 1, 2)
    lines = [
        "| table | rule: median labels (d) | rule: median error / oracle's | "
        "oracle stop (d) | fixed 10d: error / oracle's | fixed 20d | fixed 40d |",
        "|---|---|---|---|---|---|---|",
    ]
    for table in dict.fromkeys(s[0] for s in sessions):
        truths = np.array([s[1] for s in sessions if s[0] == table])
        stops = np.array([s[2] for s in sessions if s[0] == table])
        # The oracle knows the mean learning curve: it stops at the first
        # budget whose next batch improves the mean error by < relative.
        mean = truths.mean(axis=0)
        gain = mean[:-1] - mean[1:]
        below = np.flatnonzero(gain < relative * mean[:-1])
        oracle = int(below[0]) if below.size else len(factors) - 1
        # A session that never stops spends the largest budget.
        at = np.array([np.argmax(s) if s.any() else len(factors) - 1 for s in stops])
        reached = truths[np.arange(len(at)), at] / truths[:, oracle]
        fixed = [
            np.median(truths[:, list(factors).index(f)] / truths[:, oracle])
            for f in (10, 20, 40)
        ]
        lines.append(
            f"| {table} | {np.median(factors[at]):.0f} | {np.median(reached):.3f} | "
            f"{factors[oracle]} | {fixed[0]:.3f} | {fixed[1]:.3f} | {fixed[2]:.3f} |"
        )
    return "\n".join(lines)


def summarise(results):
    """One Markdown row per (table, budget, sampler, estimator)."""
    cells, refused = {}, {}
    for table, factor, sampler, truth, out in results:
        key = (table, factor, sampler)
        refused[key] = refused.get(key, 0) + (out is None)
        for name, (estimate, low, high) in (out or {}).items():
            cell = cells.setdefault((table, factor, sampler, name), [])
            cell.append(
                (
                    low <= truth <= high,
                    abs(estimate - truth) / max(truth, 1e-12),
                    (high - low) / truth,
                )
            )
    lines = [
        "| table | budget | sampler | estimator | splits | coverage | "
        "median rel. error | median width / truth |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (table, factor, sampler), count in refused.items():
        if count:
            lines.append(
                f"| {table} | {factor} | {sampler} | refused (clear error) | "
                f"{count} | | | |"
            )
    for (table, factor, sampler, name), values in cells.items():
        values = np.array(values, dtype=np.float64)
        covered = int(values[:, 0].sum())
        ci = binomtest(covered, len(values)).proportion_ci(0.95)
        flag = "*" if ci.high < 0.85 or ci.low > 0.95 else ""
        lines.append(
            f"| {table} | {factor} | {sampler} | {name} | {len(values)} | "
            f"{covered / len(values):.2f}{flag} | {np.median(values[:, 1]):.3f} | "
            f"{np.median(values[:, 2]):.3f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--tables", nargs="*", default=list(TABLES))
    parser.add_argument("--samplers", nargs="*", default=list(SAMPLERS))
    parser.add_argument("--budgets", nargs="*", type=int, default=BUDGET_FACTORS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--active",
        action="store_true",
        help="ActiveEstimator(LogisticRegression) on digits, budgets 10%% and 20%%",
    )
    parser.add_argument(
        "--stopping",
        action="store_true",
        help="the stopping rule against the oracle and fixed budgets",
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="4,000 Gaussian rows, 8 features: the variance check, 300 selections",
    )
    parser.add_argument(
        "--classification",
        nargs="*",
        help="ActiveEstimator on bench_any_model.py's classification tables "
        "(named, or all), budgets 1/2/5/10%% of the pool",
    )
    parser.add_argument(
        "--doubt",
        action="store_true",
        help="ActiveEstimator's doubt-driven default against Algorithm 1",
    )
    args = parser.parse_args()
    if args.doubt:
        print(
            "| selection | seeds | design-only covers | + nested covers | below "
            "| fixed model: weighted estimate - truth (mean +- se) |"
        )
        print("|---|---|---|---|---|---|")
        for selection in ("doubt", "algorithm 1"):
            out = np.array(
                Parallel(n_jobs=args.n_jobs)(
                    delayed(doubt_seed)(seed, selection) for seed in range(args.repeats)
                )
            )
            covered = out[:, :3].sum(axis=0).astype(int)
            fixed = out[:, 3]
            se = fixed.std(ddof=1) / np.sqrt(len(fixed))
            print(
                f"| {selection} | {args.repeats} | {covered[0]} | {covered[1]} | "
                f"{covered[2]} | {fixed.mean():+.4f} +- {se:.4f} |"
            )
        return
    if args.classification is not None:
        from bench_any_model import CLASSIFICATION_TABLES, load_classification

        first = True
        for table in args.classification or list(CLASSIFICATION_TABLES):
            X, y = load_classification(table)
            for fraction in (0.01, 0.02, 0.05, 0.1):
                for selection in ACTIVE_SELECTIONS:
                    results = Parallel(n_jobs=args.n_jobs)(
                        delayed(classification_split)(
                            table, X, y, r, fraction, selection
                        )
                        for r in range(args.repeats)
                    )
                    lines = summarise(results).splitlines()
                    print("\n".join(lines if first else lines[2:]), flush=True)
                    first = False
        return
    if args.synthetic:
        print(synthetic_report(args.repeats, args.n_jobs))
        return
    if args.stopping:
        data = {t: load_table(t) for t in args.tables}
        sessions = Parallel(n_jobs=args.n_jobs)(
            delayed(stopping_session)(t, *data[t], r)
            for t in args.tables
            for r in range(args.repeats)
        )
        print(f"{args.repeats} sessions per table")
        print(stopping_report(sessions))
        return
    if args.active:
        results = Parallel(n_jobs=args.n_jobs)(
            delayed(one_active_split)(r, f, s)
            for f in (0.1, 0.2)
            for s in ("active", "uniform")
            for r in range(args.repeats)
        )
        print(summarise(results).replace("| budget |", "| budget (pool) |"))
        return
    if args.quick:
        args.tables, args.repeats, args.budgets = (
            ["Computers", "Wage", "SaratogaHouses"],
            20,
            [5, 20],
        )
    print(f"{args.repeats} splits per cell, nominal {CONFIDENCE:.0%}", flush=True)
    first = True
    for table in args.tables:  # one cell at a time, printed when done
        start = time.perf_counter()
        X, y = load_table(table)
        for f in args.budgets:
            for s in args.samplers:
                results = Parallel(n_jobs=args.n_jobs)(
                    delayed(one_split)(table, X, y, r, f, s)
                    for r in range(args.repeats)
                )
                lines = summarise(results).splitlines()
                print("\n".join(lines if first else lines[2:]), flush=True)
                first = False
        print(f"<!-- {table}: {time.perf_counter() - start:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
