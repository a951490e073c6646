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

from skfal._rows import (
    as_dense,
    cache_slices,
    chunk_size,
    dense_rows,
    iter_blocks,
    map_pieces,
    thread_map,
)

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
    if isinstance(budget, bool | np.bool_):
        raise ValueError(
            f"budget={budget!r} is a bool, not a number of rows: pass an int "
            ">= 1 (rows to select) or a float in (0, 1] (a fraction of them)."
        )
    if isinstance(budget, Integral):
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


def sampling_probabilities(scores, total=None):
    """Normalise non-negative scores into sampling probabilities.

    ``total`` is the sum the scores are divided by (their own sum when
    ``None``; a client passes the federation's). Raises a ValueError when
    the scores cannot define a distribution.
    """
    scores = np.asarray(scores, dtype=np.float64)
    # A NaN or an infinity makes the sum non-finite: two passes, not four.
    own = float(scores.sum())
    if scores.size and (not np.isfinite(own) or scores.min() < 0):
        raise ValueError("Sampling scores must be finite and non-negative.")
    total = own if total is None else total
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


def _check_reachable(p, budget):
    """The number of rows with a positive probability; an error below budget."""
    n_positive = int(np.count_nonzero(p))
    if budget > n_positive:
        raise ValueError(unreachable_budget(budget, n_positive, p.shape[0]))
    return n_positive


def unreachable_budget(budget, n_positive, n_samples):
    """The error message of a budget above the rows that can be drawn."""
    return (
        f"budget={budget} distinct rows cannot be selected: only {n_positive} "
        f"of the {n_samples} rows have a positive sampling probability (rows "
        "whose score is zero, such as all-zero rows, are never selected). "
        f"Lower the budget to at most {n_positive}, select every row "
        "(budget=1.0), or mix in uniform sampling (uniform_mix > 0)."
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
        ``counts`` are int64, or float64 when the draw takes more draws than
        int64 holds (a budget close to the number of rows with some tiny
        probabilities); ``n_draws`` is a Python int, exact while the counts
        are int64.

    Raises
    ------
    ValueError
        When the draw would take more draws than float64 can count (about
        ``1e308``, from probabilities near the smallest float), or a weight
        would exceed float64's range.
    """
    p = np.asarray(p, dtype=np.float64)
    _check_reachable(p, budget)
    first = _first_appearances(p, budget, random_state)
    selected = np.zeros(p.shape[0], dtype=bool)
    selected[first] = True
    return repeats_and_weights(
        first, p[first], p[~selected].sum(), random_state, weighting
    )


def repeats_and_weights(first, p_first, rest, random_state, weighting):
    """The rest of :func:`draw_until_distinct` once the distinct rows are known.

    Parameters
    ----------
    first : ndarray of shape (budget,)
        The distinct rows, in their order of first appearance.
    p_first : ndarray of shape (budget,)
        Their probabilities.
    rest : float
        The probability of all the other rows.
    random_state : numpy.random.RandomState
    weighting : {"hansen-hurwitz", "des-raj"}

    Returns
    -------
    selection : Selection
        As :func:`draw_until_distinct`'s (rows sorted).
    """
    budget = first.shape[0]
    # Mass not yet drawn before position r: rows never selected plus positions >= r.
    remaining = rest + np.cumsum(p_first[::-1])[::-1]

    # Phase j (j distinct rows known) has intensity lambda_j / q_j, q_j = remaining[j].
    with np.errstate(over="ignore"):
        intensity = random_state.standard_exponential(budget - 1) / remaining[1:]
        exposure = np.append(np.cumsum(intensity[::-1])[::-1], 0.0)
        mean_repeats = p_first * exposure
    if not np.all(np.isfinite(mean_repeats)):
        raise ValueError(_too_many_draws(budget, p_first.min()))
    counts, n_draws = _multiplicities(mean_repeats, random_state)
    if counts.dtype.kind == "f" and not np.isfinite(float(n_draws)):
        raise ValueError(_too_many_draws(budget, p_first.min()))

    with np.errstate(over="ignore", divide="ignore"):
        weights = importance_weights(
            p_first, counts, n_draws, remaining, weighting=weighting
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError(
            f"An importance weight of the {budget} rows drawn exceeds the float64 "
            f"range: a row with sampling probability {p_first.min():.3g} was "
            "drawn. Mix in uniform sampling (uniform_mix > 0) or use "
            'sampling="pivotal" (its weights are at most 1e12).'
        )
    by_index = np.argsort(first)
    return Selection(
        indices=first[by_index],
        weights=weights[by_index],
        counts=counts[by_index],
        n_draws=n_draws,
    )


def _first_appearances(p, budget, random_state):
    """The ``budget`` distinct rows in order of first appearance
    (:func:`smallest_keys` of exponentials drawn for every row)."""
    return smallest_keys(random_state.standard_exponential(p.shape[0]), p, budget)


def smallest_keys(exponentials, p, budget):
    """The ``budget`` rows of smallest key ``E_i / p_i``, in the keys' order.

    With ``E_i`` independent standard exponentials these are the first
    ``budget`` distinct rows of an i.i.d. draw by ``p``, in their order of
    first appearance (the times of first appearance are independent
    exponentials of rates ``p_i``), whoever draws each ``E_i``. Where a
    positive ``p_i`` is so small that its key overflows to infinity (it
    would tie with the rows of probability 0), the keys are compared as
    ``log E_i - log p_i`` instead: the same order, and a row of probability
    0 always last.
    """
    with np.errstate(divide="ignore", over="ignore"):
        keys = exponentials / p
        if np.isinf(keys[p > 0]).any():
            keys = np.log(exponentials) - np.log(p)
    first = np.argpartition(keys, budget - 1)[:budget]
    return first[np.argsort(keys[first], kind="stable")]


# numpy's Poisson sampler refuses means near the int64 range; above this one
# a multiplicity is drawn from the normal approximation, whose relative error
# (about 1 / sqrt(mean) < 2**-31) is below float64's rounding of such counts.
_POISSON_MAX = 2.0**62


def _multiplicities(mean_repeats, random_state):
    """``1 + Poisson(mean_repeats)`` for each row, and their sum ``n_draws``.

    int64 counts and an exact Python int sum while every mean is below
    :data:`_POISSON_MAX`; float64 counts (and their rounded sum) above it.
    """
    large = mean_repeats > _POISSON_MAX
    if not large.any():
        counts = 1 + random_state.poisson(mean_repeats)
        if counts.max() <= np.iinfo(np.int64).max // counts.size:
            return counts, int(counts.sum())
        return counts, sum(counts.tolist())  # beyond int64: exact Python ints
    counts = 1.0 + random_state.poisson(np.where(large, 0.0, mean_repeats))
    lam = mean_repeats[large]
    noise = random_state.standard_normal(lam.shape[0])
    counts[large] = np.maximum(1.0, np.round(1.0 + lam + np.sqrt(lam) * noise))
    with np.errstate(over="ignore"):
        total = counts.sum()
    return counts, int(total) if np.isfinite(total) else math.inf


def _too_many_draws(budget, p_min):
    return (
        f'sampling="iid" would need more draws than float64 can count (over '
        f"1e308) to reach {budget} distinct rows: a row with sampling "
        f"probability {p_min:.3g} must be drawn. Mix in uniform sampling "
        '(uniform_mix > 0), use sampling="pivotal", or lower the budget.'
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
        return counts / (float(n_draws) * p_first)  # n_draws may pass int64
    if weighting == "des-raj":
        budget = p_first.shape[0]
        later = budget - 1 - np.arange(budget)
        return (remaining / p_first + later) / budget
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")


# ------------------------------------------------------- dependent (pivotal)
#
# Pivotal sampling (Deville and Tille, 1998) selects exactly ``budget`` rows
# with given inclusion probabilities ``pi`` (summing to ``budget``): two rows
# with fractional probabilities ``a`` and ``b`` meet in a duel that moves all
# of the pair's probability mass onto one of them as far as possible (one
# ends at 0 or 1) while keeping each row's expected value, so every row's
# inclusion probability stays exactly ``pi_i``. Rows that meet early are
# neighbours in a spatially coherent order (a k-d tree with median splits,
# after Shimizu et al., 2024), so neighbours compete and the sample is
# spread out. The Horvitz-Thompson weights ``1 / pi_i`` are unbiased.

_SNAP = 1e-12  # probabilities this close to 0 or 1 are decided


class Inclusion(NamedTuple):
    """What any party needs to turn its rows' scores into inclusion
    probabilities: ``pi_i = min(1, scale * p_i)`` with
    ``p_i = (1 - uniform_mix) s_i / total + uniform_mix / n_eligible`` over
    the eligible rows (:func:`inclusion_terms`, :func:`inclusion_from_terms`).
    Four numbers, so a federated server sends these instead of ``n``
    probabilities."""

    scale: float
    total: float
    n_eligible: int
    uniform_mix: float


def _mix(scores, eligible, total, n_eligible, uniform_mix):
    """``(1 - eta) s / total + eta / m`` on the eligible rows, 0 elsewhere.

    ``eligible`` None stands for every row. The arithmetic is the same row
    by row whatever the mask, so a client gets the server's numbers.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if eligible is not None:
        scores = np.where(eligible, scores, 0.0)
    share = 1.0 / max(n_eligible, 1)
    if uniform_mix >= 1 or (uniform_mix > 0 and total <= 0):
        # Nothing to mix in: uniform over the eligible rows.
        if eligible is None:
            return np.full(scores.shape[0], share)
        return eligible * share
    p = sampling_probabilities(scores, total)  # a new array
    if uniform_mix > 0:
        p *= 1.0 - uniform_mix
        p += uniform_mix * (share if eligible is None else eligible * share)
    return p


def _totals(scores, eligible):
    """The eligible rows' total score and number (``eligible`` None: all)."""
    scores = np.asarray(scores, dtype=np.float64)
    if eligible is None:
        return float(scores.sum()), int(scores.shape[0])
    return float(np.where(eligible, scores, 0.0).sum()), int(np.count_nonzero(eligible))


def mixed_probabilities(scores, uniform_mix, eligible=None):
    """``(1 - eta) scores / sum(scores) + eta / m``: defensive importance sampling.

    With ``eta > 0`` every one of the ``m`` eligible rows keeps at least
    ``eta / m`` of the mass, so no inclusion probability falls below
    ``eta * budget / m`` and no Horvitz-Thompson weight exceeds
    ``m / (eta * budget)``. Rows outside ``eligible`` (a boolean mask; all
    rows when ``None``) get 0. Raises a ValueError when the scores cannot
    define a distribution and ``eta`` is 0.
    """
    return _mix(scores, eligible, *_totals(scores, eligible), uniform_mix)


def inclusion_scale(p, budget, *, overwrite=False):
    """The ``c`` of ``pi_i = min(1, c p_i)`` with ``sum(pi) = budget``.

    Parameters
    ----------
    p : ndarray of shape (n_samples,)
        Non-negative probabilities (summing to one).
    budget : int
        Expected (and, with pivotal sampling, exact) number of rows.
    overwrite : bool, default=False
        Whether ``p`` may be reordered in place (no copy of ``n`` numbers).

    Returns
    -------
    scale : float
    """
    p = np.asarray(p, dtype=np.float64)
    n_positive = _check_reachable(p, budget)
    if budget == n_positive:  # every positive row is capped at 1
        return 2.0 / p[p > 0].min()
    total = p.sum()
    # No row capped (the usual case): the scale below with k = 0, found
    # without the partial sort.
    if budget / total * p.max() <= 1.0:
        return float(budget / total)
    # At most budget - 1 rows are capped at 1, all among the budget largest:
    # sort only those values (O(n + budget log budget)).
    n = p.shape[0]
    if overwrite and p.flags.writeable:
        p.partition(n - budget)
        top = p[n - budget :]
    else:
        top = np.partition(p, n - budget)[n - budget :]
    return _capped_scale(top, total, budget)


def _capped_scale(top, total, budget):
    """:func:`inclusion_scale` from the ``budget`` largest ``p`` (any order)
    and the total of all, when some row is capped at 1."""
    ordered = np.sort(top)[::-1]
    k = np.arange(budget)  # number of rows capped before the scale applies
    tail = total - np.concatenate([[0.0], np.cumsum(ordered)[:-1]])
    scale = (budget - k) / tail
    # With the first k rows capped, the scale must not push row k above 1.
    return float(scale[int(np.flatnonzero(scale * ordered <= 1.0)[0])])


def inclusion_probabilities(p, budget):
    """``pi_i = min(1, c p_i)`` with ``sum(pi) = budget`` (see :func:`inclusion_scale`).

    Returns
    -------
    pi : ndarray of shape (n_samples,)
        Inclusion probabilities; rows with ``p_i = 0`` get 0.
    """
    return np.minimum(1.0, inclusion_scale(p, budget) * np.asarray(p, dtype=np.float64))


def inclusion_terms(scores, budget, uniform_mix, eligible=None):
    """The server's :class:`Inclusion` for ``budget`` rows from all the scores."""
    total, n_eligible = _totals(scores, eligible)
    p = _mix(scores, eligible, total, n_eligible, uniform_mix)  # a new array
    scale = inclusion_scale(p, budget, overwrite=True)
    return Inclusion(scale, total, n_eligible, uniform_mix)


def inclusion_from_terms(scores, terms, eligible=None):
    """Inclusion probabilities of some rows from their scores and the terms.

    The same arithmetic row by row, so a client computing its own rows'
    probabilities gets exactly the server's numbers for them.
    """
    p = _mix(scores, eligible, terms.total, int(terms.n_eligible), terms.uniform_mix)
    if not (p.flags.owndata and p.flags.writeable):
        p = p.copy()
    p *= terms.scale  # in place: n numbers more, not 2 n
    return np.minimum(p, 1.0, out=p)


def tree_depth(n_samples, budget):
    """Levels of the spatial tree that matter for a sample of ``budget`` rows.

    Duels among rows at depths far below ``log2(budget)`` only move
    fractions of a selected row between close neighbours; a few levels
    more than that spread the sample, and the rest only cost time.
    """
    return int(
        min(60, np.ceil(np.log2(max(n_samples, 2))), np.ceil(np.log2(budget + 1)) + 6)
    )


def _bin(edges, values):
    """``searchsorted(edges, values, side="right")``, as uint64.

    With the few edges of a k-d tree level (one per split of the axis) a
    comparison per edge is several times faster than a binary search.
    """
    if edges.shape[0] == 1:
        return (values >= edges[0]).astype(np.uint64)
    if edges.shape[0] <= 8:
        bins = np.zeros(values.shape[0], dtype=np.uint64)
        for edge in edges:
            bins += values >= edge
        return bins
    return np.searchsorted(edges, values, side="right").astype(np.uint64)


def spatial_order(X, max_depth):
    """Rows in the order of a k-d tree with median splits on principal axes.

    The axes are the principal directions of a deterministic subsample of
    ``X`` (at most 4096 rows, centered). The tree lives in the whitened
    space, where a least-squares fit's geometry is (leverage is distance
    there) and every principal axis is equally wide: each level halves every
    node at the median of the next axis in turn, widest axis first, so rows
    close in the order are close in that space (Shimizu et al. split along
    a principal direction). Measured on ``benchmarks/bench_label_efficiency.py``,
    splitting the raw widest axis instead (so the narrow axes are never
    split) gave a higher median error at 2d. The tree is built from each
    coordinate's quantile bins and one sort: one chunked pass over ``X``,
    ``O(n log n)``, no loop over rows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    max_depth : int
        Levels of the tree (see :func:`tree_depth`).

    Returns
    -------
    order : ndarray of shape (n_samples,)
    """
    return stable_order(_tree_code(X, max_depth), max_depth)


def stable_order(codes, n_bits, *, overwrite=False):
    """``np.argsort(codes, kind="stable")`` for codes below ``2**n_bits``.

    When the code and the row index fit in 64 bits together, sorting the
    packed keys ``code << b | index`` gives the same order (ties by index)
    several times faster than an indirect sort. With ``overwrite`` the keys
    are built and sorted in ``codes`` itself (then garbage), so the order
    costs no more memory than the codes did. The order is int32 when ``n``
    rows fit (half the memory of ``n`` indices), else int64.
    """
    n = codes.shape[0]
    index_dtype = np.int32 if n <= np.iinfo(np.int32).max else np.int64
    index_bits = max(1, int(n - 1).bit_length())
    if n_bits + index_bits > 64:
        return np.argsort(codes, kind="stable").astype(index_dtype, copy=False)
    keys = codes if overwrite else codes.copy()
    keys <<= np.uint64(index_bits)
    step = 2**20  # the row indices added a block at a time: no n-long arange
    for start in range(0, n, step):
        stop = min(n, start + step)
        keys[start:stop] |= np.arange(start, stop, dtype=np.uint64)
    keys.sort()
    keys &= np.uint64((1 << index_bits) - 1)
    return keys.astype(index_dtype)


class _Tree(NamedTuple):
    """A k-d tree's plan: how a row is projected, and the bits of each level.

    ``directions`` hold the split axes as columns; a row's coordinates
    are ``((x - center) * scale) @ directions``, or ``x @ directions`` when
    ``center`` is None (``directions`` None: the caller computes them,
    :func:`whitened_tree`).
    The first ``n_single`` axes are split once: their bit is
    ``coordinate >= edge`` at ``positions[a]`` (counted from the code's low
    end). Each later axis ``a`` has the sorted ``edges[a]`` of its
    ``2**s`` quantile bins, and ``tables[a][bin]`` is the code's bits that
    its bin sets.
    """

    center: np.ndarray
    scale: float
    directions: np.ndarray
    n_single: int
    single_edges: np.ndarray
    positions: np.ndarray
    edges: list
    tables: list
    n_bits: int


def _tree_plan(X, max_depth):
    """The :class:`_Tree` of ``X`` (None when no axis can be split)."""
    n = X.shape[0]
    if n <= 2 or X.shape[1] == 0:
        return None
    step = max(1, n // 4096)  # a deterministic subsample for axes, spreads, bins
    sample = dense_rows(X, np.arange(0, n, step))
    # Scaled by a power of two (exact) to entries below 1: at 1e+-300 the
    # spreads sv**2 would overflow or vanish and no axis would be split.
    shift = -int(np.frexp(np.abs(sample).max())[1])
    if not (sample.flags.owndata and sample.flags.writeable):
        sample = sample.copy()  # scaled in place: never a view of X
    np.ldexp(sample, shift, out=sample)  # undone below: exact both ways
    mean = sample.mean(axis=0)
    # The SVD of the sample's R factor (Householder, backward stable): the
    # same axes and spreads as the sample's own, at half the cost.
    r = np.linalg.qr(sample - mean, mode="r")
    _, sv, vt = np.linalg.svd(r, full_matrices=False)
    # An SVD fixes each axis up to its sign, which rounding may flip (X * 10
    # against X): the largest entry of each axis is made positive, so the
    # order, and the pivotal sample, do not depend on the unit of X.
    largest = vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)]
    vt *= np.where(largest < 0, -1.0, 1.0)[:, None]
    spread = sv**2 / sample.shape[0]
    layout = _layout(spread > 1e-12 * spread.sum(), max_depth, sample.shape[0])
    if layout is None:
        return None
    # Entries of X between 2**-100 and 2**100 are projected as they are;
    # others are scaled by the power of two first (exact), so no product
    # over- or underflows. Rows far from the origin (a mean above 2**20
    # spreads) are centered first, which keeps the digits that tell them
    # apart; closer ones lose at most 2**20 eps of a spread uncentered,
    # and the projection alone costs a quarter less.
    scale = 1.0 if abs(shift) <= 100 else float(np.ldexp(1.0, shift))
    near = np.abs(mean).max() <= 2.0**20 * np.sqrt(spread.max())
    tree = _Tree(
        center=None if scale == 1.0 and near else np.ldexp(mean, -shift),
        scale=scale,
        directions=np.ascontiguousarray(vt[layout.axes].T),
        **_no_bins(layout),
    )
    # The bins come from the sample's coordinates, computed as every row's.
    return _with_bins(
        tree, layout, _project(np.ldexp(sample, -shift, out=sample), tree)
    )


def whitened_tree(sample_z, max_depth):
    """The k-d tree over coordinates that are whitened already.

    ``sample_z`` holds a sample's coordinates along orthonormal principal
    axes of the whitened design (columns in the order of the singular values
    of ``X``, largest first), where every axis is equally wide: the levels
    split the axes along which the sample spreads in turn, as
    :func:`_tree_plan` splits a sample's principal axes.

    Returns
    -------
    tree : _Tree or None
        The tree (``directions`` None), None when no axis can be split.
    columns : ndarray of int
        An order of ``z``'s columns that puts the tree's axes first, as
        :func:`code_block` reads them: a row's code is
        ``code_block(z[:, columns], tree)``.
    """
    n_axes = sample_z.shape[1]
    # An axis along which the sample does not spread (the constant column's
    # direction of a centered table with an intercept) is never split: its
    # median would send every row to one side.
    spread = sample_z.var(axis=0) if sample_z.shape[0] else np.zeros(n_axes)
    splittable = spread > 1e-12 * spread.sum()
    layout = _layout(splittable, max_depth, sample_z.shape[0])
    if layout is None:
        return None, np.arange(n_axes)
    tree = _Tree(center=None, scale=1.0, directions=None, **_no_bins(layout))
    rest = [j for j in range(n_axes) if j not in layout.levels]
    columns = np.array(layout.axes + rest, dtype=np.intp)
    return _with_bins(tree, layout, sample_z[:, layout.axes]), columns


class _Layout(NamedTuple):
    """Which axis each level of a tree splits (:func:`_layout`)."""

    axes: list  # the split axes: those split once first, in level order
    n_single: int
    positions: np.ndarray  # the bit of each axis split once
    levels: dict  # axis: its bits, from the root
    splits: np.ndarray  # number of splits of each axis
    n_bits: int


def _layout(splittable, max_depth, n_sample):
    """Split the ``splittable`` axes (equally wide) in turn, widest first.

    Each split of an axis quarters its width, and an axis is split at most
    ``log2(n_sample)`` times (its bins come from a sample of that size).
    Returns None when no axis can be split.
    """
    if not np.any(splittable):
        return None
    max_bits = max(1, int(np.log2(n_sample)))
    width = splittable.astype(np.float64)
    splits, plan = np.zeros(width.shape[0], dtype=np.int64), []
    for _ in range(max_depth):
        j = int(np.argmax(width))
        if width[j] <= 0:
            break
        plan.append(j)
        splits[j] += 1
        width[j] = 0.0 if splits[j] >= max_bits else width[j] / 4.0
    if not plan:
        return None
    n_bits = len(plan)
    # Level t (from the root) is bit n_bits - 1 - t of the code.
    levels = {int(j): [] for j in np.flatnonzero(splits)}
    for depth, j in enumerate(plan):
        levels[j].append(n_bits - 1 - depth)
    single = [j for j in levels if splits[j] == 1]
    multi = [j for j in levels if splits[j] > 1]
    return _Layout(
        axes=single + multi,
        n_single=len(single),
        positions=np.array([levels[j][0] for j in single], dtype=np.int64),
        levels=levels,
        splits=splits,
        n_bits=n_bits,
    )


def _no_bins(layout):
    """A :class:`_Tree`'s fields from ``layout``, its bins still to be set."""
    return dict(
        n_single=layout.n_single,
        single_edges=np.zeros(layout.n_single),
        positions=layout.positions,
        edges=[],
        tables=[],
        n_bits=layout.n_bits,
    )


def _with_bins(tree, layout, sample_z):
    """Set ``tree``'s bins from a sample's coordinates on ``layout.axes``."""
    for a, j in enumerate(layout.axes):
        bins = 2 ** layout.splits[j]
        edges = np.quantile(sample_z[:, a], np.arange(1, bins) / bins)
        if a < layout.n_single:
            tree.single_edges[a] = edges[0]
            continue
        # Bin b's bits: its s binary digits, the first at the axis' first level.
        b = np.arange(bins, dtype=np.uint64)
        table = np.zeros(bins, dtype=np.uint64)
        for k, position in enumerate(layout.levels[j]):
            digit = (b >> np.uint64(layout.splits[j] - 1 - k)) & np.uint64(1)
            table |= digit << np.uint64(position)
        tree.edges.append(edges)
        tree.tables.append(table)
    return tree


def _project(block, tree, out=None):
    """A block's coordinates on the tree's axes.

    ``out``: buffers ``(centered, z)`` of at least the block's rows, reused
    from block to block (fresh pages cost more than the product here).
    """
    m = block.shape[0]
    if out is None:
        out = _buffers(m, tree)
    centered, z = out[0][:m], out[1][:m]
    if tree.center is None:
        return np.matmul(block, tree.directions, out=z)
    if tree.scale == 1.0:
        np.subtract(block, tree.center, out=centered)
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            np.subtract(block, tree.center, out=centered)
            centered *= tree.scale
    return np.matmul(centered, tree.directions, out=z)


def _buffers(n_rows, tree):
    """Buffers for :func:`_project` of blocks of at most ``n_rows`` rows."""
    return (
        np.empty((n_rows, tree.directions.shape[0])),
        np.empty((n_rows, tree.directions.shape[1])),
    )


# Bits packed by one float32 product: integers below 2**24 are exact.
_PACK_BITS = 24


def code_block(z, tree, out=None):
    """The leaf codes (uint64) of a block's coordinates ``z`` (into ``out``)."""
    m = z.shape[0]
    code = np.zeros(m, dtype=np.uint64) if out is None else out
    if out is not None:
        code.fill(0)
    k = tree.n_single
    if k:
        # The comparisons into a bool buffer, then as float32 (0 or 1): two
        # cheap passes, where comparing into float32 directly is slower.
        # (Edges in z's dtype: a float32 block is compared in float32.)
        edges = tree.single_edges.astype(z.dtype, copy=False)
        above = np.greater_equal(z[:, :k], edges, out=np.empty((m, k), dtype=bool))
        bits = np.empty((m, k), dtype=np.float32)
        bits[...] = above
        # Axes whose bit positions span fewer than 24 bits are packed by one
        # matrix-vector product (weights 0 off the group), shifted into place.
        done = np.zeros(k, dtype=bool)
        while not done.all():
            low = tree.positions[~done].min()
            group = ~done & (tree.positions - low < _PACK_BITS)
            weights = np.where(group, np.ldexp(1.0, tree.positions - low), 0.0)
            # (Some OpenBLAS builds raise a spurious "invalid" flag in this
            # float32 product of 0/1 entries by powers of two, seen in the
            # error benchmark; its result is exact integers below 2**24.)
            with np.errstate(invalid="ignore"):
                packed = bits @ weights.astype(np.float32)
            code |= packed.astype(np.uint64) << np.uint64(low)
            done |= group
    for a, (edges, table) in enumerate(zip(tree.edges, tree.tables, strict=True)):
        code |= table[_bin(edges, z[:, k + a]).astype(np.intp)]
    return code


def _tree_code(X, max_depth):
    """Each row's leaf in the k-d tree, as bits read from the root (uint64).

    One chunked pass over ``X``. Sparse rows are densified a block at a
    time: the same arithmetic as for the dense table, so rows on a bin edge
    fall on the same side.
    """
    tree = _tree_plan(X, max_depth)
    if tree is None:
        return np.zeros(X.shape[0], dtype=np.uint64)
    # Rows on a cluster's workers get their codes there (n uint64 come back).
    return np.concatenate(map_pieces(X, _leaf_codes, tree))


def _leaf_codes(X, tree):
    """The leaf code of every row of ``X`` in the planned ``tree``."""
    code = np.zeros(X.shape[0], dtype=np.uint64)
    buffers = None
    for start, chunk in iter_blocks(X, chunk_size(X.shape[1])):
        for offset, block in cache_slices(as_dense(chunk), X.shape[1]):
            if buffers is None or buffers[0].shape[0] < block.shape[0]:
                buffers = _buffers(block.shape[0], tree)
            z = _project(block, tree, buffers)
            begin = start + offset
            code_block(z, tree, out=code[begin : begin + z.shape[0]])
    return code


class Tournament(NamedTuple):
    """Outcome of a pivotal tournament: rows decided in, and the one left open.

    ``pending`` is -1 when every row is decided, else the row whose
    probability ``pending_probability`` is still fractional.
    """

    selected: np.ndarray
    pending: int
    pending_probability: float


def pivotal_tournament(pi, random_state, order=None):
    """Pivotal sampling over rows in ``order``, a binary tree of duels.

    Parameters
    ----------
    pi : ndarray of shape (n_samples,)
        Inclusion probabilities in ``[0, 1]``.
    random_state : numpy.random.RandomState
    order : ndarray of shape (n_samples,) or None
        The rows in the order in which neighbours duel (``None``: as given).

    Returns
    -------
    tournament : Tournament
        Sorted selected rows; at most one row is left undecided (its
        probability is the fractional part of ``sum(pi)``).

    Notes
    -----
    The open rows first meet in runs of ``2**k`` neighbours whose
    probabilities sum to about 1/2 at most (:func:`_pool_runs`): in a run
    whose total is below 1 every duel moves the mass onto one row, which
    ends up holding the run's total, and it is row ``i`` with probability
    ``pi_i / total``, so one draw settles the whole run. The rows left open
    then duel pair by pair, neighbours first. Each step keeps every row's
    expected value, whichever pairs meet, so every inclusion probability is
    exact.
    """
    pi = np.asarray(pi, dtype=np.float64)
    n = pi.shape[0]
    seq = None if order is None else np.asarray(order)
    # The duels run on the probabilities in tournament order (a copy).
    in_order = pi.copy() if seq is None else pi[seq]
    # (Each n-long pass below only where the extremes say it changes a row.)
    low, high = (in_order.min(), in_order.max()) if n else (0.0, 0.0)
    if low < 0.0 or high > 1.0:
        np.clip(in_order, 0.0, 1.0, out=in_order)
    if low < _SNAP:
        in_order[in_order < _SNAP] = 0.0
    # Positions in tournament order decided in; they (and the rows at 0)
    # then stay in place at 0, where no duel and no run can move mass to
    # them: a run never draws a row at 0, and a row at 0 loses every duel
    # and leaves. So every position takes part, and no n-long list of open
    # rows is made.
    certain = np.empty(0, dtype=np.intp)
    if high > 1.0 - _SNAP:
        certain = np.flatnonzero(in_order > 1.0 - _SNAP)
        in_order[certain] = 0.0
    decided = [certain]
    rows, values = _pool_runs(None, in_order, random_state, decided)
    while rows.shape[0] > 1:
        half = rows.shape[0] // 2
        a, b = values[0 : 2 * half : 2], values[1 : 2 * half : 2]
        first, second = rows[0 : 2 * half : 2], rows[1 : 2 * half : 2]
        total = a + b
        u = random_state.random_sample(half)
        # total < 1: one row takes all the mass (the first with prob a / total);
        # else one row is selected (the first with prob (1 - b) / (2 - total))
        # and the other keeps total - 1.
        high = total >= 1.0
        first_wins = np.where(high, u * (2.0 - total) < 1.0 - b, u * total < a)
        if high.any():
            decided.append(np.where(first_wins, first, second)[high])
        survivor = np.where(first_wins != high, first, second)
        value = np.where(high, total - 1.0, total)
        done = value > 1.0 - _SNAP
        if done.any():
            decided.append(survivor[done])
        keep = (value >= _SNAP) & ~done
        survivor, value = survivor[keep], value[keep]
        if rows.shape[0] % 2:
            survivor = np.append(survivor, rows[-1])
            value = np.append(value, values[-1])
        rows, values = survivor, value
    if seq is None:
        seq = np.arange(n)
    selected = np.sort(seq[np.concatenate(decided)]).astype(np.intp, copy=False)
    if rows.shape[0]:
        return Tournament(selected, int(seq[rows[0]]), float(values[0]))
    return Tournament(selected, -1, 0.0)


_MAX_RUN = 1024  # longest run of neighbours settled by one draw


def _pool_runs(rows, values, random_state, decided):
    """Settle runs of ``2**k`` neighbouring open rows, one draw per run.

    ``k`` is the largest with ``2**k`` times the mean probability (rows at
    0, which take no part, included) at most 1/2 (none when that is 1). A
    run whose total is below 1 leaves one row, drawn with probability
    proportional to ``pi``, holding the total; the rows of the other runs
    stay as they are. ``rows`` None stands for every position in order.
    Returns the open rows and their values, in order; rows decided in are
    appended to ``decided``.
    """
    n_open = values.shape[0]
    if n_open < 4:
        return (np.arange(n_open) if rows is None else rows), values
    mean = values.sum() / n_open
    size = 1
    while size * 2 <= _MAX_RUN and size * 2 * mean <= 0.5 and size * 2 <= n_open:
        size *= 2
    if size == 1:
        return (np.arange(n_open) if rows is None else rows), values
    # Whole runs (a view: ``values`` is the caller's copy and may change);
    # the last n_open % size rows stay open as they are.
    n_runs = n_open // size
    runs = values[: n_runs * size].reshape(n_runs, size)
    u = random_state.random_sample(n_runs)
    totals, pick = np.empty(n_runs), np.empty(n_runs, dtype=np.intp)
    # A block of runs at a time (about 2**16 rows): no n-long temporary.
    step = max(1, 2**16 // size)
    for a in range(0, n_runs, step):
        cumulative = np.cumsum(runs[a : a + step], axis=1)
        totals[a : a + step] = cumulative[:, -1]
        # The first row whose cumulative sum passes u * total (a row at 0
        # is never it).
        threshold = u[a : a + step] * totals[a : a + step]
        pick[a : a + step] = (cumulative <= threshold[:, None]).sum(axis=1)
    pooled = totals < 1.0
    keep = np.ones(n_open, dtype=bool)
    keep[: n_runs * size].reshape(n_runs, size)[pooled] = False
    # A run of rows at 0 leaves whole (it holds no mass, and its pick
    # would point past its end).
    run_index = np.flatnonzero(pooled & (totals > 0.0))
    picked = run_index * size + pick[run_index]
    keep[picked] = True
    values[picked] = totals[run_index]
    position = np.flatnonzero(keep)
    values = values[position]
    rows = position if rows is None else rows[position]
    done = values > 1.0 - _SNAP
    if done.any():
        decided.append(rows[done])
        rows, values = rows[~done], values[~done]
    return rows, values


def settle_pending(probabilities, random_state):
    """The server's last round: a tournament over the clients' open rows.

    Parameters
    ----------
    probabilities : ndarray of shape (n_open,)
        Probability of each client's undecided row (0 where a client has
        none), in client order.

    Returns
    -------
    selected : ndarray of shape (n_open,) of bool
        Which open rows are selected; the rest are not. The last row still
        open (the fractional part of the total, 0 when the budget is an
        integer) is settled by a Bernoulli draw.
    """
    outcome = pivotal_tournament(probabilities, random_state)
    selected = np.zeros(len(probabilities), dtype=bool)
    selected[outcome.selected] = True
    if outcome.pending >= 0:
        selected[outcome.pending] = (
            random_state.random_sample() < outcome.pending_probability
        )
    return selected


# Rows of each party of the in-memory tournament (pivotal_in_parties): a
# constant, so the parties, and the rows selected, do not depend on the
# threads that run them. Each party balances only its own rows, which
# costs precision: at 300,000 x 5, parties of 2**17 rows raised the weighted
# fit's mean excess error by 16-18% against one party at budgets 1,500 and
# 3,000 (benchmarks/bench_party_balance.py, 300 seeds, p < 0.05). So a
# table is one party up to 2**24 rows (the rows a seed selects are those of
# one tournament), and parties bound the temporaries only beyond.
_PARTY_ROWS = 2**24


class _PartySums(NamedTuple):
    """A party's :func:`pivotal_in_parties` round 1: its rows' total score,
    number of positive scores, least positive and largest score."""

    total: float
    n_positive: int
    least: float
    largest: float


def _party_sums(scores):
    positive = scores[scores > 0]
    return _PartySums(
        float(scores.sum()),
        positive.shape[0],
        float(positive.min()) if positive.size else np.inf,
        float(scores.max()) if scores.size else 0.0,
    )


def pivotal_in_parties(
    scores, codes, n_bits, budget, random_state, *, uniform_mix, n_threads=1
):
    """Pivotal sampling by ``scores``, rows ranges as the parties of the
    federated tournament, each on a thread.

    The protocol of :mod:`skfal._federated._selection` (and of a Dask
    array's chunks, :func:`skfal._dask.pivotal_on_workers`) with one owner
    and parties of ``_PARTY_ROWS`` consecutive rows, run side by side on
    ``n_threads`` threads (NumPy releases the GIL in its sorts and
    ufuncs):

    1. each party sends its total score (and its extremes); the inclusion
       scale ``c`` of ``pi = min(1, c p)`` follows from the total of ``p``
       and, when the largest ``p`` would be capped, from the ``budget``
       largest ``p`` of each party (the ``budget`` largest overall are
       among them): :func:`inclusion_scale`'s arithmetic on the same values;
    2. each party computes its rows' ``pi``, orders them by their leaf
       ``codes`` (:func:`stable_order`, ``n_bits`` bits; ``None``: row
       order) and runs :func:`pivotal_tournament` from its own seed;
    3. the parties' open rows are settled as the server settles the
       clients' (:func:`settle_pending`).

    The parties are fixed by the number of rows and the seeds are drawn in
    party order, so the rows selected depend on the data and
    ``random_state`` only, never on ``n_threads``; with one party (at most
    ``_PARTY_ROWS`` rows) they are :func:`pivotal_select`'s. Each duel keeps
    every row's inclusion probability, so each row is selected with
    probability exactly ``pi_i`` and the sample has exactly ``budget``
    rows. ``codes`` is used as scratch (garbage after the call). The
    per-row temporaries (``pi``, sort keys, the order) are a party's, not
    ``n`` long.

    Returns
    -------
    selection : Selection
        Sorted rows, Horvitz-Thompson weights ``1 / pi``.
    """
    n = scores.shape[0]
    parties = [(a, min(n, a + _PARTY_ROWS)) for a in range(0, n, _PARTY_ROWS)]
    with thread_map(min(n_threads, len(parties))) as parallel:
        sums = parallel(lambda r: _party_sums(scores[r[0] : r[1]]), parties)
        terms = Inclusion(1.0, sum(s.total for s in sums), n, float(uniform_mix))
        least = min(s.least for s in sums)
        p_least, p_zero, p_max = inclusion_from_terms(
            np.array(
                [
                    least if np.isfinite(least) else 0.0,
                    0.0,
                    max(s.largest for s in sums),
                ]
            ),
            terms,
        )
        n_positive = n if p_zero > 0 else sum(s.n_positive for s in sums)
        if budget > n_positive:
            raise ValueError(unreachable_budget(budget, n_positive, n))
        if budget == n_positive:  # every positive row is capped at 1
            scale = 2.0 / (p_zero if p_zero > 0 else p_least)
        else:
            # The parties' top p are needed only where a row may be capped
            # (sum(p) is 1 up to rounding).
            masses = parallel(
                lambda r: _party_mass(scores[r[0] : r[1]], terms, budget, p_max),
                parties,
            )
            total = sum(m[0] for m in masses)
            if budget / total * p_max <= 1.0:
                scale = float(budget / total)
            else:
                top = np.concatenate([m[1] for m in masses])
                top = np.partition(top, top.shape[0] - budget)[-budget:]
                scale = _capped_scale(top, total, budget)
        terms = terms._replace(scale=float(scale))
        seeds = draw_seed(random_state, size=len(parties))
        outcomes = parallel(
            lambda job: _party_tournament(scores, codes, n_bits, terms, *job),
            list(zip(parties, seeds.tolist(), strict=True)),
        )
    rows = [o[0] for o in outcomes]
    pi = [o[1] for o in outcomes]
    open_ = [o for o in outcomes if o[2] >= 0]
    if open_:
        won = settle_pending(np.array([o[3] for o in open_]), random_state)
        rows += [np.array([o[2]]) for o, w in zip(open_, won, strict=True) if w]
        pi += [np.array([o[4]]) for o, w in zip(open_, won, strict=True) if w]
    indices, pi = np.concatenate(rows), np.concatenate(pi)
    order = np.argsort(indices)
    indices = indices[order].astype(np.int64)
    return Selection(indices, 1.0 / pi[order], np.ones(indices.shape[0], np.int64), 0)


def _party_mass(scores, terms, budget, p_max):
    """A party's total ``p`` and, unless no row can be capped
    (``budget p_max`` well below 1), its ``budget`` largest ``p``."""
    p = inclusion_from_terms(scores, terms)  # scale 1: p itself
    if budget * p_max < 0.5:
        return float(p.sum()), np.empty(0)
    m = min(budget, p.shape[0])
    total = float(p.sum())
    p.partition(p.shape[0] - m)
    return total, p[p.shape[0] - m :].copy()


def _party_tournament(scores, codes, n_bits, terms, rows, seed):
    """A party's tournament: its rows decided in (global), their ``pi``, and
    its open row's global index, probability left and ``pi`` (-1 if none)."""
    a, b = rows
    pi = inclusion_from_terms(scores[a:b], terms)
    order = None if codes is None else stable_order(codes[a:b], n_bits, overwrite=True)
    outcome = pivotal_tournament(pi, np.random.RandomState(seed), order)
    del order
    chosen = outcome.selected
    pending = outcome.pending
    return (
        a + chosen,
        pi[chosen],
        a + pending if pending >= 0 else -1,
        outcome.pending_probability,
        pi[pending] if pending >= 0 else 1.0,
    )


def pivotal_select(X, pi, random_state, max_depth, order=None):
    """Pivotal sampling of ``X``'s rows with inclusion probabilities ``pi``.

    The rows duel in ``order`` (by default :func:`spatial_order` to
    ``max_depth`` levels; any order keeps every inclusion probability
    exact); the tournament draws from its own
    seed (as each federated client does) and the last open row is settled
    as the server settles the clients' (:func:`settle_pending`), so a
    centralized fit is the federated one with a single client.

    Returns
    -------
    selection : Selection
        Sorted rows, Horvitz-Thompson weights ``1 / pi``, counts 1, no draws.
    """
    seed = draw_seed(random_state)
    if order is None:
        order = spatial_order(X, max_depth)
    outcome = pivotal_tournament(pi, np.random.RandomState(seed), order)
    selected = outcome.selected
    if (
        outcome.pending >= 0
        and settle_pending(np.array([outcome.pending_probability]), random_state)[0]
    ):
        selected = np.sort(np.append(selected, outcome.pending))
    return horvitz_thompson(selected, pi)


def horvitz_thompson(indices, pi):
    """The selection ``indices`` with weights ``1 / pi`` (each row once)."""
    return Selection(
        indices=indices,
        weights=1.0 / pi[indices],
        counts=np.ones(indices.shape[0], dtype=np.int64),
        n_draws=0,
    )
