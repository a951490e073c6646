"""Input checks: client labels, partial targets, labels read at chosen rows."""

import subprocess
import sys

import numpy as np
import pytest

from skfal._validation import check_groups, check_labels_at, check_partial_target


def test_check_groups_sorts_clients_and_keeps_rows_ascending():
    groups = np.array(["b", "a", "b", "c", "a"])
    clients, rows = check_groups(groups, 5)
    assert list(clients) == ["a", "b", "c"]
    assert [r.tolist() for r in rows] == [[1, 4], [0, 2], [3]]
    # Every row belongs to exactly one client.
    assert sorted(np.concatenate(rows).tolist()) == list(range(5))


@pytest.mark.parametrize(
    "groups, match",
    [
        (np.zeros(4), "groups has 4 entries but X has 5 rows"),
        (np.zeros((5, 1)), "1-D array"),
        (np.r_[np.zeros(4), np.inf], "NaN or infinity"),
        (np.array([1, "a", 2, "b", 3], dtype=object), "one type"),
    ],
)
def test_check_groups_errors_name_the_fix(groups, match):
    with pytest.raises(ValueError, match=match):
        check_groups(groups, 5)


def test_check_labels_at_names_the_missing_rows():
    y = np.array([1.0, np.nan, 2.0, np.nan])
    check_labels_at(y, np.array([0, 2]), "selected rows", "")  # all present
    with pytest.raises(ValueError, match=r"2 of the 3 selected rows .* \[1, 3\]\. Fix"):
        check_labels_at(y, np.array([0, 1, 3]), "selected rows", "Fix it.")


def test_check_partial_target():
    y = check_partial_target([1, np.nan, 3], 3, "Est")
    assert y.dtype == np.float64 and np.isnan(y[1])
    for bad, match in [
        (None, "Est requires y to be passed"),
        (["a", "b", "c"], "y must be numeric"),
        ([1.0, 2.0], "inconsistent numbers of samples"),
        ([1.0, np.inf, 2.0], "infinity"),
        ([np.nan] * 3, "NaN at every row"),
    ]:
        with pytest.raises(ValueError, match=match):
            check_partial_target(bad, 3, "Est")


def test_check_labels_at_rejects_infinite_labels():
    # An infinite label read at a medoid made its loss infinite and the
    # sensitivity scores silently fell back to distances: an error instead.
    y = np.array([1.0, np.inf, 2.0, -np.inf])
    check_labels_at(y, np.array([0, 2]), "cluster medoids", "")
    with pytest.raises(ValueError, match=r"2 of the 3 cluster medoids have an inf"):
        check_labels_at(y, np.array([0, 1, 3]), "cluster medoids", "")


def test_nothing_imports_dask_unless_x_is_a_dask_array():
    # validate_rows imports skfal._dask (and dask) only for a Dask array, so
    # skfal's import and an in-memory or memory-mapped fit load no dask,
    # installed or not.
    code = (
        "import sys, tempfile, numpy as np, skfal\n"
        "X = np.random.RandomState(0).standard_normal((300, 3))\n"
        "skfal.FederatedActiveRegressor(budget=20, random_state=0).fit(X, X[:, 0])\n"
        "skfal.SensitivitySampler(budget=20, random_state=0).fit(X)\n"
        "with tempfile.TemporaryFile() as f:\n"
        "    m = np.memmap(f, dtype=np.float64, shape=X.shape)\n"
        "    m[:] = X\n"
        "    skfal.LeverageScoreSampler(budget=20, random_state=0).fit(m)\n"
        "loaded = sorted(\n"
        "    m for m, v in sys.modules.items() if m.split('.')[0] == 'dask' and v\n"
        ")\n"
        "assert not loaded and 'skfal._dask' not in sys.modules, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
