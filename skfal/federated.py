"""Auditing federated fits: the record of every message between the parties.

The federated estimators (any skfal estimator fitted with ``groups``) run their
protocols through counted messages; :func:`transcript` records them.
"""

from skfal._federated._channel import Message, transcript

__all__ = ["Message", "transcript"]
