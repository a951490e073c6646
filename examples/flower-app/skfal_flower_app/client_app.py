"""The ClientApp: skfal's client steps on this SuperNode's rows.

Each SuperNode's node config names its rows, its labels and its seeds, e.g.::

    flower-supernode ... --node-config \
        'partition-id=0 federation-seed=1234 data-path="/data/rows.npy" \
         label-path="/data/labels.npy"'

``data-path`` is a ``.npy`` file of the node's rows (n_i x n_features);
``label-path`` (needed only to train a FederatedActiveRegressor) a ``.npy``
file of their labels, read only at the rows the server selects (in a real
deployment, ``label_rows`` asks an annotator instead). ``release-model=false``
keeps the learned model on this node (the server then holds the selection
and the masked model only).
"""

import numpy as np

from skfal.flower import client_app


def load_rows(node_config):
    """This node's rows, from the ``.npy`` file at ``data-path``.

    Memory-mapped, read-only: every message starts a new ClientApp process,
    and the client steps read the rows chunk by chunk, so a message reads
    only the pages it uses (from the page cache after the first) instead of
    copying the whole file, and no step can write to the file.
    """
    return np.load(str(node_config["data-path"]), mmap_mode="r")


def label_rows(node_config, rows):
    """The labels of this node's rows ``rows`` (the selected ones only)."""
    labels = np.load(str(node_config["label-path"]), mmap_mode="r")
    return np.asarray(labels[rows])


app = client_app(load_rows, label=label_rows)
