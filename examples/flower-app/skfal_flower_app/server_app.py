"""The ServerApp: fit a LeverageScoreSampler over the SuperNodes.

The run config (``[tool.flwr.app.config]`` in pyproject.toml, or
``flwr run . <superlink> -c 'budget=50'``) sets the number of clients, the
budget, the protocol, the server's random_state and where to save the result.
"""

import numpy as np

from skfal import LeverageScoreSampler
from skfal.flower import server_app


def save(fitted, context):
    """Save the selection (or print it when no ``output`` is configured)."""
    output = str(context.run_config.get("output", ""))
    summary = {
        "scores": fitted.scores_,
        "sample_indices": fitted.sample_indices_,
        "sample_weight": fitted.sample_weight_,
        "n_draws": np.array([fitted.n_draws_]),
    }
    for c, local in enumerate(fitted.client_sample_indices_):
        summary[f"client_{c}_rows"] = local
    for phase, sent in fitted.communication_.items():
        summary[f"bytes_{phase}"] = np.array([sent["up"], sent["down"]])
    for key, value in fitted.serialized_.items():
        summary[f"serialized_{key}"] = np.array([value])
    for key, value in fitted.timings_.items():
        summary[f"seconds_{key}"] = np.array([value])
    if output:
        np.savez(output, **summary)
    else:
        print("selected rows per client:", fitted.client_sample_indices_)
        print("bytes per phase:", fitted.communication_)
        print("serialized:", fitted.serialized_)
        print("seconds:", fitted.timings_)


app = server_app(LeverageScoreSampler(), on_fit=save)
