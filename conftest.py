"""Collection: skip the Flower module's doctests when flwr is not installed."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("flwr") else ["skfal/flower.py"]
