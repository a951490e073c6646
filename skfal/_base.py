"""What skfal estimators share: a link to their docs, and the samplers'
``fit_resample``, one output column and their federated protocol."""

from typing import NamedTuple

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from skfal._compat import check_feature_names_in, safe_indexing
from skfal._federated import Transport, pivotal_selection, run_pivotal_selection
from skfal._sampling import (
    census,
    draw_until_distinct,
    inclusion_from_terms,
    inclusion_terms,
    mixed_probabilities,
    pivotal_select,
    tree_depth,
)

DOCS_URL = "https://skfal.readthedocs.io/en/latest/"


def select_rows(
    X,
    scores,
    n_selected,
    rng,
    *,
    sampling,
    uniform_mix=0.0,
    weighting="hansen-hurwitz",
    eligible=None,
    federation=None,
    order=None,
):
    """The selection every sampler makes: ``n_selected`` rows by ``scores``.

    Every row when ``n_selected`` is all of them (a census, weight 1).
    Otherwise the probabilities mix the scores with uniform
    (``uniform_mix``) and the rows are drawn by ``sampling``: ``"pivotal"``
    (exactly ``n_selected`` rows with inclusion probabilities
    ``min(1, c p)``, Horvitz-Thompson weights; over the clients when
    ``federation`` is given) or ``"iid"`` (FALE's draw until distinct, with
    ``weighting``, by the server). Rows outside ``eligible`` (a boolean
    mask) are never drawn.

    ``federation`` is ``(transport, counts)`` (a
    :class:`~skfal._federated.Transport` whose clients kept their scores,
    and each client's number of rows; ``X`` may then be ``None``), or the
    simulation's ``(client_rows, channel)``, the scores handed to the
    clients. ``order``: the rows in the order of their spatial tree (of
    :func:`~skfal._sampling.tree_depth` levels), when the caller has it;
    centralized pivotal sampling computes it from ``X`` otherwise.

    Returns
    -------
    selection : Selection
    """
    n_samples = scores.shape[0]
    if n_selected == n_samples and eligible is None:
        return census(n_samples)
    if sampling == "iid":
        p = mixed_probabilities(scores, uniform_mix, eligible)
        return draw_until_distinct(p, n_selected, rng, weighting)
    terms = inclusion_terms(scores, n_selected, uniform_mix, eligible)
    depth = tree_depth(n_samples, n_selected)
    if federation is None:
        pi = inclusion_from_terms(scores, terms, eligible)
        return pivotal_select(X, pi, rng, depth, order)
    if isinstance(federation[0], Transport):
        transport, counts = federation
        return pivotal_selection(
            transport,
            scores,
            terms,
            rng,
            max_depth=depth,
            counts=counts,
            eligible=eligible,
        )
    client_rows, channel = federation
    return run_pivotal_selection(
        X, client_rows, scores, terms, rng, channel, max_depth=depth, eligible=eligible
    )


def check_resample_target(y, name):
    """Raise a ValueError up front when ``fit_resample`` is given no labels.

    ``fit_resample`` returns the selected rows' labels; without them the
    whole selection would run only to fail on ``y[sample_indices_]``.
    """
    if y is None:
        raise ValueError(
            f"{name}.fit_resample returns the selected rows with their labels, "
            "so it needs y, but y is None. Pass y (NaN where a label is "
            "unknown; only the selected rows' entries are returned), or call "
            "fit(X) and read sample_indices_ to select rows without labels."
        )


class DocLinkMixin:
    """Link the estimator's HTML representation to its API page.

    scikit-learn's HTML repr shows a "?" linking to the documentation of
    the estimator when ``_doc_link_module`` is the estimator's package; the
    template names the page autosummary generates for each public class.
    """

    _doc_link_module = "skfal"
    _doc_link_template = DOCS_URL + "generated/{estimator_module}.{estimator_name}.html"


class FederatedFit(NamedTuple):
    """A sampler's in-process federated fit, as the training after it needs it.

    Attributes
    ----------
    transport : InProcessTransport
        The fit's federation: each client holds its rows, its labels (the
        simulation's oracle), the keys agreed in this fit, and its part of
        the selection (which of its rows to label and their weights, under
        ``"selection_indices"`` and ``"selection_weights"``). Training goes
        on over it, so the fit agrees on keys once.
    counts : dict of int to int
        Each client's number of rows.
    """

    transport: object
    counts: dict


class SamplerMixin(TransformerMixin):
    """Mixin for samplers: ``fit_resample`` and ``get_feature_names_out``.

    A sampler's ``fit(X, y=None, groups=None)`` sets ``sample_indices_`` and
    ``sample_weight_``; its ``transform`` returns one score per row, named
    ``_output_name``.

    The protocol of the samplers that run federated (the estimators and
    :mod:`skfal.flower` compose through it, never through a sampler's
    state): ``_fit_federated(transport, n_features, rng)`` runs the
    server's side over any transport, leaves each client its part of the
    selection and returns each client's number of rows;
    ``_fit_in_federation(X, y, groups)`` is ``fit`` that returns the
    :class:`FederatedFit` of an in-process federated fit (``None`` without
    ``groups``). :class:`~skfal.FederatedActiveRegressor` trains over that
    federation; with a sampler that has neither, it sends each client the
    sampler's ``sample_indices_`` and ``sample_weight_`` itself.
    """

    _output_name = "score"

    def _reads_labels(self):
        """Whether ``fit(X, y)`` reads labels (the selection then depends on them)."""
        return False

    def fit_resample(self, X, y, groups=None):
        """Fit, then return the selected rows and their labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets; only the selected rows' entries are returned (and read,
            by a sampler whose selection depends on labels), so the others
            may be missing.
        groups : array-like of shape (n_samples,), default=None
            Client label of each row.

        Returns
        -------
        X_resampled : array-like of shape (n_selected, n_features)
            ``X[sample_indices_]``, in the type of ``X``.
        y_resampled : array-like of shape (n_selected,) or (n_selected, n_outputs)
            ``y[sample_indices_]``.
        """
        check_resample_target(y, type(self).__name__)
        check_consistent_length(X, y)
        self.fit(X, y, groups=groups)
        return (
            safe_indexing(X, self.sample_indices_),
            safe_indexing(y, self.sample_indices_),
        )

    def get_feature_names_out(self, input_features=None):
        """Name of the one output column.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against the names seen in ``fit``, if any.

        Returns
        -------
        feature_names_out : ndarray of str objects
            A single name, such as ``["leverage_score"]``.
        """
        check_is_fitted(self)
        check_feature_names_in(self, input_features)
        return np.asarray([self._output_name], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]
        # Sparse rows are read as CSR blocks (validate_rows), never densified.
        tags.input_tags.sparse = True
        return tags
