"""Secure aggregation over a transport: real keys, fresh secrets, masks that
cancel, uploads that look uniform, bounds that hold, a sparse graph.

Each test that guards a protection says which mutation of ``_secure.py`` it
catches; each was checked once by making that mutation by hand.
"""

import math

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from scipy.stats import norm

from skfal._federated import Channel, InProcessTransport, _secure, run_client_step
from skfal._federated._secure import (
    client_key_pair,
    client_mask,
    key_agreement,
    mask_degree,
    mask_partners,
    pair_key,
    secure_bounds,
    secure_stack,
    secure_sum,
)
from skfal._linalg import r_factor


def federation(n_clients, **kept):
    """An in-process transport whose client ``c`` keeps ``kept[name][c]``."""
    states = [
        {"client": c, **{name: values[c] for name, values in kept.items()}}
        for c in range(n_clients)
    ]
    return InProcessTransport(states, Channel(record=True))


def summed(values, participants=None, magnitudes=None, headroom=None):
    """The decoded secure sum of ``values`` (one array per client), as the
    participants decode it, and the transport it ran on."""
    n = len(values)
    participants = list(range(n)) if participants is None else participants
    mags = magnitudes or [
        np.abs(np.reshape(v, (-1, np.shape(v)[-1]))).max(axis=0, initial=0.0)
        for v in values
    ]
    transport = federation(n, v=values, m=mags)
    k = len(participants)
    if headroom is None:
        headroom = math.ceil(math.log2(k)) if k > 1 else 0
    units = secure_sum(transport, participants, "test", "v", "m", headroom)
    transport.flush()
    bounds = transport.states[participants[0]]["v_bounds"]
    return np.ldexp(units, bounds), transport


def test_pair_keys_agree_and_are_bound_to_both_keys_and_the_session():
    # X25519 from `cryptography` and HKDF: both ends derive the same key; a
    # different session or a different peer gives another key. Catches a
    # pair key without the session salt, or one that is not symmetric in
    # the two public keys.
    (a, A), (b, B), (c, C) = (client_key_pair() for _ in range(3))
    session, other = bytes(16), bytes([1]) + bytes(15)
    assert pair_key(a, A, B, session, b"mask") == pair_key(b, B, A, session, b"mask")
    assert pair_key(a, A, B, session, b"mask") != pair_key(a, A, B, other, b"mask")
    assert pair_key(a, A, B, session, b"mask") != pair_key(a, A, C, session, b"mask")
    assert pair_key(a, A, B, session, b"mask") != pair_key(a, A, B, session, b"group")
    # The library's own X25519 agrees with the key pair we drew.
    shared = X25519PrivateKey.from_private_bytes(bytes(a)).exchange(
        X25519PublicKey.from_public_bytes(bytes(B))
    )
    assert shared == X25519PrivateKey.from_private_bytes(bytes(b)).exchange(
        X25519PublicKey.from_public_bytes(bytes(A))
    )


def test_a_low_order_public_key_is_a_clear_error():
    a, A = client_key_pair()
    with pytest.raises(ValueError, match="not a valid X25519 key"):
        pair_key(a, A, np.zeros(32, dtype=np.uint8), bytes(16), b"mask")


def test_key_agreement_is_fresh_and_the_group_secret_never_reaches_the_server():
    # Two key agreements of the same clients share no key and no secret
    # (OS randomness, never a seed); every client opens the same group
    # secret, and no message carries it or a private key. Catches keys or
    # the group secret drawn from a fixed seed, and a leader that sends the
    # group secret unsealed.
    runs = []
    for _ in range(2):
        transport = federation(5)
        key_agreement(transport)
        transport.flush()
        runs.append(transport)
    for transport in runs:
        secrets = {bytes(s["group_secret"]) for s in transport.states}
        assert len(secrets) == 1
        secret = secrets.pop()
        privates = [bytes(s["private_key"]) for s in transport.states]
        for _, _, _, array in transport.channel.messages:
            sent = np.ascontiguousarray(array).tobytes()
            assert secret not in sent
            assert not any(private in sent for private in privates)
    first, second = (
        {bytes(s["public_key"]) for s in transport.states} for transport in runs
    )
    assert not first & second
    assert bytes(runs[0].states[0]["group_secret"]) != bytes(
        runs[1].states[0]["group_secret"]
    )


def test_a_tampered_group_secret_is_refused():
    # ChaCha20-Poly1305 authenticates the leader's sealed secret: a server
    # that flips a bit is caught, not handed a wrong secret.
    transport = federation(3)
    real_tell = transport.tell

    def tamper(step, phase, arrays=None, **kwargs):
        if step == "group_secret":
            arrays = {c: (a[0] ^ np.uint8(1),) for c, a in arrays.items()}
        return real_tell(step, phase, arrays, **kwargs)

    transport.tell = tamper
    key_agreement(transport)
    with pytest.raises(ValueError, match="does not authenticate"):
        transport.flush()


def test_masks_cancel_exactly_in_the_sum():
    rng = np.random.default_rng(0)
    keys = [rng.bytes(32) for _ in range(3)]
    shared = {(i, j): keys[i + j - 1] for i in range(3) for j in range(3) if i != j}
    words = [np.arange(5, dtype=np.uint64) * (c + 1) for c in range(3)]
    masked = [
        client_mask(
            words[c], c, [0, 1, 2], {j: shared[c, j] for j in range(3) if j != c}, 7
        )
        for c in range(3)
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
    values = [rng.standard_normal((4, 7)) * scales for _ in range(n_clients)]
    values[0][:, 3] = 0.0  # a client with a zero column
    total_seen, _ = summed(values)
    total = np.apply_along_axis(math.fsum, 0, np.stack(values))  # correctly rounded
    largest = np.max([np.abs(v).max(axis=0) for v in values], axis=0)
    error = np.abs(total_seen - total) / largest
    assert np.all(error < (n_clients + 1) * 2.0**-52)


def test_bounds_are_the_largest_exponent_plus_headroom():
    magnitudes = [
        np.array([1.0, 0.0, 3e-200]),
        np.array([5.0, 0.0, 1e100]),
        np.array([0.7, 0.0, 2.0]),
    ]
    transport = federation(3, m=magnitudes)
    secure_bounds(transport, [0, 1, 2], "scales", "m", 2, "b")
    transport.flush()
    # 5 < 2^3, 1e100 < 2^333; the all-zero column gets any bound (0).
    for state in transport.states:
        assert state["b"].tolist() == [3 + 2, 0, 333 + 2]
        assert state["b_zero"].tolist() == [False, True, False]


def uploads_of(transport, phase, shape):
    return [
        array
        for p, direction, _, array in transport.channel.messages
        if p == phase and direction == "up" and array.shape == shape
    ]


def test_server_sees_uniform_words_whatever_the_clients_hold():
    # Each masked upload is the client's words plus uniform masks modulo
    # 2^64, so it is uniform itself: the bits of a client uploading zeros and
    # of one uploading huge values are balanced alike (binomial tolerance of
    # 6 standard deviations over 64 x 400 bits). Catches a client step that
    # uploads its words unmasked (client_mask returning its input).
    values = [np.zeros(400), np.full(400, 1e300), np.arange(400.0)]
    _, transport = summed([v[None, :] for v in values])
    shares = uploads_of(transport, "test", (1, 400))
    assert len(shares) == 3
    for share in shares:
        bits = np.unpackbits(share.view(np.uint8))
        n = bits.size
        assert abs(bits.sum() - n / 2) < 6 * np.sqrt(n / 4)


def test_two_runs_of_the_same_sum_share_no_masked_word():
    # Fresh keys every fit: the same values summed twice give the same sum
    # but no upload word in common. Catches pair keys or masks derived from
    # anything fixed (a seed, the round id alone).
    values = [np.arange(50.0)[None, :] * (c + 1) for c in range(3)]
    first, t1 = summed(values)
    second, t2 = summed(values)
    assert np.array_equal(first, second)
    words = [
        np.concatenate([u.reshape(-1) for u in uploads_of(t, "test", (1, 50))])
        for t in (t1, t2)
    ]
    assert np.intersect1d(words[0], words[1]).size == 0


def test_a_client_refuses_to_mask_twice_under_one_round():
    # A server that sends a round id again would get two uploads under the
    # same pairwise masks, whose difference is the difference of the
    # plaintexts. Catches the round check in _masked removed: the second
    # upload then comes back, and the attack below recovers the client's
    # change from the two uploads.
    values = [np.arange(8.0)[None, :] * (c + 1) for c in range(3)]
    _, transport = summed(values)
    state = transport.states[1]
    config = {
        "participants": [0, 1, 2],
        "round": int(state["last_round"][0]),
        "phase": "test",
        "values": "v",
        "bounds": "v_bounds",
    }
    step = _secure.step_masked_words
    fresh = dict(config, round=config["round"] + 1)
    (first,) = step(state, fresh)
    state["v"] = state["v"] + 1.0
    with pytest.raises(ValueError, match="mask under round .* Refused"):
        step(state, fresh)
    # What the refusal prevents: the same masks twice give away the change.
    state["last_round"] = np.array([-1])
    (second,) = step(state, fresh)
    change = _secure.client_decode(
        _secure.decode_units(second - first), state["v_bounds"]
    )
    assert np.allclose(change, 1.0)


def test_the_bin_order_is_fresh_in_every_round():
    # The secure maximum's bins are permuted by the clients' secret, afresh
    # in every masked round: the server cannot tell that two sums' columns
    # fell in the same (permuted) bin. Catches the round id dropped from
    # the order's derivation (one order for the whole fit).
    secret = _secure.fresh_bytes(32)
    orders = [_secure._bin_permutations(4, 69, secret, r) for r in range(3)]
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])
    # Every client derives the same order for a round from the same secret.
    assert np.array_equal(orders[2], _secure._bin_permutations(4, 69, secret, 2))


def test_the_mask_graph_is_sparse_symmetric_and_cancels():
    # Bell et al.'s sparse graph: with 64 clients each masks with 12
    # neighbours, not 63, and the sum is still exact. Catches a graph that
    # is not symmetric (masks would not cancel) and a return to all pairs.
    n = 64
    order = np.random.default_rng(1).permutation(n)
    clients = list(range(n))
    partners = {c: mask_partners(c, clients, order) for c in clients}
    assert mask_degree(n) == 12
    for c in clients:
        assert len(partners[c]) == 12
        assert all(c in partners[j] for j in partners[c])
    values = [np.array([[float(c), 1.0]]) for c in clients]
    total, transport = summed(values)
    assert np.allclose(total, [[sum(clients), n]], rtol=0, atol=1e-9)
    for state in transport.states:
        assert int(state["paired"].sum()) == 12  # pair keys with neighbours only


def test_a_sum_over_some_clients_pairs_them_among_themselves():
    # Participants 0, 5, 9 of 40 are unlikely neighbours on the ring: the
    # server relays the keys of their new partners first, every upload is
    # masked and the sum exact. Catches a participant left with no partner
    # (its upload would be its plaintext).
    n = 40
    values = [np.array([[float(c + 1)] * 64]) for c in range(n)]
    total, transport = summed(values, participants=[0, 5, 9])
    assert np.allclose(total, 1 + 6 + 10, rtol=0, atol=1e-12)
    for share in uploads_of(transport, "test", (1, 64)):
        bits = np.unpackbits(share.view(np.uint8))
        assert abs(bits.sum() - bits.size / 2) < 6 * np.sqrt(bits.size / 4)


def test_secure_stack_reveals_the_gram_matrix_and_the_r_factor():
    # The server's result is an R factor of the stack [R_1; R_2; R_3], as
    # accurate as stacking them in the clear, of d rows whatever the stack's
    # height; each upload (the exact Gram digits of a client's factor) is
    # masked, hence uniform words. Catches digits uploaded unmasked, and
    # digits that are not the exact Gram matrix (a float Gram, or a limb
    # dropped, would miss the 1e-13 match).
    rng = np.random.RandomState(5)
    factors = [r_factor([rng.standard_normal((n, 4))], 4) for n in (10, 2, 30)]
    transport = federation(3, f=factors)
    heights = {c: np.array([f.shape[0]]) for c, f in enumerate(factors)}
    units = secure_stack(transport, heights, "stack", "f")
    transport.flush()
    found = np.ldexp(units, transport.states[0]["share_bounds"])
    stack = np.vstack(factors)
    assert found.shape == (4, 4)
    assert np.allclose(found.T @ found, stack.T @ stack, rtol=1e-13, atol=1e-13)
    assert np.allclose(found, r_factor([stack], 4), rtol=1e-12, atol=1e-13)
    uploads = uploads_of(transport, "stack", (9, 10))
    assert len(uploads) == 3
    for share in uploads:
        bits = np.unpackbits(share.view(np.uint8))
        assert abs(bits.sum() - bits.size / 2) < 6 * np.sqrt(bits.size / 4)


def test_the_secure_stack_is_exact_at_condition_1e8():
    # A stack of condition 1e8 split over four clients: the server's R gives
    # the same leverage scores as a QR of all rows in one place (to 1e-9,
    # the QR's own accuracy there); the Gram matrix in float64, whose
    # condition is 1e16, would not. Catches a Gram summed in float64 or
    # factored in float64 (its Cholesky fails or loses every digit).
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((200, 6)))
    V, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    X = U @ np.diag(np.logspace(0, -8, 6)) @ V.T
    parts = np.array_split(X, 4)
    transport = federation(4, f=parts)
    heights = {c: np.array([p.shape[0]]) for c, p in enumerate(parts)}
    units = secure_stack(transport, heights, "stack", "f")
    transport.flush()
    R = np.ldexp(units, transport.states[0]["share_bounds"])
    central = np.linalg.qr(X, mode="r")
    scores = np.sum((X @ np.linalg.inv(R)) ** 2, axis=1)
    expected = np.sum((X @ np.linalg.inv(central)) ** 2, axis=1)
    assert np.allclose(scores, expected, rtol=0, atol=1e-9)
    assert np.isclose(scores.sum(), 6, atol=1e-9)


def test_a_colluding_client_learns_only_the_stacks_total():
    # The server colluding with client 2 (the group secret and its own pair
    # keys) removes the one mask it knows from client 0's upload: client 0
    # also masks with client 1, so what is left is uniform words, not client
    # 0's Gram digits. Catches client 0 masking with the colluder alone
    # (client_mask skipping its other partners), and guards against a stack
    # hidden by a secret all clients share (the Haar mixing of before, which
    # one colluder unmixed) rather than by pairwise masks.
    rng = np.random.RandomState(7)
    factors = [r_factor([rng.standard_normal((n, 3))], 3) for n in (8, 5, 6)]
    transport = federation(3, f=factors)
    heights = {c: np.array([f.shape[0]]) for c, f in enumerate(factors)}
    secure_stack(transport, heights, "stack", "f")
    transport.flush()
    colluder = transport.states[2]
    (upload,) = [
        m[3]
        for m in transport.channel.messages
        if m[0] == "stack" and m[1] == "up" and m[2] == 0 and m[3].shape == (9, 6)
    ]
    round_id = int(colluder["last_round"][0])
    known = _secure._pair_mask(colluder["pair_keys"][0], round_id, upload.size)
    left = upload.reshape(-1) - known  # client 0 added the mask of (0, 2)
    plain = _secure.client_gram_digits(factors[0], colluder["share_bounds"])
    assert not np.array_equal(left, plain.reshape(-1))
    bits = np.unpackbits(left.view(np.uint8))
    assert abs(bits.sum() - bits.size / 2) < 6 * np.sqrt(bits.size / 4)


def test_one_participant_among_several_is_refused():
    with pytest.raises(ValueError, match=r"only client \[1\] of 3 takes part"):
        summed([np.ones((1, 3))] * 3, participants=[1])
    # A federation of one client has nobody to hide from but the server: no
    # key agreement, no message but its upload.
    total, transport = summed([np.ones((1, 3))])
    assert np.array_equal(total, np.ones((1, 3)))
    assert not [m for m in transport.channel.messages if m[0] == "key_agreement"]


def test_a_non_finite_upload_is_a_clear_error():
    # Fixed point cannot encode inf or NaN: a silent wrong sum otherwise.
    with pytest.raises(ValueError, match="'test' upload is not finite"):
        summed([np.array([[1.0, np.inf]]), np.ones((1, 2))])


def tolerant_federation(values, dropouts):
    """A transport that survives dropouts, whose clients keep ``values`` and
    drop as ``dropouts`` says ({client: (step, "before" or "after")})."""
    mags = [np.abs(v).max(axis=0) for v in values]
    transport = federation(len(values), v=values, m=mags)
    transport.tolerate_dropouts = True
    transport.dropouts = dropouts
    return transport


def tolerant_sum(transport, headroom=4):
    units = secure_sum(transport, list(transport.clients), "test", "v", "m", headroom)
    transport.flush()
    alive = [c for c in transport.clients if c not in transport.dead]
    return np.ldexp(units, transport.states[alive[0]]["v_bounds"])


def test_a_sum_survives_clients_that_drop_before_uploading():
    # Bonawitz et al.'s recovery: clients 3 and 7 drop after the secure
    # maximum, before their masked upload; their partners hand the server
    # shares of their keys, the server removes their pairwise masks from
    # the others' uploads, and the sum of the 10 others is exact. Catches
    # a server that skips removing the dropped clients' masks.
    values = [np.array([[float(c + 1), 1.0]]) for c in range(12)]
    drops = {3: ("masked_words", "before"), 7: ("masked_words", "before")}
    total = tolerant_sum(tolerant_federation(values, drops))
    kept = [c for c in range(12) if c not in (3, 7)]
    assert np.allclose(total, [[sum(c + 1 for c in kept), 10]], rtol=0, atol=1e-12)


def revealed_round_keys(transport, phase="test"):
    """What the server got from the unmask replies: ``[(client, partner,
    round key)]`` (each reply: self-mask shares, dropped partners, keys)."""
    found, gone = [], None
    for p, direction, client, array in transport.channel.messages:
        if p != phase or direction != "up":
            continue
        if array.dtype == np.int64:
            gone = array
        elif gone is not None:
            pairs = zip(gone, array, strict=True)
            found.extend((client, int(j), bytes(key)) for j, key in pairs)
            gone = None
    return found


def test_a_client_that_drops_after_uploading_stays_in_the_sum_and_hidden():
    # Client 4 uploads its masked words and is gone before the unmasking:
    # its partners hand over shares of its self mask, and no key of its
    # pairs, so its upload counts and stays masked. Catches a client step
    # that reveals a round key of a partner whose upload arrived.
    values = [np.array([[float(c + 1)] * 32]) for c in range(9)]
    transport = tolerant_federation(values, {4: ("masked_words", "after")})
    total = tolerant_sum(transport)
    assert np.allclose(total, sum(range(1, 10)), rtol=0, atol=1e-12)
    assert not [r for r in revealed_round_keys(transport) if 4 in r[:2]]


def test_a_late_upload_stays_hidden_by_its_self_mask():
    # The double masking's reason: the server declares client 2 dropped and
    # its partners reveal this round's keys of their pairs with it; if
    # client 2's upload arrives late all the same, its self mask still
    # hides it (its shares are sealed under keys the server never gets).
    # Catches uploads without the self mask (then the late upload, the
    # revealed masks removed, is client 2's words in clear).
    values = [np.full((1, 400), float(c + 1)) for c in range(8)]
    transport = tolerant_federation(values, {2: ("masked_words", "before")})
    tolerant_sum(transport)
    revealed = revealed_round_keys(transport)
    assert {j for _, j, _ in revealed} == {2}
    late_state = transport.states[2]
    config = {
        "participants": list(range(8)),
        "round": transport._rounds - 1,
        "tolerant": True,
    }
    words = _secure.client_encode(values[2], late_state["v_bounds"])
    late = _secure._masked(late_state, words, config)[0].reshape(-1)
    for i, _, key in revealed:  # client i added +mask if i < 2, else -mask
        mask = _secure.round_mask(key, late.size)
        late = late + mask if i < 2 else late - mask
    bits = np.unpackbits(late.view(np.uint8))
    assert abs(bits.sum() - bits.size / 2) < 6 * np.sqrt(bits.size / 4)


def test_a_dropout_reveals_nothing_of_the_earlier_rounds():
    # A reviewer's attack on the first design (a fit-long key, Shamir-shared:
    # one dropout exposed all of that client's earlier uploads). Client 2
    # takes part in a first sum, then drops in a second: the server receives
    # the second round's keys of its pairs only, from which no other
    # round's mask follows (HKDF per round). Catches revealing the pair key
    # itself, or a round key of any other round.
    values = [np.full((1, 8), float(c + 1)) for c in range(8)]
    transport = tolerant_federation(values, {2: ("masked_words", "before", 2)})
    tolerant_sum(transport)
    first_round = transport._rounds - 1
    tolerant_sum(transport)
    last_round = transport._rounds - 1
    revealed = revealed_round_keys(transport)
    assert revealed
    for i, j, key in revealed:
        pair = transport.states[i]["pair_keys"][j]
        assert key == _secure.round_key(pair, last_round)
        assert key not in {bytes(pair), _secure.round_key(pair, first_round)}


def test_the_two_directions_of_a_pair_never_share_a_nonce():
    # A reviewer's attack: both directions of a pair sealed self-mask shares
    # under one key and one nonce, a two-time pad (XOR of the ciphertexts =
    # XOR of the plaintexts). The sender is in the nonce. Catches a nonce
    # without the sender.
    key, aad = bytes(range(32)), b""
    a, b = bytes(40), bytes([7] * 40)
    one = _secure._seal_share(key, 5, 1, a, aad)[:40]
    two = _secure._seal_share(key, 5, 2, b, aad)[:40]
    xor = bytes(x ^ y for x, y in zip(one, two, strict=True))
    assert xor != bytes(x ^ y for x, y in zip(a, b, strict=True))


def test_too_many_dropouts_is_a_clear_error():
    # 8 clients each pair with 6 neighbours; a self mask shared among 6
    # needs 4 of the shares. With 5 clients gone before uploading, a
    # survivor has at most 2 partners left: the sum cannot be unmasked, and
    # says why.
    values = [np.ones((1, 2)) for _ in range(8)]
    drops = {c: ("masked_words", "before") for c in range(5)}
    with pytest.raises(ValueError, match=r"needs 4 of the 6 shares"):
        tolerant_sum(tolerant_federation(values, drops))


def test_without_dropouts_survived_a_missing_reply_names_the_client():
    values = [np.ones((1, 2)) for _ in range(4)]
    transport = federation(4, v=values, m=[np.ones(2)] * 4)
    transport.dropouts = {1: ("masked_words", "before")}
    with pytest.raises(RuntimeError, match=r"No reply from clients \[1\]"):
        secure_sum(transport, [0, 1, 2, 3], "test", "v", "m", 2)


def test_shamir_shares_rebuild_the_secret_from_a_majority_only():
    secret = bytes(range(32))
    shares = _secure.split_secret(secret, 7)
    assert _secure.combine_secret(shares[:4]) == secret
    assert _secure.combine_secret(shares[3:]) == secret
    assert _secure.combine_secret(shares[:3]) != secret


@pytest.mark.parametrize("headroom", [0, 3])
def test_one_client_keeps_the_bounds_the_secure_maximum_gives(headroom):
    # A centralized fit skips the marks: its own exponents plus the
    # headroom are exactly what the secure maximum of several clients
    # holding the same magnitudes gives (zero columns: bound 0).
    magnitudes = np.array([1.0, 0.0, 3e-200, 5e100])
    alone = federation(1, m=[magnitudes])
    secure_bounds(alone, [0], "scales", "m", headroom, "b")
    alone.flush()
    several = federation(3, m=[magnitudes] * 3)
    secure_bounds(several, [0, 1, 2], "scales", "m", headroom, "b")
    several.flush()
    assert alone.states[0]["b"].tolist() == several.states[0]["b"].tolist()
    assert alone.states[0]["b_zero"].tolist() == [False, True, False, False]
    assert not alone.channel.messages  # nothing crossed


def _chacha20_words(key, n_words):
    """The reference: ChaCha20's keystream (RFC 8439, nonce and counter 0)
    from ``cryptography`` directly, as little-endian ``uint64``."""
    stream = Cipher(algorithms.ChaCha20(bytes(key), bytes(16)), mode=None)
    raw = stream.encryptor().update(bytes(8 * n_words))
    return np.frombuffer(raw, dtype=np.uint64)


def test_shared_secrets_are_drawn_from_the_cipher_not_a_statistical_generator():
    # The shared rotations, bin orders and pads are the keystream of
    # ChaCha20 under HKDF(group secret, purpose): the uniforms are its
    # words' top 53 bits, the Gaussians their normal quantiles, and the
    # stream goes on across calls. Catches a statistical generator (PCG64,
    # SFC64: a few hundred outputs give its state away) put back in
    # shared_generator, and two purposes sharing one stream.
    secret = _secure.fresh_bytes(32)
    key = _secure._hkdf(secret, b"skfal shared rotation 4")
    words = _chacha20_words(key, 10)
    uniforms = ((words >> np.uint64(11)).astype(float) + 0.5) * 2.0**-53
    rng = _secure.shared_generator(secret, "rotation 4")
    assert np.array_equal(rng.standard_normal(6), norm.ppf(uniforms[:6]))
    draws = np.empty((2, 2))
    rng.standard_normal(out=draws)
    assert np.allclose(draws.ravel(), norm.ppf(uniforms[6:]), rtol=1e-15, atol=0)
    other = _secure.shared_generator(secret, "rotation 5").words(10)
    assert not np.array_equal(other, words)
    assert np.array_equal(_secure.shared_words(secret, "rotation 4", 10), words)


def test_keystream_gaussians_have_the_normal_law():
    # The masks' laws (Haar rotations, uniform frames) assume i.i.d.
    # standard Gaussians: 200,000 draws match the normal's first four
    # moments and quantiles within 5 standard errors. Catches a uniform
    # mapped wrongly (no quantile, or a bit of the word dropped).
    z = _secure.KeystreamGenerator(bytes(range(32))).standard_normal(200_000)
    n = z.size
    for power, expected in [(1, 0.0), (2, 1.0), (3, 0.0), (4, 3.0)]:
        values = z**power
        assert abs(values.mean() - expected) < 5 * values.std() / np.sqrt(n)
    for q in (0.01, 0.25, 0.5, 0.9, 0.999):
        share = np.mean(z < norm.ppf(q))
        assert abs(share - q) < 5 * np.sqrt(q * (1 - q) / n)


def test_fedsvd_row_masks_are_drawn_from_the_cipher(monkeypatch):
    # A FedSVD client's private row mask is drawn from the keystream of a
    # fresh 32-byte key of OS randomness. Catches the mask drawn from a
    # statistical generator again (SFC64 of a 128-bit seed, as it was) and
    # a key that repeats across fits.
    from skfal._federated import _leverage, _masks

    keys, drawn = [], []

    class Spy(_secure.KeystreamGenerator):
        def __init__(self, key):
            keys.append(bytes(key))
            super().__init__(key)

        def standard_normal(self, size=None, out=None):
            result = super().standard_normal(size, out)
            drawn.append(np.size(result))
            return result

    monkeypatch.setattr(_masks, "KeystreamGenerator", Spy)
    A = np.random.RandomState(0).standard_normal((30, 3))
    for _ in range(2):
        _masks.mask_rows(A, _leverage._mask_seed({}), 10)
    assert len(keys) == 2 and keys[0] != keys[1] and len(keys[0]) == 32
    # Stewart's reflectors: 10 + 9 + 8 Gaussians for each block of 10 rows.
    assert sum(drawn) == 2 * 3 * (10 + 9 + 8)


# ------------------------------------------- a server that breaks the protocol
# Flower's client app runs the same run_client_step as the in-process
# transport, so these requests are what a malicious server can send.
def agreed(tolerant=False):
    """Three clients after a key agreement, each holding ``v`` (3 x 3) and
    bounds ``vb`` the server knows."""
    values = [np.random.RandomState(c).standard_normal((3, 3)) for c in range(3)]
    transport = federation(3, v=values)
    transport.tolerate_dropouts = tolerant
    key_agreement(transport)
    transport.flush()
    for state in transport.states:
        state["vb"] = np.full(3, 10, dtype=np.int64)
    return transport


def sum_request(round_id, participants=(0, 1, 2)):
    return {
        "phase": "evil",
        "values": "v",
        "bounds": "vb",
        "participants": list(participants),
        "round": round_id,
    }


def test_a_request_naming_protected_state_is_refused():
    # Steps take state names from the server's config (what to sum, where
    # to keep a broadcast): named "X", a "sum" would upload the raw rows;
    # named "group_secret" or "pair_keys", the server would read or set
    # the keys. Catches run_client_step without its check of the names
    # (the server read the rows and the group secret that way).
    state = agreed().states[1]
    state["X"] = np.ones((3, 3))
    requests = [
        ("masked_words", {**sum_request(5), "values": "X"}, ()),
        ("keep", {"keys": ["group_secret"]}, (np.zeros(32, np.uint8),)),
        ("keep", {"keys": ["pair_keys"]}, (np.zeros((3, 32), np.uint8),)),
        ("own_bounds", {"magnitudes": "v", "store": "last_round", "headroom": 0}, ()),
    ]
    for step, config, arrays in requests:
        with pytest.raises(ValueError, match="protected state"):
            run_client_step(state, step, config, arrays)


def test_a_client_masks_only_among_other_participants():
    # A sum with no other participant, or one the client is not part of,
    # has no partner to mask with: the upload would be its values. Catches
    # _masked without its check of the participants (an unmasked upload).
    state = agreed().states[1]
    for participants in ([1], [0, 2]):
        with pytest.raises(ValueError, match="no other participant"):
            run_client_step(state, "masked_words", sum_request(5, participants), ())
    (masked,) = run_client_step(state, "masked_words", sum_request(6), ())
    assert masked.shape == (3, 3)


def test_new_keys_drop_the_old_ones_so_no_round_is_masked_twice():
    # A fresh key pair restarts the replay guard; the pair keys of the
    # previous agreement must go with it, or a server that sends "key_pair"
    # alone could have round 7 masked again under the same masks and
    # subtract the two uploads. Catches step_key_pair keeping the old keys.
    state = agreed().states[1]
    run_client_step(state, "masked_words", sum_request(7), ())
    run_client_step(state, "key_pair", {}, ())
    with pytest.raises(ValueError, match="before a key agreement"):
        run_client_step(state, "masked_words", sum_request(7), ())


def test_unmask_is_refused_when_the_agreement_tolerates_no_dropout():
    # Without dropout tolerance an upload carries no self mask: a partner's
    # round key for a "dropped" client would unmask it. Catches step_unmask
    # answering in any session (the server read an honest upload).
    state = agreed().states[0]
    run_client_step(state, "masked_words", sum_request(3), ())
    none = (np.zeros(0, np.int64), np.zeros((0, 56), np.uint8))
    config = {"round": 3, "dropped": [1], "participants": [0, 1, 2]}
    with pytest.raises(ValueError, match="did not tolerate dropouts"):
        run_client_step(state, "unmask", config, none)


def test_a_partner_never_reveals_both_secrets_of_a_client_over_two_requests():
    # With dropouts tolerated, the server may get a client's self-mask
    # shares (it arrived) or its partners' round keys with it (it dropped),
    # never both: both unmask its upload. Asking for them in two requests
    # of one round is refused like asking in one. Catches the check made
    # per request only.
    transport = agreed(tolerant=True)
    states = transport.states
    masked, sealed = run_client_step(states[1], "masked_words", sum_request(5), ())
    partners = _secure.mask_partners(1, [0, 1, 2], states[1]["ring_order"])
    at = partners.index(0)
    run_client_step(states[0], "masked_words", sum_request(5), ())
    arrived = {"round": 5, "dropped": [], "participants": [0, 1, 2]}
    run_client_step(states[0], "unmask", arrived, (np.array([1]), sealed[at : at + 1]))
    none = (np.zeros(0, np.int64), np.zeros((0, sealed.shape[1]), np.uint8))
    dropped = {"round": 5, "dropped": [1], "participants": [0, 1, 2]}
    with pytest.raises(ValueError, match="together they would"):
        run_client_step(states[0], "unmask", dropped, none)
