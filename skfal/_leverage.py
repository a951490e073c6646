"""Leverage score sampling, centralized or over federated clients."""

from numbers import Integral, Real

from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skfal._balance import local_pivotal_select
from skfal._base import DocLinkMixin, FederatedFit, SamplerMixin, select_rows
from skfal._compat import Interval, StrOptions, fit_context
from skfal._federated import (
    Channel,
    check_fedsvd_clients,
    fedsvd_leverage,
    qr_leverage,
    send_selection,
    simulated_federation,
)
from skfal._linalg import (
    leverage_scores,
    leverage_scores_and_codes,
    squared_row_norms,
)
from skfal._progress import Progress, describe
from skfal._rows import kernel_threads
from skfal._sampling import (
    WEIGHTINGS,
    draw_seed,
    inclusion_from_terms,
    inclusion_terms,
    pivotal_in_parties,
    resolve_budget,
    stable_order,
    tree_depth,
)
from skfal._shared_params import (
    BUDGET_CONSTRAINT,
    SAMPLING_CONSTRAINT,
    UNIFORM_MIX_CONSTRAINT,
    fill_doc,
)
from skfal._validation import check_groups, refuse_distributed_groups, validate_rows


@fill_doc
class LeverageScoreSampler(DocLinkMixin, SamplerMixin, BaseEstimator):
    """Select rows to label by statistical leverage score sampling.

    The leverage score of row ``x_j`` of ``X`` is ``x_j^T (X^T X)^+ x_j``: how
    much that row alone determines a least-squares fit. Rows are drawn i.i.d.
    with probability proportional to their scores until ``budget`` distinct
    rows have been drawn (FALE, Algorithm 1), and each selected row gets an
    importance weight so that a weighted least-squares fit on the selection
    stands in for the fit on all rows.

    With ``groups`` (the client of each row) the *global* scores are computed
    by a federated protocol in which no client reveals a raw row, and they
    equal the centralized scores.

    Parameters
    ----------
    {budget}
    protocol : {"qr", "fedsvd"}, default="qr"
        Federated protocol, used only when ``groups`` is given.
        ``"fedsvd"``: clients upload their rows masked as ``P_i X_i Q`` and the
        server takes the SVD of the stacked masked matrix (FALE's protocol);
        a client with no more rows than columns is refused (its upload would
        give its rows away to whoever learns ``Q``).
        ``"qr"``: clients upload only the ``d x d`` R factor of ``X_i Q``, by
        secure aggregation; same scores, ``O(d^2)`` instead of ``O(n_i d)``
        upload per client.
    {sampling}
    {uniform_mix}
    balance : {"tree", "local"}, default="tree"
        How ``sampling="pivotal"`` spreads the sample. ``"tree"``: rows
        compete with their neighbours in the order of a k-d tree on the
        principal axes. ``"local"``: after the same tree pools runs of
        neighbours, each open row competes with its nearest open row in the
        whitened space of ``whitener_`` (the local pivotal method of
        Grafström, Lundström and Schelin, 2012, within buckets of 64 open
        rows; ``skfal/_balance.py``); the same inclusion probabilities, a
        better spread sample: it saved more labels than ``"tree"`` on the
        benchmark's eight tables (see the user guide). Centralized only
        for now (not with ``groups`` or a Dask array).
    weighting : {"hansen-hurwitz", "des-raj"}, default="hansen-hurwitz"
        Importance weights of ``sampling="iid"``. ``"hansen-hurwitz"``:
        ``multiplicity_i / (n_draws_ * p_i)``, the weights of FALE's
        sampling matrix.
        ``"des-raj"``: Des Raj's ordered weights, exactly unbiased under the
        "draw until ``budget`` distinct rows" rule (see Notes).
    fit_intercept : bool, default=False
        Score the rows of ``[X, 1]``, the design matrix of a linear model
        with an intercept, instead of ``X``. For centered ``X`` this adds
        ``1 / n_samples`` to every score; for uncentered ``X`` it can change
        the scores a lot. :class:`FederatedActiveRegressor` sets it to its own
        ``fit_intercept``.
    alpha : float, default=0.0
        Ridge leverage scores ``x^T (X^T X + alpha D)^{-1} x`` for
        ``alpha > 0``, ``D`` penalising the features and not the intercept:
        the scores that matter for a ridge fit with that ``alpha`` (they sum
        to its effective degrees of freedom, below the rank).
        :class:`FederatedActiveRegressor` sets it to its own ``alpha``.
    mask_block_size : int, default=100
        Rows per random orthogonal block of the clients' row masks ``P_i``
        (``protocol="fedsvd"``). Larger blocks mix more rows together at a
        cost of ``O(block)`` flops per masked number.
    n_jobs : int, default=None
        Number of clients processed in parallel (joblib threads); ``None``
        means 1 unless in a :func:`joblib.parallel_backend` context, ``-1``
        all processors.
    random_state : int, RandomState instance or None, default=None
        Controls the draws and the federated masks. Pass an int for
        reproducible output across calls.
    {verbose}

    Attributes
    ----------
    scores_ : ndarray or dask.array.Array of shape (n_samples,)
        Leverage score of every row; they sum to the rank of ``X`` (of
        ``[X, 1]`` with ``fit_intercept``). For a Dask ``X``, a Dask array
        whose chunks stay on the workers that computed them (call
        ``.compute()`` to bring the scores to the client).
    sample_indices_ : ndarray of shape (n_selected,)
        Sorted distinct indices of the selected rows.
    sample_weight_ : ndarray of shape (n_selected,)
        Importance weight of each selected row.
    n_draws_ : int
        Number of i.i.d. draws it took to reach ``n_selected`` distinct rows;
        0 when every row is selected (no draw, weight 1 each).
    rank_ : int
        Numerical rank of ``X`` (of the ridge-augmented ``X`` with
        ``alpha > 0``: full).
    whitener_ : ndarray of shape (`n_features_in_` + `fit_intercept`, `rank_`)
        Map ``W`` with ``X @ W`` an orthonormal basis of the column space of
        ``X``; ``W @ W.T`` is ``(X^T X)^+`` (``(X^T X + alpha D)^{-1}`` with
        ``alpha > 0``).
    clients_ : ndarray of shape (n_clients,) or None
        Sorted client labels when fitted with ``groups``, else ``None``.
    communication_ : dict
        Bytes sent per phase of the federated protocol,
        ``{phase: {"up": bytes, "down": bytes}}``; empty when centralized.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``, when ``X`` has string
        column names.

    See Also
    --------
    sklearn.linear_model.LinearRegression : Fit on the selected rows with
        ``sample_weight=sampler.sample_weight_``.

    Notes
    -----
    Scores are computed without forming ``X^T X``: a tall-skinny QR of ``X``
    in row chunks gives ``R``, the SVD of ``R`` gives ``W``, and the scores
    are ``||x_j W||^2``. This is accurate to about ``cond(X) * 1e-16``
    relative and handles rank-deficient ``X`` (rank decided as in
    :func:`numpy.linalg.matrix_rank`).

    Sampling with replacement until ``budget`` rows are distinct is simulated
    exactly in ``O(n + budget log budget)`` time, however skewed the
    probabilities. The Hansen-Hurwitz weights are unbiased for a fixed number
    of draws; stopping at ``budget`` distinct rows makes the number of draws
    random and leaves a small bias that shrinks as the budget grows. Des Raj's
    weights ``((1 - P_{r-1}) / p_r + budget - r) / budget`` for the row first
    drawn in position ``r`` (``P_{r-1}`` the probability of the rows before
    it) are exactly unbiased: ``E[sum_i w_i f(x_i)] = sum_j f(x_j)`` for any
    ``f``.

    The server learns the scores of all rows; with ``"qr"`` the global
    ``Q^T X^T X Q`` (up to unknown column scales) and no client's part, with
    ``"fedsvd"`` each client's ``Q^T X_i^T X_i Q``; it never sees a raw row,
    nor ``Q`` (see the threat model in the documentation).

    References
    ----------
    .. [1] Y.-P. Tang, C. Ren, X. Tang, S.-J. Huang, L. Cui and H. Yu,
       "Efficient Heterogeneity-Aware Federated Active Data Selection",
       ICML 2025.
    .. [2] D. Chai et al., "Practical Lossless Federated Singular Vector
       Decomposition over Billion-Scale Data", KDD 2022.
    .. [3] M. W. Mahoney, "Randomized Algorithms for Matrices and Data",
       Foundations and Trends in Machine Learning, 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from skfal import LeverageScoreSampler
    >>> rng = np.random.RandomState(0)
    >>> X = rng.standard_normal((200, 3))
    >>> X[0] *= 50  # one row far out: high leverage
    >>> sampler = LeverageScoreSampler(budget=10, random_state=0).fit(X)
    >>> sampler.sample_indices_.shape
    (10,)
    >>> round(float(sampler.scores_.sum()), 6)  # the rank of X
    3.0
    >>> bool(0 in sampler.sample_indices_)
    True

    The same global scores when the rows live at three clients:

    >>> groups = rng.randint(3, size=200)
    >>> fed = LeverageScoreSampler(budget=10, random_state=0).fit(X, groups=groups)
    >>> bool(np.allclose(fed.scores_, sampler.scores_))
    True
    """

    _output_name = "leverage_score"

    _parameter_constraints: dict = {
        "budget": BUDGET_CONSTRAINT,
        "protocol": [StrOptions({"qr", "fedsvd"})],
        "sampling": SAMPLING_CONSTRAINT,
        "uniform_mix": UNIFORM_MIX_CONSTRAINT,
        "balance": [StrOptions({"tree", "local"})],
        "weighting": [StrOptions(set(WEIGHTINGS))],
        "fit_intercept": ["boolean"],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "mask_block_size": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        budget=0.1,
        *,
        protocol="qr",
        sampling="pivotal",
        uniform_mix=0.5,
        balance="tree",
        weighting="hansen-hurwitz",
        fit_intercept=False,
        alpha=0.0,
        mask_block_size=100,
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.budget = budget
        self.protocol = protocol
        self.sampling = sampling
        self.uniform_mix = uniform_mix
        self.balance = balance
        self.weighting = weighting
        self.fit_intercept = fit_intercept
        self.alpha = alpha
        self.mask_block_size = mask_block_size
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, groups=None):
        """Compute the leverage scores and draw the selection.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Unlabeled rows.
        y : None
            Ignored; present for API consistency.
        groups : array-like of shape (n_samples,), default=None
            Client label of each row (ints or strings, rows in any order).
            When given, the scores are computed by the federated ``protocol``.

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
        # Without groups the first pass is the Gram kernel, which refuses
        # NaN and infinity itself: no separate scan of a dense X.
        X = validate_rows(self, X, finite_by_gram=groups is None)
        refuse_distributed_groups(X, groups)
        local = self.balance == "local"
        if local and (groups is not None or getattr(X, "distributed", False)):
            self._refuse_local_balance("groups or a Dask array")
        if local and self.sampling != "pivotal":
            self._refuse_local_balance(f"sampling={self.sampling!r}")
        progress(describe(X))
        X = progress.watch(X)
        n_selected = resolve_budget(self.budget, X.shape[0])
        rng = check_random_state(self.random_state)
        # Drawn in both modes, so the selection draws below see the same
        # stream: federated and centralized fits with one random_state select
        # the same rows. Federated, it stands in for the trusted dealer that
        # hands every client the federation's seed (skfal.flower).
        federation_seed = draw_seed(rng)

        if groups is None:
            self.clients_ = None
            codes = None
            on_workers = getattr(X, "distributed", False)
            if on_workers:  # a Dask array: per-row state stays on its workers
                from skfal._dask import leverage_selection

                scores, self.whitener_, selection = leverage_selection(
                    X,
                    n_selected,
                    rng,
                    intercept=self.fit_intercept,
                    alpha=self.alpha,
                    sampling=self.sampling,
                    uniform_mix=self.uniform_mix,
                    weighting=self.weighting,
                )
            elif self.sampling == "pivotal" and n_selected < X.shape[0]:
                # The rows' spatial tree from the same pass as the scores.
                scores, self.whitener_, codes, n_bits = leverage_scores_and_codes(
                    X,
                    self.fit_intercept,
                    self.alpha,
                    max_depth=tree_depth(X.shape[0], n_selected),
                )
            else:
                scores, self.whitener_ = leverage_scores(
                    X, self.fit_intercept, self.alpha
                )
            progress("leverage scores")
            if codes is not None and local:
                terms = inclusion_terms(scores, n_selected, self.uniform_mix)
                selection = local_pivotal_select(
                    X,
                    inclusion_from_terms(scores, terms),
                    self.whitener_,
                    self.fit_intercept,
                    stable_order(codes, n_bits, overwrite=True),
                    rng,
                )
                del codes
            elif codes is not None:  # row ranges as parties, on the kernel threads
                selection = pivotal_in_parties(
                    scores,
                    codes,
                    n_bits,
                    n_selected,
                    rng,
                    uniform_mix=self.uniform_mix,
                    n_threads=kernel_threads(X),
                )
                del codes
            elif not on_workers:
                selection = select_rows(
                    X,
                    scores,
                    n_selected,
                    rng,
                    sampling=self.sampling,
                    uniform_mix=self.uniform_mix,
                    weighting=self.weighting,
                )
            self.scores_ = scores
            self.sample_indices_ = selection.indices
            self.sample_weight_ = selection.weights
            self.n_draws_ = selection.n_draws
            self.communication_ = {}
            progress(f"selected {selection.indices.shape[0]:,} rows ({self.sampling})")
            federation = None
        else:
            self.clients_, client_rows = check_groups(groups, X.shape[0])
            if self.protocol == "fedsvd":
                check_fedsvd_clients(client_rows, X.shape[1] + self.fit_intercept)
            transport = simulated_federation(
                X, client_rows, federation_seed, Channel(), self.n_jobs
            )
            counts = self._fit_federated(transport, X.shape[1], rng)
            progress(f"leverage scores and selection over {len(client_rows)} clients")
            # Each client kept its rows to label, their weights and its map
            # W; the holder keeps client 0's W as whitener_ (the same map).
            self.whitener_ = transport.kept("whitener")[0]
            federation = FederatedFit(transport, counts)
        self.rank_ = self.whitener_.shape[1]
        return federation

    def _refuse_local_balance(self, where):
        raise ValueError(
            "balance='local' needs sampling='pivotal' and runs centralized "
            f"only for now; got {where}. Pass balance='tree' (the default) there."
        )

    def _fit_federated(self, transport, n_features, rng):
        """The server's side of a federated fit, over any transport.

        Runs the leverage protocol, selects, and sends each client its rows
        to label and their weights; sets the attributes the server knows
        (not ``whitener_``, which only the clients hold). Returns each
        client's number of rows.
        """
        if self.balance == "local":  # over any transport (skfal.flower too)
            self._refuse_local_balance("a federated fit")
        common = dict(
            n_features=n_features, intercept=self.fit_intercept, alpha=self.alpha
        )
        if self.protocol == "fedsvd":
            uploaded = fedsvd_leverage(
                transport, block_size=self.mask_block_size, **common
            )
        else:
            uploaded = qr_leverage(transport, **common)
        counts = {c: uploaded[c].shape[0] for c in transport.clients}
        scores = transport.gather(uploaded)
        selection = select_rows(
            None,
            scores,
            resolve_budget(self.budget, scores.shape[0]),
            rng,
            sampling=self.sampling,
            uniform_mix=self.uniform_mix,
            weighting=self.weighting,
            federation=(transport, counts),
        )
        send_selection(transport, selection.indices, selection.weights, counts)
        transport.flush()
        self.scores_ = scores
        self.sample_indices_ = selection.indices
        self.sample_weight_ = selection.weights
        self.n_draws_ = selection.n_draws
        self.communication_ = transport.channel.summary()
        return counts

    def transform(self, X):
        """Leverage of each row of ``X`` with respect to the fitted column space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples, 1)
            ``x^T (X_fit^T X_fit)^+ x`` for each row ``x``; on the training
            rows this equals ``scores_``.
        """
        check_is_fitted(self)
        if not hasattr(self, "whitener_"):
            raise AttributeError(
                "This sampler was fitted at a Flower server (skfal.flower.fit): "
                "the map W that scores new rows stays with the clients, so "
                "transform is available only where W is (each ClientApp keeps "
                "its own); the fitted selection is in sample_indices_."
            )
        X = validate_rows(self, X, reset=False)
        return squared_row_norms(X, self.whitener_, self.fit_intercept)[:, None]
