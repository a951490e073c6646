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
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfal import (
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
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
samplers = [LeverageScoreSampler(), SensitivitySampler(), UniformSampler()]
search = GridSearchCV(
    pipe,
    {
        "federatedactiveregressor__budget": budgets,
        "federatedactiveregressor__sampler": samplers,
    },
    scoring="neg_mean_squared_error",
    cv=KFold(5, shuffle=True, random_state=0),
)
search.fit(X, y, groups=shops)
print("best:", search.best_params_)

# %%
# Mean cross-validated MSE (and its spread over folds) against the budget.
results = search.cv_results_
fig, ax = plt.subplots(figsize=(6, 4))
for sampler in samplers:
    name = type(sampler).__name__
    mask = np.array(
        [
            type(s).__name__ == name
            for s in results["param_federatedactiveregressor__sampler"]
        ]
    )
    ax.errorbar(
        np.array(results["param_federatedactiveregressor__budget"][mask], dtype=int),
        -results["mean_test_score"][mask],
        yerr=results["std_test_score"][mask],
        marker="o",
        capsize=3,
        label=name,
    )
ax.set(
    xscale="log", yscale="log", xlabel="budget (labels)", ylabel="CV mean squared error"
)
ax.legend()
fig.tight_layout()
sklearn.set_config(enable_metadata_routing=False)
