"""
What the federated protocols send
=================================

Every skfal estimator fitted with ``groups`` reports the bytes each protocol
phase moved in ``communication_``. FALE's FedSVD protocol uploads every
client's masked rows (``O(n d)``; skfal sends back only a ``d x d`` matrix,
from which each client scores its rows, where FALE sends back as much as
was uploaded); the ``"qr"``
protocol uploads a ``d x d`` R factor per client, so only the leverage
scores themselves (``O(n)``) grow with the number of rows. Model learning
moves ``O(d^2)`` per client either way.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from skfal import FederatedActiveRegressor, LeverageScoreSampler, SensitivitySampler

d, n_clients = 20, 10
sizes = [1_000, 3_000, 10_000, 30_000, 100_000]
setups = {
    "leverage, fedsvd": dict(sampler=LeverageScoreSampler(protocol="fedsvd")),
    "leverage, qr": dict(sampler=LeverageScoreSampler(protocol="qr")),
    "sensitivity": dict(sampler=SensitivitySampler()),
}
rng = np.random.RandomState(0)
total = {name: [] for name in setups}
for n in sizes:
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d) + rng.standard_normal(n)
    groups = rng.randint(n_clients, size=n)
    for name, params in setups.items():
        reg = FederatedActiveRegressor(budget=200, random_state=0, **params)
        reg.fit(X, y, groups=groups)
        sent = sum(p["up"] + p["down"] for p in reg.communication_.values())
        total[name].append(sent)
        if n == sizes[-1]:
            print(f"{name}, n = {n}:")
            for phase, b in reg.communication_.items():
                up, down = b["up"] / 1e3, b["down"] / 1e3
                print(f"    {phase:>14}: {up:10.1f} kB up {down:10.1f} kB down")

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for (name, values), style in zip(total.items(), ["o-", "s--", "^:"], strict=True):
    ax.plot(sizes, np.array(values) / 1e6, style, label=name)
ax.plot(sizes, np.array(sizes) * 8 / 1e6, "k:", lw=1, label="8 bytes per row")
ax.set(xscale="log", yscale="log", xlabel="rows (n)", ylabel="MB sent, up + down")
ax.set_title(f"{n_clients} clients, d = {d}, budget 200")
ax.legend()
fig.tight_layout()
