"""Parameters several estimators share: each constraint and docstring once.

A class docstring names a shared parameter by a placeholder on a line of its
own, such as ``{budget}``; :func:`fill_doc` replaces it with the numpydoc
entry below, so every estimator documents ``budget`` the same way.
"""

from numbers import Integral, Real

from skfal._compat import Interval, StrOptions


class NotBoolInterval(Interval):
    """An :class:`Interval` that ``True`` and ``False`` do not satisfy.

    ``bool`` is a subclass of ``int`` (so of ``Integral`` and ``Real``):
    scikit-learn's ``Interval(Integral, 1, None)`` takes ``budget=True`` for
    the int 1, and ``Interval(Real, 0, 1)`` for the fraction 1.0 (every row).
    Neither is what a caller who passes a flag means.
    """

    def is_satisfied_by(self, val):
        return not isinstance(val, bool) and super().is_satisfied_by(val)

    def __str__(self):
        type_str, _, rest = super().__str__().partition(" in the range ")
        return f"{type_str} (not a bool) in the range {rest}"


BUDGET_CONSTRAINT = [
    NotBoolInterval(Integral, 1, None, closed="left"),
    NotBoolInterval(Real, 0, 1, closed="right"),
]
SAMPLING_CONSTRAINT = [StrOptions({"pivotal", "iid"})]
UNIFORM_MIX_CONSTRAINT = [Interval(Real, 0, 1, closed="both")]

_DOCS = {
    "budget": """\
    budget : int or float, default=0.1
        Number of distinct rows to select (labels to buy) if an int ``>= 1``;
        that fraction of the rows, rounded up, if a float in ``(0, 1]``.
        ``1.0`` (or ``n_samples``) selects every row, each with weight 1.""",
    "sampling": """\
    sampling : {"pivotal", "iid"}, default="pivotal"
        How rows are drawn from the probabilities ``p``. ``"pivotal"``:
        dependent sampling (Shimizu et al., 2024), exactly ``budget`` rows
        with inclusion probabilities ``pi_i = min(1, c p_i)``, neighbours in
        a k-d tree of the rows competing so the sample is spread out, and
        Horvitz-Thompson weights ``1 / pi_i`` (unbiased). ``"iid"``: the FALE
        paper's rule, i.i.d. draws until ``budget`` rows are distinct, with
        the weights of ``weighting``.""",
    "uniform_mix": """\
    uniform_mix : float in [0, 1], default=0.5
        Share ``eta`` of uniform sampling mixed into the probabilities,
        ``p = (1 - eta) score / sum(score) + eta / n`` ("defensive"
        importance sampling): every row keeps a chance, and with pivotal
        sampling no weight exceeds ``n / (eta * budget)``. 0 samples by the
        scores alone, 1 is uniform.""",
    "verbose": """\
    verbose : int, default=0
        Progress messages on standard output: 0 is silent, 1 prints a line
        per phase of the fit with the seconds elapsed, 2 or more also a line
        per block of rows read (each pass over the table; in a federation,
        each client's pass over its own rows), so a fit on a table larger
        than memory shows that it is moving.""",
}


def fill_doc(cls):
    """Class decorator: put the shared parameter entries into the docstring."""
    doc = cls.__doc__
    for name, text in _DOCS.items():
        doc = doc.replace("    {" + name + "}", text)
    cls.__doc__ = doc
    return cls
