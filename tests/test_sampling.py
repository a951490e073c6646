"""The shared sampling core: budgets, the until-distinct draw, the weights."""

import itertools

import numpy as np
import pytest

from skfal._base import select_rows
from skfal._sampling import (
    census,
    draw_seed,
    draw_until_distinct,
    importance_weights,
    inclusion_probabilities,
    mixed_probabilities,
    pivotal_in_parties,
    pivotal_select,
    pivotal_tournament,
    resolve_budget,
    sampling_probabilities,
    settle_pending,
    spatial_order,
    stable_order,
    tree_depth,
)
from tests._helpers import monte_carlo_runs


@pytest.mark.parametrize(
    "budget, n, expected",
    [(1, 10, 1), (10, 10, 10), (0.1, 30, 3), (0.15, 10, 2), (1.0, 7, 7), (1e-9, 5, 1)],
)
def test_resolve_budget(budget, n, expected):
    # A float is a fraction rounded up; 0.1 * 30 is 3.0000000000000004 in
    # floating point and must still give 3 rows, not 4.
    assert resolve_budget(budget, n) == expected


def test_resolve_budget_above_n_names_both_numbers():
    with pytest.raises(ValueError, match=r"budget=11 asks for 11 .* n_samples=10"):
        resolve_budget(11, 10)


def test_sampling_probabilities_rejects_all_zero():
    with pytest.raises(ValueError, match="All sampling scores are zero"):
        sampling_probabilities(np.zeros(4))


def naive_draw(p, budget, rng):
    """The literal process of FALE's Algorithm 1: one draw at a time."""
    counts = {}
    n_draws = 0
    while len(counts) < budget:
        i = int(rng.choice(p.shape[0], p=p))
        counts[i] = counts.get(i, 0) + 1
        n_draws += 1
    return counts, n_draws


def test_draw_matches_draw_by_draw_process():
    # Our O(n + budget log budget) simulation must have the law of the literal
    # process: same mean number of draws and mean multiplicity of each row.
    p = np.array([0.55, 0.25, 0.12, 0.05, 0.03])
    budget, reps = 3, monte_carlo_runs(6000)
    rng_a, rng_b = np.random.RandomState(0), np.random.RandomState(1)
    ours = np.zeros((reps, p.size))
    naive = np.zeros((reps, p.size))
    draws_ours, draws_naive = np.zeros(reps), np.zeros(reps)
    for r in range(reps):
        sel = draw_until_distinct(p, budget, rng_a)
        assert sel.indices.size == budget and np.all(np.diff(sel.indices) > 0)
        assert sel.counts.sum() == sel.n_draws
        ours[r, sel.indices] = sel.counts
        draws_ours[r] = sel.n_draws
        counts, n_draws = naive_draw(p, budget, rng_b)
        naive[r, list(counts)] = list(counts.values())
        draws_naive[r] = n_draws
    for a, b in [(draws_ours, draws_naive)] + [
        (ours[:, j], naive[:, j]) for j in range(p.size)
    ]:
        se = np.sqrt((a.var() + b.var()) / reps)
        assert abs(a.mean() - b.mean()) < 4.5 * se + 1e-12


def test_expected_number_of_draws_budget_two():
    # Budget 2: first row i w.p. p_i, then Geometric(1 - p_i) draws, so
    # E[n_draws] = 2 + sum_i p_i^2 / (1 - p_i).
    p = np.array([0.6, 0.3, 0.1])
    expected = 2 + np.sum(p**2 / (1 - p))
    rng = np.random.RandomState(0)
    draws = np.array(
        [draw_until_distinct(p, 2, rng).n_draws for _ in range(monte_carlo_runs(20000))]
    )
    assert abs(draws.mean() - expected) < 4 * draws.std() / np.sqrt(draws.size)


def test_skewed_probabilities_all_rows_is_fast_and_consistent():
    # Collecting every row when some have probability 1e-7 takes ~1e7 literal
    # draws; the exact simulation does it at once.
    p = np.full(50, 1e-7)
    p[0] = 1 - 49e-7
    sel = draw_until_distinct(p, 50, np.random.RandomState(0))
    assert np.array_equal(sel.indices, np.arange(50))
    assert sel.counts.min() >= 1 and sel.counts.sum() == sel.n_draws
    assert sel.n_draws > 10**5


@pytest.mark.parametrize("eps", [1e-12, 1e-30, 1e-200])
def test_draws_beyond_int64_keep_the_law_and_positive_weights(eps):
    # Budget 2 of p = (1 - eps, eps): E[n_draws] = 2 + sum p_i^2 / (1 - p_i),
    # about 1 / eps, far beyond int64 (9.2e18) for eps <= 1e-19. The counts
    # used to overflow int64 (negative weights) or make numpy's Poisson
    # refuse ("lam value too large"); the draw must keep its law: the mean
    # of n_draws * eps is E[n_draws] * eps, and every weight positive.
    p = np.array([1.0 - eps, eps])
    rng = np.random.RandomState(0)
    draws, weight_sums = [], []
    for _ in range(monte_carlo_runs(4000)):
        sel = draw_until_distinct(p, 2, rng)
        assert np.all(np.isfinite(sel.weights)) and np.all(sel.weights > 0)
        assert isinstance(sel.n_draws, int) and sel.n_draws >= 2
        draws.append(sel.n_draws * eps)
        weight_sums.append(sel.weights @ p[sel.indices])  # counts / n_draws
    draws = np.array(draws)
    expected = (2 + (1.0 - eps) ** 2 / eps + eps**2 / (1 - eps)) * eps
    assert abs(draws.mean() - expected) < 4 * draws.std() / np.sqrt(draws.size)
    # Hansen-Hurwitz: sum_i w_i p_i = sum_i counts_i / n_draws = 1.
    assert np.allclose(weight_sums, 1.0, rtol=1e-9)


def test_budget_near_n_with_tiny_leverage_gives_positive_weights():
    # The report of issue 11: two rows scaled by 1e-9 have leverage ~1e-18, so
    # drawing n - 1 distinct rows i.i.d. takes ~1e18 draws; the int64 sum of
    # the multiplicities wrapped around and weights came out negative.
    from skfal import LeverageScoreSampler, SensitivitySampler

    X = np.random.RandomState(1).standard_normal((40, 3))
    X[:2] *= 1e-9
    for cls in (LeverageScoreSampler, SensitivitySampler):
        for budget in (39, 40):
            for weighting in ("hansen-hurwitz", "des-raj"):
                s = cls(
                    budget=budget,
                    sampling="iid",
                    uniform_mix=0.0,
                    weighting=weighting,
                    random_state=2,
                ).fit(X)
                assert s.sample_indices_.size == budget
                w = s.sample_weight_
                assert np.all(np.isfinite(w)) and np.all(w > 0)


def test_draw_beyond_float64_is_a_clear_error():
    # A row of probability 1e-320 (a subnormal) must be drawn: ~1e320 draws,
    # more than float64 counts. An error that says what to do, and the key
    # of that row (which overflows to inf) still ranks before rows of
    # probability 0: the error names its probability, not 0.
    p = np.array([0.5, 0.5, 1e-320, 0.0])
    with pytest.raises(ValueError, match=r"more draws than float64 .* 1e-320"):
        draw_until_distinct(p, 3, np.random.RandomState(0))


def test_budget_above_positive_rows_is_an_error():
    p = np.array([0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="only 2 of the 3 rows have a positive"):
        draw_until_distinct(p, 3, np.random.RandomState(0))


def test_hansen_hurwitz_weights_formula():
    p = sampling_probabilities(np.arange(1, 21, dtype=float))
    sel = draw_until_distinct(p, 8, np.random.RandomState(3))
    assert np.allclose(sel.weights, sel.counts / (sel.n_draws * p[sel.indices]))


@pytest.mark.parametrize("budget", [1, 2, 3, 4])
def test_des_raj_weights_are_exactly_unbiased(budget):
    # Enumerate every ordered sequence of distinct rows with its probability
    # under successive sampling (the order of first appearance of i.i.d.
    # draws). Des Raj's weights must then give E[sum_S w_i f_i] = sum_j f_j
    # for any f, exactly; Hansen-Hurwitz weights need not (they depend on the
    # multiplicities, so they are not tested here).
    p = np.array([0.5, 0.3, 0.15, 0.05])
    f = np.array([2.0, -1.0, 7.0, 3.0])
    expected = 0.0
    for order in itertools.permutations(range(p.size), budget):
        order = np.array(order)
        before = np.concatenate([[0.0], np.cumsum(p[order])[:-1]])
        prob = np.prod(p[order] / (1 - before))
        w = importance_weights(p[order], None, None, 1 - before, "des-raj")
        expected += prob * np.dot(w, f[order])
    assert expected == pytest.approx(f.sum(), rel=1e-12)


def test_unknown_weighting():
    with pytest.raises(ValueError, match="weighting must be one of"):
        importance_weights(np.ones(1), np.ones(1), 1, np.ones(1), "nope")


def test_census_and_the_shared_selection():
    # Selecting every row needs no draw: each row's inclusion probability is
    # 1, so its Horvitz-Thompson weight is 1, whatever its score (even 0).
    X = np.arange(6.0).reshape(3, 2)
    for sampling in ("iid", "pivotal"):
        full = select_rows(X, np.array([0.0, 1.0, 3.0]), 3, None, sampling=sampling)
        assert np.array_equal(full.indices, [0, 1, 2])
        assert np.array_equal(full.weights, np.ones(3)) and full.n_draws == 0
    assert census(3)._asdict().keys() == full._asdict().keys()
    # Below a census, "iid" is the draw on the normalised scores, same stream.
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    a = select_rows(
        np.ones((4, 1)), scores, 2, np.random.RandomState(1), sampling="iid"
    )
    b = draw_until_distinct(scores / scores.sum(), 2, np.random.RandomState(1))
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.weights, b.weights)


def test_draw_seed_is_an_int32_seed_from_the_stream():
    rng = np.random.RandomState(3)
    seed, seeds = draw_seed(rng), draw_seed(rng, size=(2, 3))
    assert 0 <= int(seed) < 2**31 - 1 and seeds.shape == (2, 3)
    assert int(seed) == np.random.RandomState(3).randint(2**31 - 1)


# ------------------------------------------------------- dependent (pivotal)
def inclusion_frequencies(pi, n_runs, run):
    """How often each row is selected over ``n_runs`` seeds of ``run(seed)``."""
    hits = np.zeros(pi.shape[0])
    for seed in range(n_runs):
        selected = run(seed)
        assert selected.size == round(pi.sum())  # exactly the budget, every time
        assert np.unique(selected).size == selected.size
        hits[selected] += 1
    return hits / n_runs


def assert_frequencies_match(freq, pi, n_runs):
    # Binomial counts: within 4.5 standard errors of pi for every row (a
    # Bonferroni-safe bound for a few dozen rows), exact for pi in {0, 1}.
    se = np.sqrt(pi * (1 - pi) / n_runs)
    assert np.all(np.abs(freq - pi) <= 4.5 * se + 1e-12)


def test_inclusion_probabilities_are_capped_proportional_and_sum_to_budget():
    rng = np.random.RandomState(0)
    for _ in range(300):
        n = rng.randint(2, 60)
        budget = rng.randint(1, n + 1)
        p = mixed_probabilities(rng.exponential(size=n) ** rng.uniform(0, 6), 0.1)
        pi = inclusion_probabilities(p, budget)
        assert np.isclose(pi.sum(), budget) and np.all((pi >= 0) & (pi <= 1))
        # pi = min(1, c p): below the cap, proportional to p with one c.
        free = pi < 1
        if free.sum() > 1:
            ratio = pi[free] / p[free]
            assert np.allclose(ratio, ratio[0])
            assert np.all(p[~free] >= p[free].max() - 1e-15)
    with pytest.raises(ValueError, match="only 2 of the 3 rows have a positive"):
        inclusion_probabilities(np.array([0.5, 0.5, 0.0]), 3)


def test_mixed_probabilities_bound_every_weight():
    # eta / n of the mass stays with every row, so pi >= eta * budget / n
    # (when below 1) and the weight 1 / pi is at most n / (eta * budget).
    scores = np.r_[np.full(5, 1000.0), np.full(995, 1e-6)]
    pi = inclusion_probabilities(mixed_probabilities(scores, 0.2), 40)
    assert np.all(1 / pi <= 1000 / (0.2 * 40) + 1e-9)
    eligible = np.arange(1000) >= 500
    p = mixed_probabilities(scores, 0.3, eligible)
    assert np.isclose(p.sum(), 1) and np.all(p[~eligible] == 0)


def _tournament_run(pi, order):
    """``run(seed)``: a tournament on ``pi`` in ``order``, then the server's
    settling of the open row; the rows selected."""

    def run(seed):
        r = np.random.RandomState(seed)
        outcome = pivotal_tournament(pi, r, order)
        last = settle_pending(np.array([outcome.pending_probability]), r)
        extra = [outcome.pending] if last[0] else []
        return np.append(outcome.selected, extra).astype(np.int64)

    return run


@pytest.mark.parametrize("ordered", [False, True])
def test_pivotal_tournament_has_exact_inclusion_probabilities(ordered):
    # Each duel keeps each row's expected value, so E[selected_i] = pi_i for
    # every row whatever the order; and the total is always the budget.
    rng = np.random.RandomState(1)
    pi = inclusion_probabilities(
        mixed_probabilities(rng.exponential(size=40) ** 3, 0.2), 9
    )
    order = spatial_order(rng.standard_normal((40, 2)), 6) if ordered else None

    run = _tournament_run(pi, order)

    n_runs = monte_carlo_runs(6000)
    assert_frequencies_match(inclusion_frequencies(pi, n_runs, run), pi, n_runs)


def test_pivotal_tournament_settles_runs_of_small_probabilities_exactly():
    # 300 rows with a budget of 4 pool into runs of 16 neighbours (mean
    # probability 1/75): in a run whose total is below 1 the duels would
    # leave one row holding the total, row i with probability pi_i / total,
    # and one draw replaces them. Runs holding a large probability (total
    # >= 1) duel pair by pair instead. Either way E[selected_i] = pi_i.
    rng = np.random.RandomState(3)
    scores = rng.exponential(size=300) ** 2
    scores[[5, 6, 150]] = [400.0, 300.0, 900.0]  # runs with totals above 1
    pi = inclusion_probabilities(mixed_probabilities(scores, 0.1), 4)
    assert pi.max() > 0.5 and pi.min() < 0.01
    order = spatial_order(rng.standard_normal((300, 2)), 8)

    run = _tournament_run(pi, order)

    n_runs = monte_carlo_runs(8000)
    freq = inclusion_frequencies(pi, n_runs, run)
    # 300 rows: a wider (Bonferroni) band than the 40-row test's 4.5.
    se = np.sqrt(pi * (1 - pi) / n_runs)
    assert np.all(np.abs(freq - pi) <= 5.0 * se + 1e-12)
    # Grouped, the small rows' frequencies are tight: a bias in the draw
    # within runs would show here even where each row alone is noisy.
    small = pi < 0.05
    total_se = np.sqrt(np.sum(pi[small] * (1 - pi[small])) / n_runs)
    assert abs(freq[small].sum() - pi[small].sum()) <= 4.5 * total_se


def _reference_tree_code(X, max_depth):
    """The leaf codes bit by bit, from the same plan: for each level in turn
    the row's bin on that level's axis, read with a binary search."""
    from skfal._sampling import _project, _tree_plan

    tree = _tree_plan(X, max_depth)
    z = _project(np.asarray(X, dtype=np.float64), tree).astype(np.float64)
    code = np.zeros(X.shape[0], dtype=np.uint64)
    k = tree.n_single
    for a in range(k):
        bit = (z[:, a] >= tree.single_edges[a]).astype(np.uint64)
        code |= bit << np.uint64(tree.positions[a])
    for a, (edges, table) in enumerate(zip(tree.edges, tree.tables, strict=True)):
        bins = np.searchsorted(edges.astype(np.float64), z[:, k + a], side="right")
        n_levels = int(np.log2(edges.shape[0] + 1))
        # The axis' levels are the bits its bins set, the most significant
        # digit at the highest.
        levels = sorted(
            {p for b in table.tolist() for p in range(tree.n_bits) if (b >> p) & 1},
            reverse=True,
        )
        assert len(levels) == n_levels
        for digit, position in enumerate(levels):
            bit = (bins >> (n_levels - 1 - digit)) & 1
            code |= bit.astype(np.uint64) << np.uint64(position)
    return code


@pytest.mark.parametrize(
    "shape, depth",
    [((3000, 20), 20), ((3000, 3), 14), ((5000, 40), 30), ((500, 1), 9)],
)
def test_tree_code_packs_each_level_bit(shape, depth):
    # The codes are packed by float32 matrix-vector products (24 bits at a
    # time) and per-axis tables: they equal codes set bit by bit. Covered:
    # every axis split once, axes split several times (3 columns, 14
    # levels), and more than 24 levels (several packed groups).
    from skfal._sampling import _tree_code

    rng = np.random.RandomState(shape[1])
    X = rng.standard_normal(shape) @ rng.standard_normal((shape[1], shape[1]))
    code = _tree_code(X, depth)
    assert np.array_equal(code, _reference_tree_code(X, depth))
    assert int(code.max()) < 2**depth and np.unique(code).size > shape[0] // 8


def test_spatial_order_does_not_depend_on_an_offset_or_a_huge_unit():
    # Rows are centred in float64 before the float32 projection, so an
    # offset of 1e8 keeps every digit the order needs; entries of 1e200 are
    # scaled by a power of two (exact) first.
    rng = np.random.RandomState(4)
    X = rng.standard_normal((2000, 4))
    order = spatial_order(X, 12)
    assert np.array_equal(order, spatial_order(X * 2.0**600, 12))
    agree = np.mean(spatial_order(X + 1e8, 12) == order)
    assert agree > 0.9


def test_pivotal_select_spreads_the_sample():
    # Neighbours in the tree compete, so a pivotal uniform sample of points
    # on a line is balanced: 20 rows fall about 2 to each tenth of the line,
    # with a far smaller spread of those counts than i.i.d. uniform's
    # (measured over 200 seeds: variance 0.47 against 1.70).
    X = np.linspace(0, 1, 1000)[:, None]
    pi = np.full(1000, 20 / 1000)
    spread_pivotal, spread_iid = [], []
    for seed in range(100):
        rng = np.random.RandomState(seed)
        picked = pivotal_select(X, pi, rng, tree_depth(1000, 20))
        assert picked.indices.size == 20 and np.allclose(picked.weights, 50)
        spread_pivotal.append(np.bincount(picked.indices // 100, minlength=10).var())
        iid = rng.choice(1000, 20, replace=False)
        spread_iid.append(np.bincount(iid // 100, minlength=10).var())
    assert np.mean(spread_pivotal) < 0.5 * np.mean(spread_iid)


def test_spatial_order_is_a_permutation_that_keeps_neighbours_close():
    rng = np.random.RandomState(2)
    X = rng.uniform(size=(4000, 2)) * [10.0, 1.0]
    order = spatial_order(X, tree_depth(4000, 100))
    assert np.array_equal(np.sort(order), np.arange(4000))
    step = np.linalg.norm(np.diff(X[order], axis=0), axis=1)
    shuffled = np.linalg.norm(np.diff(X[rng.permutation(4000)], axis=0), axis=1)
    assert np.median(step) < 0.2 * np.median(shuffled)
    assert np.array_equal(spatial_order(np.ones((7, 3)), 5), np.arange(7))
    assert tree_depth(10**6, 10) == 10 and tree_depth(100, 10**6) == 7


def test_spatial_order_streams_many_chunks(monkeypatch):
    # More rows than one chunk (chunk_size(50) is about 21,000 rows): every
    # chunk is scaled and coded the same way, so the order equals the one of
    # the same rows coded in a single chunk (a variable shadowed between
    # chunks once made the second chunk fail).
    from skfal import _sampling
    from skfal._rows import chunk_size

    rng = np.random.RandomState(0)
    X = rng.standard_normal((chunk_size(50) + 500, 50))
    streamed = spatial_order(X, 6)
    monkeypatch.setattr(_sampling, "chunk_size", lambda d: X.shape[0])
    assert np.array_equal(streamed, spatial_order(X, 6))


@pytest.mark.parametrize("n, n_bits", [(1, 3), (10, 3), (5000, 20), (300, 60)])
def test_stable_order_is_a_stable_argsort(n, n_bits):
    # Packed keys code << b | index sort like the codes, ties by index: the
    # same order as numpy's stable argsort (the last case packs too many
    # bits and takes the argsort itself).
    from skfal._sampling import stable_order

    rng = np.random.RandomState(n)
    codes = rng.randint(0, 2 ** min(n_bits, 8), size=n).astype(np.uint64)  # ties
    codes <<= np.uint64(n_bits - min(n_bits, 8))
    assert np.array_equal(stable_order(codes, n_bits), np.argsort(codes, kind="stable"))


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_scores_and_leaves_from_one_pass(fit_intercept):
    # leverage_scores_and_codes multiplies each row once by D R^-1 U: the
    # squared norm of the product is the score (U is orthogonal), so it must
    # equal the hat matrix's diagonal (the definition, through pinv); its
    # first columns are the tree's axes, each split at a sample's median, so
    # each level's bit sets about half the rows. On a centered table with an
    # intercept the constant column's direction is a principal axis along
    # which no row differs: it must not be split (every row would land on
    # one side), so the leaves are as many as without the intercept.
    from skfal._linalg import leverage_scores_and_codes
    from tests._helpers import hat_diagonal

    X = np.random.RandomState(0).standard_normal((20_000, 5))
    X -= X.mean(axis=0)
    scores, _, codes, n_bits = leverage_scores_and_codes(X, fit_intercept, max_depth=12)
    design = np.hstack([X, np.ones((X.shape[0], 1))]) if fit_intercept else X
    np.testing.assert_allclose(scores, hat_diagonal(design), rtol=1e-10)
    assert n_bits == 12
    for level in range(n_bits):
        share = np.mean((codes >> np.uint64(level)) & np.uint64(1))
        assert abs(share - 0.5) < 0.03
    assert np.unique(codes).shape[0] > 0.9 * 2**n_bits


def test_tournament_keeps_the_mass_around_rows_at_zero_and_one():
    # Rows at 0 (never drawn) and at 1 (decided in) stay in place in the
    # tournament order at 0, so runs of neighbours can be all zeros: such a
    # run holds no mass and must leave whole. Every duel and run keeps the
    # total, so the selected rows plus the open row's probability must sum
    # to sum(pi) exactly, no row at 0 may be selected and every row at 1
    # must be. (A run of zeros once passed its draw past its end and set the
    # next run's first row to 0: a row's probability lost.)
    # Runs of 64 rows (mean 1/128): the last run of zeros ends where a run
    # holding exactly 1, which is not pooled, begins; then rows at 1 among
    # zeros and a block of larger probabilities after zeros.
    zeros = np.zeros(4096)
    after_zeros = np.concatenate([zeros, np.full(4096, 1 / 64)])
    other = np.concatenate([zeros, np.full(64, 0.3), np.ones(10), zeros[:999]])
    for pi in (after_zeros, np.concatenate([other, np.full(4096, 1 / 64)])):
        _check_tournament_mass(pi)


def _check_tournament_mass(pi):
    for seed in range(20):
        outcome = pivotal_tournament(pi, np.random.RandomState(seed))
        held = outcome.selected.shape[0] + max(outcome.pending_probability, 0.0)
        assert held == pytest.approx(pi.sum(), abs=1e-9)
        assert np.all(pi[outcome.selected] > 0)
        assert np.isin(np.flatnonzero(pi == 1), outcome.selected).all()


def _skewed_scores(n, seed=0):
    """Scores of ``n`` rows, four of them far above the rest (capped at 1),
    and leaf codes of a 6-bit spatial order."""
    rng = np.random.RandomState(seed)
    scores = rng.exponential(size=n)
    scores[[3, 9, 10, n - 2]] *= 60
    return scores, rng.randint(0, 64, size=n).astype(np.uint64)


@pytest.mark.parametrize("budget, mix", [(12, 0.3), (5, 0.9), (17, 0.0)])
def test_one_party_is_pivotal_select(budget, mix):
    # At most _PARTY_ROWS rows make one party: the scale from its sums and
    # largest p, its tournament in the codes' order from its seed, its open
    # row settled last: pivotal_select's fit with the same stream, to the
    # bit (so the in-memory leverage fits of tables up to 2**17 rows select
    # what they did before the parties). Budgets with and without rows
    # capped at 1.
    scores, codes = _skewed_scores(60)
    p = mixed_probabilities(scores, mix)
    pi = inclusion_probabilities(p, budget)
    expected = pivotal_select(
        None, pi, np.random.RandomState(4), 0, stable_order(codes, 6)
    )
    got = pivotal_in_parties(
        scores, codes.copy(), 6, budget, np.random.RandomState(4), uniform_mix=mix
    )
    assert np.array_equal(got.indices, expected.indices)
    assert np.array_equal(got.weights, expected.weights)


def test_parties_change_no_bit_with_the_threads(monkeypatch):
    # The parties are fixed row ranges and their seeds are drawn in party
    # order, so the threads that run them change nothing: the same rows
    # and weights on 1 and 3 threads. Catches a seed taken per thread, a
    # total added in the order the threads finish.
    import skfal._sampling

    monkeypatch.setattr(skfal._sampling, "_PARTY_ROWS", 37)
    scores, codes = _skewed_scores(500, seed=1)
    fits = [
        pivotal_in_parties(
            scores,
            codes.copy(),
            6,
            40,
            np.random.RandomState(0),
            uniform_mix=0.2,
            n_threads=threads,
        )
        for threads in (1, 3)
    ]
    assert np.array_equal(fits[0].indices, fits[1].indices)
    assert np.array_equal(fits[0].weights, fits[1].weights)


def test_parties_keep_the_law(monkeypatch):
    # Row ranges of 7 rows as the parties of the federated tournament (the
    # last one shorter), three rows capped at 1, so the scale comes from the
    # parties' largest p: each duel keeps every row's inclusion
    # probability, so over independent draws each row is selected with
    # frequency pi_i (inclusion_probabilities over all rows), every sample
    # has exactly the budget and every weight is 1 / pi_i. Checked by hand:
    # the scale from the first party's largest p alone fails; the open
    # rows all settled out fails the budget; each party's tournament run
    # from its thread's identity instead of its seed fails every test here.
    import skfal._sampling

    monkeypatch.setattr(skfal._sampling, "_PARTY_ROWS", 7)
    scores, codes = _skewed_scores(60, seed=2)
    budget, mix = 12, 0.3
    pi = inclusion_probabilities(mixed_probabilities(scores, mix), budget)
    assert np.sum(pi == 1.0) == 3
    runs, rng = monte_carlo_runs(600), np.random.RandomState(1)
    hits = np.zeros(60)
    for _ in range(runs):
        selection = pivotal_in_parties(
            scores, codes.copy(), 6, budget, rng, uniform_mix=mix
        )
        assert selection.indices.shape == (budget,)
        np.testing.assert_allclose(
            selection.weights, 1 / pi[selection.indices], rtol=1e-12
        )
        hits[selection.indices] += 1
    se = np.sqrt(pi * (1 - pi) / runs)
    # 4.5 standard errors for the largest of 60 rows; rows at 1 exactly.
    assert np.all(np.abs(hits / runs - pi) <= 4.5 * se + 1e-12)
