"""The federated protocols, as client steps and server steps.

Every step is a plain function that takes and returns numpy arrays (the
messages). Functions named ``client_*`` run where a client's rows live; functions
named ``server_*`` run at the server and receive only what clients upload. The
``run_*`` orchestrators simulate a federation in one process: they call the
steps in order, pass every message through a :class:`Channel` (which counts the
bytes and can keep a transcript for tests), and run the clients' steps in
parallel with joblib. On a real federated engine each step maps to a remote
call and each Channel message to a network message.

This package never imports an estimator.
"""

from skfal._federated._channel import Channel
from skfal._federated._leverage import run_leverage_protocol
from skfal._federated._regression import run_regression_protocol
from skfal._federated._selection import server_send_selection

__all__ = [
    "Channel",
    "run_leverage_protocol",
    "run_regression_protocol",
    "server_send_selection",
]
