"""The sampling core shared by every skfal sampler.

Every sampler turns non-negative scores into a selection the same way (FALE,
Algorithm 1): draw row indices i.i.d. *with replacement* with probability
``p_i = score_i / sum(scores)`` until ``budget`` *distinct* rows have been drawn,
then give each selected row an importance weight.

Drawing one index at a time can take arbitrarily long when the budget is close
to the number of rows and some probabilities are tiny (a coupon-collector
problem). :func:`draw_until_distinct` simulates the very same random process
exactly, in ``O(n + budget log budget)`` time whatever the probabilities:

* The distinct rows, in order of first appearance, are a successive sample
  without replacement with probabilities ``p``: the ``budget`` smallest keys
  ``E_i / p_i`` with ``E_i ~ Exp(1)`` (Efraimidis and Spirakis, 2006).
* While ``j`` distinct rows are known, the repeated draws that land on them
  before the next new row follow a negative multinomial law, which is a
  Poisson mixture: given ``lambda_j ~ Exp(1)``, row ``i`` is hit
  ``Poisson(lambda_j * p_i / q_j)`` times, ``q_j`` being the mass not yet
  drawn. Summing the independent phases, a row first drawn in position ``r``
  has multiplicity ``1 + Poisson(p_i * sum_{j > r} lambda_j / q_j)``.

``tests/test_sampling.py`` checks this against a literal draw-by-draw
simulation.
"""

import math
from numbers import Integral
from typing import NamedTuple

import numpy as np

WEIGHTINGS = ("hansen-hurwitz", "des-raj")
_MAX_SEED = np.iinfo(np.int32).max


class Selection(NamedTuple):
    """Outcome of a draw: sorted distinct rows, their weights and multiplicities."""

    indices: np.ndarray
    weights: np.ndarray
    counts: np.ndarray
    n_draws: int


def draw_seed(random_state, size=None):
    """Seed(s) for an independent stream (a client's mask, a sub-step), drawn
    from ``random_state``: an int in ``[0, 2**31 - 1)``, or an array of them."""
    return random_state.randint(_MAX_SEED, size=size)


def resolve_budget(budget, n_samples):
    """Turn a budget (count or fraction of the rows) into a number of rows.

    Parameters
    ----------
    budget : int or float
        An integer ``>= 1`` is a number of distinct rows; a float in ``(0, 1]``
        is that fraction of ``n_samples``, rounded up.
    n_samples : int
        Number of rows available.

    Returns
    -------
    n_selected : int
    """
    if isinstance(budget, Integral) and not isinstance(budget, bool):
        n_selected = int(budget)
    else:
        exact = float(budget) * n_samples
        nearest = round(exact)
        # 0.1 * 30 is 3.0000000000000004 in floating point: do not round that up.
        if abs(exact - nearest) <= 1e-9 * max(1.0, exact):
            n_selected = int(nearest)
        else:
            n_selected = math.ceil(exact)
        n_selected = max(n_selected, 1)
    if n_selected < 1:
        raise ValueError(f"budget must be at least 1 row, got budget={budget!r}.")
    if n_selected > n_samples:
        raise ValueError(
            f"budget={budget!r} asks for {n_selected} distinct rows but X has "
            f"only n_samples={n_samples} rows. Lower the budget to at most "
            f"{n_samples} (or a fraction in (0, 1])."
        )
    return n_selected


def sampling_probabilities(scores):
    """Normalise non-negative scores into sampling probabilities.

    Raises a ValueError when the scores cannot define a distribution.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(scores)) or np.any(scores < 0):
        raise ValueError("Sampling scores must be finite and non-negative.")
    total = scores.sum()
    if total <= 0:
        raise ValueError(
            "All sampling scores are zero, so no row can be drawn. For leverage "
            "scores this means X is all zeros (rank 0)."
        )
    return scores / total


def census(n_samples):
    """Every row selected, each with weight 1: its inclusion probability is 1.

    Drawing until all ``n_samples`` rows are distinct is impossible when a
    row's probability is zero and pointless otherwise, so no draw is made
    (``n_draws`` is 0).
    """
    return Selection(
        indices=np.arange(n_samples),
        weights=np.ones(n_samples),
        counts=np.ones(n_samples, dtype=np.int64),
        n_draws=0,
    )


def select_by_scores(scores, budget, random_state, weighting="hansen-hurwitz"):
    """The selection of ``budget`` rows with probabilities proportional to scores.

    A budget of every row is a :func:`census`; otherwise
    :func:`draw_until_distinct` with the normalised scores.
    """
    if budget == len(scores):
        return census(budget)
    return draw_until_distinct(
        sampling_probabilities(scores), budget, random_state, weighting
    )


def draw_until_distinct(p, budget, random_state, weighting="hansen-hurwitz"):
    """Draw rows i.i.d. with probabilities ``p`` until ``budget`` are distinct.

    Parameters
    ----------
    p : ndarray of shape (n_samples,)
        Sampling probabilities (non-negative, summing to one).
    budget : int
        Number of distinct rows to draw.
    random_state : numpy.random.RandomState
        Source of randomness.
    weighting : {"hansen-hurwitz", "des-raj"}, default="hansen-hurwitz"
        ``"hansen-hurwitz"``: ``multiplicity_i / (n_draws * p_i)``, the weights
        of FALE's importance-sampling matrix. ``"des-raj"``: Des Raj's ordered
        weights, exactly unbiased for this stopping rule (see
        :func:`importance_weights`).

    Returns
    -------
    selection : Selection
    """
    p = np.asarray(p, dtype=np.float64)
    n_positive = int(np.count_nonzero(p))
    if budget > n_positive:
        raise ValueError(
            f"budget={budget} distinct rows cannot be drawn: only {n_positive} of "
            f"the {p.shape[0]} rows have a positive sampling probability (rows "
            "whose score is zero, such as all-zero rows, are never drawn). Lower "
            f"the budget to at most {n_positive}."
        )
    with np.errstate(divide="ignore"):
        keys = random_state.standard_exponential(p.shape[0]) / p
    first = np.argpartition(keys, budget - 1)[:budget]
    first = first[np.argsort(keys[first], kind="stable")]  # order of appearance
    p_first = p[first]

    # Mass not yet drawn before position r: rows never selected plus positions >= r.
    selected = np.zeros(p.shape[0], dtype=bool)
    selected[first] = True
    rest = p[~selected].sum()
    remaining = rest + np.cumsum(p_first[::-1])[::-1]

    # Phase j (j distinct rows known) has intensity lambda_j / q_j, q_j = remaining[j].
    intensity = random_state.standard_exponential(budget - 1) / remaining[1:]
    exposure = np.append(np.cumsum(intensity[::-1])[::-1], 0.0)
    counts = 1 + random_state.poisson(p_first * exposure)
    n_draws = int(counts.sum())

    weights = importance_weights(
        p_first, counts, n_draws, remaining, weighting=weighting
    )
    by_index = np.argsort(first)
    return Selection(
        indices=first[by_index],
        weights=weights[by_index],
        counts=counts[by_index],
        n_draws=n_draws,
    )


def importance_weights(p_first, counts, n_draws, remaining, weighting):
    """Importance weights of rows listed in their order of first appearance.

    Parameters
    ----------
    p_first : ndarray of shape (budget,)
        Probability of each selected row, in order of first appearance.
    counts : ndarray of shape (budget,)
        How often each was drawn.
    n_draws : int
        Total number of draws.
    remaining : ndarray of shape (budget,)
        Probability mass not yet drawn just before each row first appeared.
    weighting : {"hansen-hurwitz", "des-raj"}

    Returns
    -------
    weights : ndarray of shape (budget,)

    Notes
    -----
    Hansen-Hurwitz weights ``counts / (n_draws p)`` are unbiased when the number
    of draws is fixed in advance; with the "until ``budget`` distinct" stopping
    rule they carry a small bias that vanishes as the budget grows. Des Raj's
    ordered estimator averages ``t_j = sum_{r<j} y_r + y_j (1 - P_{j-1}) / p_j``,
    each of which is unbiased given the rows before it, so the weights
    ``((1 - P_{r-1}) / p_r + budget - r) / budget`` are exactly unbiased for any
    row function (Des Raj, 1956).
    """
    if weighting == "hansen-hurwitz":
        return counts / (n_draws * p_first)
    if weighting == "des-raj":
        budget = p_first.shape[0]
        later = budget - 1 - np.arange(budget)
        return (remaining / p_first + later) / budget
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
