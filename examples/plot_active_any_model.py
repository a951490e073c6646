"""
Active learning for any model: a classifier on handwritten digits
=================================================================

:class:`skfal.ActiveEstimator` wraps any scikit-learn estimator. Here a
logistic regression learns the 10 digits of scikit-learn's bundled
``load_digits`` from a few hundred bought labels, chosen by the default
selection (a uniform tenth for a classifier, then eight rounds drawing
among the rows of smallest top-two probability margin, spread over k-means
clusters of them),
against the same number of labels drawn uniformly at random, and
scikit-activeml's margin sampling as the peer (the best one on this table
in ``benchmarks/bench_any_model.py``; ``pip install "skfal[bench]"``,
without it the peer is left out).
"""

# %%
# A pool and a test set
# ---------------------
# The pool's labels are read only where a selection asks for them.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skfal import ActiveEstimator, UniformSampler

X, y = load_digits(return_X_y=True)


def split(seed):
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=0.3, random_state=seed, stratify=y
    )
    scaler = StandardScaler().fit(X_pool)
    return scaler.transform(X_pool), scaler.transform(X_test), y_pool, y_test


def model():
    return LogisticRegression(max_iter=2000)


methods = {
    "uniform": lambda b, s: ActiveEstimator(
        model(), sampler=UniformSampler(), budget=b, random_state=s
    ),
    "skfal default": lambda b, s: ActiveEstimator(model(), budget=b, random_state=s),
}

# %%
# The peer, when installed: margin sampling after a uniform initial third
# of the budget (as in the benchmark), the model then fitted on the rows it
# chose.
try:
    from skactiveml.classifier import SklearnClassifier
    from skactiveml.pool import UncertaintySampling
    from skactiveml.utils import MISSING_LABEL
except ImportError:
    SklearnClassifier = None


def margin(budget, seed, X_pool, y_pool):
    rng = np.random.RandomState(seed)
    initial = rng.choice(len(X_pool), max(1, budget // 3), replace=False)
    y_known = np.full(len(X_pool), MISSING_LABEL)
    y_known[initial] = y_pool[initial]
    clf = SklearnClassifier(model(), classes=np.unique(y_pool), random_state=seed)
    clf.fit(X_pool, y_known)
    query = UncertaintySampling(method="margin_sampling", random_state=seed).query(
        X_pool, y_known, clf=clf, batch_size=budget - initial.size
    )
    rows = np.concatenate([initial, query])
    return model().fit(X_pool[rows], y_pool[rows])


# %%
# Accuracy against labels bought
# ------------------------------
# Medians over five splits.
budgets = [40, 80, 160, 320]
scores = {name: np.zeros((len(budgets), 5)) for name in methods}
if SklearnClassifier is not None:
    scores["margin (scikit-activeml)"] = np.zeros((len(budgets), 5))
for seed in range(5):
    X_pool, X_test, y_pool, y_test = split(seed)
    for i, budget in enumerate(budgets):
        for name, make in methods.items():
            fitted = make(budget, seed).fit(X_pool, y_pool)
            scores[name][i, seed] = fitted.score(X_test, y_test)
        if SklearnClassifier is not None:
            fitted = margin(budget, seed, X_pool, y_pool)
            scores["margin (scikit-activeml)"][i, seed] = fitted.score(X_test, y_test)

fig, ax = plt.subplots(figsize=(6, 4))
for name, values in scores.items():
    ax.plot(budgets, np.median(values, axis=1), marker="o", label=name)
ax.set_xscale("log")
ax.set_xticks(budgets, [str(b) for b in budgets])
ax.set_xlabel(f"labels bought (of {len(X_pool)} rows)")
ax.set_ylabel("test accuracy (median of 5 splits)")
ax.legend()
fig.tight_layout()
for name, values in scores.items():
    print(f"{name:32s}", np.round(np.median(values, axis=1), 3))

# %%
# A labeling session over days
# ----------------------------
# ``query`` lists the next rows to label; label some and ask again. The
# session ends with the very model ``fit`` gives with every label at hand.
X_pool, X_test, y_pool, y_test = split(0)
session = ActiveEstimator(model(), budget=160, random_state=0)
bought = np.full(len(X_pool), np.nan)
days = 0
while (rows := session.query(X_pool, bought)).size:
    today = rows[:25]  # the annotators label 25 rows a day
    bought[today] = y_pool[today]
    days += 1
session.fit(X_pool, bought)
one_shot = methods["skfal default"](160, 0).fit(X_pool, y_pool)
print(
    f"{days} days, {int(np.isfinite(bought).sum())} labels;",
    "same model:",
    np.array_equal(session.predict_proba(X_test), one_shot.predict_proba(X_test)),
)
