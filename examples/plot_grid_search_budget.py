"""
Choosing the budget and the sampler with GridSearchCV
=====================================================

The label budget and the selection strategy are ordinary hyperparameters of
:class:`skfal.FederatedActiveRegressor`, so scikit-learn's
:class:`~sklearn.model_selection.GridSearchCV` can search them. The client of
each row (``groups``) reaches ``fit`` through metadata routing: without it,
``GridSearchCV`` would hand ``groups`` to the CV splitter only.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import sklearn
from matplotlib.ticker import LogLocator, NullFormatter
from sklearn.model_selection import GridSearchCV, RepeatedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfal import (
    FederatedActiveRegressor,
    LeverageScoreSampler,
    UniformSampler,
    load_diamonds,
    non_iid_split,
)

sklearn.set_config(enable_metadata_routing=True)
X, y = load_diamonds()
shops = non_iid_split(y, n_clients=10, alpha=5.0, random_state=0)

fale = FederatedActiveRegressor(random_state=0).set_fit_request(groups=True)
pipe = make_pipeline(StandardScaler(), fale)
budgets = [48, 96, 192, 384, 768]
samplers = [LeverageScoreSampler(), UniformSampler()]
search = GridSearchCV(
    pipe,
    {
        "federatedactiveregressor__budget": budgets,
        "federatedactiveregressor__sampler": samplers,
    },
    scoring="neg_mean_squared_error",
    cv=RepeatedKFold(n_splits=3, n_repeats=3, random_state=0),
)
search.fit(X, y, groups=shops)
print("best:", search.best_params_)

# %%
# Cross-validated MSE against the budget: the median over the 9 folds, with
# bars from the 25th to the 75th percentile. More labels help, and leverage
# scores reach a given error with fewer labels than a uniform choice on most
# folds. On a few folds, though, leverage sampling picks up the handful of
# diamonds recorded with impossible dimensions (``x``, ``y`` or ``z`` of 0,
# or a ``y`` of 58.9 mm): as outliers they have the highest leverage, and
# their labels pull the fit. The *mean* test score that ``GridSearchCV``
# ranks by is sensitive to those folds; look at the spread before trusting
# ``best_params_``, and clean such rows before selecting.
results = search.cv_results_
folds = -np.column_stack([results[f"split{k}_test_score"] for k in range(9)])
names = np.array(
    [type(s).__name__ for s in results["param_federatedactiveregressor__sampler"]]
)
fig, ax = plt.subplots(figsize=(6, 4))
for sampler in samplers:
    mask = names == type(sampler).__name__
    low, mid, high = np.percentile(folds[mask], [25, 50, 75], axis=1)
    ax.errorbar(
        np.array(results["param_federatedactiveregressor__budget"][mask], dtype=int),
        mid,
        yerr=[mid - low, high - mid],
        marker="o",
        capsize=3,
        label=type(sampler).__name__,
    )
ax.set(
    xscale="log", yscale="log", xlabel="budget (labels)", ylabel="CV mean squared error"
)
ax.set_xticks(budgets, [str(b) for b in budgets])
ax.set_xticks([], minor=True)
ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 3, 5, 7)))
ax.yaxis.set_major_formatter("{x:g}")
ax.yaxis.set_minor_formatter(NullFormatter())
ax.legend()
fig.tight_layout()
sklearn.set_config(enable_metadata_routing=False)
