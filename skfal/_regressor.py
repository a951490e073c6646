"""Federated active regression: FALE and FALE-local."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skfal._adaptive import (
    combined_weights,
    held_out_residuals,
    pilot_size,
    residual_scale,
    scale_models,
    with_features,
)
from skfal._base import DocLinkMixin, select_rows
from skfal._compat import HasMethods, Interval, StrOptions, fit_context, num_samples
from skfal._federated import (
    Channel,
    global_training,
    local_training,
    merge_summaries,
    send_selection,
    simulated_federation,
)
from skfal._federated._regression import adaptive_second_round
from skfal._leverage import LeverageScoreSampler
from skfal._linalg import weighted_least_squares
from skfal._progress import Progress, describe
from skfal._rows import dense_rows, matvec
from skfal._sampling import draw_seed, resolve_budget, tree_depth
from skfal._shared_params import BUDGET_CONSTRAINT, fill_doc
from skfal._validation import (
    MissingLabelsError,
    check_groups,
    check_labels_at,
    check_partial_target,
    refuse_distributed_groups,
    validate_rows,
)


@fill_doc
class FederatedActiveRegressor(DocLinkMixin, RegressorMixin, BaseEstimator):
    """Linear regression from a few labels chosen across clients (FALE).

    In one pass, a sampler (by default leverage score sampling, computed
    across clients without revealing raw rows) selects ``budget`` rows; only
    their labels are read; a least-squares model is learned from them with
    their importance weights, either from securely aggregated, rotated
    uploads (``training="global"``, FALE) or by averaging the clients' own
    models (``training="local"``, FALE-local).

    Parameters
    ----------
    {budget}
        It is the only budget: it replaces the sampler's own ``budget``.
    sampler : estimator or None, default=None
        An unfitted skfal sampler (``LeverageScoreSampler``,
        ``SensitivitySampler``, ``UniformSampler``); ``None`` means
        ``LeverageScoreSampler()``. It gets ``y`` (a sampler that reads
        labels reads them only at rows it selects). It
        is cloned, never modified; its ``budget`` is set to ``budget``, its
        ``fit_intercept`` (if it has one) to ``fit_intercept`` so that rows
        are scored for the model being fitted, and its ``random_state`` to
        ``random_state`` when that is not ``None``.
    training : {"global", "local"}, default="global"
        ``"global"``: the weighted least squares over all clients' selected
        rows, solved by the clients from an R factor the server computes from
        securely aggregated, rotated uploads (FALE, Algorithm 1, with secure
        aggregation); the server sees no row, label, client contribution or
        model. ``"local"``: each client with at least two selected rows fits a
        weighted least squares on them, and the models are averaged weighted
        by the clients' numbers of labeled rows by secure aggregation
        (FALE-local); clients with one labeled row sit out with a warning.
    design : {"one-shot", "adaptive"}, default="one-shot"
        ``"one-shot"``: the sampler selects all ``budget`` rows at once.
        ``"adaptive"`` (with a :class:`LeverageScoreSampler`; centralized
        or in-process federated, not yet over :mod:`skfal.flower`): a pilot
        round of ``pilot_share`` of the budget by the sampler, a model of
        the residual scale learned from the pilot's labels, then the rest
        by pivotal sampling on
        leverage times predicted residual scale, mixed with uniform, among
        the rows the pilot left (see Notes). :meth:`query` returns the
        pilot's rows first, then the second round's.
    pilot_share : float, default=0.3
        Share of the budget bought in the pilot round of
        ``design="adaptive"``. When it would leave fewer than 10 residual
        degrees of freedom, the design stays one-shot.
    alpha : float, default=0.0
        Ridge penalty on the coefficients (never on the intercept). With
        ``alpha=0`` an underdetermined problem (fewer labels than features,
        overall or at one client in ``"local"`` training) gets its
        minimum-norm solution.
    fit_intercept : bool, default=True
        Whether to fit an intercept.
    n_jobs : int, default=None
        Clients processed in parallel (joblib threads); also given to the
        sampler when not ``None``.
    random_state : int, RandomState instance or None, default=None
        Controls the selection (through the sampler) and the masks.
    verbose : int, default=0
        Progress messages on standard output: 0 is silent, 1 prints a line
        per phase (selection, training) with the seconds elapsed, 2 or more
        also a line per block of rows read. Also given to the sampler when
        not 0.

    Attributes
    ----------
    coef_ : ndarray of shape (`n_features_in_`,)
        Coefficients of the linear model.
    intercept_ : float
        Intercept (``0.0`` when ``fit_intercept=False``).
    sampler_ : estimator
        The fitted clone of ``sampler``.
    sample_indices_ : ndarray of shape (`n_queries_`,)
        Rows whose labels were read.
    sample_weight_ : ndarray of shape (`n_queries_`,)
        Their importance weights.
    n_queries_ : int
        Number of distinct labels read.
    n_pilot_ : int
        Rows of the pilot round (0 for a one-shot design).
    scale_correlation_ : float
        Leave-one-out (Pearson) correlation of the residual-scale model with
        the pilot's held-out residual sizes (``NaN`` without pilot).
    scale_used_ : bool
        Whether the second round used the residual-scale model (else it
        drew on leverage alone, like the pilot).
    communication_ : dict
        Bytes per phase, ``{phase: {"up": bytes, "down": bytes}}``, of the
        selection and the training; empty when fitted without ``groups``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``, when ``X`` has string column
        names.

    See Also
    --------
    LeverageScoreSampler : The default selection.
    UniformSampler : Uniform random selection, the baseline.
    non_iid_split : Client labels for experiments, as in the paper.

    Notes
    -----
    ``y`` is read only at the selected rows, so it may hold ``NaN`` elsewhere:
    with an int ``random_state``, :meth:`query` returns the rows to label
    before any label exists; label them, then call ``fit``.

    With ``training="global"`` the fit equals the centralized
    importance-weighted least squares on the same selection, at any feature
    scale: the rotation is orthogonal, the stack's Gram sum exact, the
    secure sums exact in fixed point, and the clients divide their columns
    by common powers of two before rotating them. The intercept is handled
    by centering on the weighted mean of the selected rows (a secure sum),
    so the ridge term leaves it alone. In a federation of several clients,
    at least two must hold selected rows (else the sum would be one
    client's upload).

    ``design="adaptive"`` follows the A- and L-optimal subsampling of [2]_:
    the variance of an importance-weighted least squares is smallest when
    rows are drawn in proportion to their leverage times the size of their
    residual. The pilot's weighted least squares gives each pilot row's
    leave-one-out residual; the residual scale is modelled by least squares
    of their sizes on the fitted value and the root leverage (three
    parameters), or on the features when the pilot has ten rows per
    feature, whichever ranks the held-out sizes best in leave-one-out
    cross validation, and it is used only when that correlation is positive
    at the one-sided level 0.1 (Bonferroni over the candidates); otherwise
    the second round draws on leverage alone. The weights combine the
    rounds with fixed shares: pilot rows get ``lam w1 + 1 - lam``, second
    round rows ``(1 - lam) / pi2`` (``lam`` the pilot's share, ``w1`` its
    weights, ``pi2`` the second round's inclusion probabilities among the
    rows the pilot left), so every weighted total of the normal equations
    is unbiased given the pilot, whatever the pilot's labels made of the
    second round.

    Federated (``groups`` given), the pilot is drawn by the federated
    leverage protocol and its model by ``"global"`` training; each client
    computes its pilot rows' held-out residuals from the global R factor it
    holds after that training; the scale model's normal equations over the
    whole pilot are a secure sum per candidate, each client computes its
    own pilot rows' leave-one-out predictions in closed form from them,
    and the check is a secure sum of those. Every client then
    makes the same choice, scores its own rows, and the second round is
    pivotal sampling whose scores never leave the clients: the server gets
    the total score by a secure sum whose units only the clients can read,
    and the water-filling scale of ``pi = min(1, c p)`` from masked sums of
    capped counts and uncapped mass at candidate scales; the clients
    compute their ``pi`` and their combined weights themselves, and upload,
    as in the one-shot design, only the rows their tournaments decided in
    and their open rows' probabilities. ``sample_weight_`` and
    ``scale_correlation_`` are read from the simulated clients (a
    deployment's server would not know them). The selection is the
    centralized one's law: the same sums, added in another order.

    References
    ----------
    .. [1] Y.-P. Tang, C. Ren, X. Tang, S.-J. Huang, L. Cui and H. Yu,
       "Efficient Heterogeneity-Aware Federated Active Data Selection",
       ICML 2025.
    .. [2] H. Wang, R. Zhu and P. Ma, "Optimal Subsampling for Large Sample
       Logistic Regression", JASA 113(522), 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from skfal import FederatedActiveRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.standard_normal((1000, 3))
    >>> y = X @ [1.0, -2.0, 0.5] + 3.0 + 0.1 * rng.standard_normal(1000)
    >>> groups = rng.randint(5, size=1000)
    >>> reg = FederatedActiveRegressor(budget=40, random_state=0)
    >>> reg.fit(X, y, groups=groups).n_queries_
    40
    >>> np.round(reg.coef_, 1), round(reg.intercept_, 1)
    (array([ 1. , -2. ,  0.5]), 3.0)
    """

    _parameter_constraints: dict = {
        "budget": BUDGET_CONSTRAINT,
        "sampler": [HasMethods(["fit", "get_params", "set_params"]), None],
        "training": [StrOptions({"global", "local"})],
        "design": [StrOptions({"one-shot", "adaptive"})],
        "pilot_share": [Interval(Real, 0, 1, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        budget=0.1,
        *,
        sampler=None,
        training="global",
        design="one-shot",
        pilot_share=0.3,
        alpha=0.0,
        fit_intercept=True,
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.budget = budget
        self.sampler = sampler
        self.training = training
        self.design = design
        self.pilot_share = pilot_share
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    @fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, groups=None):
        """Select rows, read their labels, and learn the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            All rows, labeled or not.
        y : array-like of shape (n_samples,)
            Targets. Only the selected rows' entries are read; the others may
            be ``NaN``.
        groups : array-like of shape (n_samples,), default=None
            Client label of each row (ints or strings, rows in any order).
            ``None`` means one client: centralized active regression.

        Returns
        -------
        self : object
            Fitted regressor.
        """
        progress = Progress(self, self.verbose)
        X = validate_rows(self, X)
        refuse_distributed_groups(X, groups)
        progress(describe(X))
        y = check_partial_target(y, X.shape[0], type(self).__name__)
        rng = check_random_state(self.random_state)

        self.sampler_ = self._make_sampler(rng)
        self._check_design(self.sampler_, groups)
        self._fit(X, y, groups, rng, progress)
        return self

    def _check_design(self, sampler, groups):
        """The adaptive design's requirements, with the fix in the message."""
        if self.design != "adaptive":
            return
        if not isinstance(sampler, LeverageScoreSampler):
            raise ValueError(
                "design='adaptive' draws its second round on leverage scores, "
                f"which {type(sampler).__name__} does not compute: use "
                "sampler=None or a LeverageScoreSampler."
            )

    def _fit(self, X, y, groups, rng, progress):
        self.n_pilot_, self.scale_correlation_, self.scale_used_ = 0, np.nan, False
        federation, summary = None, None
        if self.design == "adaptive" and groups is not None:
            federation, indices, weights, pilot = self._adaptive_federated(
                self.sampler_, X, y, groups, rng
            )
            self.n_pilot_, self.scale_correlation_, self.scale_used_ = pilot
            summary = federation[0].channel.summary()  # the rounds before training
        elif self.design == "adaptive":
            indices, weights, pilot = self._adaptive_selection(self.sampler_, X, y, rng)
            self.n_pilot_, self.scale_correlation_, self.scale_used_ = pilot
        else:
            # The sampler's in-process federation (its clients keep their
            # rows to label, their weights and the fit's keys), when it ran
            # over one.
            fit_in_federation = getattr(self.sampler_, "_fit_in_federation", None)
            if fit_in_federation is not None:
                federation = fit_in_federation(X, y, groups)
            else:
                self.sampler_.fit(X, y, groups=groups)
            indices = self.sampler_.sample_indices_
            weights = self.sampler_.sample_weight_
        progress(f"{type(self.sampler_).__name__} selected {indices.shape[0]:,} rows")
        check_labels_at(
            y,
            indices,
            "selected rows",
            "Label every selected row: with an int random_state, "
            "query(X, y, groups=groups) lists the rows to label next.",
        )

        if groups is None:
            self.coef_, self.intercept_ = weighted_least_squares(
                dense_rows(X, indices),
                y[indices],
                weights,
                self.alpha,
                self.fit_intercept,
            )
            self.communication_ = {}
        else:
            _, client_rows = check_groups(groups, X.shape[0])
            transport, counts = self._federation(
                X, y, client_rows, indices, weights, rng, federation
            )
            self._train(transport, X.shape[1], indices, counts)
            if summary is None:
                summary = getattr(self.sampler_, "communication_", {})
            self.communication_ = merge_summaries(summary, transport.channel.summary())
        self._check_finite_model()
        progress(f"trained ({self.training if groups is not None else 'centralized'})")
        self.sample_indices_ = indices
        self.sample_weight_ = weights
        self.n_queries_ = int(indices.shape[0])

    def _adaptive_selection(self, sampler, X, y, rng):
        """The adaptive design's rows and weights, and ``(n_pilot,
        correlation, used)``: the pilot's size, the residual-scale model's
        leave-one-out correlation (``NaN`` without pilot) and whether
        the second round used the model.

        ``sampler`` (a :class:`LeverageScoreSampler`) draws the pilot; the
        second round is drawn among the rows it left (see
        :mod:`skfal._adaptive`). Raises :class:`MissingLabelsError` naming
        the pilot rows while their labels are missing.
        """
        n_selected = resolve_budget(self.budget, num_samples(X))
        n_columns = X.shape[1] + self.fit_intercept
        n_pilot = pilot_size(n_selected, n_columns, self.pilot_share)
        if n_pilot == 0:  # too few labels to learn where the noise is
            sampler.set_params(budget=n_selected).fit(X)
            return sampler.sample_indices_, sampler.sample_weight_, (0, np.nan, False)
        sampler.set_params(budget=n_pilot).fit(X)
        pilot, pilot_weights = sampler.sample_indices_, sampler.sample_weight_
        check_labels_at(
            y,
            pilot,
            "pilot rows",
            "Label the pilot rows first: with an int random_state, "
            "query(X, y) lists the rows to label next, round by round.",
        )
        X_pilot = dense_rows(X, pilot)
        coef, intercept = weighted_least_squares(
            X_pilot, y[pilot], pilot_weights, self.alpha, self.fit_intercept
        )
        sizes = np.abs(
            held_out_residuals(
                X_pilot, y[pilot], pilot_weights, coef, intercept, self.fit_intercept
            )
        )
        known = np.isfinite(sizes)
        fitted = matvec(X, coef) + intercept
        models = scale_models(
            X,
            fitted,
            sampler.scores_,
            pilot[known],
            with_features(n_pilot, X.shape[1]),
        )
        scale, correlation = residual_scale(models, sizes[known])
        scores, mix = sampler.scores_, sampler.uniform_mix
        if scale is not None:  # else the model does not predict: leverage only
            scores = scores * scale
        eligible = np.ones(num_samples(X), dtype=bool)
        eligible[pilot] = False
        second = select_rows(
            X,
            scores,
            n_selected - n_pilot,
            rng,
            sampling="pivotal",
            uniform_mix=mix,
            eligible=eligible,
        )
        pilot_weights, second_weights = combined_weights(
            pilot_weights, second.weights, n_pilot, n_selected
        )
        indices = np.concatenate([pilot, second.indices])
        order = np.argsort(indices, kind="stable")
        weights = np.concatenate([pilot_weights, second_weights])
        pilot_info = (n_pilot, correlation, scale is not None)
        return indices[order], weights[order], pilot_info

    def _adaptive_federated(self, sampler, X, y, groups, rng):
        """The adaptive design over the clients of ``groups``: the
        :class:`~skfal._base.FederatedFit` the training goes on over, the
        rows and weights, and ``(n_pilot, correlation, used)`` as
        :meth:`_adaptive_selection` returns them.

        The pilot by the sampler's federated protocol, the pilot model by
        global training, then ``adaptive_second_round``
        (:mod:`skfal._federated._regression`): the residual-scale model
        from secure sums, the second round by pivotal sampling whose scores
        stay at the clients. Each client
        keeps its rows' combined weights; the simulation's holder reads them
        (and the scale model's check) from the clients, as a deployment's
        server never does.
        """
        n_samples = num_samples(X)
        n_selected = resolve_budget(self.budget, n_samples)
        n_pilot = pilot_size(
            n_selected, X.shape[1] + self.fit_intercept, self.pilot_share
        )
        sampler.set_params(budget=n_pilot if n_pilot else n_selected)
        federation = sampler._fit_in_federation(X, None, groups)
        transport, counts = federation
        if n_pilot == 0:  # too few labels to learn where the noise is
            info = (0, np.nan, False)
            return federation, sampler.sample_indices_, sampler.sample_weight_, info
        pilot = sampler.sample_indices_
        check_labels_at(
            y,
            pilot,
            "pilot rows",
            "Label the pilot rows first: with an int random_state, "
            "query(X, y, groups=groups) lists the rows to label next, round by "
            "round.",
        )
        transport.hand_labels(y)
        local, _ = transport.split(pilot, counts)
        global_training(
            transport,
            {c: int(local[c].shape[0]) for c in transport.clients},
            n_features=X.shape[1],
            alpha=self.alpha,
            fit_intercept=self.fit_intercept,
        )
        indices = adaptive_second_round(
            transport,
            pilot,
            rng,
            n_selected=n_selected,
            features=with_features(n_pilot, X.shape[1]),
            fit_intercept=self.fit_intercept,
            uniform_mix=sampler.uniform_mix,
            max_depth=tree_depth(n_samples, n_selected - n_pilot),
            counts=counts,
        )
        local, positions = transport.split(indices, counts)
        weights = np.empty(indices.shape[0])
        for c, kept in zip(
            transport.clients, transport.kept("selection_weights"), strict=True
        ):
            weights[positions[c]] = kept
        rho, used = transport.kept("scale_choice")[0]
        return federation, indices, weights, (n_pilot, float(rho), bool(used))

    def _check_finite_model(self):
        """A clear error when the model overflows (none when it was kept)."""
        if self.coef_ is None:
            return
        if not (np.all(np.isfinite(self.coef_)) and np.isfinite(self.intercept_)):
            raise ValueError(
                "The fitted coefficients overflow float64 (labels much larger "
                "than the features, e.g. y near 1e300 with X near 1e-300): "
                "divide y by its scale, or multiply X by one."
            )

    def _federation(self, X, y, client_rows, indices, weights, rng, federation):
        """The in-process federation the training runs over, and each
        client's number of rows.

        The sampler's (a :class:`~skfal._base.FederatedFit`), when it ran
        over one: its clients kept their rows to label, their weights and
        the fit's keys. Otherwise a new one, whose clients are sent the
        sampler's selection (``sample_indices_``, ``sample_weight_``). Each
        client holds its own labels (its oracle); the training steps read
        them at its selected rows only.
        """
        if federation is not None:
            transport, counts = federation
            transport.channel = Channel()  # the sampler counted its own phases
            transport.hand_labels(y)
            return transport, counts
        transport = simulated_federation(
            X, client_rows, draw_seed(rng), Channel(), self.n_jobs, labels=y
        )
        counts = {c: rows.shape[0] for c, rows in enumerate(client_rows)}
        send_selection(transport, indices, weights, counts)
        transport.flush()
        return transport, counts

    def _train(self, transport, n_features, indices, counts):
        """The server's side of the training over ``transport``.

        Every client kept its selection; the server knows how many rows
        each one labels (it chose ``indices``; ``counts`` are the clients'
        numbers of rows). Sets ``coef_`` and ``intercept_`` from the model the
        clients release (``None`` when they keep it, see
        :func:`skfal.flower.client_app`).
        """
        local, _ = transport.split(indices, counts)
        labeled = {c: int(local[c].shape[0]) for c in transport.clients}
        common = dict(alpha=self.alpha, fit_intercept=self.fit_intercept)
        if self.training == "local":
            result = local_training(transport, labeled, **common)
        else:
            result = global_training(
                transport, labeled, n_features=n_features, **common
            )
        transport.flush()
        if result.model is None:
            self.coef_ = self.intercept_ = None
        else:
            self.coef_, self.intercept_ = result.model
        return result

    def _fit_federated(self, transport, n_features, rng):
        """The server's side of a federated fit, over any transport.

        The sampler's protocol and selection (its ``_fit_federated``), then
        the training over the same clients, who read their labels at the
        selected rows only. Sets the attributes the server knows. Returns
        each client's number of rows.
        """
        self.sampler_ = self._make_sampler(rng)
        if self.design == "adaptive":
            raise ValueError(
                "design='adaptive' runs in-process (fit with groups, or "
                "without) but not yet over a transport such as skfal.flower: "
                "its clients keep their second-round weights, which a Flower "
                "server does not collect. Use design='one-shot' on Flower."
            )
        if getattr(self.sampler_, "_fit_federated", None) is None:
            raise TypeError(
                f"{type(self.sampler_).__name__} does not run over a transport; "
                "use LeverageScoreSampler (the default), SensitivitySampler or "
                "UniformSampler."
            )
        sampler_rng = check_random_state(self.sampler_.random_state)
        draw_seed(sampler_rng)  # in-process, the dealer's federation seed
        self.sampler_.n_features_in_ = n_features
        self.sampler_.clients_ = np.asarray(transport.clients)
        counts = self.sampler_._fit_federated(transport, n_features, sampler_rng)
        indices = self.sampler_.sample_indices_
        self.masked_model_ = self._train(transport, n_features, indices, counts).masked
        self._check_finite_model()
        self.communication_ = transport.channel.summary()
        self.sample_indices_ = indices
        self.sample_weight_ = self.sampler_.sample_weight_
        self.n_queries_ = int(indices.shape[0])
        self.n_features_in_ = n_features
        return counts

    def query(self, X, y=None, groups=None):
        """The next rows to label, given the labels already in ``y``.

        Runs the same selection as ``fit`` (so, with an int ``random_state``,
        exactly the same rows) without fitting a model, and returns the rows
        it needs whose label is still missing. With a label-free sampler
        (the default) that is the whole selection at once; a sampler that
        reads labels (``SensitivitySampler`` with ``holder_constant``
        ``"auto"`` or a float) asks first for its cluster medoids, then for
        its Holder probes, then for the rest. Label some or all of the rows
        returned and call again: a labeled row is never returned, and counts
        toward the budget. An empty array means ``fit(X, y, groups)`` reads
        exactly the labels bought.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            All rows.
        y : array-like of shape (n_samples,), default=None
            Labels bought so far, ``NaN`` elsewhere; ``None`` when none is.
        groups : array-like of shape (n_samples,), default=None
            Client label of each row.

        Returns
        -------
        indices : ndarray of shape (n_queries,)
            Sorted indices of the rows to label next.
        """
        self._validate_params()
        rng = check_random_state(self.random_state)
        sampler = self._make_sampler(rng)
        seed = sampler.get_params(deep=False).get("random_state")
        if isinstance(self.random_state, np.random.RandomState) or not isinstance(
            seed, Integral
        ):
            where = (
                f"random_state={self.random_state!r}"
                if self.random_state is not None
                else f"random_state=None and the sampler's random_state={seed!r}"
            )
            raise ValueError(
                "query lists the rows that fit will read only when the selection "
                f"is reproducible, but with {where}, every call draws other rows. "
                "Set random_state to an int, e.g. "
                "FederatedActiveRegressor(random_state=0)."
            )
        n_samples = num_samples(X)
        y = (
            np.full(n_samples, np.nan)
            if y is None
            else check_partial_target(
                y, n_samples, type(self).__name__, allow_all_missing=True
            )
        )
        if self.design == "adaptive":
            self._check_design(sampler, groups)
            if not isinstance(self.random_state, Integral):
                raise ValueError(
                    "query lists the rows of design='adaptive' only when both "
                    "rounds are reproducible, but the second round draws from "
                    f"random_state={self.random_state!r}. Set random_state to an "
                    "int, e.g. FederatedActiveRegressor(design='adaptive', "
                    "random_state=0)."
                )
            try:
                if groups is None:
                    X = validate_rows(sampler, X)
                    rows, *_ = self._adaptive_selection(sampler, X, y, rng)
                else:
                    _, rows, *_ = self._adaptive_federated(sampler, X, y, groups, rng)
            except MissingLabelsError as need:  # the pilot round comes first
                return need.rows
            return rows[np.isnan(y[rows])]
        reads_labels = getattr(sampler, "_reads_labels", lambda: False)()
        try:
            sampler.fit(X, y if reads_labels else None, groups=groups)
        except MissingLabelsError as need:  # medoids or probes come first
            return need.rows
        rows = sampler.sample_indices_
        return rows[np.isnan(y[rows])]

    def _make_sampler(self, rng):
        """Clone the sampler and give it this estimator's budget and seed."""
        sampler = clone(
            self.sampler if self.sampler is not None else LeverageScoreSampler()
        )
        params = sampler.get_params(deep=False)
        overrides = {"budget": self.budget}
        if "random_state" in params and self.random_state is not None:
            seed = self.random_state
            if not isinstance(seed, Integral):
                seed = draw_seed(rng)
            overrides["random_state"] = seed
        if "fit_intercept" in params:
            overrides["fit_intercept"] = self.fit_intercept
        if "alpha" in params:  # ridge leverage for a ridge fit
            overrides["alpha"] = self.alpha
        if "n_jobs" in params and self.n_jobs is not None:
            overrides["n_jobs"] = self.n_jobs
        if "verbose" in params and self.verbose:
            overrides["verbose"] = self.verbose
        missing = set(overrides) - set(params)
        if "budget" in missing:
            raise ValueError(
                f"sampler {sampler!r} has no budget parameter; pass a skfal "
                "sampler such as LeverageScoreSampler() or UniformSampler()."
            )
        return sampler.set_params(**overrides)

    def predict(self, X):
        """Predict with the learned linear model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to predict.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            ``X @ coef_ + intercept_``.
        """
        check_is_fitted(self)
        if self.coef_ is None:
            raise NotFittedError(
                "The clients kept the model: this FederatedActiveRegressor was "
                "fitted on Flower with client_app(..., release_model=False), so "
                "the server holds the selection and the masked model only "
                "(coef_ is None). Predict at a client (each keeps the model), or "
                "start the ClientApps with release_model=True."
            )
        X = validate_rows(self, X, reset=False)
        return matvec(X, self.coef_) + self.intercept_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # With a budget below the number of rows the fit sees only some labels,
        # so R^2 on scikit-learn's small noisy check data depends on the draw.
        tags.regressor_tags.poor_score = True
        tags.input_tags.sparse = True
        return tags
