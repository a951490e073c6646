"""Issue 25, third session: which default wins more (quick runs).

Run from ``benchmarks/`` (nice -n 10, OMP_NUM_THREADS=1):
``python results/any_model_study3_script.py TASK VARIANTS SPLITS OUT.json``
with TASK ``classification`` or ``regression``, VARIANTS comma-separated
names of ``VARIANTS`` below. Each variant is the default
``ActiveEstimator`` (unweighted) with some parameters or private
constants changed; uniform's scores on the same seeded splits are read
from ``results/any_model_20_*.json`` (same code, same splits).
"""

import json
import sys
import time
import warnings

sys.path.insert(0, ".")
import numpy as np  # noqa: E402
from bench_any_model import (  # noqa: E402
    TEST_SIZE,
    load,
    models,
)
from sklearn.metrics import accuracy_score, mean_squared_error  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import skfal._active as active  # noqa: E402
from skfal import ActiveEstimator  # noqa: E402

BUDGETS = (0.01, 0.02, 0.05, 0.1)
# name: (ActiveEstimator params, private constants)
THIRD = 1 / 3  # the second session's default: two rounds after a third
VARIANTS = {
    "base": ({"n_rounds": 2, "initial_fraction": THIRD}, {}),
    "R4": ({"n_rounds": 4, "initial_fraction": THIRD}, {}),
    "R8": ({"n_rounds": 8, "initial_fraction": THIRD}, {}),
    "i5": ({"n_rounds": 2, "initial_fraction": 0.2}, {}),
    "i10": ({"n_rounds": 2, "initial_fraction": 0.1}, {}),
    "R4i10": ({"n_rounds": 4, "initial_fraction": 0.1}, {}),
    "R8i10": ({"n_rounds": 8, "initial_fraction": 0.1}, {}),
    "c10": ({"n_rounds": 2, "initial_fraction": THIRD}, {"cand": 10}),
    "m0": ({"n_rounds": 2, "initial_fraction": THIRD}, {"mix": 0.0}),
}


def configure(consts, family):
    active._CANDIDATES = dict(DEFAULT_CANDIDATES)
    if "cand" in consts:
        active._CANDIDATES[family] = consts["cand"]
    active._UNIFORM_MIX = consts.get("mix", DEFAULT_MIX)


DEFAULT_CANDIDATES = dict(active._CANDIDATES)
DEFAULT_MIX = active._UNIFORM_MIX


def main():
    task, names, n_splits, out_path = sys.argv[1:5]
    only = sys.argv[5].split(",") if len(sys.argv) > 5 else None
    names = names.split(",")
    family = "classifier" if task == "classification" else "regressor"
    out = {}
    for task_, model_name, estimator, tables in models():
        if task_ != task:
            continue
        for table in tables:
            if only and f"{model_name}:{table}" not in only:
                continue
            X, y, piped = load(task, model_name, table)
            est = estimator if piped is None else piped
            key = f"{task}|{model_name}|{table}"
            start = time.perf_counter()
            for r in range(int(n_splits)):
                strat = y if task == "classification" else None
                Xp, Xt, yp, yt = train_test_split(
                    X, y, test_size=TEST_SIZE, random_state=r, stratify=strat
                )
                sc = StandardScaler().fit(Xp)
                Xp, Xt = sc.transform(Xp), sc.transform(Xt)
                for fraction in BUDGETS:
                    budget = max(2, int(round(fraction * Xp.shape[0])))
                    for name in names:
                        params, consts = VARIANTS[name]
                        configure(consts, family)
                        model = ActiveEstimator(
                            est, budget=budget, random_state=r, **params
                        )
                        t0 = time.process_time()
                        with threadpool_limits(1), warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            try:
                                model.fit(Xp, yp)
                                pred = model.predict(Xt)
                            except ValueError:  # one class bought
                                rows = model.sample_indices_
                                pred = np.full(len(yt), yp[rows][0])
                        secs = time.process_time() - t0
                        if task == "classification":
                            s = accuracy_score(yt, pred)
                        else:
                            s = mean_squared_error(yt, pred)
                        out.setdefault(key, {}).setdefault(str(r), {})[
                            f"{name}|{fraction}"
                        ] = [float(s), secs]
            print(key, f"{time.perf_counter() - start:.0f} s", flush=True)
            with open(out_path, "w") as handle:
                json.dump(out, handle)


if __name__ == "__main__":
    main()
