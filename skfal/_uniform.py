"""Uniform random selection: the baseline every strategy is compared with."""

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skfal._base import DocLinkMixin, FederatedFit, SamplerMixin, select_rows
from skfal._compat import fit_context
from skfal._federated import (
    Channel,
    row_counts,
    send_selection,
    simulated_federation,
)
from skfal._progress import Progress, describe
from skfal._rows import check_finite
from skfal._sampling import draw_seed, resolve_budget
from skfal._shared_params import BUDGET_CONSTRAINT, SAMPLING_CONSTRAINT, fill_doc
from skfal._validation import check_groups, refuse_distributed_groups, validate_rows


@fill_doc
class UniformSampler(DocLinkMixin, SamplerMixin, BaseEstimator):
    """Select rows to label uniformly at random.

    The baseline for the other samplers, with the same contract: ``budget``
    distinct rows, chosen without regard to their features, each weighted
    ``n_samples / budget`` (the inverse of its inclusion probability, so the
    weighted sum of any row function over the selection is an unbiased
    estimate of its sum over all rows).

    Parameters
    ----------
    {budget}
    sampling : {"iid", "pivotal"}, default="iid"
        ``"iid"``: a simple random sample (every set of ``budget`` rows
        equally likely), the baseline. ``"pivotal"``: a spatially balanced
        uniform sample: every row still has inclusion probability
        ``budget / n_samples``, but neighbours in a k-d tree of the rows
        compete, so the sample is spread over the table (see
        :class:`LeverageScoreSampler`).
    random_state : int, RandomState instance or None, default=None
        Controls the draw. Pass an int for reproducible output across calls.
    {verbose}

    Attributes
    ----------
    scores_ : ndarray of shape (n_samples,)
        All ones: every row is equally likely to be selected.
    sample_indices_ : ndarray of shape (n_selected,)
        Sorted distinct indices of the selected rows.
    sample_weight_ : ndarray of shape (n_selected,)
        ``n_samples / n_selected`` for every selected row.
    n_draws_ : int
        Number of i.i.d. uniform draws it took to reach ``n_selected``
        distinct rows (the shared sampling core's draw); 0 when every row
        is selected.
    clients_ : ndarray of shape (n_clients,) or None
        Sorted client labels when fitted with ``groups``, else ``None``.
    communication_ : dict
        Bytes per phase, ``{phase: {"up": bytes, "down": bytes}}``: each
        client's row count up, its selected rows down; empty when
        centralized.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``, when ``X`` has string column
        names.

    See Also
    --------
    LeverageScoreSampler : Selection by statistical leverage.

    Examples
    --------
    >>> import numpy as np
    >>> from skfal import UniformSampler
    >>> X = np.arange(20.0).reshape(10, 2)
    >>> sampler = UniformSampler(budget=4, random_state=0).fit(X)
    >>> sampler.sample_indices_.shape
    (4,)
    >>> sampler.sample_weight_
    array([2.5, 2.5, 2.5, 2.5])
    """

    _output_name = "uniform_score"

    _parameter_constraints: dict = {
        "budget": BUDGET_CONSTRAINT,
        "sampling": SAMPLING_CONSTRAINT,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, budget=0.1, *, sampling="iid", random_state=None, verbose=0):
        self.budget = budget
        self.sampling = sampling
        self.random_state = random_state
        self.verbose = verbose

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, groups=None):
        """Draw the selection.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Unlabeled rows (only their number matters).
        y : None
            Ignored; present for API consistency.
        groups : array-like of shape (n_samples,), default=None
            Client label of each row. Clients send only their row counts
            (and, with ``sampling="pivotal"``, run the tournament on their
            own rows).

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
        check_finite(X)  # read nowhere else by the iid draw
        rng = check_random_state(self.random_state)
        # Drawn in both modes (as LeverageScoreSampler does), so federated and
        # centralized fits with one random_state draw alike; federated, it
        # seeds the clients' pivotal tournaments (skfal.flower hands it out).
        seed = draw_seed(rng)
        self.clients_, self.communication_, federation = None, {}, None
        if groups is None:
            n_samples = X.shape[0]
            n_selected = resolve_budget(self.budget, n_samples)
            selection = select_rows(
                X, np.ones(n_samples), n_selected, rng, sampling=self.sampling
            )
            self._set_selection(selection, n_samples, n_selected)
        else:
            self.clients_, client_rows = check_groups(groups, X.shape[0])
            transport = simulated_federation(X, client_rows, seed, Channel())
            counts = self._fit_federated(transport, X.shape[1], rng)
            federation = FederatedFit(transport, counts)
        progress(f"selected {self.sample_indices_.shape[0]:,} rows ({self.sampling})")
        return federation

    def _fit_federated(self, transport, n_features, rng):
        """The server's side of a federated fit, over any transport.

        Clients upload their row counts (and, with ``sampling="pivotal"``,
        run the tournament on their own rows); each is sent its rows to
        label and their weights. Returns each client's number of rows.
        """
        counts = row_counts(transport)  # what the server knows
        n_samples = int(sum(counts.values()))
        n_selected = resolve_budget(self.budget, n_samples)
        if self.sampling == "pivotal":
            transport.tell("uniform_scores", "inclusion")
        selection = select_rows(
            None,
            np.ones(n_samples),
            n_selected,
            rng,
            sampling=self.sampling,
            federation=(transport, counts),
        )
        self._set_selection(selection, n_samples, n_selected)
        send_selection(transport, selection.indices, self.sample_weight_, counts)
        transport.flush()
        self.communication_ = transport.channel.summary()
        return counts

    def _set_selection(self, selection, n_samples, n_selected):
        # The exact inverse inclusion probability (the draw's Hansen-Hurwitz
        # weights would only approximate it).
        self.scores_ = np.ones(n_samples)
        self.sample_indices_ = selection.indices
        self.sample_weight_ = np.full(n_selected, n_samples / n_selected)
        self.n_draws_ = selection.n_draws

    def transform(self, X):
        """Every row's (constant) selection score.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples, 1)
            All ones.
        """
        check_is_fitted(self)
        X = validate_rows(self, X, reset=False)
        return np.ones((X.shape[0], 1))
