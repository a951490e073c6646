"""Clustering-based sensitivity sampling (Axiotis et al.), centralized or federated."""

from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skfal._base import DocLinkMixin, FederatedFit, SamplerMixin, select_rows
from skfal._clustering import assign
from skfal._compat import Interval, Options, StrOptions, fit_context
from skfal._federated import (
    Channel,
    federated_clustering,
    federated_scores,
    federated_stand_in_counts,
    holder_centres,
    holder_in_working_units,
    send_eligible,
    send_selection,
    sensitivity_counts,
    simulated_federation,
)
from skfal._progress import Progress, describe
from skfal._rows import scale_rows
from skfal._sampling import (
    WEIGHTINGS,
    Selection,
    census,
    draw_seed,
    mixed_probabilities,
    resolve_budget,
)
from skfal._shared_params import (
    BUDGET_CONSTRAINT,
    SAMPLING_CONSTRAINT,
    UNIFORM_MIX_CONSTRAINT,
    fill_doc,
)
from skfal._validation import (
    check_groups,
    check_partial_target,
    refuse_distributed_groups,
    validate_rows,
)


@fill_doc
class SensitivitySampler(DocLinkMixin, SamplerMixin, BaseEstimator):
    """Select rows to label by clustering-based sensitivity sampling.

    Cluster the rows ((k, z)-clustering: D^z seeding, Lloyd steps), take in
    each cluster the row nearest its centre (the medoid, whose label can be
    bought), and sample the remaining budget with probability proportional
    to a bound on each row's loss: its distance to the centre to the power
    ``z``, or, with labels, ``Lambda_j d^z + loss_j`` where ``loss_j`` is the
    medoid's squared residual under a least-squares model ``x0`` fitted on
    the medoids (weighted by cluster size) and ``Lambda_j`` the cluster's
    Holder constant (Axiotis et al., Algorithm 2).

    Parameters
    ----------
    {budget}
        The medoids (and the Holder probes, with labels) are part of it.
    n_clusters : int or float, default=0.05
        Number of clusters ``k`` if an int; that fraction of the budget
        (rounded, at least 1) if a float in ``(0, 1)``. The paper uses 0.2;
        fewer, larger clusters measured better at small budgets
        (``benchmarks/bench_label_efficiency.py``).
    z : {1, 2}, default=2
        Clustering exponent: 2 for k-means, 1 for (Euclidean) k-median.
    holder_constant : float, inf or "auto", default=inf
        ``Lambda`` of the Holder bound ``|loss(x) - loss(c)| <= Lambda
        ||x - c||^z``. ``inf`` (default) scores rows by distance alone and
        reads no label, the paper's own regression experiments (its Appendix
        C.3); it is also what works best for fitting a regression here (see
        ``benchmarks/bench_sensitivity.py``). A float, with labels given to
        ``fit``, gives Algorithm 2's scores ``Lambda d^z + loss_j``.
        ``"auto"`` estimates ``Lambda_j`` per cluster as in Lemma 8: one
        random row per cluster is labeled (counted in the budget) and
        ``Lambda_j = log(n) |loss(probe) - loss(medoid)| / d(probe)^z``; when
        the budget has no room for a probe in every cluster, the larger
        clusters are probed and the others get the largest estimate (with no
        probe at all, the scores are distances only).
    fit_intercept : bool, default=False
        Whether the proxy model ``x0`` has an intercept.
        :class:`FederatedActiveRegressor` sets it to its own.
    subsample_size : int or None, default=None
        Rows on which the clustering is computed (Lloyd steps); every row is
        then assigned in one pass. ``None``: ``max(10000, 40 k)``, capped at
        the number of rows.
    max_iter : int, default=10
        Lloyd rounds.
    {sampling}
        With ``"iid"`` every cluster's medoid is bought (weight 1), as in
        the paper; with ``"pivotal"`` medoids are bought only when the
        scores need their labels (``holder_constant`` not ``inf``), or to
        stand in for rows no draw can reach.
    uniform_mix : float in [0, 1], default=0.8
        Share ``eta`` of uniform sampling mixed into the probabilities,
        ``p = (1 - eta) score / sum(score) + eta / n`` (see
        :class:`LeverageScoreSampler`). Distances to the centres say less
        about a regression's loss than leverage does, so the default share
        is larger (chosen on ``benchmarks/bench_label_efficiency.py``: with
        0.5 the sampler lost to uniform on one table of eight at 2d).
    weighting : {"hansen-hurwitz", "des-raj"}, default="hansen-hurwitz"
        Importance weights of the sampled rows with ``sampling="iid"`` (see
        :class:`LeverageScoreSampler`).
    n_jobs : int, default=None
        Clients processed in parallel (joblib threads).
    random_state : int, RandomState instance or None, default=None
        Controls the subsample, seeding, probes and draws.
    {verbose}

    Attributes
    ----------
    scores_ : ndarray or dask.array.Array of shape (n_samples,)
        Sensitivity score of every row (zero for medoids and probes, whose
        labels are bought). A Dask array for a Dask ``X`` fitted with
        distance-only scores (the default): its chunks stay on the workers.
    sample_indices_ : ndarray of shape (n_selected,)
        Sorted distinct selected rows: the bought ones (medoids and probes,
        when bought; see ``sampling``) and the sampled ones.
    sample_weight_ : ndarray of shape (n_selected,)
        Weights: 1 for a probe; for a medoid, 1 plus the number of rows of its
        cluster with a zero score (rows at the centre, which it stands for);
        importance weights for the sampled rows. ``sum w_i f(x_i)`` is an
        unbiased estimate of ``sum_j f(x_j)`` (exactly, with
        ``weighting="des-raj"``) for losses that obey the Holder bound.
    n_draws_ : int
        Draws it took to sample the rows beyond medoids and probes.
    n_queries_ : int
        Labels read by ``fit``: medoids and probes with labels, else 0.
    n_clusters_ : int
        Clusters used (those left empty are dropped).
    n_iter_ : int
        Lloyd rounds run.
    cluster_centers_ : ndarray of shape (`n_clusters_`, `n_features_in_`)
        Centres of the clusters.
    labels_ : ndarray or dask.array.Array of shape (n_samples,)
        Cluster of every row (a Dask array when ``scores_`` is one).
    medoid_indices_ : ndarray of shape (`n_clusters_`,)
        Row nearest each centre.
    probe_indices_ : ndarray
        Rows labeled to estimate the Holder constants.
    holder_constants_ : ndarray of shape (`n_clusters_`,) or None
        ``Lambda_j`` per cluster (``None`` without labels).
    medoid_losses_ : ndarray of shape (`n_clusters_`,) or None
        Squared residual of each medoid under the proxy model (``None``
        without labels).
    proxy_coef_ : ndarray of shape (`n_features_in_`,) or None
        ``x0``, fitted on the medoids (``None`` without labels).
    proxy_intercept_ : float
        Its intercept.
    clients_ : ndarray of shape (n_clients,) or None
        Sorted client labels when fitted with ``groups``.
    communication_ : dict
        Bytes per phase, ``{phase: {"up": bytes, "down": bytes}}``; empty when
        centralized.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``, when ``X`` has string column
        names.

    See Also
    --------
    LeverageScoreSampler : Selection by statistical leverage.
    UniformSampler : Uniform random selection.

    Notes
    -----
    The clustering is computed on a uniform subsample and then every row is
    assigned in one chunked pass, so the cost is about one pass over ``X``
    per ``k`` centres. Distances are measured to the centre (the mean, or
    the Weiszfeld estimate of the geometric median for ``z=1``); the medoid
    stands in for the centre only where a label is needed. Rows whose score
    is zero are represented by their medoid.

    Every fit runs the protocol of ``skfal._federated._clustering``: with
    ``groups`` over the clients, without them over one client holding every
    row (the same steps; a secure sum of one client is its own values, with
    no mask). The seeding is two-level (each client clusters its share of
    the subsample, then weighted D^z seeding of all their centres), so a
    federated fit's clusters differ from a centralized one's, while Lloyd
    rounds from the same centres agree exactly.

    The computation runs on ``X`` and ``y`` scaled by powers of two (exact),
    so the same rows are selected whatever the unit of the features, and no
    distance or loss under- or overflows; the fitted attributes are in the
    caller's units (``scores_`` and ``transform`` overflow to ``inf`` only
    where ``d^z`` itself exceeds float64, e.g. ``X`` near ``1e200``).

    References
    ----------
    .. [1] K. Axiotis, V. Cohen-Addad, M. Henzinger, S. Jerome, V. Mirrokni,
       D. Saulpic, D. Woodruff and M. Wunder, "Data-Efficient Learning via
       Clustering-Based Sensitivity Sampling: Foundation Models and Beyond",
       ICML 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from skfal import SensitivitySampler
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.normal(c, 0.1, (100, 2)) for c in (0, 5, 10)])
    >>> sampler = SensitivitySampler(budget=15, n_clusters=3, random_state=0).fit(X)
    >>> sampler.sample_indices_.shape
    (15,)
    >>> np.bincount(sampler.labels_[sampler.medoid_indices_], minlength=3)
    array([1, 1, 1])
    """

    _output_name = "sensitivity"

    _parameter_constraints: dict = {
        "budget": BUDGET_CONSTRAINT,
        "n_clusters": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Real, 0, 1, closed="neither"),
        ],
        "z": [Options(Real, {1, 2})],
        "holder_constant": [
            StrOptions({"auto"}),
            Interval(Real, 0, np.inf, closed="both"),
        ],
        "fit_intercept": ["boolean"],
        "subsample_size": [Interval(Integral, 1, None, closed="left"), None],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "sampling": SAMPLING_CONSTRAINT,
        "uniform_mix": UNIFORM_MIX_CONSTRAINT,
        "weighting": [StrOptions(set(WEIGHTINGS))],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        budget=0.1,
        *,
        n_clusters=0.05,
        z=2,
        holder_constant=np.inf,
        fit_intercept=False,
        subsample_size=None,
        max_iter=10,
        sampling="pivotal",
        uniform_mix=0.8,
        weighting="hansen-hurwitz",
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.budget = budget
        self.n_clusters = n_clusters
        self.z = z
        self.holder_constant = holder_constant
        self.fit_intercept = fit_intercept
        self.subsample_size = subsample_size
        self.max_iter = max_iter
        self.sampling = sampling
        self.uniform_mix = uniform_mix
        self.weighting = weighting
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, groups=None):
        """Cluster, score and draw the selection.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows.
        y : array-like of shape (n_samples,), default=None
            Labels. Read only at the medoids and probes (the others may be
            ``NaN``); ``None`` for distance-only scores.
        groups : array-like of shape (n_samples,), default=None
            Client label of each row; the clustering and scores are then
            computed by the federated protocol.

        Returns
        -------
        self : object
            Fitted sampler.
        """
        self._fit_in_federation(X, y, groups)
        return self

    @fit_context(prefer_skip_nested_validation=True)
    def _fit_in_federation(self, X, y=None, groups=None):
        """:meth:`fit`, returning the federated fit's federation
        (:class:`~skfal._base.FederatedFit`; ``None`` without ``groups``)."""
        progress = Progress(self, self.verbose)
        X = validate_rows(self, X)
        refuse_distributed_groups(X, groups)
        progress(describe(X))
        X = progress.watch(X)
        n_samples = X.shape[0]
        self._sizes(n_samples)  # the budget and n_clusters, before any message
        # Labels matter only to Algorithm 2's scores; they are read at the
        # medoids and probes alone.
        y = (
            # All missing is allowed: the medoids' check names the rows to label.
            check_partial_target(
                y, n_samples, type(self).__name__, allow_all_missing=True
            )
            if (y is not None and self._reads_labels())
            else None
        )
        rng = check_random_state(self.random_state)
        if groups is None and self._on_workers(X):
            self._fit_on_workers(X, rng, progress)
            return None
        if groups is None:  # centralized: a federation of one client
            self.clients_, client_rows = None, [np.arange(n_samples)]
        else:
            self.clients_, client_rows = check_groups(groups, n_samples)
        return self._fit_simulated(X, y, client_rows, rng, progress)

    def _on_workers(self, X):
        """Whether the fit keeps the per-row state on a Dask array's workers:
        distance-only scores. Fits that read labels gather it at the
        client."""
        return getattr(X, "distributed", False) and not self._reads_labels()

    def _fit_on_workers(self, X, rng, progress):
        """The fit of a Dask ``X`` whose per-row state stays on its workers
        (:func:`skfal._dask.sensitivity_on_workers`)."""
        from skfal._dask import sensitivity_on_workers

        n_selected, k = self._sizes(X.shape[0])
        fit = sensitivity_on_workers(
            X,
            n_selected,
            rng,
            n_clusters=k,
            z=int(self.z),
            n_sub=self._n_sub(k, X.shape[0]),
            max_iter=self.max_iter,
            uniform_mix=self.uniform_mix,
            sampling=self.sampling,
            weighting=self.weighting,
        )
        units = _Units(fit.exponent, int(self.z))
        self._units, self._holder_scaled, self._loss_scaled = units, None, None
        self.clients_, self.communication_ = None, {}
        self.sample_indices_ = fit.selection.indices
        self.sample_weight_ = fit.selection.weights
        self.n_draws_, self.n_queries_ = fit.selection.n_draws, 0
        self.medoid_indices_ = fit.medoids
        self.probe_indices_ = np.empty(0, dtype=np.int64)
        self.n_clusters_, self.n_iter_ = fit.medoids.size, fit.n_iter
        self.scores_ = units.unscale_scores(fit.scores, False)
        self.cluster_centers_ = units.unscale(fit.centres, units.x)
        self.labels_ = fit.labels
        self.holder_constants_ = self.medoid_losses_ = self.proxy_coef_ = None
        self.proxy_intercept_ = 0.0
        progress(
            f"clustered into {self.n_clusters_} clusters ({self.n_iter_} Lloyd "
            f"rounds) on the workers, selected {self.sample_indices_.shape[0]:,} "
            f"rows ({self.sampling})"
        )

    def _n_sub(self, n_clusters, n_samples):
        """Rows of the clustering's subsample (``subsample_size``'s default)."""
        return min(self.subsample_size or max(10_000, 40 * n_clusters), n_samples)

    def _sizes(self, n_samples):
        """The budget in rows and the number of clusters, checked."""
        n_selected = resolve_budget(self.budget, n_samples)
        k = self._n_clusters(n_selected)
        if k > n_samples:
            raise ValueError(
                f"n_clusters={k} exceeds the number of rows n_samples={n_samples}."
            )
        if k > n_selected:
            raise ValueError(
                f"budget={self.budget!r} gives {n_selected} rows, fewer than "
                f"n_clusters={k}: every cluster's medoid is selected. Lower "
                "n_clusters or raise the budget."
            )
        return n_selected, k

    def _bought(self, result, n_selected):
        """The labels bought, the rows forced into the selection, and the
        scores with the bought rows at 0."""
        labels_bought = np.union1d(result.clustering.medoids, result.probes)
        if labels_bought.size > n_selected:
            raise ValueError(
                f"budget={self.budget!r} gives {n_selected} rows but "
                f"{labels_bought.size} labels are bought for medoids and Holder "
                "probes. Raise the budget, lower n_clusters, or pass a float "
                "holder_constant."
            )
        # The paper's rule buys every medoid; the pivotal design buys only
        # what the scores needed labels for (and medoids standing in for rows
        # no draw can reach, below).
        forced = (
            labels_bought
            if self.sampling == "iid" or result.n_labels_read
            else np.empty(0, dtype=np.int64)
        )
        scores = result.scores.copy()
        if not np.all(np.isfinite(scores)):
            raise ValueError(
                "The sensitivity scores are not finite (the proxy model's "
                "losses overflow): rescale y or X, or use distance-only scores "
                "(holder_constant=np.inf)."
            )
        scores[labels_bought] = 0.0
        return labels_bought, forced, scores

    def _set_selection(self, selection, result):
        self.sample_indices_ = selection.indices
        self.sample_weight_ = selection.weights
        self.n_draws_ = selection.n_draws
        self.medoid_indices_ = result.clustering.medoids
        self.probe_indices_ = result.probes
        self.n_clusters_ = result.clustering.medoids.size
        self.n_iter_ = result.clustering.n_iter
        with_labels = result.holder is not None
        self.medoid_losses_ = result.medoid_loss if with_labels else None
        self.n_queries_ = result.n_labels_read

    def _fit_simulated(self, X, y, client_rows, rng, progress):
        """The fit in one process: the server's side (:meth:`_run_federated`)
        over an in-process transport whose client ``c`` holds the rows
        ``client_rows[c]``, then what the holder of the fitted estimator keeps
        from the clients (the centres, each row's cluster, the working units).

        A centralized fit is a federation of one client: its secure sums add
        no mask (nobody to hide from), and it keeps no message count
        (``communication_`` is empty) and no keys for a later protocol.
        """
        centralized = self.clients_ is None
        transport = simulated_federation(
            X, client_rows, draw_seed(rng), Channel(), self.n_jobs, labels=y
        )
        result, counts = self._run_federated(transport, X.shape[1], rng, y is not None)
        progress(
            f"clustered into {result.clustering.medoids.size} clusters "
            f"({result.clustering.n_iter} Lloyd rounds), scored, selected "
            f"{self.sample_indices_.shape[0]:,} rows ({self.sampling})"
        )
        # What the holder takes from the clients (client 0's copy of what
        # they all hold alike, and each one's rows' clusters).
        units = _Units(int(transport.kept("row_exponent")[0][0]), int(self.z))
        with_labels = result.holder is not None
        holder = result.holder
        if with_labels and self.holder_constant != "auto":  # the user's units
            holder = holder_in_working_units(
                np.full(holder.shape[0], float(self.holder_constant)), units.z, units.x
            )
        self._units = units
        self._holder_scaled, self._loss_scaled = holder, result.medoid_loss
        self.scores_ = units.unscale_scores(self.scores_, with_labels)
        self.cluster_centers_ = units.unscale(
            holder_centres(transport, X.shape[1]), units.x
        )
        self.labels_ = transport.gather(
            dict(enumerate(transport.kept("assign_labels")))
        ).astype(np.int64)
        self.holder_constants_ = (
            units.unscale(holder, -units.z * units.x) if with_labels else None
        )
        proxy_coef = transport.kept("model_coef")[0] if with_labels else None
        self.proxy_coef_ = (
            None if proxy_coef is None else units.unscale(proxy_coef, -units.x)
        )
        self.proxy_intercept_ = (
            0.0
            if proxy_coef is None
            else float(transport.kept("model_intercept")[0][0])
        )
        if centralized:
            self.communication_ = {}
            return None
        return FederatedFit(transport, counts)

    def _fit_federated(self, transport, n_features, rng):
        """The server's side of a federated fit, over any transport: the
        clients read labels (their labeling functions) when the scores need
        them. Returns each client's number of rows."""
        return self._run_federated(transport, n_features, rng, self._reads_labels())[1]

    def _run_federated(self, transport, n_features, rng, reads_labels):
        """The server's side of a federated fit, over any transport.

        Row counts and the common scale, the clustering, the scores and the
        selection, sent to the clients. Sets the attributes the server
        knows: the selection, the medoids and probes (bought rows), the
        scores in the clients' working units (``X / 2**x``, ``x`` known to
        the clients only), ``communication_``. Returns the protocol's result
        and each client's number of rows.
        """
        counts = sensitivity_counts(transport)
        n_samples = int(sum(counts.values()))
        n_selected, k = self._sizes(n_samples)
        clustering = federated_clustering(
            transport,
            counts,
            n_clusters=k,
            z=int(self.z),
            n_sub=self._n_sub(k, n_samples),
            max_iter=self.max_iter,
            random_state=rng,
        )
        result = federated_scores(
            transport,
            counts,
            clustering,
            n_features=n_features,
            z=int(self.z),
            holder_constant=self.holder_constant,
            with_labels=bool(reads_labels) and self._reads_labels(),
            fit_intercept=self.fit_intercept,
            max_probes=n_selected - k,
            random_state=rng,
        )
        labels_bought, forced, scores = self._bought(result, n_selected)
        if n_selected == n_samples:
            selection = census(n_samples)
        else:
            selection = self._draw_beyond_forced(
                transport,
                counts,
                scores,
                medoids=result.clustering.medoids,
                forced=forced,
                bought=labels_bought,
                n_selected=n_selected,
                rng=rng,
            )
        send_selection(transport, selection.indices, selection.weights, counts)
        transport.flush()
        self._set_selection(selection, result)
        self.scores_ = scores
        self.communication_ = transport.channel.summary()
        return result, counts

    def _reads_labels(self):
        return self.holder_constant != np.inf

    def _n_clusters(self, n_selected):
        if isinstance(self.n_clusters, Integral):
            return int(self.n_clusters)
        return max(1, int(round(self.n_clusters * n_selected)))

    def _draw_beyond_forced(
        self, transport, counts, scores, *, medoids, forced, bought, n_selected, rng
    ):
        """Forced rows (weight 1), then the rest of the budget by score.

        A row that no draw can reach (probability 0: on its centre, with no
        uniform share) is represented by its cluster's medoid, which is then
        bought and weighs 1 plus the rows it stands for; the clients of
        ``transport`` (with ``counts`` rows each) count those rows per
        cluster, since only they know their rows' clusters. The pivotal draw
        runs over the clients, after they learn which of their rows score 0
        (``bought``) and which may not be drawn. Raises a ValueError when too
        few rows can be drawn to fill the budget.
        """
        n_samples = scores.shape[0]
        eligible = np.ones(n_samples, dtype=bool)
        eligible[forced] = False
        reachable_mass = self.uniform_mix > 0 or scores[eligible].sum() > 0
        p = (
            mixed_probabilities(scores, self.uniform_mix, eligible)
            if reachable_mass
            else np.zeros(n_samples)
        )
        unreachable = eligible & (p == 0)
        stand_in = np.zeros(medoids.size, dtype=np.int64)
        if unreachable.any():  # their medoids stand in for them
            in_cluster = federated_stand_in_counts(
                transport, counts, np.flatnonzero(unreachable), medoids.size
            )
            # A medoid that is unreachable itself is bought, not stood in for.
            stand_in = in_cluster - unreachable[medoids]
            forced = np.union1d(forced, medoids[in_cluster > 0])
            eligible[forced] = False
            unreachable &= eligible
        weight_of = dict.fromkeys(forced.tolist(), 1.0)
        for j, m in enumerate(medoids):
            if int(m) in weight_of:
                weight_of[int(m)] += stand_in[j]
        remaining = n_selected - forced.size
        n_draws = 0
        if remaining > 0:
            reachable = eligible & ~unreachable
            if remaining > reachable.sum():
                raise ValueError(
                    too_few_informative(forced.size + reachable.sum(), n_selected)
                )
            if self.sampling == "pivotal":
                send_eligible(transport, counts, bought, np.flatnonzero(~reachable))
            drawn = select_rows(
                None,
                scores,
                remaining,
                rng,
                sampling=self.sampling,
                uniform_mix=self.uniform_mix,
                weighting=self.weighting,
                eligible=reachable,
                federation=(transport, counts),
            )
            weight_of.update(zip(drawn.indices.tolist(), drawn.weights, strict=True))
            n_draws = drawn.n_draws
        indices = np.array(sorted(weight_of), dtype=np.int64)
        weights = np.array([weight_of[i] for i in indices])
        return Selection(
            indices, weights, np.ones(indices.size, dtype=np.int64), n_draws
        )

    def transform(self, X):
        """Sensitivity score of each row of ``X`` against the fitted clusters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples, 1)
            ``d^z`` to the nearest centre, or ``Lambda_j d^z + loss_j`` when
            fitted with labels.
        """
        check_is_fitted(self)
        X = validate_rows(self, X, reset=False)
        units = self._units
        labels, distances = assign(
            units.scale_X(X), units.scale_X(self.cluster_centers_)
        )
        scores = distances**self.z
        with_labels = self._holder_scaled is not None
        if with_labels:
            scores = self._holder_scaled[labels] * scores + self._loss_scaled[labels]
        return units.unscale_scores(scores, with_labels)[:, None]


def too_few_informative(n_informative, n_selected):
    """The error of a budget above the rows that carry information."""
    return (
        f"Only {n_informative} distinct rows carry information (every other "
        "row coincides with its cluster's centre, e.g. duplicates or a "
        f"constant X): the budget of {n_selected} rows cannot be met. Lower "
        f"the budget to {n_informative}, set uniform_mix > 0, or select every "
        "row (budget=1.0)."
    )


class _Units(NamedTuple):
    """The power of two the sampler works in: ``X / 2**x``, ``z`` the exponent.

    ``x`` puts the largest ``|X|`` entry in ``[0.5, 1)``, so distances, the
    cutoff of rows on their centre and Lloyd's stopping tolerance are
    relative to the data and nothing under- or overflows, whatever the
    scale of the features (multiplying by a power of two is exact: at
    ordinary scales the arithmetic is unchanged). Distance-only scores are
    ``d^z`` in units of ``2**(z x)``; with labels, ``Lambda d^z + loss`` is in
    the labels' own units (a user's ``Lambda`` is converted to the scaled
    space by ``holder_in_working_units``, as the clients convert it). The
    clients agree on ``x`` by a secure maximum of their own exponents
    (``sensitivity_counts``; a single client takes its own).
    """

    x: int
    z: int

    def scale_X(self, X):
        return X if self.x == 0 else scale_rows(X, -self.x)

    @staticmethod
    def unscale(values, exponent):
        """``values * 2**exponent`` (infinite where that exceeds float64)."""
        with np.errstate(over="ignore", under="ignore"):
            return np.ldexp(values, exponent)

    def unscale_scores(self, scores, with_labels):
        return scores if with_labels else self.unscale(scores, self.z * self.x)
