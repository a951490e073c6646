"""Message accounting between clients and the server, and the auditor's record."""

import contextlib
import threading
from typing import NamedTuple

import numpy as np

_LOCK = threading.Lock()
_OPEN_TRANSCRIPTS = []


class Message(NamedTuple):
    """One message of a federated fit, as it crossed.

    Attributes
    ----------
    phase : str
        The protocol phase, as in the estimator's ``communication_``.
    sender : str
        ``"server"`` or ``"client <i>"``, ``i`` the client's position in the
        fitted estimator's ``clients_`` (the sorted distinct ``groups``).
    receiver : str
        Likewise.
    array : ndarray
        A copy of exactly what was sent.
    """

    phase: str
    sender: str
    receiver: str
    array: np.ndarray


@contextlib.contextmanager
def transcript():
    """Record every message of the federated fits run inside the block.

    An auditor's view of a federated fit: every array that a client or the
    server sends to another party, in order, with its phase, sender and
    receiver. Every value a party uses and did not compute from its own data
    is among these messages, so the transcript is the complete record of
    what each party could learn.

    Yields
    ------
    messages : list of Message
        Filled while the block runs (messages of every thread). Each is a
        named tuple ``(phase, sender, receiver, array)``: the protocol phase
        as in the estimator's ``communication_``; ``"server"`` or
        ``"client <i>"``, ``i`` the client's position in the estimator's
        ``clients_`` (the sorted distinct ``groups``); and a copy of exactly
        the array sent.

    Examples
    --------
    >>> import numpy as np
    >>> from skfal import LeverageScoreSampler
    >>> from skfal.federated import transcript
    >>> rng = np.random.RandomState(0)
    >>> X, groups = rng.standard_normal((60, 3)), rng.randint(3, size=60)
    >>> with transcript() as messages:
    ...     sampler = LeverageScoreSampler(budget=6, random_state=0)
    ...     sampler = sampler.fit(X, groups=groups)
    >>> messages[0].phase, messages[0].sender, messages[0].receiver
    ('key_agreement', 'client 0', 'server')
    >>> sum(m.array.nbytes for m in messages) == sum(
    ...     sum(b.values()) for b in sampler.communication_.values())
    True
    """
    messages = []
    with _LOCK:
        _OPEN_TRANSCRIPTS.append(messages)
    try:
        yield messages
    finally:
        with _LOCK:
            _OPEN_TRANSCRIPTS.remove(messages)


class Channel:
    """Counts the bytes of every message between clients and the server.

    Every value a party uses that another party computed goes through
    :meth:`up`, :meth:`down` or :meth:`broadcast`, which return what the
    receiver gets. In this in-process simulation that is the array itself;
    a transport between processes would serialize it.

    Parameters
    ----------
    record : bool, default=False
        Also keep every message (a transcript), so a test can check exactly
        what crossed.

    Attributes
    ----------
    messages : list of tuple
        ``(phase, direction, client, array)`` for every message, when
        ``record=True``.
    """

    def __init__(self, record=False):
        self.record = record
        self.messages = []
        self._bytes = {}

    def _send(self, phase, direction, client, array):
        array = np.asarray(array)
        totals = self._bytes.setdefault(phase, {"up": 0, "down": 0})
        totals[direction] += int(array.nbytes)
        if self.record:
            self.messages.append((phase, direction, client, array))
        if _OPEN_TRANSCRIPTS:
            party = f"client {client}"
            sender, receiver = (
                (party, "server") if direction == "up" else ("server", party)
            )
            message = Message(phase, sender, receiver, array.copy())
            with _LOCK:
                for messages in _OPEN_TRANSCRIPTS:
                    messages.append(message)
        return array

    def up(self, phase, client, array):
        """A message from ``client`` to the server; returns what the server gets."""
        return self._send(phase, "up", client, array)

    def down(self, phase, client, array):
        """A message from the server to ``client``; returns what the client gets."""
        return self._send(phase, "down", client, array)

    def broadcast(self, phase, clients, array):
        """The same message from the server to every client in ``clients``.

        Counted once per receiving client; returns what each of them gets.
        """
        received = np.asarray(array)
        for client in clients:
            received = self.down(phase, client, array)
        return received

    def summary(self):
        """Bytes per phase: ``{phase: {"up": int, "down": int}}``, in phase order."""
        return {phase: dict(totals) for phase, totals in self._bytes.items()}


def merge_summaries(*summaries):
    """Add up the bytes per phase of several protocol runs (as :meth:`summary`)."""
    merged = {}
    for summary in summaries:
        for phase, totals in summary.items():
            into = merged.setdefault(phase, {"up": 0, "down": 0})
            into["up"] += totals["up"]
            into["down"] += totals["down"]
    return merged
