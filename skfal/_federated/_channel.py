"""Message accounting between clients and the server."""

import numpy as np


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
