"""
Leverage, sensitivity and uniform sampling compared
===================================================

Three ways to choose which diamonds to price, each followed by the same
federated least squares (:class:`skfal.FederatedActiveRegressor`, 10 non-IID
shops):

* :class:`skfal.LeverageScoreSampler`: rows that a least-squares fit cannot
  do without (exact leverage scores, computed across shops);
* :class:`skfal.SensitivitySampler`: cluster the rows, take each cluster's
  medoid, and sample the rest by distance to the centre; it needs no QR of
  the data, so it is the cheaper one on wide data;
* :class:`skfal.UniformSampler`: the baseline.

We plot the median test MSE of log price over 10 random splits, and where
each sampler spends its labels. Leverage scores are the best choice for
least squares at every budget here. Sensitivity sampling lands between
leverage and uniform sampling, close to leverage from 5d labels on, and
barely ahead of uniform at 2d: a fifth of the labels go to cluster medoids,
which count once in the weighted fit while a sampled row stands for
hundreds.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skfal import (
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
    UniformSampler,
    load_diamonds,
    non_iid_split,
)

X, y = load_diamonds()
d = X.shape[1] + 1
samplers = {
    "leverage": LeverageScoreSampler(),
    "sensitivity": SensitivitySampler(),
    "uniform": UniformSampler(),
}
budgets = [2 * d, 5 * d, 10 * d, 20 * d]
n_repeats = 10
mse = {name: np.zeros((n_repeats, len(budgets))) for name in samplers}
for repeat in range(n_repeats):
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=repeat
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    shops = non_iid_split(y_train, n_clients=10, alpha=5.0, random_state=repeat)
    for b, budget in enumerate(budgets):
        for name, sampler in samplers.items():
            reg = FederatedActiveRegressor(
                budget=budget, sampler=sampler, random_state=repeat
            )
            reg.fit(X_train, y_train, groups=shops)
            mse[name][repeat, b] = mean_squared_error(y_test, reg.predict(X_test))

for name in samplers:
    print(f"{name:>12}: " + "  ".join(f"{v:.4f}" for v in np.median(mse[name], axis=0)))

# %%
# Test error against the number of labels, and where the labels go (carat
# against log price, for the last split at 5d labels).
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
for name, style in zip(samplers, ["o-", "s--", "^:"], strict=True):
    left.plot(budgets, np.median(mse[name], axis=0), style, label=name)
left.set(
    xlabel="number of labels", ylabel="median test MSE", xscale="log", yscale="log"
)
left.legend()
carat = scaler.inverse_transform(X_train)[:, 0]
right.scatter(carat, y_train, s=1, c="lightgrey", label="all diamonds")
for name, marker in zip(samplers, ["o", "s", "^"], strict=True):
    reg = FederatedActiveRegressor(budget=5 * d, sampler=samplers[name], random_state=0)
    rows = reg.fit(X_train, y_train, groups=shops).sample_indices_
    right.scatter(carat[rows], y_train[rows], s=14, marker=marker, label=name)
right.set(xlabel="carat", ylabel="log price", title=f"{5 * d} labels")
right.legend(markerscale=2)
fig.tight_layout()
