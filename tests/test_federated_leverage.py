"""Federated leverage scores: equal to centralized, and no raw row leaves a client."""

import numpy as np
import pytest

from skfal import LeverageScoreSampler
from skfal._federated import Channel, _leverage, run_fedsvd_leverage, run_qr_leverage
from skfal._federated._masks import client_shared_rotation
from skfal._validation import check_groups
from tests._helpers import matrix_with_known_basis

PROTOCOLS = ["qr", "fedsvd"]
RUN = {"qr": run_qr_leverage, "fedsvd": run_fedsvd_leverage}


def fit_both(X, groups, protocol, **kwargs):
    central = LeverageScoreSampler(random_state=0, **kwargs).fit(X)
    fed = LeverageScoreSampler(protocol=protocol, random_state=0, **kwargs).fit(
        X, groups=groups
    )
    return central, fed


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("n_clients", [1, 2, 10])
def test_federated_equals_centralized(protocol, n_clients):
    # Both protocols compute the leverage scores of the stacked matrix, which
    # do not depend on how its rows are split or rotated: P X Q and X Q have
    # the column space of X mapped by orthogonal maps, which preserve norms.
    X, exact = matrix_with_known_basis(1000, 8, 1e2, random_state=1)
    groups = np.random.RandomState(2).randint(n_clients, size=1000)
    central, fed = fit_both(X, groups, protocol, budget=30, sampling="iid")
    assert np.max(np.abs(fed.scores_ - exact) / exact) < 1e-10
    assert np.allclose(fed.scores_, central.scores_, rtol=1e-10, atol=0)
    # Same random_state, same scores: the server's i.i.d. draw selects the
    # same rows and weights (pivotal tournaments run at each client, so only
    # their law is the centralized one: see test_federated_pivotal_law).
    assert np.array_equal(fed.sample_indices_, central.sample_indices_)
    assert np.allclose(fed.sample_weight_, central.sample_weight_)
    assert np.allclose(fed.transform(X)[:, 0], central.scores_, rtol=1e-9)
    assert len(fed.clients_) == n_clients


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_federated_ill_conditioned(protocol):
    X, exact = matrix_with_known_basis(2000, 10, 1e8, random_state=3)
    groups = np.random.RandomState(4).randint(5, size=2000)
    fed = LeverageScoreSampler(protocol=protocol, random_state=0).fit(X, groups=groups)
    assert np.max(np.abs(fed.scores_ - exact) / exact) < 1e-6


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_string_labels_shuffled_rows_small_clients(protocol):
    # Clients of 1 and 3 rows (fewer than d = 6), string labels, rows of
    # each client scattered over X.
    rng = np.random.RandomState(5)
    X = rng.standard_normal((300, 6))
    labels = np.array(["alice"] * 150 + ["bob"] * 146 + ["carol"] * 3 + ["dave"])
    groups = labels[rng.permutation(300)]
    if protocol == "fedsvd":
        # A FedSVD upload of at most d rows gives them away to whoever learns
        # Q (module docstring of skfal._federated._leverage): refused.
        with pytest.raises(ValueError, match=r"clients \[2, 3\] hold \[3, 1\] rows"):
            fit_both(X, groups, protocol, budget=12)
        return
    central, fed = fit_both(X, groups, protocol, budget=12)
    assert np.allclose(fed.scores_, central.scores_, rtol=1e-10, atol=0)
    assert list(fed.clients_) == ["alice", "bob", "carol", "dave"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fit_intercept_federated(protocol):
    # Each client appends the constant column to its own rows.
    rng = np.random.RandomState(15)
    X = rng.standard_normal((200, 3)) + [3.0, 0.0, -4.0]
    central, fed = fit_both(X, rng.randint(4, size=200), protocol, fit_intercept=True)
    assert fed.rank_ == 4
    assert np.allclose(fed.scores_, central.scores_, rtol=1e-10)
    assert np.allclose(fed.transform(X)[:, 0], central.scores_, rtol=1e-9)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_rank_deficient_federated(protocol):
    rng = np.random.RandomState(6)
    X = rng.standard_normal((200, 4))
    X = np.hstack([X, X[:, :1] - X[:, 1:2]])
    central, fed = fit_both(X, rng.randint(3, size=200), protocol)
    assert fed.rank_ == 4
    assert np.allclose(fed.scores_, central.scores_, atol=1e-10)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_parallel_clients_same_result(protocol):
    rng = np.random.RandomState(7)
    X, groups = rng.standard_normal((400, 5)), rng.randint(4, size=400)
    a = LeverageScoreSampler(protocol=protocol, random_state=0, n_jobs=1).fit(
        X, groups=groups
    )
    b = LeverageScoreSampler(protocol=protocol, random_state=0, n_jobs=2).fit(
        X, groups=groups
    )
    # Fresh rotation and masks every fit: the scores agree to rounding.
    assert np.allclose(a.scores_, b.scores_, rtol=1e-12, atol=0)
    assert np.array_equal(a.sample_indices_, b.sample_indices_)


@pytest.mark.parametrize("block", [1, 7, 1000])
def test_fedsvd_block_size_does_not_change_scores(block):
    rng = np.random.RandomState(8)
    X, groups = rng.standard_normal((150, 4)), rng.randint(3, size=150)
    central, fed = fit_both(X, groups, "fedsvd", mask_block_size=block)
    assert np.allclose(fed.scores_, central.scores_, rtol=1e-10)


def contains_raw_row(array, X):
    """Whether any row of ``array`` equals (up to sign) a row of ``X``."""
    array = np.atleast_2d(array)
    if array.shape[1] != X.shape[1]:
        return False
    diff = np.minimum(
        np.abs(array[:, None, :] - X[None]).max(-1),
        np.abs(array[:, None, :] + X[None]).max(-1),
    )
    return bool(np.any(diff < 1e-8))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_upload_contains_a_raw_row(protocol, monkeypatch):
    rng = np.random.RandomState(9)
    X = rng.standard_normal((120, 5))
    # qr: a single-row client (its upload is securely aggregated); fedsvd
    # refuses clients of at most d rows, so its smallest client has 6.
    sizes = [60, 50, 9, 1] if protocol == "qr" else [60, 45, 9, 6]
    groups = np.repeat([0, 1, 2, 3], sizes)
    _, client_rows = check_groups(groups, 120)

    # Record every argument a server step receives, and the secret rotation.
    server_inputs, rotations = [], []
    for name in ["server_masked_svd", "server_combine_r"]:
        original = getattr(_leverage, name)

        def spy(*args, _original=original):
            server_inputs.extend(args)
            return _original(*args)

        monkeypatch.setattr(_leverage, name, spy)
    real_rotation = _leverage.client_shared_rotation
    monkeypatch.setattr(
        _leverage,
        "client_shared_rotation",
        lambda *a: rotations.append(real_rotation(*a)) or rotations[-1],
    )

    channel = Channel(record=True)
    RUN[protocol](X, client_rows, np.random.RandomState(0), channel)
    uploads = [m[3] for m in channel.messages if m[1] == "up"]
    assert uploads and server_inputs
    flat = []
    for item in server_inputs:
        flat.extend(item if isinstance(item, list) else [item])
    for array in uploads + flat:
        assert not contains_raw_row(array, X)
        assert not any(
            np.allclose(array, r) for r in rotations if array.shape == r.shape
        )
    # A row that *was* uploaded would be caught: the check is not vacuous.
    assert contains_raw_row(-X[3:4], X)


def test_qr_upload_is_rotated_cholesky_factor():
    # The R_i a client uploads is the Cholesky factor of Q^T X_i^T X_i Q:
    # upper triangular, non-negative diagonal, O(d^2) numbers whatever n_i.
    rng = np.random.RandomState(10)
    X_i = rng.standard_normal((500, 4))
    Q = client_shared_rotation(4, 11)
    r0, count = _leverage.client_own_r(X_i)
    R_i = _leverage.client_r_factor(r0, Q)
    assert R_i.shape == (4, 4) and count[0] == 500
    assert np.allclose(R_i, np.linalg.cholesky(Q.T @ X_i.T @ X_i @ Q).T)


def test_communication_accounting():
    # Byte counts follow from the message shapes: the qr protocol uploads
    # min(n_i, d) x d floats and a count per client; fedsvd the n x d masked rows.
    rng = np.random.RandomState(12)
    n, d = 500, 6
    X = rng.standard_normal((n, d))
    groups = np.repeat([0, 1, 2], [300, 197, 3])
    budget = 20
    qr = LeverageScoreSampler(budget=budget, random_state=0).fit(X, groups=groups)
    comm = qr.communication_
    # r_factor: the row counts, the factors' heights, the secure maximum's
    # marks (69 coarse + 32 fine bins per column), each factor's masked Gram
    # digits (9 per entry of the d x d upper triangle, whatever the factors'
    # heights or the number of clients); the summed marks come back down.
    k, digits = 3, 9 * d * (d + 1) // 2
    marks = d * (69 + 32)
    assert comm["r_factor"]["up"] == 8 * (k + k + k * marks + k * digits)
    assert comm["r_factor"]["down"] == 8 * k * marks
    # Key agreement: public keys up and the leader's k sealed group secrets
    # (48 bytes); down, per client the session id (16), the ring seed (32),
    # its k - 1 neighbours' ids and keys, the leader's key; the leader all k
    # keys; the others their sealed secret.
    assert comm["key_agreement"] == {
        "up": 32 * k + 48 * k,
        "down": k * (16 + 32 + (k - 1) * (8 + 32) + 32) + 32 * k + 48 * (k - 1),
    }
    assert comm["combined_r"]["down"] == 3 * 8 * (d * d + 1)
    assert comm["scores"]["up"] == 8 * n
    # Each client gets its selected rows' local indices and their weights.
    assert comm["selection"]["down"] == (8 + 8) * budget
    fedsvd = LeverageScoreSampler(budget=budget, protocol="fedsvd", random_state=0)
    groups = np.repeat([0, 1, 2], [300, 190, 10])  # FedSVD clients hold > d rows
    comm = fedsvd.fit(X, groups=groups).communication_
    assert comm["masked_data"]["up"] == 8 * n * d
    # Only V' S^{-1} and the row count come down: each client scores its rows
    # X_i Q V' S^{-1} itself, FALE's n_i x d download of U'_i is not needed.
    assert comm["svd"]["down"] == 3 * 8 * (d * d + 1)
    assert LeverageScoreSampler().fit(X).communication_ == {}


@pytest.mark.parametrize(
    "groups, match",
    [
        (np.zeros(9), "groups has 9 entries but X has 10 rows"),
        (np.zeros((10, 2)), "1-D array"),
        (np.r_[np.zeros(9), np.nan], "NaN"),
        (np.array([1, "a"] * 5, dtype=object), "one type"),
    ],
)
def test_bad_groups(groups, match):
    X = np.random.RandomState(13).standard_normal((10, 2))
    with pytest.raises(ValueError, match=match):
        LeverageScoreSampler().fit(X, groups=groups)


hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")

_X_PROPERTY = np.random.RandomState(14).standard_normal((24, 3))
_CENTRAL_SCORES = LeverageScoreSampler(budget=2).fit(_X_PROPERTY).scores_


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(
    groups=st.lists(
        st.sampled_from(["a", "b", "c", "d", "e"]), min_size=24, max_size=24
    ),
    protocol=st.sampled_from(PROTOCOLS),
    block=st.integers(1, 30),
)
def test_any_split_gives_the_centralized_scores(groups, protocol, block):
    # Whatever the split of rows among clients (any sizes, one client, empty
    # labels absent), the global scores do not depend on it; FedSVD refuses
    # clients of at most d rows (test_string_labels_shuffled_rows_small_clients).
    fed = LeverageScoreSampler(budget=2, protocol=protocol, mask_block_size=block)
    sizes = np.unique(groups, return_counts=True)[1]
    if protocol == "fedsvd" and sizes.min() <= _X_PROPERTY.shape[1]:
        with pytest.raises(ValueError, match="protocol='fedsvd' uploads"):
            fed.fit(_X_PROPERTY, groups=np.array(groups))
        return
    fed.fit(_X_PROPERTY, groups=np.array(groups))
    assert np.allclose(fed.scores_, _CENTRAL_SCORES, rtol=1e-9, atol=0)
