"""
A labeling session that stops by itself
=======================================

Labels cost money: buy them in batches, and after each batch ask two
questions. *How good is the model now?* :func:`skfal.estimate_error`
answers from the labels bought, with a confidence interval: the selection
is a probability sample, so its design weights turn the cross-fitted errors
at the bought rows into an estimate of the error over the whole pool.
*Is the next batch worth buying?* :meth:`expected_gain
<skfal._error.ErrorEstimate.expected_gain>` bounds what ``k`` more labels
are expected to buy; the session stops when that bound falls below what a
batch is worth.

Here every price is known, so the estimate can be checked against the true
error on the pool.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from skfal import (
    FederatedActiveRegressor,
    LeverageScoreSampler,
    estimate_error,
    load_diamonds,
)

X, y_true = load_diamonds()
X = (X - X.mean(axis=0)) / X.std(axis=0)
n_samples, d = X.shape[0], X.shape[1] + 1
batch = d  # labels per batch
threshold = 0.002  # stop when a batch is worth less than this gain in MSE

# I.i.d. draws with the same seed nest: the selection for a larger budget
# holds the smaller one's rows, so no label bought is wasted.
sampler = LeverageScoreSampler(sampling="iid", uniform_mix=0.5)
y = np.full(n_samples, np.nan)  # the labels bought so far
history = []
budget = 2 * d
while True:
    reg = FederatedActiveRegressor(budget=budget, sampler=sampler, random_state=0)
    rows = reg.query(X, y)  # the rows still to label
    y[rows] = y_true[rows]  # buy them
    reg.fit(X, y)
    result = estimate_error(reg, X, y, random_state=0)
    gain = result.expected_gain(batch)
    truth = np.mean((reg.predict(X) - y_true) ** 2)
    history.append((budget, result.estimate, result.low, result.high, truth))
    print(
        f"{budget:4d} labels: MSE {result.estimate:.4f} "
        f"[{result.low:.4f}, {result.high:.4f}] (true {truth:.4f}); "
        f"next {batch} labels gain at most {gain.upper:.4f}"
    )
    if gain.upper < threshold:
        break
    budget += batch
print(f"Stopped after {budget} labels, {np.count_nonzero(~np.isnan(y))} bought.")

# %%
# The estimate and its 90% interval against the true error of each model on
# the whole pool (which a real session never sees). Early on, each batch
# buys a lot; the session stops once the bound on the next batch's gain
# drops below the threshold.
labels, estimate, low, high, truth = np.array(history).T
fig, ax = plt.subplots(figsize=(6, 4))
ax.fill_between(labels, low, high, alpha=0.3, label="90% interval")
ax.plot(labels, estimate, "o-", label="estimate (labels bought only)")
ax.plot(labels, truth, "k--", label="true error on the pool")
ax.axvline(labels[-1], color="grey", lw=1)
ax.set(xlabel="labels bought", ylabel="mean squared error (log price)")
ax.set_yscale("log")
ax.legend()
fig.tight_layout()
plt.show()
