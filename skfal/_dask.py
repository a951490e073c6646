"""Dask arrays: rows that live on the workers of a cluster.

The only module that imports dask; :func:`~skfal._validation.validate_rows`
imports it when (and only when) ``X`` is a Dask array. The array's row
chunks act as the parties of skfal's protocols with one owner (no masks):
each kernel pass (:func:`~skfal._rows.map_pieces`) runs on every chunk
where it lives, through :func:`dask.compute` on the current scheduler (a
:class:`dask.distributed.Client` once one is created), and only its result
comes back: a ``d x d`` Gram or R factor per chunk, which the kernels add
or stack at the client, or a few numbers per chunk. Per-row state (scores,
leaf codes of the spatial order, clusters and distances) is kept where its
chunk lives (:meth:`DaskRows.keep_pieces`), and the pivotal tournament runs
there, the chunks as the parties of the federated tournament
(:func:`pivotal_on_workers`), and so does the i.i.d. draw
(:func:`iid_on_workers`): :func:`leverage_selection` and
:func:`sensitivity_on_workers` are the fits that work this way. Rows
themselves come back only when asked for by index: the selected rows, and
the deterministic subsample the spatial order is built on (at most 8,192
rows) and the clustering's (``subsample_size`` rows).
"""

from typing import NamedTuple

import dask
import numpy as np

from skfal._clustering import assign, cluster, lloyd_statistics, lloyd_update
from skfal._federated import (
    Channel,
    InProcessTransport,
    client_seeds,
    sensitivity_counts,
)
from skfal._federated._clustering import server_seed_centres
from skfal._federated._selection import (
    client_capped_mass,
    server_settle_open_rows,
    water_level,
)
from skfal._linalg import _score_maps, _squared_row_norms, score_plan
from skfal._rows import Rows, dense_rows
from skfal._sampling import (
    Inclusion,
    Selection,
    _leaf_codes,
    _tree_plan,
    census,
    draw_seed,
    inclusion_from_terms,
    pivotal_tournament,
    repeats_and_weights,
    smallest_keys,
    stable_order,
    tree_depth,
    unreachable_budget,
)


def check_dask_array(X):
    """Raise a ValueError for a Dask array skfal cannot read by row chunks."""
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D Dask array (rows by features), got {X.ndim} dimensions."
        )
    if any(np.isnan(size) for size in X.chunks[0]):
        raise ValueError(
            "The Dask array's row chunk sizes are unknown (NaN), e.g. after "
            "boolean indexing: call X.compute_chunk_sizes() first."
        )
    if len(X.chunks[1]) > 1:
        raise ValueError(
            f"The Dask array is chunked along its columns ({len(X.chunks[1])} "
            "column chunks): skfal reads whole rows, one row chunk per task. "
            "Call X.rechunk({1: -1}) first."
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"X has dtype {X.dtype}; a Dask array must hold numbers (bool, int "
            "or float)."
        )


class DaskRows(Rows):
    """Some rows of a Dask array chunked by rows: kernels run on its chunks.

    A :class:`~skfal._rows.Rows` whose :meth:`map_pieces` runs a kernel on
    each row chunk where it lives; indexing with row positions gathers those
    rows (one :func:`dask.compute`), and a slice or ``take`` is a view that
    reads nothing.
    """

    distributed = True

    def _read(self, index):
        if isinstance(index, slice):
            return np.asarray(self.base[index].compute())
        index = np.asarray(index, dtype=np.intp)
        if index.size == 0:
            return np.empty((0, self.base.shape[1]), dtype=self.base.dtype)
        # Each chunk sends the rows asked of it, no more: one task per chunk
        # holding some (dask's own fancy indexing may move whole chunks).
        order = np.argsort(index, kind="stable")
        ordered = index[order]
        bounds = np.cumsum((0, *self.base.chunks[0]))
        owner = np.searchsorted(bounds, ordered, side="right") - 1
        chunks = self.base.to_delayed(optimize_graph=True).ravel()
        cuts = np.flatnonzero(np.diff(owner)) + 1
        tasks = [
            dask.delayed(_take)(chunks[rows[0]], ordered[at] - bounds[rows[0]])
            for rows, at in zip(
                np.split(owner, cuts),
                np.split(np.arange(ordered.size), cuts),
                strict=True,
            )
        ]
        block = np.concatenate(dask.compute(*tasks))
        out = np.empty_like(block)
        out[order] = block
        return out

    def _view(self):
        """The Dask array of the view's rows (lazy)."""
        index = self.index
        if isinstance(index, slice) and index == slice(0, self.base.shape[0]):
            return self.base
        return self.base[index]

    @property
    def n_pieces(self):
        """How many row chunks :meth:`map_pieces` runs on."""
        return len(self._view().chunks[0])

    def map_pieces(self, func, *args):
        """``[func(piece, *args)]`` for each row chunk, computed where it lives."""
        results = list(dask.compute(*self._tasks(func, args)))
        self._report()
        return results

    def keep_pieces(self, func, *args):
        """``func(piece, *args)`` for each row chunk, computed and kept there.

        Returns one :class:`dask.delayed.Delayed` per chunk, persisted: with
        a :class:`distributed.Client` each result stays in the memory of
        the worker that holds the chunk (nothing comes back), for later
        tasks (:func:`on_parts`) to read where it is.
        """
        parts = list(dask.persist(*self._tasks(func, args)))
        _wait(parts)  # the pass is done here, as map_pieces' is
        self._report()
        return parts

    @property
    def chunk_sizes(self):
        """The number of rows of each row chunk."""
        return tuple(int(size) for size in self._view().chunks[0])

    def _tasks(self, func, args):
        chunks = self._view().to_delayed(optimize_graph=True).ravel()
        options = (self.shift, self.ones, self.check_finite)
        return [
            dask.delayed(_run_on_piece)(chunk, func, args, options) for chunk in chunks
        ]

    def _report(self):
        if self.on_block is not None:  # progress: each chunk's rows, once done
            bounds = np.cumsum((0, *self.chunk_sizes))
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
                self.on_block(int(start), int(stop), self.shape[0])


def _take(chunk, rows):
    """On a worker: rows ``rows`` of a chunk."""
    return np.asarray(chunk)[rows]


def _run_on_piece(chunk, func, args, options):
    """On a worker: ``func`` on the chunk, as the kernels see in-memory rows."""
    shift, ones, check_finite = options
    block = np.asarray(chunk)
    if block.dtype not in (np.float32, np.float64):
        block = block.astype(np.float64)
    if check_finite and not np.isfinite(block).all():
        raise ValueError(
            "Input X contains NaN or infinity: every entry of the table must be finite."
        )
    piece = Rows(block, shift=shift, ones=ones) if shift or ones else block
    return func(piece, *args)


def dask_rows(X):
    """``X`` (a Dask array) checked and viewed as :class:`DaskRows`."""
    check_dask_array(X)
    return DaskRows(X, check_finite=True)


def _wait(parts):
    """Wait for persisted parts computed on a cluster (the local scheduler's
    are done when :func:`dask.persist` returns)."""
    try:
        from distributed import futures_of, wait
    except ImportError:  # dask without distributed: the local scheduler
        return
    futures = futures_of(parts)
    if futures:
        wait(futures)


def on_parts(parts, func, *args, each=None):
    """``[func(part, *args)]`` for each kept part, run where it lives.

    ``each``: a value per part, passed after the part
    (``func(part, each[i], *args)``). Only ``func``'s results come back,
    so ``func`` returns a few numbers (a reduction) or a few rows' worth.
    """
    extra = [()] * len(parts) if each is None else [(e,) for e in each]
    tasks = [
        dask.delayed(func)(p, *e, *args) for p, e in zip(parts, extra, strict=True)
    ]
    return list(dask.compute(*tasks, optimize_graph=False))


def dask_vector(parts, sizes, item, dtype=np.float64):
    """The kept parts' ``item``-th arrays as one Dask array.

    Each chunk's array is kept on its own where the part lives (one small
    task per part), so the rest of the part (leaf codes) can be let go.
    """
    import dask.array as da

    arrays = list(dask.persist(*[dask.delayed(_item)(p, item) for p in parts]))
    _wait(arrays)
    return da.concatenate(
        [
            da.from_delayed(a, (size,), dtype)
            for a, size in zip(arrays, sizes, strict=True)
        ]
    )


def _item(part, item):
    return part[item]


# ------------------------------------------------------------------ leverage
class KeptScores(NamedTuple):
    """Scores kept on the workers (:func:`leverage_on_workers`), as
    :func:`pivotal_on_workers` reads them.

    ``parts`` hold each chunk's ``(scores, codes, ...)`` (``codes`` None
    without the spatial tree) where the chunk lives; ``sizes`` the chunks'
    rows; ``whitener`` the leverage map ``W`` (None for other scores);
    ``n_bits`` the codes' bits.
    """

    parts: list
    sizes: tuple
    whitener: np.ndarray
    n_bits: int


def leverage_on_workers(X, intercept, alpha, *, max_depth=None):
    """Each chunk's leverage scores (and leaf codes), kept where it lives.

    The maps come from ``d x d`` reductions (:func:`skfal._linalg._score_maps`);
    with ``max_depth`` each chunk's rows also get their leaf codes in the
    spatial tree of :func:`skfal._linalg.leverage_scores_and_codes` (planned
    at the client from its deterministic sample of at most 4096 rows), from
    the same products. Nothing per row comes back.

    Returns
    -------
    kept : KeptScores
    """
    if max_depth is None:
        M, W, _ = _score_maps(X, intercept, alpha)
        tree = M32 = None
    else:
        M, W, tree, M32 = score_plan(X, intercept, alpha, max_depth)
    parts = X.keep_pieces(_scored, M, intercept, tree, M32)
    return KeptScores(parts, X.chunk_sizes, W, 0 if tree is None else tree.n_bits)


def _scored(piece, M, intercept, tree, M32):
    """On a worker: a chunk's ``(scores, codes)`` (codes None without tree)."""
    if tree is None:
        return _squared_row_norms(piece, M, intercept), None
    return _squared_row_norms(piece, M, intercept, tree, M32)


def gather_scores(kept):
    """The kept scores, brought to the client (``n`` numbers)."""
    return np.concatenate([scores for scores, _ in dask.compute(*kept.parts)])


# ------------------------------------------------------------------- pivotal
def pivotal_on_workers(kept, n_selected, random_state, *, uniform_mix):
    """Pivotal sampling of kept scores, the chunks as the federation's parties.

    The federated tournament of :mod:`skfal._federated._selection` with one
    party per chunk, each running where its chunk lives:

    1. the client (the server) computes the :class:`Inclusion` terms by
       reductions over the chunks: the total score and the number of rows,
       then the water-filling scale ``c`` of ``pi = min(1, c p)`` by the
       federation's :func:`~skfal._federated._selection.water_level`: each
       round the chunks send, at candidate scales, how many of their rows
       each caps and the mass ``p`` of the others, until a bracket holds
       the level with no row capped inside it: the in-memory
       :func:`~skfal._sampling.inclusion_scale` (to rounding, as the sums
       add in another order);
    2. each chunk: its rows' ``pi`` from the terms, the pivotal tournament
       over its rows in the order of their leaf codes (the one spatial tree
       of all rows, so neighbours within a chunk duel first), its own seed;
       it sends the rows decided in with their ``pi``, and its at most one
       open row;
    3. the client settles the open rows (:func:`server_settle_open_rows`).

    Every duel keeps each row's inclusion probability, so each row is
    selected with probability exactly ``pi_i`` and the sample has exactly
    ``n_selected`` rows; the rows differ from an in-memory fit's with the
    same seed (other pairings, other streams), the law does not
    (``tests/test_dask.py`` checks the frequencies). What comes back: the
    selected rows and at most 132 numbers per chunk and round.

    Returns
    -------
    selection : Selection
        Sorted rows, weights ``1 / pi``.
    """
    stats = np.array(on_parts(kept.parts, _score_summary))
    n_rows = int(sum(kept.sizes))
    terms = Inclusion(1.0, float(stats[:, 0].sum()), n_rows, float(uniform_mix))
    # p of a row from its score, as every chunk computes it (scale 1: p).
    least = stats[:, 2].min()  # inf: no positive score anywhere
    p_least, p_zero = inclusion_from_terms(
        np.array([least if np.isfinite(least) else 0.0, 0.0]), terms
    )
    n_positive = n_rows if p_zero > 0 else int(stats[:, 1].sum())
    if n_selected > n_positive:
        raise ValueError(unreachable_budget(n_selected, n_positive, n_rows))
    if n_selected == n_positive:  # every positive row is capped at 1
        scale = 2.0 / (p_zero if p_zero > 0 else p_least)
    else:  # the federation's water level, the chunks' sums by reduction
        scale = water_level(
            lambda candidates: np.sum(
                on_parts(kept.parts, _capped_mass, terms, candidates), axis=0
            ),
            n_selected,
        )
    terms = terms._replace(scale=float(scale))
    seeds = draw_seed(random_state, size=len(kept.parts))
    outcomes = on_parts(
        kept.parts, _tournament, terms, kept.n_bits, each=seeds.tolist()
    )
    open_rows = [outcome[2] for outcome in outcomes]
    verdicts = server_settle_open_rows(open_rows, random_state)
    offsets = np.cumsum((0, *kept.sizes))
    indices, pi = [], []
    for offset, (rows, row_pi, open_row), won in zip(
        offsets[:-1], outcomes, verdicts, strict=True
    ):
        indices.append(offset + rows)
        pi.append(row_pi)
        if won:
            indices.append(np.array([offset + int(open_row[0])]))
            pi.append(open_row[2:3])
    indices = np.concatenate(indices).astype(np.int64)
    pi = np.concatenate(pi)
    order = np.argsort(indices)
    indices, pi = indices[order], pi[order]
    return Selection(indices, 1.0 / pi, np.ones(indices.shape[0], np.int64), 0)


def _score_summary(part, excluded=None):
    """On a worker: the total score of the chunk's rows that may be drawn
    (all but ``excluded``), how many have a positive score, the least
    positive score, and how many there are."""
    scores = part[0]
    if excluded is not None and len(excluded):
        scores = np.delete(scores, excluded)
    positive = scores[scores > 0]
    least = float(positive.min()) if positive.size else np.inf
    return float(scores.sum()), positive.shape[0], least, scores.shape[0]


def _capped_mass(part, terms, candidates):
    """On a worker: a chunk's :func:`client_capped_mass` at the candidate
    scales (how many of its ``p`` each caps, and the mass of the others)."""
    p = inclusion_from_terms(part[0], terms)  # terms.scale 1: p itself
    return client_capped_mass(np.sort(p), candidates)


def _tournament(part, seed, terms, n_bits):
    """On a worker: the chunk's pivotal tournament (step 2 of the protocol).

    Returns the local rows decided in, their ``pi``, and the open row as
    ``[local index, probability left, pi]`` (``[-1, 0, 1]`` when none).
    """
    scores, codes = part[0], part[1]
    pi = inclusion_from_terms(scores, terms)
    order = None if codes is None else stable_order(codes, n_bits)
    outcome = pivotal_tournament(pi, np.random.RandomState(seed), order)
    pending = outcome.pending
    open_row = np.array(
        [pending, outcome.pending_probability, pi[pending] if pending >= 0 else 1.0]
    )
    return outcome.selected, pi[outcome.selected], open_row


# ----------------------------------------------------------------------- iid
def iid_on_workers(
    kept, n_selected, random_state, *, uniform_mix, weighting, excluded=None
):
    """FALE's i.i.d. draw until ``n_selected`` rows are distinct, per chunk.

    :func:`~skfal._sampling.draw_until_distinct` with its ``n`` numbers
    where the rows live. The first ``n_selected`` distinct rows of an i.i.d.
    draw by ``p`` are the rows of the smallest keys ``E_i / p_i`` (``E_i``
    independent exponentials, :func:`~skfal._sampling.smallest_keys`),
    whoever draws each ``E_i``: so

    1. the client computes the :class:`Inclusion` terms of ``p`` (scale 1)
       from each chunk's total score and number of rows;
    2. each chunk draws its ``E_i`` from its own seed and sends its
       ``n_selected`` smallest keys' rows with ``E_i`` and ``p_i``;
    3. the client keeps the ``n_selected`` smallest of those (the global
       ones: a row among them is among its chunk's), and each chunk sends
       the mass ``p`` of its rows not kept;
    4. the client draws the repeats and weights from those ``2 n_selected
       + 1`` numbers (:func:`~skfal._sampling.repeats_and_weights`), as in
       memory.

    The rows differ from an in-memory fit's with the same seed (other
    streams for the ``E_i``), the law does not (``tests/test_dask.py``
    checks it against the exact law of the first distinct rows).
    ``excluded``: per part, the local rows never drawn (probability 0, not
    counted among the rows the uniform share spreads over). What comes
    back: ``3 n_selected + 4`` numbers per chunk.

    Returns
    -------
    selection : Selection
    """
    excluded = [None] * len(kept.parts) if excluded is None else excluded
    stats = np.array(on_parts(kept.parts, _score_summary, each=excluded))
    n_rows = int(sum(kept.sizes))
    n_eligible = int(stats[:, 3].sum())
    terms = Inclusion(1.0, float(stats[:, 0].sum()), n_eligible, float(uniform_mix))
    positive = n_eligible if uniform_mix > 0 else int(stats[:, 1].sum())
    if n_selected > positive:
        raise ValueError(unreachable_budget(n_selected, positive, n_rows))
    seeds = draw_seed(random_state, size=len(kept.parts)).tolist()
    pairs = list(zip(seeds, excluded, strict=True))
    found = on_parts(kept.parts, _smallest_keys, terms, n_selected, each=pairs)
    offsets = np.cumsum((0, *kept.sizes))[:-1]
    rows = np.concatenate([o + f[0] for o, f in zip(offsets, found, strict=True)])
    first = smallest_keys(
        np.concatenate([f[1] for f in found]),
        np.concatenate([f[2] for f in found]),
        n_selected,
    )
    chosen = np.zeros(rows.shape[0], dtype=bool)
    chosen[first] = True
    cuts = np.cumsum([f[0].shape[0] for f in found])[:-1]
    local = [f[0][c] for f, c in zip(found, np.split(chosen, cuts), strict=True)]
    rest = np.sum(
        on_parts(
            kept.parts, _mass_left, terms, each=list(zip(local, excluded, strict=True))
        )
    )
    p_first = np.concatenate([f[2] for f in found])[first]
    return repeats_and_weights(
        rows[first].astype(np.int64), p_first, float(rest), random_state, weighting
    )


def _eligible(scores, excluded):
    """A chunk's mask of rows that may be drawn (None: all of them)."""
    if excluded is None or len(excluded) == 0:
        return None
    eligible = np.ones(scores.shape[0], dtype=bool)
    eligible[excluded] = False
    return eligible


def _smallest_keys(part, pair, terms, n_selected):
    """On a worker: the chunk's rows of the ``n_selected`` smallest keys
    ``E_i / p_i`` (``E_i`` from the chunk's seed), with ``E_i`` and ``p_i``."""
    seed, excluded = pair
    scores = part[0]
    p = inclusion_from_terms(scores, terms, _eligible(scores, excluded))
    exponentials = np.random.RandomState(seed).standard_exponential(p.shape[0])
    rows = smallest_keys(exponentials, p, min(n_selected, p.shape[0]))
    return rows, exponentials[rows], p[rows]


def _mass_left(part, pair, terms):
    """On a worker: the mass ``p`` of the chunk's rows not among ``chosen``."""
    chosen, excluded = pair
    scores = part[0]
    p = inclusion_from_terms(scores, terms, _eligible(scores, excluded))
    p[chosen] = 0.0
    return float(p.sum())


def leverage_selection(
    X, n_selected, random_state, *, intercept, alpha, sampling, uniform_mix, weighting
):
    """A centralized leverage fit of a Dask array, per-row state on the workers.

    Returns ``(scores, W, selection)``: ``scores`` a lazy Dask array over
    the kept per-chunk scores (nothing per row reaches the client),
    ``W`` the whitener, and the selection (on the workers, by
    :func:`pivotal_on_workers` or :func:`iid_on_workers`; every row: a
    census).
    """
    n = X.shape[0]
    census_ = n_selected == n
    pivotal = sampling == "pivotal" and not census_
    kept = leverage_on_workers(
        X, intercept, alpha, max_depth=tree_depth(n, n_selected) if pivotal else None
    )
    if pivotal:
        selection = pivotal_on_workers(
            kept, n_selected, random_state, uniform_mix=uniform_mix
        )
    elif census_:
        selection = census(n)
    else:
        selection = iid_on_workers(
            kept, n_selected, random_state, uniform_mix=uniform_mix, weighting=weighting
        )
    return dask_vector(kept.parts, kept.sizes, 0), kept.whitener, selection


# --------------------------------------------------------------- sensitivity
class KeptClustering(NamedTuple):
    """:func:`sensitivity_on_workers`' result (distance-only scores).

    ``scores`` (``d^z`` in the working units ``X / 2**x``, 0 at the medoids)
    and ``labels`` (each row's kept cluster) are Dask arrays whose chunks
    stay on the workers; ``centres`` are in the working units.
    """

    selection: Selection
    scores: object
    labels: object
    centres: np.ndarray
    medoids: np.ndarray
    n_iter: int
    exponent: int


def sensitivity_on_workers(
    X,
    n_selected,
    random_state,
    *,
    n_clusters,
    z,
    n_sub,
    max_iter,
    uniform_mix,
    sampling="pivotal",
    weighting="hansen-hurwitz",
):
    """A centralized distance-only sensitivity fit of a Dask array.

    The protocol of :mod:`skfal._federated._clustering` with one owner
    (so no rotation and no secure sum: nobody to hide from) and its chunks
    as the parties of every pass over all rows:

    0. the common scale ``x`` (``max |X| < 2**x``, on the workers);
    1-3. a uniform subsample of ``n_sub`` rows (drawn in ``O(n_sub)``
       memory) is brought to the client, clustered there (D^z seeding and
       Lloyd steps), the centres seeded again from those local centres and
       moved by Lloyd rounds on the subsample, as the one client and the
       server of an in-memory fit do;
    4. each chunk assigns its rows (kept where it lives) and sends, per
       cluster, its number of rows and its nearest row; the medoid of a
       cluster is its nearest row (the first, in row order, on a tie);
    6. each row's score ``d^z`` (0 at the medoids, whose labels are bought)
       and leaf code in the spatial tree of :func:`~skfal._sampling.spatial_order`
       are kept on the workers, and :func:`pivotal_on_workers` selects;
       with ``sampling="iid"`` or ``uniform_mix=0`` the medoids are bought
       first and the rest of the budget is drawn among the other rows
       (:func:`_medoids_and_draw`).

    Only the subsample, the selected rows, ``k`` numbers per chunk and the
    spatial tree's sample come back. The subsample's stream differs from
    the in-memory fit's (whose uniform draw shuffles all ``n`` positions),
    so the clustering, and the rows, differ; the scores are the distances
    to this fit's centres and the law of the selection is the in-memory
    one for these scores.

    Returns
    -------
    result : KeptClustering
    """
    transport = InProcessTransport(
        [{"X": X, "client": 0, **client_seeds(draw_seed(random_state), 0)}],
        Channel(),
    )
    sensitivity_counts(transport)  # the common scale, kept by the client
    transport.flush()
    x = int(transport.kept("row_exponent")[0][0])
    rows = X if x == 0 else X.scaled(-x)
    n = X.shape[0]
    sub = np.sort(
        np.random.default_rng(draw_seed(random_state)).choice(
            n, n_sub, replace=False, shuffle=False
        )
    )
    X_sub = dense_rows(rows, sub)
    local, sizes = cluster(
        X_sub,
        min(n_clusters, n_sub),
        z,
        np.random.RandomState(draw_seed(random_state)),
        max_iter,
    )
    centres = server_seed_centres(
        [local[sizes > 0]], [sizes[sizes > 0]], n_clusters, z, random_state
    )
    n_iter = 0
    while n_iter < max_iter:  # Lloyd rounds on the subsample (lloyd_rounds)
        sums, weights, _ = lloyd_statistics(X_sub, centres, z)
        moved = lloyd_update(centres, sums, weights)
        n_iter += 1
        done = np.allclose(moved, centres, rtol=0, atol=1e-10)
        centres = moved
        if done:
            break
    del X_sub
    assigned = rows.keep_pieces(assign, centres)  # (labels, distances), kept
    summaries = on_parts(assigned, _cluster_summary, centres.shape[0])
    counts = np.sum([s[0] for s in summaries], axis=0)
    keep = counts > 0
    nearest = np.vstack([s[1] for s in summaries])[:, keep]
    owner = np.argmin(nearest, axis=0)  # the first chunk on a tie
    offsets = np.cumsum((0, *X.chunk_sizes))
    local_rows = np.vstack([s[2] for s in summaries])[:, keep]
    medoids = offsets[owner] + local_rows[owner, np.arange(owner.shape[0])]
    medoids = medoids.astype(np.int64)
    relabel = np.cumsum(keep) - 1
    depth = tree_depth(n, n_selected)
    pivotal = sampling == "pivotal" and n_selected < n
    tree = _tree_plan(X, depth) if pivotal else None
    codes = X.keep_pieces(_leaf_codes, tree) if tree is not None else None
    mine = [
        medoids[(medoids >= a) & (medoids < b)] - a
        for a, b in zip(offsets[:-1], offsets[1:], strict=True)
    ]
    parts = list(
        dask.persist(
            *[
                dask.delayed(_sensitivity_part)(
                    part, None if codes is None else codes[i], mine[i], relabel, z
                )
                for i, part in enumerate(assigned)
            ]
        )
    )
    _wait(parts)
    del assigned, codes
    kept = KeptScores(parts, X.chunk_sizes, None, 0 if tree is None else tree.n_bits)
    if n_selected == n:
        selection = census(n)
    elif pivotal and uniform_mix > 0:  # every row reachable, nothing bought
        selection = pivotal_on_workers(
            kept, n_selected, random_state, uniform_mix=uniform_mix
        )
    else:
        selection = _medoids_and_draw(
            kept,
            medoids,
            mine,
            n_selected,
            random_state,
            mix=uniform_mix,
            sampling=sampling,
            weighting=weighting,
        )
    return KeptClustering(
        selection=selection,
        scores=dask_vector(parts, X.chunk_sizes, 0),
        labels=dask_vector(parts, X.chunk_sizes, 2, np.int64),
        centres=centres[keep],
        medoids=medoids,
        n_iter=n_iter,
        exponent=x,
    )


def _medoids_and_draw(
    kept, medoids, mine, n_selected, random_state, *, mix, sampling, weighting
):
    """The medoids bought, then the rest of the budget drawn on the workers,
    as the in-memory fit's ``_draw_beyond_forced``.

    Bought: every medoid with ``sampling="iid"`` (weight 1, as in the
    paper); with ``uniform_mix=0`` also under pivotal sampling, where each
    medoid stands in for the rows of its cluster on the centre (score 0:
    no draw reaches them) and weighs 1 plus their number, counted per
    cluster by each chunk. The rest: :func:`iid_on_workers` over the
    other rows, or :func:`pivotal_on_workers` (the medoids and the rows on
    a centre score 0, so no duel selects them).
    """
    k = medoids.size
    stand_in = np.zeros(k)
    if mix == 0:
        stand_in = np.sum(on_parts(kept.parts, _on_centre, k, each=mine), axis=0)
    weight_of = dict(zip(medoids.tolist(), (1.0 + stand_in).tolist(), strict=True))
    n_draws = 0
    remaining = n_selected - k
    if remaining > 0:
        stats = np.array(on_parts(kept.parts, _score_summary, each=mine))
        reachable = int(stats[:, 3 if mix > 0 else 1].sum())
        if remaining > reachable:
            from skfal._sensitivity import too_few_informative

            raise ValueError(too_few_informative(k + reachable, n_selected))
        if sampling == "iid":
            drawn = iid_on_workers(
                kept,
                remaining,
                random_state,
                uniform_mix=mix,
                weighting=weighting,
                excluded=mine,
            )
        else:
            drawn = pivotal_on_workers(kept, remaining, random_state, uniform_mix=0.0)
        weight_of.update(zip(drawn.indices.tolist(), drawn.weights, strict=True))
        n_draws = drawn.n_draws
    indices = np.array(sorted(weight_of), dtype=np.int64)
    weights = np.array([weight_of[i] for i in indices])
    return Selection(indices, weights, np.ones(indices.size, np.int64), n_draws)


def _on_centre(part, medoids, n_clusters):
    """On a worker: per cluster, the chunk's rows on the centre (score 0)
    other than the medoids."""
    scores, _, labels = part
    zero = scores == 0
    zero[medoids] = False
    return np.bincount(labels[zero], minlength=n_clusters)


def _cluster_summary(part, n_clusters):
    """On a worker: per cluster, the chunk's rows, smallest distance and the
    first row at it (0 where none)."""
    labels, distances = part
    counts = np.bincount(labels, minlength=n_clusters)
    nearest = np.full(n_clusters, np.inf)
    np.minimum.at(nearest, labels, distances)
    first = np.zeros(n_clusters, dtype=np.int64)
    at = np.flatnonzero(distances == nearest[labels])
    clusters, where = np.unique(labels[at], return_index=True)  # first rows
    first[clusters] = at[where]
    return counts, nearest, first


def _sensitivity_part(part, codes, medoids, relabel, z):
    """On a worker: a chunk's ``(scores, codes, labels)``: ``d^z``, 0 at its
    medoids, and the kept clusters' numbers."""
    labels, distances = part
    scores = distances**z
    scores[medoids] = 0.0
    return scores, codes, relabel[labels]
