"""Collection: skip the doctests of the modules whose optional extra is absent.

``skfal/flower.py`` imports flwr (``skfal[flower]``), ``skfal/_dask.py``
imports dask (``skfal[dask]``); every other module imports neither.
"""

import importlib.util

collect_ignore = [
    path
    for path, module in [("skfal/flower.py", "flwr"), ("skfal/_dask.py", "dask")]
    if importlib.util.find_spec(module) is None
]
