"""The ServerApp: fit the estimator the run config names over the SuperNodes.

The run config (``[tool.flwr.app.config]`` in pyproject.toml, or
``flwr run . <superlink> -c 'budget=50'``) sets the estimator
(``"leverage"``: a LeverageScoreSampler's selection; ``"sensitivity"``: a
SensitivitySampler's clustering and selection; ``"regressor"``: a
FederatedActiveRegressor's selection and training), the number of clients, the
budget, the protocol, the training, the server's random_state and where to
save the result.
"""

import pickle

import numpy as np

from skfal import FederatedActiveRegressor, LeverageScoreSampler, SensitivitySampler
from skfal.flower import server_app


def make_estimator(run_config):
    """The estimator the run config's ``estimator`` key names."""
    kind = str(run_config.get("estimator", "leverage"))
    estimators = {
        "leverage": LeverageScoreSampler,
        "regressor": FederatedActiveRegressor,
        "sensitivity": SensitivitySampler,
    }
    if kind not in estimators:
        raise ValueError(f"estimator={kind!r}: choose one of {sorted(estimators)}.")
    return estimators[kind]()


def save(fitted, context):
    """Save the fitted attributes (or print them when no ``output`` is set),
    and pickle the fitted estimator to ``model`` when it is set."""
    output = str(context.run_config.get("output", ""))
    summary = {
        "sample_indices": fitted.sample_indices_,
        "sample_weight": fitted.sample_weight_,
    }
    for name in (
        "scores",
        "n_draws",
        "coef",
        "intercept",
        "masked_model",
        "medoid_indices",
        "probe_indices",
        "n_iter",
    ):
        value = getattr(fitted, name + "_", None)
        if value is not None:
            summary[name] = np.atleast_1d(value)
    for c, local in enumerate(fitted.client_sample_indices_):
        summary[f"client_{c}_rows"] = local
    for phase, sent in fitted.communication_.items():
        summary[f"bytes_{phase}"] = np.array([sent["up"], sent["down"]])
    for key, value in fitted.serialized_.items():
        summary[f"serialized_{key}"] = np.array([value])
    for key, value in fitted.timings_.items():
        summary[f"seconds_{key}"] = np.array([value])
    model = str(context.run_config.get("model", ""))
    if model:  # the fitted estimator itself: load it to predict
        with open(model, "wb") as file:
            pickle.dump(fitted, file)
    if output:
        np.savez(output, **summary)
    else:
        print("selected rows per client:", fitted.client_sample_indices_)
        if getattr(fitted, "coef_", None) is not None:
            print("model:", fitted.coef_, fitted.intercept_)
        print("bytes per phase:", fitted.communication_)
        print("serialized:", fitted.serialized_)
        print("seconds:", fitted.timings_)


app = server_app(make_estimator, on_fit=save)
