"""The steps every federated sampler shares: row counts up, the selection down."""

import numpy as np

from skfal._federated._simulation import split_selection


def client_row_count(n_rows):
    """A client's number of rows, as it uploads it."""
    return np.array([n_rows])


def server_total_rows(counts):
    """The federation's number of rows, from the clients' counts."""
    return int(sum(int(count[0]) for count in counts))


def run_row_counts(client_rows, channel):
    """Clients upload their row counts; the server learns the total (and each)."""
    return server_total_rows(
        [
            channel.up("row_counts", c, client_row_count(rows.shape[0]))
            for c, rows in enumerate(client_rows)
        ]
    )


def server_send_selection(channel, client_rows, indices, weights):
    """Send each client which of its rows to label, and their weights.

    Parameters
    ----------
    channel : Channel
        Counts the messages (phase ``"selection"``).
    client_rows : list of ndarray
        Each client's row indices (ascending) in the simulation's ``X``.
    indices : ndarray
        Sorted selected row indices in the simulation's ``X``.
    weights : ndarray
        Importance weight of each selected row.

    Returns
    -------
    received : list of tuple
        For each client, ``(local_indices, local_weights)`` as received:
        which of its rows (0-based, in its own order) to label, and their
        importance weights.
    """
    local, positions = split_selection(client_rows, indices)
    return [
        (
            channel.down("selection", c, local[c]),
            channel.down("selection", c, weights[positions[c]]),
        )
        for c in range(len(client_rows))
    ]
