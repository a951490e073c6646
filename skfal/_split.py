"""Non-IID client splits for experiments, as in the FALE paper."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import column_or_1d

from skfal._compat import Interval, validate_params


@validate_params(
    {
        "y": ["array-like"],
        "n_clients": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def non_iid_split(y, n_clients=10, *, alpha=5.0, random_state=None):
    """Assign rows to clients non-IID by their target, as in FALE's experiments.

    The target is cut into ``n_clients`` bins of equal size (its quantiles),
    each bin is treated as a class, and the rows of each bin are shared among
    the clients in proportions drawn from ``Dirichlet(alpha, ..., alpha)``
    (Yurochkin et al., 2019). Small ``alpha`` gives each client a few target
    ranges; large ``alpha`` tends to an IID split. Clients get different
    numbers of rows, and some may miss some bins (or, rarely, get no row).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Regression target used for binning.
    n_clients : int, default=10
        Number of clients, and of target bins.
    alpha : float, default=5.0
        Dirichlet concentration; the paper uses 5.
    random_state : int, RandomState instance or None, default=None
        Controls the proportions and which rows go where.

    Returns
    -------
    groups : ndarray of shape (n_samples,)
        Client label (``0`` to ``n_clients - 1``) of each row, to pass as
        ``groups``.

    References
    ----------
    .. [1] M. Yurochkin et al., "Bayesian Nonparametric Federated Learning of
       Neural Networks", ICML 2019.
    .. [2] Y.-P. Tang et al., "Efficient Heterogeneity-Aware Federated Active
       Data Selection", ICML 2025, section 5.1.

    Examples
    --------
    >>> import numpy as np
    >>> from skfal import non_iid_split
    >>> y = np.arange(1000.0)
    >>> groups = non_iid_split(y, n_clients=4, alpha=0.5, random_state=0)
    >>> groups.shape
    (1000,)
    >>> sorted(np.unique(groups).tolist())
    [0, 1, 2, 3]
    """
    y = column_or_1d(y, dtype=np.float64)
    if y.shape[0] == 0:
        raise ValueError(
            "y is empty: non_iid_split assigns rows to clients and needs at "
            "least one row."
        )
    if not np.all(np.isfinite(y)):
        raise ValueError("Input y contains NaN or infinity; bin a finite target.")
    rng = check_random_state(random_state)
    edges = np.quantile(y, np.linspace(0, 1, n_clients + 1)[1:-1])
    bins = np.searchsorted(edges, y, side="right")
    groups = np.empty(y.shape[0], dtype=np.int64)
    for b in range(n_clients):
        rows = rng.permutation(np.flatnonzero(bins == b))
        shares = dirichlet_shares(n_clients, alpha, rng)
        cuts = (np.cumsum(shares)[:-1] * rows.shape[0]).astype(np.int64)
        for client, part in enumerate(np.split(rows, cuts)):
            groups[part] = client
    return groups


def dirichlet_shares(n_clients, alpha, random_state):
    """One draw of ``Dirichlet(alpha, ..., alpha)`` over ``n_clients`` clients.

    For ``alpha >= 1`` numpy's own draw. Below 1, the Gamma variates it
    normalises underflow to 0 (for ``alpha <= 1e-4`` all of them, so the
    shares are NaN and every row lands on one client), so the Gammas are
    drawn in log space instead: ``log G = log G' + log(U) / alpha`` with
    ``G' ~ Gamma(alpha + 1)`` and ``U ~ Uniform(0, 1)`` has ``G ~ Gamma(alpha)``
    (Marsaglia and Tsang, 2000), and the shares are ``exp(log G - max log G)``
    normalised, exact however small ``alpha``. They are compared as
    ``alpha log G``, which does not overflow for any positive ``alpha``.
    """
    if alpha >= 1:
        return random_state.dirichlet(np.full(n_clients, alpha))
    with np.errstate(divide="ignore", over="ignore"):
        scaled = alpha * np.log(
            random_state.standard_gamma(alpha + 1.0, n_clients)
        ) + np.log(random_state.random_sample(n_clients))
        shares = np.exp((scaled - scaled.max()) / alpha)
    return shares / shares.sum()
