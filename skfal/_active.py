"""Active learning for any scikit-learn estimator: the model's doubt picks the rows.

:class:`ActiveEstimator` wraps a regressor or a classifier. It buys labels in
batches: a uniform initial sample, then, in each of ``n_rounds`` rounds, a
spread draw among the rows the model fitted so far doubts most (a
classifier's smallest top-two margin; a regressor's improved greedy sampling
score), or with a :class:`SensitivitySampler` (and with ``groups``) the
medoids of the next clusters of a D^z prefix ordering and a sample drawn
with probability proportional to ``loss(medoid) + Lambda d^z`` (Axiotis et
al., Algorithms 1 and 3). The batches are a pure function of the rows, the
seed and the labels of earlier batches, so a labeling session spread over
days (:meth:`ActiveEstimator.query`) ends with the same model as
:meth:`ActiveEstimator.fit` reading the labels at once.
"""

from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.dummy import DummyClassifier
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state, get_tags
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    process_routing,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from skfal._base import DocLinkMixin, select_rows
from skfal._clustering import assign, cluster
from skfal._compat import (
    HasMethods,
    Interval,
    StrOptions,
    fit_context,
    routing_enabled,
    validate_data,
)
from skfal._federated import (
    Channel,
    keep_centres,
    merge_summaries,
    model_scores,
    row_counts,
    send_labeled,
    simulated_clients,
)
from skfal._sampling import (
    Selection,
    inclusion_from_terms,
    inclusion_terms,
    pivotal_select,
    resolve_budget,
    spatial_order,
    tree_depth,
)
from skfal._sensitivity import SensitivitySampler
from skfal._shared_params import BUDGET_CONSTRAINT, fill_doc
from skfal._validation import MissingLabelsError, check_groups, check_target_labels

_EPS = 1e-15  # probabilities are clipped here: log-loss at most ~34.5

# The default selection's constants, chosen by benchmarks/bench_any_model.py
# over all its tables at once (user guide, "ActiveEstimator"), never per table.
# A round draws among this many times its quota of unsure rows: a
# classifier's margin ranks the rows near its boundary, few; a regressor's
# greedy score ranks far-out rows first, and a wider pool of them keeps the
# round off the few outliers (bench_any_model: 10 lost in no regression
# cell, 3 in one).
_CANDIDATES = {"classifier": 3, "regressor": 10}
# Rounds of the default selection and its uniform share of the budget
# (n_rounds="auto", initial_fraction="auto"), per model family, chosen by
# benchmarks/results/any_model_study3*: a classifier's margin gains from
# eight small rounds after a tenth; a regressor's iGS lost a cell to uniform
# with eight, and keeps two after a third. Algorithms 1 and 3 keep two
# rounds after a third (each of their rounds is a clustering pass, and with
# groups a run of the protocol).
_ROUNDS = {"classifier": 8, "regressor": 2, "sensitivity": 2}
_INITIAL = {"classifier": 0.1, "regressor": 1 / 3, "sensitivity": 1 / 3}
_UNIFORM_MIX = 0.1  # share of a round's probability spread over every row
_CHUNK = 2**21  # distances computed at once for a regressor's doubt (16 MB)
_MIN_LABELS = 20  # a fractional budget buys at least this many labels
_DOUBT_ROWS = 100_000  # the model's doubt is ranked on at most this many rows


class _Batch(NamedTuple):
    """One batch of labels the selection asks for, and why."""

    round: int
    kind: str  # "initial", "medoids" or "sample"
    rows: np.ndarray


def _is_missing(values):
    """Where a label is unknown: NaN, ``None``, ``pd.NA`` or ``pd.NaT``."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind != "O":
        return np.zeros(values.shape[0], dtype=bool)
    return np.array(
        [
            v is None
            or (isinstance(v, float) and v != v)
            or type(v).__name__ in ("NAType", "NaTType")
            for v in values
        ],
        dtype=bool,
    )


def _estimator_has(attr):
    """``available_if`` check: the fitted (else the given) estimator has ``attr``."""

    def check(self):
        inner = self.estimator_ if hasattr(self, "estimator_") else self.estimator
        getattr(inner, attr)
        return True

    return check


def _final_step(estimator, X):
    """The last step of a pipeline and ``X`` through the steps before it."""
    if isinstance(estimator, Pipeline):
        return estimator[-1], estimator[:-1].transform(X)
    return estimator, X


def _squared_error(estimator, X, y):
    return (np.asarray(estimator.predict(X), dtype=np.float64) - y) ** 2


def _true_class_proba(estimator, X, y):
    """``(proba, p_true)``: predicted probabilities and that of each row's label.

    A label the model never saw has probability 0 (its loss is the largest,
    ``-log(1e-15)``), so a class missing from the initial sample draws
    samples to the clusters where it is found.
    """
    proba = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    position = {c: i for i, c in enumerate(np.asarray(estimator.classes_).tolist())}
    at = np.array([position.get(v, -1) for v in np.asarray(y).tolist()], dtype=int)
    p_true = np.where(at >= 0, proba[np.arange(len(at)), np.maximum(at, 0)], 0.0)
    return proba, p_true


def _log_loss(estimator, X, y):
    if not hasattr(estimator, "predict_proba"):
        return (np.asarray(estimator.predict(X)) != y).astype(np.float64)
    _, p_true = _true_class_proba(estimator, X, y)
    return -np.log(np.clip(p_true, _EPS, 1.0))


def _gradient_norm(estimator, X, y, classifier):
    """Squared norm of the loss's gradient in a linear model's coefficients.

    For a linear regressor ``2 (f(x) - y) [x, 1]``; for a linear classifier
    with probabilities ``(p - e_y) [x, 1]^T`` (logistic and softmax). Up to a
    constant factor, which changes no sampling probability. ``None`` when the
    model is not linear (then the loss itself is used).
    """
    final, features = _final_step(estimator, X)
    if not hasattr(final, "coef_"):
        return None
    features = np.asarray(features, dtype=np.float64)
    size = np.einsum("ij,ij->i", features, features) + 1.0
    if not classifier:
        return _squared_error(estimator, X, y) * size
    if not hasattr(final, "predict_proba"):
        return None
    proba, p_true = _true_class_proba(estimator, X, y)
    off = np.einsum("ij,ij->i", proba, proba) - 2.0 * p_true + 1.0
    return np.maximum(off, 0.0) * size


def _model_loss(loss, estimator, X, y, classifier):
    """Per-row loss of the fitted ``estimator`` at rows ``X`` labeled ``y``.

    Returns the losses and the loss used (``"loss"`` where ``"gradient"``
    has no closed form for the model).
    """
    if X.shape[0] == 0:  # a client with no labeled row yet
        return np.empty(0), loss if loss != "gradient" else "loss"
    if callable(loss):
        values = np.asarray(loss(estimator, X, y), dtype=np.float64)
        if values.shape != (X.shape[0],):
            raise ValueError(
                f"loss(estimator, X, y) must return one loss per row, an array "
                f"of shape ({X.shape[0]},); got shape {values.shape}."
            )
    else:
        values = None
        if loss == "gradient":
            values = _gradient_norm(estimator, X, y, classifier)
        if values is None:
            loss = "loss"
            values = (_log_loss if classifier else _squared_error)(estimator, X, y)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(
            "The per-row losses must be finite and non-negative; the loss "
            f"{loss!r} gave values in [{np.min(values)}, {np.max(values)}]."
        )
    return values, loss


def _top_two_gap(values):
    """Per row, the largest of ``values`` less the second largest."""
    top = np.partition(values, values.shape[1] - 2, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]


def _classifier_doubt(model, X):
    """How unsure a classifier is at each row: minus its top-two margin.

    The margin of the probabilities (Scheffer et al.'s margin sampling, the
    measure of Citovsky et al.'s Cluster-Margin), else of the decision
    function; ``None`` when the model has neither or knows one class (every
    row then counts as unsure alike).
    """
    if len(model.classes_) < 2:  # a model of one class doubts nothing
        return None
    if hasattr(model, "predict_proba"):
        return -_top_two_gap(np.asarray(model.predict_proba(X), dtype=np.float64))
    if hasattr(model, "decision_function"):
        d = np.asarray(model.decision_function(X), dtype=np.float64)
        return -np.abs(d) if d.ndim == 1 else -_top_two_gap(d)
    return None


def _candidates(doubt, rows, n_candidates):
    """The ``n_candidates`` of ``rows`` of most ``doubt`` (sorted), or ``None``.

    ``None`` when there is no doubt to rank by or it does not vary (e.g. a
    first model that saw one class), or when every row would be a
    candidate: the round is then uniform over the eligible rows.
    """
    if doubt is None or n_candidates >= rows.size or np.ptp(doubt) == 0:
        return None
    # Ties broken by row order (a stable sort), so a replay picks the same.
    return np.sort(rows[np.argsort(-doubt, kind="stable")[:n_candidates]])


def _greedy_score(X_pool, predicted, X_labeled, y_labeled):
    """Improved greedy sampling's score of each pool row (Wu et al. 2019).

    ``min_l ||x - x_l|| |f(x) - y_l|`` over the labeled rows ``l``, in
    chunks of the pool of at most ``_CHUNK`` distances each.
    """
    y_labeled = np.asarray(y_labeled, dtype=np.float64)
    step = max(1, _CHUNK // max(1, X_labeled.shape[0]))
    score = np.empty(X_pool.shape[0])
    for start in range(0, X_pool.shape[0], step):
        stop = start + step
        apart = euclidean_distances(X_pool[start:stop], X_labeled)
        apart *= np.abs(predicted[start:stop, None] - y_labeled[None, :])
        score[start:stop] = apart.min(axis=1)
    return score


def _spread_draw(X, candidates, n_draws, eligible, rng):
    """``n_draws`` eligible rows, most among the ``candidates``, spread over them.

    Inclusion probabilities ``min(1, c p)`` with ``p`` mixing
    ``_UNIFORM_MIX`` of uniform over the eligible rows into uniform over the
    candidates. Pivotal sampling settles them in an order where the
    candidates come grouped by k-means cluster (as many clusters as draws
    among them), then the other eligible rows in k-d tree order: the
    candidates of a cluster duel among themselves first, so a cluster
    holding about one draw's probability gives one row (Cluster-Margin's
    round robin over clusters, Citovsky et al. 2021), and the probabilities
    stay exact whatever the order, hence the Horvitz-Thompson weights.
    """
    scores = np.zeros(eligible.shape[0])
    scores[candidates] = 1.0
    terms = inclusion_terms(scores, n_draws, _UNIFORM_MIX, eligible)
    pi = inclusion_from_terms(scores, terms, eligible)
    k = int(min(candidates.size, max(1, round(pi[candidates].sum()))))
    centres, _ = cluster(X[candidates], k, 2, rng)
    groups, _ = assign(X[candidates], centres)
    rest = spatial_order(X, tree_depth(X.shape[0], n_draws))
    rest = rest[eligible[rest] & (scores[rest] == 0)]
    order = np.concatenate(
        [candidates[np.argsort(groups, kind="stable")], rest, np.flatnonzero(~eligible)]
    )
    return pivotal_select(X, pi, rng, None, order=order)


@fill_doc
class ActiveEstimator(DocLinkMixin, MetaEstimatorMixin, BaseEstimator):
    """Active learning for any scikit-learn estimator: buy the labels it doubts.

    Buys ``budget`` labels in rounds and fits ``estimator`` on the labeled
    rows. Their importance weights (``sample_weight_``, and the fit's with
    ``weighted=True``) make a weighted sum over them an unbiased estimate
    of the sum over every row. By default (centralized):

    1. a uniform sample of ``initial_fraction`` of the budget (by default
       a tenth for a classifier, a third for a regressor; pivotal sampling
       along a k-d tree order, so it is spread over the pool), on which a
       first model is fitted;
    2. in each of ``n_rounds`` rounds (by default 8 around a classifier, 2
       around a regressor), its share of the rest
       of the budget drawn where the current model is least sure: for a
       classifier the 3 x quota rows of smallest top-two probability margin
       (margin sampling; a round is uniform while the model has seen one
       class); for a regressor the 10 x quota rows of largest improved
       greedy sampling score ``min_l ||x - x_l|| |f(x) - y_l|`` over the
       labeled rows ``l`` (Wu, Lin and Huang 2019): far in the features from
       every labeled row, or predicted far from the labels near it (a round
       is uniform while the model predicts one value everywhere; distances
       are in ``X`` as given, so put features of different units on one
       scale first). The round
       draws 90% of its probability among those
       candidates and 10% among every row not labeled yet, by pivotal
       sampling in which the candidates of each k-means cluster of them
       duel for about one place (Cluster-Margin's spread, Citovsky et al.
       2021): a batch is not a clump of near-duplicates. The inclusion
       probabilities are exact, hence Horvitz-Thompson weights; the model
       is refitted after each round.

    A :class:`SensitivitySampler` with a finite ``holder_constant`` runs
    Axiotis et al.'s Algorithms 1 and 3 instead, which is also the default
    with ``groups`` (the model never leaves the trainer, and those rounds
    need its loss only at labeled rows): the medoids of the next ``k``
    clusters of a D^z prefix ordering, then a sample drawn with probability
    proportional to ``loss(medoid) + Lambda d^z`` (``d`` the distance to the
    nearest centre so far, ``Lambda`` the cluster's Holder constant of
    Lemma 8).

    A wrapped regressor makes a regressor, a classifier a classifier.

    Parameters
    ----------
    estimator : estimator object
        An unfitted scikit-learn regressor or classifier (or pipeline). It is
        cloned; with ``weighted=True`` its ``fit`` must accept
        ``sample_weight`` (for a pipeline, its last step's).
    sampler : estimator or None, default=None
        How rows are chosen. ``None``: the model's doubt above, or with
        ``groups`` ``SensitivitySampler(holder_constant="auto")``. A
        :class:`SensitivitySampler` with ``holder_constant`` ``"auto"`` or a
        float runs Algorithms 1 and 3 and gives them its clustering and
        drawing parameters (``n_clusters`` clusters per round, ``z``,
        ``subsample_size``, ``max_iter``, ``sampling``, ``uniform_mix``,
        ``weighting``).
        Any other skfal sampler (``LeverageScoreSampler``,
        ``UniformSampler``, a ``SensitivitySampler`` with
        ``holder_constant=np.inf``) selects the whole budget in one batch,
        without a model (``initial_fraction`` and ``n_rounds`` then play no
        part). The sampler is cloned, its ``budget`` set to this estimator's,
        and its ``random_state`` too when that is not ``None``.
    {budget}
        A fractional budget buys at least 20 labels (every row of a smaller
        table), so that a classifier sees its classes on small tables.
    n_rounds : int or "auto", default="auto"
        Rounds of model-based selection after the initial sample
        (Algorithm 3 for ``n_rounds > 1``): the rest of the budget is split
        evenly among them and the model is refitted after each. ``"auto"``:
        8 for the default selection around a classifier (more, smaller
        rounds let its margin follow what it learns; each costs a refit), 2
        around a regressor (eight lost a cell to uniform) and for
        Algorithms 1 and 3 (each of their rounds is a clustering pass, and
        with ``groups`` a run of the protocol).
    initial_fraction : float in (0, 1] or "auto", default="auto"
        Share of the budget bought uniformly at random before any model
        exists (Axiotis et al. use 0.2). ``1.0`` is uniform sampling.
        ``"auto"``: 0.1 for the default selection around a classifier (its
        rounds stay uniform until the model has seen two classes), 1/3
        around a regressor and for Algorithms 1 and 3. Both defaults were
        chosen per model family on ``benchmarks/bench_any_model.py`` (user
        guide, "Active learning for any model").
    loss : {"loss", "gradient"} or callable, default="loss"
        For Algorithms 1 and 3 (a :class:`SensitivitySampler`, or
        ``groups``): the per-row quantity whose sum the selection estimates.
        ``"loss"``: the squared error for a regressor, the log-loss for a
        classifier (0-1 loss without ``predict_proba``). ``"gradient"``: the
        squared norm of the loss's gradient in the coefficients of a linear
        model (``coef_``, of the last step of a pipeline); other models fall
        back to the loss. A callable ``loss(estimator, X, y)`` returns the
        losses of the fitted estimator at rows ``X`` with labels ``y``.
    weighted : bool, default=False
        ``True`` fits the final (and every intermediate) model with the
        importance weights as ``sample_weight``, divided by their mean (a
        constant factor: the weighted training loss stays proportional to
        the unbiased estimate of the loss over all rows, and a penalized
        model is regularized as for the labels bought, not for ``n`` rows).
        ``False`` fits unweighted, as in the paper's experiments: the
        training loss is then no longer an unbiased estimate, but the
        weights stay in ``sample_weight_``. Unweighted is the default
        because it was more accurate on ``benchmarks/bench_any_model.py``
        (the user guide's table): the few rows of weight ``1 / pi`` with a
        small ``pi`` swing a model fitted on tens of labels.
    random_state : int, RandomState instance or None, default=None
        Controls every draw. An int makes :meth:`query` and :meth:`fit`
        reproducible, which the labeling loop requires (set the wrapped
        estimator's own ``random_state`` too, if it has one).

    Attributes
    ----------
    estimator_ : estimator object
        The wrapped estimator fitted on the selected rows.
    sample_indices_ : ndarray of shape (n_selected,)
        Sorted rows whose labels were read.
    sample_weight_ : ndarray of shape (n_selected,)
        Their importance weights: ``sum_i w_i l_i`` estimates the sum of
        any per-row loss ``l`` over all rows without bias.
    rounds_ : list of dict
        One entry per round (round 0 the initial sample): ``"medoids"`` and
        ``"sampled"`` (rows labeled in that round), ``"holder_constants"``
        (``Lambda`` per cluster used, or ``None``) and ``"n_labels"``
        (labels bought so far).
    batches_ : list of ndarray
        The label batches in the order they were asked for (what
        :meth:`query` returns one after another).
    n_queries_ : int
        Labels read (the budget).
    loss_ : str, callable or None
        The loss Algorithms 1 and 3 used (``"loss"`` when ``"gradient"``
        fell back to it); ``None`` for the default centralized selection,
        which ranks rows by the model's doubt, not by a loss.
    classes_ : ndarray of shape (n_classes,)
        The classes the classifier was fitted on (classifiers only).
    clients_ : ndarray of shape (n_clients,)
        Sorted client labels, when the model-based selection was fitted with
        ``groups``.
    communication_ : dict
        Bytes per phase, ``{phase: {"up": bytes, "down": bytes}}``, when
        the model-based selection was fitted with ``groups``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``, when ``X`` has string column
        names.

    See Also
    --------
    SensitivitySampler : The clustering behind the model-based selection.
    FederatedActiveRegressor : Linear regression, with federated training.

    Notes
    -----
    The weights combine one unbiased estimate per round: round 0's uniform
    sample (weight ``n / b_0``), and for round ``i`` the rows labeled before
    it (and Algorithm 1's medoids) at weight 1 plus its sample at
    Horvitz-Thompson weight ``1 / pi`` over the rows not labeled yet. Each
    estimates the total loss without bias given what came before, so their
    mix with fixed shares ``b_i / b`` (each round's share of the budget)
    does too.

    The default's round costs a model fit on the labeled rows, a
    prediction at every unlabeled row (at most 100,000 of them, a uniform
    subsample past that), for a regressor their distances to every labeled
    row, a sort and a k-means of the candidates. Algorithm 1
    evaluates the loss only at labeled rows (medoids and the rows of each
    cluster that estimate ``Lambda``): a clustering pass per round
    whatever the model.

    References
    ----------
    .. [1] G. Citovsky, G. DeSalvo, C. Gentile, L. Karydas, A. Rajagopalan,
       A. Rostamizadeh and S. Kumar, "Batch Active Learning at Scale",
       NeurIPS 2021.
    .. [2] D. Wu, C.-T. Lin and J. Huang, "Active learning for regression
       using greedy sampling", Information Sciences 474, 2019.
    .. [3] K. Axiotis, V. Cohen-Addad, M. Henzinger, S. Jerome, V. Mirrokni,
       D. Saulpic, D. Woodruff and M. Wunder, "Data-Efficient Learning via
       Clustering-Based Sensitivity Sampling: Foundation Models and Beyond",
       ICML 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skfal import ActiveEstimator
    >>> rng = np.random.RandomState(0)
    >>> X = rng.standard_normal((500, 3))
    >>> y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    >>> model = ActiveEstimator(LogisticRegression(), budget=60, random_state=0)
    >>> model = model.fit(X, y)
    >>> model.n_queries_, model.classes_.tolist()
    (60, ['no', 'yes'])
    >>> float(model.score(X, y)) > 0.9
    True
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict"])],
        "sampler": [HasMethods(["fit"]), None],
        "budget": BUDGET_CONSTRAINT,
        "n_rounds": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "initial_fraction": [
            Interval(Real, 0, 1, closed="right"),
            StrOptions({"auto"}),
        ],
        "loss": [StrOptions({"loss", "gradient"}), callable],
        "weighted": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator,
        *,
        sampler=None,
        budget=0.1,
        n_rounds="auto",
        initial_fraction="auto",
        loss="loss",
        weighted=False,
        random_state=None,
    ):
        self.estimator = estimator
        self.sampler = sampler
        self.budget = budget
        self.n_rounds = n_rounds
        self.initial_fraction = initial_fraction
        self.loss = loss
        self.weighted = weighted
        self.random_state = random_state

    # ----------------------------------------------------------------- public
    @fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, groups=None, **fit_params):
        """Select rows, read their labels, fit the estimator on them.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The pool of rows.
        y : array-like of shape (n_samples,)
            Labels; read only at the selected rows, so the others may be
            missing (``NaN``, ``None`` or ``pd.NA``). Class labels may be
            strings.
        groups : array-like of shape (n_samples,), default=None
            Client label of each row. The selection then runs over the
            clients (the clustering by Lloyd rounds on secure sums; the
            scores at the clients, from the losses at their labeled rows,
            which the trainer computes and sends them: the model never
            travels; the draws by the federated pivotal tournament; a
            model-free sampler by its own protocol), and the estimator is
            fitted centrally on the bought rows, which their clients send
            with their labels: the trainer sees those rows and nothing of
            the others.
        **fit_params : dict
            Further parameters for the estimator's ``fit``, routed by
            metadata routing when it is enabled
            (``sklearn.set_config(enable_metadata_routing=True)``); per-row
            ones are restricted to the selected rows, and a ``sample_weight``
            multiplies the importance weights.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        X, y = self._check_input(X, y)
        params = self._route(fit_params)
        rng = check_random_state(self.random_state)
        labels = _Labels(y)
        self._select(X, labels, groups, rng, params)
        self.n_queries_ = int(self.sample_indices_.size)
        self.estimator_ = self._fit_model(
            X, labels, self.sample_indices_, self.sample_weight_, params, final=True
        )
        return self

    def query(self, X, y=None, groups=None):
        """The next rows to label, given the labels already in ``y``.

        Replays the selection of :meth:`fit` (same seed, same rows) up to
        the first batch with a row not labeled yet, and returns that batch's
        unlabeled rows. Label some or all of them and call again: rows with
        a label are never returned, and every label bought counts toward the
        budget. An empty array means the selection is complete: :meth:`fit`
        on the same ``y`` then reads exactly those labels, and gives the
        model that ``fit`` with every label at hand would give.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The pool of rows.
        y : array-like of shape (n_samples,), default=None
            Labels bought so far (``NaN``, ``None`` or ``pd.NA`` elsewhere);
            ``None`` when none is.
        groups : array-like of shape (n_samples,), default=None
            Client label of each row.

        Returns
        -------
        indices : ndarray of shape (n_queries,)
            Sorted indices of the rows to label next.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import LinearRegression
        >>> from skfal import ActiveEstimator
        >>> rng = np.random.RandomState(0)
        >>> X = rng.standard_normal((400, 2))
        >>> truth = X @ [1.0, -2.0] + rng.standard_normal(400)
        >>> model = ActiveEstimator(LinearRegression(), budget=40, random_state=0)
        >>> y = np.full(400, np.nan)
        >>> while (rows := model.query(X, y)).size:   # label a batch, ask again
        ...     y[rows] = truth[rows]
        >>> int(np.isfinite(y).sum())
        40
        >>> model = model.fit(X, y)
        """
        self._validate_params()
        if not isinstance(self.random_state, Integral):
            raise ValueError(
                "query replays the selection of fit only when it is reproducible, "
                f"but random_state={self.random_state!r} draws other rows on "
                "every call. Set random_state to an int, e.g. "
                "ActiveEstimator(estimator, random_state=0)."
            )
        replay = clone(self)  # query leaves this estimator as it is
        X, y = replay._check_input(X, y, none_labeled=True)
        try:
            replay._select(X, _Labels(y), groups, check_random_state(self.random_state))
        except MissingLabelsError as need:
            return need.rows
        return np.empty(0, dtype=np.int64)

    @available_if(_estimator_has("predict"))
    def predict(self, X):
        """Predict with the fitted estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predictions.
        """
        check_is_fitted(self)
        return self.estimator_.predict(self._check_X(X))

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities from the fitted classifier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities of the classes in ``classes_``.
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(self._check_X(X))

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log of the class probabilities from the fitted classifier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probabilities of the classes in ``classes_``.
        """
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(self._check_X(X))

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the fitted classifier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The wrapped estimator's decision values.
        """
        check_is_fitted(self)
        return self.estimator_.decision_function(self._check_X(X))

    @available_if(_estimator_has("score"))
    def score(self, X, y, **score_params):
        """The fitted estimator's score (R^2 or accuracy) on ``X``, ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows.
        y : array-like of shape (n_samples,)
            True labels.
        **score_params : dict
            Passed to the estimator's ``score`` (e.g. ``sample_weight``).

        Returns
        -------
        score : float
            The wrapped estimator's score.
        """
        check_is_fitted(self)
        return self.estimator_.score(self._check_X(X), y, **score_params)

    @property
    def classes_(self):
        """The classes of the fitted classifier."""
        return self.estimator_.classes_

    def get_metadata_routing(self):
        """Metadata routing: ``fit`` parameters go to the estimator's ``fit``.

        Returns
        -------
        routing : MetadataRouter
            A :class:`~sklearn.utils.metadata_routing.MetadataRouter`
            encapsulating the routing information.
        """
        return MetadataRouter(owner=self.__class__.__name__).add(
            estimator=self.estimator,
            method_mapping=MethodMapping().add(caller="fit", callee="fit"),
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        if tags.classifier_tags is not None:
            tags.classifier_tags.poor_score = True
            tags.classifier_tags.multi_class = True
        if tags.regressor_tags is not None:
            tags.regressor_tags.poor_score = True
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        return tags

    # ---------------------------------------------------------------- private
    def _is_classifier(self):
        return get_tags(self.estimator).estimator_type == "classifier"

    def _check_X(self, X):
        return validate_data(
            self, X, reset=False, dtype=[np.float64, np.float32], ensure_all_finite=True
        )

    def _check_input(self, X, y, none_labeled=False):
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        y = check_target_labels(
            y,
            X.shape[0],
            type(self).__name__,
            self._is_classifier(),
            none_labeled=none_labeled,
        )
        return X, y

    def _route(self, fit_params):
        if routing_enabled():
            return process_routing(self, "fit", **fit_params).estimator.fit
        if fit_params:
            raise ValueError(
                f"fit got parameters {sorted(fit_params)} for the estimator; "
                "passing them requires metadata routing: call "
                "sklearn.set_config(enable_metadata_routing=True) and "
                "request them on the estimator (e.g. set_fit_request)."
            )
        return {}

    def _resolve_sampler(self, federated):
        """The sampler and the selection it runs.

        ``"uncertainty"`` (the default, centralized), ``"sensitivity"``
        (Algorithm 1: a :class:`SensitivitySampler` with a finite Holder
        constant, and the default with ``groups``: its model never travels)
        or ``"model-free"`` (any other sampler, one batch).
        """
        if self.sampler is None:
            if not federated:
                return None, "uncertainty"
            return SensitivitySampler(holder_constant="auto"), "sensitivity"
        sampler = clone(self.sampler)
        model_based = (
            isinstance(sampler, SensitivitySampler)
            and sampler.holder_constant != np.inf
        )
        return sampler, "sensitivity" if model_based else "model-free"

    def _n_labels(self, n_samples):
        """The labels to buy: the budget, at least ``_MIN_LABELS`` for a fraction.

        A fraction of a small table (scikit-learn's common checks use 20 to
        30 rows) would otherwise buy two or three labels, too few to hold two
        classes.
        """
        n_selected = resolve_budget(self.budget, n_samples)
        if isinstance(self.budget, Integral):
            return n_selected
        return max(n_selected, min(n_samples, _MIN_LABELS))

    def _select(self, X, labels, groups, rng, params=None):
        """Run the selection, reading the labels batch by batch."""
        params = {} if params is None else params
        n_samples = X.shape[0]
        n_selected = self._n_labels(n_samples)
        sampler, mode = self._resolve_sampler(groups is not None)
        self.batches_, self.rounds_, self.loss_ = [], [], None
        if n_selected == n_samples:  # every row: a census, weight 1
            rows = np.arange(n_samples)
            labels.read(_Batch(0, "sample", rows), self.batches_)
            self._record_round(np.empty(0, dtype=np.int64), rows, None, n_samples)
            self.sample_indices_, self.sample_weight_ = rows, np.ones(n_samples)
        elif mode == "model-free":
            self._select_model_free(X, labels, groups, rng, sampler, n_selected)
        elif mode == "uncertainty":
            self._select_uncertainty(X, labels, rng, n_selected, params)
        else:
            self._select_model_based(
                X, labels, groups, rng, sampler, n_selected, params
            )

    def _record_round(self, medoids, sampled, holder, n_labels):
        self.rounds_.append(
            {
                "medoids": medoids,
                "sampled": sampled,
                "holder_constants": holder,
                "n_labels": int(n_labels),
            }
        )

    def _select_model_free(self, X, labels, groups, rng, sampler, n_selected):
        sampler.set_params(budget=n_selected)
        if self.random_state is not None:
            sampler.set_params(random_state=rng)
        sampler.fit(X, groups=groups)
        rows = sampler.sample_indices_
        labels.read(_Batch(0, "sample", rows), self.batches_)
        self.sample_indices_ = rows
        self.sample_weight_ = np.asarray(sampler.sample_weight_, dtype=np.float64)
        self._record_round(np.empty(0, dtype=np.int64), rows, None, rows.size)

    def _schedule(self, mode):
        """``(n_rounds, initial_fraction)``, ``"auto"`` resolved for ``mode``.

        The default selection's per model family (:data:`_ROUNDS`,
        :data:`_INITIAL`), Algorithms 1 and 3's two rounds after a third.
        """
        if mode == "uncertainty":
            mode = "classifier" if self._is_classifier() else "regressor"
        n_rounds, initial = self.n_rounds, self.initial_fraction
        return (
            _ROUNDS[mode] if n_rounds == "auto" else n_rounds,
            _INITIAL[mode] if initial == "auto" else initial,
        )

    def _quotas(self, n_selected, mode):
        """Labels bought in each round: round 0 uniform, then even shares."""
        r, fraction = self._schedule(mode)
        initial = max(1, int(round(fraction * n_selected)))
        rest = n_selected - initial
        quotas = [initial] + [rest // r + (i < rest % r) for i in range(r)]
        return [q for q in quotas if q > 0]

    def _select_uncertainty(self, X, labels, rng, n_selected, params):
        """The default selection: spread draws among the rows the model doubts.

        Round 0 draws its quota uniformly; each later round fits the model
        on the rows labeled so far, takes the ``_CANDIDATES`` (per model
        family) times its quota rows where the model is least sure
        (:meth:`_doubt`) and draws its quota from them (``1 - _UNIFORM_MIX``
        of the probability) and from every row not labeled yet (the rest) by
        :func:`_spread_draw`. The
        inclusion probabilities are known, hence the Horvitz-Thompson
        weights.
        """
        n_samples = X.shape[0]
        quotas = self._quotas(n_selected, "uncertainty")
        shares = np.asarray(quotas, dtype=np.float64) / n_selected
        labeled = np.zeros(n_samples, dtype=bool)
        weights = np.zeros(n_samples)  # sum over rounds of share x round weight
        for i, quota in enumerate(quotas):
            candidates = None
            if i > 0:
                rows = np.flatnonzero(labeled)
                model = self._fit_model(
                    X, labels, rows, weights[rows] / shares[:i].sum(), params
                )
                # Ranked on a uniform subsample of the unlabeled rows past
                # _DOUBT_ROWS (a 1,000,000-row pool costs as 100,000): the
                # probabilities are exact given the candidates, so the
                # weights stay unbiased.
                pool = np.flatnonzero(~labeled)
                if pool.size > _DOUBT_ROWS:
                    pool = np.sort(rng.choice(pool, _DOUBT_ROWS, replace=False))
                doubt = self._doubt(model, X, pool, labels, rows)
                family = "classifier" if self._is_classifier() else "regressor"
                candidates = _candidates(doubt, pool, _CANDIDATES[family] * quota)
            if candidates is None or quota >= (~labeled).sum():
                # Uniform, spread along the k-d tree order.
                drawn = self._draw(
                    X, np.ones(n_samples), quota, ~labeled, rng, None, None
                )
            else:
                drawn = _spread_draw(X, candidates, quota, ~labeled, rng)
            # Round i's estimate: rows labeled before it at weight 1, its
            # sample at Horvitz-Thompson weight over the rest.
            weights[labeled] += shares[i]
            weights[drawn.indices] += shares[i] * drawn.weights
            kind = "initial" if i == 0 else "sample"
            labels.read(_Batch(i, kind, drawn.indices), self.batches_)
            labeled[drawn.indices] = True
            self._record_round(
                np.empty(0, dtype=np.int64), drawn.indices, None, labeled.sum()
            )
        self.sample_indices_ = np.flatnonzero(labeled)
        self.sample_weight_ = weights[self.sample_indices_]

    def _doubt(self, model, X, pool, labels, rows):
        """How unsure the model is at the rows ``pool`` (higher: more).

        A classifier: minus its top-two margin. A regressor: improved
        greedy sampling's score (Wu, Lin and Huang 2019), the smallest over
        the labeled rows ``l`` of ``||x - x_l|| |f(x) - y_l|``: a row far
        from every labeled row in the features, or whose prediction is far
        from the labels near it; ``None`` (a uniform round) while the model
        predicts one value everywhere (a gradient-boosting model on fewer
        rows than two leaves need), which says nothing about where it errs.
        """
        X_pool = X[pool]
        if self._is_classifier():
            return _classifier_doubt(model, X_pool)
        predicted = np.asarray(model.predict(X_pool), dtype=np.float64)
        if np.ptp(predicted) == 0:
            return None
        return _greedy_score(X_pool, predicted, X[rows], labels.values[rows])

    def _select_model_based(self, X, labels, groups, rng, sampler, n_selected, params):
        n_samples = X.shape[0]
        federated = groups is not None
        if federated:
            self.clients_, client_rows = check_groups(groups, n_samples)
        else:
            client_rows = [np.arange(n_samples)]
        # The clients: one per group, or one holding every row (centralized).
        channel, summaries = Channel(), []
        transport = simulated_clients(X, labels.values, client_rows, channel)
        quotas = self._quotas(n_selected, "sensitivity")
        shares = np.asarray(quotas, dtype=np.float64) / n_selected
        # Round 0: a uniform sample, weight n / b_0 in its own estimate (the
        # server needs only the clients' row counts to draw it).
        counts = row_counts(transport)
        initial = np.sort(rng.permutation(n_samples)[: quotas[0]])
        labeled = np.zeros(n_samples, dtype=bool)
        self._buy(initial, 0, "initial", labels, labeled, transport, counts)
        weights = np.zeros(n_samples)  # sum over rounds of share x round weight
        weights[initial] = shares[0] * n_samples / initial.size
        self._record_round(np.empty(0, dtype=np.int64), initial, None, initial.size)
        per_round = [self._n_clusters(sampler, q) for q in quotas[1:]]
        if sum(per_round):
            centres, medoids, summary = self._prefix_clustering(
                X, sampler, sum(per_round), rng, groups
            )
            summaries.append(summary)
            keep_centres(transport, centres)
        self.loss_ = self.loss
        classifier = self._is_classifier()
        for i in range(1, len(quotas)):
            # The trainer's model, on the labeled rows the clients sent it.
            model = self._fit_model(
                X,
                labels,
                np.flatnonzero(labeled),
                weights[labeled] / shares[:i].sum(),
                params,
            )
            n_centres = (
                min(sum(per_round[:i]), centres.shape[0]) if sum(per_round) else 0
            )
            new_medoids = (
                np.setdiff1d(medoids[:n_centres], np.flatnonzero(labeled))
                if n_centres
                else np.empty(0, dtype=np.int64)
            )
            self._buy(new_medoids, i, "medoids", labels, labeled, transport, counts)
            if n_centres:
                losses_used = []

                def loss_at(rows, model=model, used=losses_used):
                    # The trainer's loss at labeled rows it received.
                    losses, name = _model_loss(
                        self.loss, model, X[rows], labels.values[rows], classifier
                    )
                    used.append(name)
                    return losses

                scores, holder = model_scores(
                    transport,
                    loss_at,
                    labeled=np.flatnonzero(labeled),
                    medoids=medoids[:n_centres],
                    counts=counts,
                    n_rows=n_samples,
                    z=sampler.z,
                    holder_constant=sampler.holder_constant,
                )
                self.loss_ = losses_used[-1]
            else:
                scores, holder = np.ones(n_samples), None
            drawn = self._draw(
                X,
                scores,
                quotas[i] - new_medoids.size,
                ~labeled,
                rng,
                sampler,
                (client_rows, channel) if federated else None,
            )
            # Round i's estimate: rows labeled before it and its medoids at
            # weight 1, its sample at Horvitz-Thompson weight.
            weights[labeled] += shares[i]
            weights[drawn.indices] += shares[i] * drawn.weights
            self._buy(drawn.indices, i, "sample", labels, labeled, transport, counts)
            self._record_round(new_medoids, drawn.indices, holder, labeled.sum())
        self.sample_indices_ = np.flatnonzero(labeled)
        self.sample_weight_ = weights[self.sample_indices_]
        if federated:
            self.communication_ = merge_summaries(*summaries, channel.summary())

    def _buy(self, rows, round_, kind, labels, labeled, transport, counts):
        """Buy the labels of ``rows``: the clients read them and send the rows.

        The server tells each client which of its rows to label; the clients
        read the labels there and send those rows and labels to the trainer.
        """
        labels.read(_Batch(round_, kind, rows), self.batches_)
        send_labeled(transport, rows, counts)
        labeled[rows] = True

    @staticmethod
    def _draw(X, scores, n_draws, eligible, rng, sampler, federation):
        """The round's sample among the rows not labeled yet.

        By ``sampler``'s scheme, else (``None``) by pivotal sampling.
        """
        if n_draws >= eligible.sum():  # what is left: all of it, weight 1
            rows = np.flatnonzero(eligible)
            return Selection(rows, np.ones(rows.size), np.ones(rows.size, int), 0)
        if sampler is None:
            how = {"sampling": "pivotal"}
        else:
            how = {
                "sampling": sampler.sampling,
                "uniform_mix": sampler.uniform_mix,
                "weighting": sampler.weighting,
            }
        return select_rows(
            X, scores, n_draws, rng, eligible=eligible, federation=federation, **how
        )

    @staticmethod
    def _n_clusters(sampler, quota):
        """Clusters added in a round buying ``quota`` labels (room for a draw)."""
        if quota < 2:  # no room for a medoid and a draw: the round is uniform
            return 0
        if isinstance(sampler.n_clusters, Integral):
            k = int(sampler.n_clusters)
        else:
            k = max(1, int(round(sampler.n_clusters * quota)))
        return min(k, max(quota - 1, 1))

    def _prefix_clustering(self, X, sampler, n_clusters, rng, groups):
        """Centres in D^z seeding order (a prefix ordering) and their medoids.

        With ``groups`` by the federated clustering (Lloyd rounds on secure
        sums): every client ends up holding the centres.
        """
        clusterer = clone(sampler).set_params(
            budget=n_clusters,
            n_clusters=n_clusters,
            holder_constant=np.inf,
            sampling="iid",
            random_state=rng,
        )
        clusterer.fit(X, groups=groups)
        return (
            clusterer.cluster_centers_,
            clusterer.medoid_indices_,
            clusterer.communication_,
        )

    def _fit_model(self, X, labels, rows, weights, params, final=False):
        """The estimator fitted on ``rows`` with their weights.

        A model between rounds whose rows hold one class only is the constant
        classifier of that class (most classifiers refuse to fit one class):
        every other label then has the largest loss.
        """
        y_rows = labels.values[rows]
        estimator = clone(self.estimator)
        if self._is_classifier() and _n_distinct(y_rows) < 2:
            if not final:
                return DummyClassifier(strategy="prior").fit(X[rows], y_rows)
            raise ValueError(
                f"The {rows.size} labels bought hold one class only "
                f"({y_rows[0]!r}): a classifier needs at least two classes. "
                "Raise the budget (a rare class needs more labels to be found), "
                "or use more rounds (n_rounds) so that later rounds can look "
                "for it."
            )
        fit_params = {
            k: (v[rows] if _per_row(v, X.shape[0]) else v) for k, v in params.items()
        }
        if self.weighted:
            # Divided by their mean: a constant factor, so the weighted loss
            # stays proportional to the unbiased estimate, and a penalized
            # model is regularized as for the labels bought (weights summing
            # to n would weaken its penalty n / b-fold).
            user = fit_params.pop("sample_weight", None)
            w = weights / weights.mean()
            w = w if user is None else w * np.asarray(user)
            fit_params.update(self._weight_param(estimator, w))
        return estimator.fit(X[rows], y_rows, **fit_params)

    def _weight_param(self, estimator, w):
        if routing_enabled():
            return {"sample_weight": w}
        if isinstance(estimator, Pipeline):
            return {f"{estimator.steps[-1][0]}__sample_weight": w}
        if not has_fit_parameter(estimator, "sample_weight"):
            raise ValueError(
                f"{type(estimator).__name__}.fit does not accept sample_weight, so "
                "the importance weights of the selected rows cannot reach it. "
                "Pass weighted=False to fit it unweighted (its training loss is "
                "then not an unbiased estimate), or wrap an estimator that takes "
                "sample_weight."
            )
        return {"sample_weight": w}


def _per_row(value, n_samples):
    return (
        hasattr(value, "__len__")
        and not isinstance(value, str)
        and len(value) == n_samples
    )


def _n_distinct(values):
    return len(set(values.tolist()))


class _Labels:
    """The labels ``y`` as the selection reads them: one batch at a time.

    Reading a batch records it; a batch with an unknown label stops the
    selection with a :class:`MissingLabelsError`, which
    :meth:`ActiveEstimator.query` turns into the rows to label next.
    """

    def __init__(self, values):
        self.values = values

    def read(self, batch, record):
        record.append(batch.rows)
        missing = batch.rows[_is_missing(self.values[batch.rows])]
        if missing.size:
            raise MissingLabelsError(
                f"{missing.size} of the {batch.rows.size} rows of batch "
                f"{len(record)} (round {batch.round}, {batch.kind}) have no "
                f"label, e.g. rows {missing[:10].tolist()}. Call query(X, y) "
                "to list the rows to label next.",
                missing,
            )
