"""Parameters several estimators share: each constraint and docstring once.

A class docstring names a shared parameter by a placeholder on a line of its
own, such as ``{budget}``; :func:`fill_doc` replaces it with the numpydoc
entry below, so every estimator documents ``budget`` the same way.
"""

from numbers import Integral, Real

from skfal._compat import Interval

BUDGET_CONSTRAINT = [
    Interval(Integral, 1, None, closed="left"),
    Interval(Real, 0, 1, closed="right"),
]

_DOCS = {
    "budget": """\
    budget : int or float, default=0.1
        Number of distinct rows to select (labels to buy) if an int ``>= 1``;
        that fraction of the rows, rounded up, if a float in ``(0, 1]``.
        ``1.0`` (or ``n_samples``) selects every row, each with weight 1.""",
}


def fill_doc(cls):
    """Class decorator: put the shared parameter entries into the docstring."""
    doc = cls.__doc__
    for name, text in _DOCS.items():
        doc = doc.replace("    {" + name + "}", text)
    cls.__doc__ = doc
    return cls
