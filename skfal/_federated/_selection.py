"""The last step every federated sampler shares: telling clients what to label."""

import numpy as np


def server_send_selection(channel, client_rows, indices):
    """Send each client the positions of its selected rows among its own rows.

    Parameters
    ----------
    channel : Channel
        Counts the messages (phase ``"selection"``).
    client_rows : list of ndarray
        Each client's row indices (ascending) in the simulation's ``X``.
    indices : ndarray
        Selected row indices in the simulation's ``X``.

    Returns
    -------
    local_indices : list of ndarray
        For each client, which of its rows (0-based, in its own order) to
        label, as received.
    """
    chosen = np.zeros(sum(rows.shape[0] for rows in client_rows), dtype=bool)
    chosen[indices] = True
    return [
        channel.down("selection", c, np.flatnonzero(chosen[rows]))
        for c, rows in enumerate(client_rows)
    ]
