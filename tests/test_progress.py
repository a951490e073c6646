"""Progress messages: ``verbose`` 0 is silent, 1 a line per phase, 2 per block."""

import re

import numpy as np
import pytest
import scipy.sparse as sp

import skfal._rows
from skfal import (
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
    UniformSampler,
)

ESTIMATORS = [
    LeverageScoreSampler(budget=20, random_state=0),
    SensitivitySampler(budget=20, random_state=0),
    UniformSampler(budget=20, sampling="pivotal", random_state=0),
    FederatedActiveRegressor(budget=20, random_state=0),
]


def _data(n=3000, d=5):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((n, d))
    return X, X @ np.arange(1.0, d + 1), rng.randint(3, size=n)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
@pytest.mark.parametrize("federated", [False, True])
def test_verbose_levels(estimator, federated, capsys, monkeypatch):
    monkeypatch.setattr(skfal._rows, "_CHUNK_BYTES", 500 * 8 * 5)  # 500 rows
    X, y, groups = _data(n=9000)
    groups = groups if federated else None
    name = type(estimator).__name__
    # The regressor's sampler gets its verbose and reports under its name.
    line = re.compile(r"^\[(\w+)\] .+ \(\d+\.\d\d s\)$")

    estimator.set_params(verbose=0).fit(X, y, groups=groups)
    assert capsys.readouterr().out == ""

    silent = estimator.sample_indices_.copy()
    estimator.set_params(verbose=1).fit(X, y, groups=groups)
    phases = capsys.readouterr().out.splitlines()
    assert len(phases) >= 2  # the input, ..., the selection
    assert all(line.match(p) for p in phases), phases
    assert line.match(phases[0]).group(1) == line.match(phases[-1]).group(1) == name
    assert "X: 9,000 x 5 (float64 in memory)" in phases[0]
    assert not any("read rows" in p for p in phases)
    # Each estimator's elapsed times never go down.
    for who in {line.match(p).group(1) for p in phases}:
        times = [
            float(re.search(r"\(([\d.]+) s\)$", p).group(1))
            for p in phases
            if line.match(p).group(1) == who
        ]
        assert times == sorted(times)

    estimator.set_params(verbose=2).fit(X, y, groups=groups)
    blocks = [p for p in capsys.readouterr().out.splitlines() if "read rows" in p]
    # Every pass reads the table in blocks: of 500 rows, or 4096 for the
    # Gram products (their fixed length, which enters the error bound).
    assert blocks and all(line.match(b) for b in blocks)
    spans = [re.search(r"read rows ([\d,]+)-([\d,]+) of", b).groups() for b in blocks]
    assert all(
        0 < int(stop.replace(",", "")) - int(start.replace(",", "")) <= 4096
        for start, stop in spans
    )
    # Messages change nothing: the same selection at every level.
    assert np.array_equal(estimator.sample_indices_, silent)


def test_verbose_describes_sparse_and_memmapped_input(capsys, tmp_path):
    X, _, _ = _data()
    LeverageScoreSampler(budget=20, verbose=1).fit(sp.csr_matrix(X))
    assert "(sparse, 15,000 stored entries)" in capsys.readouterr().out
    table = np.memmap(tmp_path / "x.dat", dtype=np.float32, mode="w+", shape=X.shape)
    table[:] = X
    LeverageScoreSampler(budget=20, verbose=1).fit(table)
    assert "(float32, read in blocks of memmap)" in capsys.readouterr().out


@pytest.mark.parametrize("verbose", [-1, 1.5, "yes"])
def test_bad_verbose_is_a_clear_error(verbose):
    X, _, _ = _data(n=50)
    with pytest.raises(ValueError, match="verbose"):
        LeverageScoreSampler(verbose=verbose).fit(X)
