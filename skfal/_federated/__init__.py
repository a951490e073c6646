"""The federated protocols, as client steps and server steps.

Every step is a plain function that takes and returns numpy arrays (the
messages). Functions named ``client_*`` run where a client's rows live; functions
named ``server_*`` run at the server and receive only what clients upload. The
``run_*`` functions simulate one protocol, or one phase of it, in one process:
they call the steps in order, pass every message through a :class:`Channel`
(which counts the bytes and can keep a transcript for tests), run the clients'
steps in parallel with joblib, and return a ``NamedTuple``. On a real federated
engine each step maps to a remote call and each Channel message to a network
message.

This package never imports an estimator; estimators import from here only.
"""

from skfal._federated._channel import Channel, merge_summaries
from skfal._federated._clustering import (
    SensitivityResult,
    run_sensitivity_protocol,
    run_stand_in_counts,
)
from skfal._federated._leverage import (
    LeverageResult,
    run_fedsvd_leverage,
    run_qr_leverage,
)
from skfal._federated._model_loss import (
    ModelScores,
    run_model_scores,
    run_send_labeled,
)
from skfal._federated._regression import (
    LinearModel,
    run_global_training,
    run_local_training,
)
from skfal._federated._secure import key_session, run_largest_exponent
from skfal._federated._selection import (
    client_labeled_rows,
    run_pivotal_selection,
    run_row_counts,
    server_send_selection,
)
from skfal._federated._simulation import client_view

__all__ = [
    "Channel",
    "LeverageResult",
    "LinearModel",
    "ModelScores",
    "SensitivityResult",
    "client_labeled_rows",
    "client_view",
    "key_session",
    "merge_summaries",
    "run_fedsvd_leverage",
    "run_largest_exponent",
    "run_global_training",
    "run_local_training",
    "run_model_scores",
    "run_pivotal_selection",
    "run_qr_leverage",
    "run_send_labeled",
    "run_row_counts",
    "run_sensitivity_protocol",
    "run_stand_in_counts",
    "server_send_selection",
]
