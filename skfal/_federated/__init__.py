"""The federated protocols, as client steps and server steps.

Every step is a plain function that takes and returns numpy arrays (the
messages). Functions named ``client_*`` run where a client's rows live; functions
named ``server_*`` run at the server and receive only what clients upload. The
server's drivers (``qr_leverage``, ``fedsvd_leverage``,
``pivotal_selection``, ``send_selection``, ``model_scores``,
``send_labeled``) run a protocol over a
:class:`Transport` (``_transport.py``): they ask clients to run client steps
registered by name, on each client's own state, and every array either way is
counted on a :class:`Channel` (bytes and the auditor's transcript). The same
drivers and steps run in one process (:class:`InProcessTransport`) and on
Flower (:mod:`skfal.flower`). The ``run_*`` functions simulate one protocol, or
one phase of it, in one process: the leverage, pivotal and training ones
build an in-process transport over the clients' rows. The clustering
protocol has drivers only (``sensitivity_counts``, ``federated_clustering``,
``federated_scores``): a centralized fit runs them over an in-process
transport of one client.

This package never imports an estimator; estimators import from here only.
"""

from skfal._federated import (  # noqa: E402
    _clustering,
    _error,
    _leverage,
    _model_loss,
    _regression,
    _secure,
    _selection,
    _transport,
)
from skfal._federated._channel import Channel, merge_summaries
from skfal._federated._clustering import (
    SensitivityResult,
    cluster_rotation,
    federated_clustering,
    federated_scores,
    federated_stand_in_counts,
    holder_centres,
    holder_in_working_units,
    send_eligible,
    sensitivity_counts,
)
from skfal._federated._leverage import (
    LeverageResult,
    check_fedsvd_clients,
    fedsvd_leverage,
    qr_leverage,
    run_fedsvd_leverage,
    run_qr_leverage,
)
from skfal._federated._model_loss import (
    ModelScores,
    keep_centres,
    model_scores,
    send_labeled,
    simulated_clients,
)
from skfal._federated._regression import (
    LinearModel,
    TrainingResult,
    global_training,
    local_training,
    run_global_training,
    run_local_training,
)
from skfal._federated._selection import (
    client_labeled_rows,
    pivotal_selection,
    row_counts,
    run_pivotal_selection,
    send_selection,
)
from skfal._federated._simulation import client_view
from skfal._federated._transport import (
    CLIENT_STEPS,
    InProcessTransport,
    Transport,
    client_seeds,
    read_labels,
    run_client_step,
    simulated_federation,
)


def _client_state():
    """Every protocol's declared client state, merged (a name in one only)."""
    merged = {}
    for module in (
        _transport,
        _secure,
        _leverage,
        _selection,
        _regression,
        _clustering,
        _model_loss,
        _error,
    ):
        twice = set(merged) & set(module.STATE)
        if twice:
            raise RuntimeError(f"{module.__name__} declares {twice} again")
        merged.update(module.STATE)
    return merged


#: What a client may hold, by name: ``{name: "dtype (shape): meaning"}``. A
#: secure sum of ``"<v>"`` adds ``"<v>_magnitudes"``, ``"<v>_bounds"`` and
#: ``"<v>_bounds_zero"``; a secure maximum stored under ``"<s>"`` adds
#: ``"<s>_zero"`` (``_secure.py``).
CLIENT_STATE = _client_state()


def declared(name):
    """Whether a client state entry ``name`` is declared in ``CLIENT_STATE``."""
    for suffix in ("_bounds_zero", "_bounds", "_magnitudes", "_zero"):
        if name.endswith(suffix) and name[: -len(suffix)] in CLIENT_STATE:
            return True
    return name in CLIENT_STATE


__all__ = [
    "CLIENT_STATE",
    "CLIENT_STEPS",
    "Channel",
    "InProcessTransport",
    "LeverageResult",
    "LinearModel",
    "ModelScores",
    "SensitivityResult",
    "TrainingResult",
    "Transport",
    "check_fedsvd_clients",
    "client_labeled_rows",
    "client_seeds",
    "client_view",
    "declared",
    "cluster_rotation",
    "federated_clustering",
    "federated_scores",
    "federated_stand_in_counts",
    "holder_centres",
    "fedsvd_leverage",
    "global_training",
    "keep_centres",
    "holder_in_working_units",
    "local_training",
    "merge_summaries",
    "model_scores",
    "pivotal_selection",
    "qr_leverage",
    "read_labels",
    "row_counts",
    "run_client_step",
    "run_fedsvd_leverage",
    "run_global_training",
    "run_local_training",
    "run_pivotal_selection",
    "run_qr_leverage",
    "send_eligible",
    "send_labeled",
    "send_selection",
    "sensitivity_counts",
    "simulated_clients",
    "simulated_federation",
]
