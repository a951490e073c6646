"""Secure aggregation: keys agree, masks cancel, uploads look uniform, bounds hold."""

import math

import numpy as np
import pytest

from skfal._federated import Channel
from skfal._federated._secure import (
    client_key_pair,
    client_mask,
    client_pair_secrets,
    run_key_agreement,
    run_secure_bounds,
    run_secure_stack,
    run_secure_sum,
    x25519,
)
from skfal._linalg import r_factor


def setup(n_clients, seed=0):
    channel = Channel(record=True)
    secure = run_key_agreement(n_clients, 1234, np.random.RandomState(seed), channel)
    return secure, channel


def test_x25519_matches_rfc7748():
    # RFC 7748, section 5.2 (first vector) and section 6.1 (Alice and Bob).
    scalar = bytes.fromhex(
        "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"
    )
    point = bytes.fromhex(
        "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"
    )
    assert x25519(scalar, point).hex() == (
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
    )
    alice = bytes.fromhex(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
    )
    bob = bytes.fromhex(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
    )
    base = (9).to_bytes(32, "little")
    alice_public, bob_public = x25519(alice, base), x25519(bob, base)
    assert alice_public.hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert bob_public.hex() == (
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    )
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert x25519(alice, bob_public).hex() == shared
    assert x25519(bob, alice_public).hex() == shared


def test_pairwise_secrets_agree_and_differ():
    pairs = [client_key_pair(seed) for seed in (11, 12, 13)]
    publics = [p[1] for p in pairs]
    secrets = [client_pair_secrets(pairs[c][0], publics, c) for c in range(3)]
    for i in range(3):
        assert set(secrets[i]) == {0, 1, 2} - {i}
        for j in secrets[i]:
            assert secrets[i][j] == secrets[j][i]  # Diffie-Hellman agrees
    assert len({secrets[0][1], secrets[0][2], secrets[1][2]}) == 3


def test_masks_cancel_exactly_in_the_sum():
    secure, _ = setup(3)
    words = [np.arange(5, dtype=np.uint64) * (c + 1) for c in range(3)]
    masked = [
        client_mask(words[c], c, [0, 1, 2], secure.secrets[c], 7) for c in range(3)
    ]
    total = masked[0] + masked[1] + masked[2]  # modulo 2^64
    assert np.array_equal(total, words[0] + words[1] + words[2])
    assert not np.array_equal(masked[0], words[0])


@pytest.mark.parametrize("n_clients", [2, 3, 7])
def test_secure_sum_is_the_sum_at_every_scale(n_clients):
    # Columns from 1e-300 to 1e300: fixed point with a per-column bound keeps
    # each column's sum to k rounding steps of 2^(E - 62), E <= the largest
    # entry's exponent + log2(k), plus one float64 rounding of the result.
    rng = np.random.RandomState(n_clients)
    scales = 10.0 ** np.array([-300, -150, -8, 0, 8, 150, 300])
    values = {c: rng.standard_normal((4, 7)) * scales for c in range(n_clients)}
    values[0][:, 3] = 0.0  # a client with a zero column
    secure, channel = setup(n_clients)
    units, bounds = run_secure_sum(
        values, secure, channel, "test", np.random.RandomState(1)
    )
    stack = np.stack(list(values.values()))
    total = np.apply_along_axis(math.fsum, 0, stack)  # correctly rounded sums
    largest = np.max([np.abs(v).max(axis=0) for v in values.values()], axis=0)
    error = np.abs(np.ldexp(units, bounds) - total) / largest
    assert np.all(error < (n_clients + 1) * 2.0**-52)


def test_bounds_are_the_largest_exponent_plus_headroom():
    secure, channel = setup(3)
    magnitudes = {
        0: np.array([1.0, 0.0, 3e-200]),
        1: np.array([5.0, 0.0, 1e100]),
        2: np.array([0.7, 0.0, 2.0]),
    }
    bounds, zero = run_secure_bounds(
        magnitudes, secure, channel, "scales", 2, np.random.RandomState(0)
    )
    # 5 < 2^3, 1e100 < 2^333; the all-zero column gets any bound (0).
    assert bounds.tolist() == [3 + 2, 0, 333 + 2]
    assert zero.tolist() == [False, True, False]


def test_server_sees_uniform_words_whatever_the_clients_hold():
    # Each masked upload is the client's words plus uniform masks modulo
    # 2^64, so it is uniform itself: the bits of a client uploading zeros and
    # of one uploading huge values are balanced alike (binomial tolerance of
    # 6 standard deviations over 64 x 400 bits).
    secure, channel = setup(3)
    values = {0: np.zeros(400), 1: np.full(400, 1e300), 2: np.arange(400.0)}
    run_secure_sum(values, secure, channel, "test", np.random.RandomState(2))
    uploads = [m for m in channel.messages if m[0] == "test" and m[1] == "up"]
    shares = [m[3] for m in uploads if m[3].shape == (400,)]
    assert len(shares) == 3
    for share in shares:
        bits = np.unpackbits(share.view(np.uint8))
        n = bits.size
        assert abs(bits.sum() - n / 2) < 6 * np.sqrt(n / 4)


def test_secure_stack_reveals_the_gram_matrix_and_the_r_factor():
    # The server's M [R_1; R_2; R_3] has the Gram matrix of the stack, so its
    # R factor is the stack's; yet no block of it is any client's R_i.
    rng = np.random.RandomState(5)
    factors = {
        c: r_factor([rng.standard_normal((n, 4))], 4) for c, n in enumerate([10, 2, 30])
    }
    secure, channel = setup(3)
    units, bounds = run_secure_stack(
        factors, secure, channel, "stack", 99, np.random.RandomState(6)
    )
    mixed = np.ldexp(units, bounds)
    stack = np.vstack(list(factors.values()))
    assert mixed.shape == stack.shape
    assert np.allclose(mixed.T @ mixed, stack.T @ stack, rtol=1e-13, atol=1e-13)
    assert np.allclose(r_factor([mixed], 4), r_factor([stack], 4), rtol=1e-12)
    for r in factors.values():
        for start in range(mixed.shape[0] - r.shape[0] + 1):
            assert not np.allclose(mixed[start : start + r.shape[0]], r, atol=1e-3)


def test_one_participant_among_several_is_refused():
    secure, channel = setup(3)
    with pytest.raises(ValueError, match="needs at least 2 clients in the sum"):
        run_secure_sum({1: np.ones(3)}, secure, channel, "t", np.random.RandomState(0))
    # A federation of one client has nobody to hide from but the server.
    secure, channel = setup(1)
    units, bounds = run_secure_sum(
        {0: np.ones(3)}, secure, channel, "t", np.random.RandomState(0)
    )
    assert np.array_equal(np.ldexp(units, bounds), np.ones(3))


def test_a_colluding_client_unmixes_the_stack_as_documented():
    # The threat model says: the server colluding with one client (who knows
    # the mixing matrix M) recovers every client's R_i from M [R_1; ...].
    # This test shows that claim is true, so the docs do not understate it.
    from skfal._federated._secure import _mixing

    rng = np.random.RandomState(7)
    factors = {
        c: r_factor([rng.standard_normal((n, 3))], 3) for c, n in enumerate([8, 5])
    }
    secure, channel = setup(2)
    units, bounds = run_secure_stack(
        factors, secure, channel, "stack", 41, np.random.RandomState(8)
    )
    mixed = np.ldexp(units, bounds)
    unmixed = _mixing(mixed.shape[0], 41).T @ mixed
    assert np.allclose(unmixed[:3], factors[0], atol=1e-12)
    assert np.allclose(unmixed[3:], factors[1], atol=1e-12)


def test_a_non_finite_upload_is_a_clear_error():
    # Fixed point cannot encode inf or NaN: a silent wrong sum otherwise.
    secure, channel = setup(2)
    values = {0: np.array([1.0, np.inf]), 1: np.ones(2)}
    with pytest.raises(ValueError, match="'t' upload is not finite"):
        run_secure_sum(values, secure, channel, "t", np.random.RandomState(0))
