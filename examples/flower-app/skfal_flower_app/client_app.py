"""The ClientApp: skfal's client steps on this SuperNode's rows.

Each SuperNode's node config names its rows and seeds, e.g.::

    flower-supernode ... --node-config \
        'partition-id=0 federation-seed=1234 data-path="/data/rows.npy"'

``data-path`` is a ``.npy`` file of the node's rows (n_i x n_features).
"""

import numpy as np

from skfal.flower import client_app


def load_rows(node_config):
    """This node's rows, from the ``.npy`` file at ``data-path``."""
    return np.load(str(node_config["data-path"]))


app = client_app(load_rows)
