"""Secure aggregation: the server learns the sum of the clients' arrays, not one.

Pairwise additive masks (Bonawitz et al., "Practical secure aggregation for
privacy-preserving machine learning", CCS 2017) on a sparse graph of
neighbours (Bell et al., "Secure single-server aggregation with
(poly)logarithmic overhead", CCS 2020; Flower's SecAgg+ is the same design).
All cryptography comes from the ``cryptography`` package (OpenSSL): X25519,
HKDF-SHA256, ChaCha20 and ChaCha20-Poly1305. Nothing here is derived from a
seed: every key, every mask and every secret the clients share is drawn from
the operating system's randomness (``os.urandom``) in every fit.

1. Key agreement (once per fit and transport, :func:`key_agreement`): every
   client draws an X25519 key pair and uploads its public key. The server
   draws a public session id and a ring seed (16 and 32 random bytes; the
   seed orders the clients on a ring, :func:`ring_order`), and sends each
   client the public keys of its *neighbours*:
   the ``d`` clients nearest to it on the ring (``d = 2 ceil(log2 k)``, all
   others when that is at least ``k - 1``; :func:`mask_partners`). Client
   ``i`` derives with each neighbour ``j`` the pair key
   ``HKDF-SHA256(X25519(a_i, A_j), salt=session, info=purpose || A_lo ||
   A_hi)``: bound to both public keys and to this fit's session, unknown to
   the server (which holds public keys only; the computational
   Diffie-Hellman assumption on Curve25519).
2. The clients' group secret (256 bits): the *leader* (the first client)
   draws it and seals it for every other client with ChaCha20-Poly1305
   under a key derived like a pair key (purpose ``group``); the server
   relays the sealed secrets. From it each client derives, by HKDF with a
   purpose string, every secret all clients share: the Haar rotations of
   the protocols and the secret orders of the secure maximum's bins, each
   from ChaCha20's keystream under its own key (:func:`shared_generator`).
   The server never receives it, nor anything it is derived from.
3. Every secure sum (a fresh public round id each time): client ``i``
   encodes its array in fixed point as 64-bit words and adds the ChaCha20
   keystream of the pair's round key (:func:`round_key`) for every neighbour
   ``j > i`` among the sum's participants and subtracts it for ``j < i``,
   modulo ``2^64``; it never masks twice under one round id
   (:func:`masked_round` is the one place a masked round is run). In the
   server's sum every mask appears once with each sign and cancels, leaving
   exactly the sum of the encoded arrays. A sum over some of the clients
   pairs each participant with its ``d`` neighbours on the ring restricted
   to the participants; a participant receives the public keys of the
   partners it does not know yet with the request (no extra round trip).

Each upload alone is uniformly distributed whatever it encodes, unless the
server colludes with all of the client's partners in that sum. A sum over
the participants reveals their total and, when the server colludes with
some clients, the totals of the pieces the others' graph falls into; the
ring of ``d = 2 ceil(log2 k)`` neighbours stays in one piece unless ``d / 2``
consecutive clients on the server's ring collude.

Masks cancel exactly only in integer arithmetic, hence the fixed point: a float
``v`` in column ``m`` travels as ``round(v 2^(62 - E_m))``, with ``2^E_m`` a
bound on every client's entries and on the sum in that column. The clients
agree on the bounds without the server learning them: a secure *maximum* of
their exponents, each client marking the bin of its exponent with a random
non-zero word in a table whose bins are permuted by a secret all clients share,
afresh in every round (two rounds: 69 coarse bins of 32 exponents, then the 32
exponents of the winning coarse bin). The server adds the tables as in any
secure sum and sends the result back; it sees which permuted bins are occupied,
that is, how many distinct exponents occur, never which. So the server handles
every sum in units of ``2^E_m`` it does not know: it either passes the sum back
to the clients, or factors it (a QR factorization commutes with scaling the
columns by powers of two, exactly).

Rounding: each client's value is rounded once to ``2^(E_m - 62)``, so a sum of
``k`` arrays is exact to ``k 2^(E_m - 63)``, about ``k 1e-19`` relative to the
column's largest entry (a float64 sum is good to ``1e-16``). Fresh secrets
change a fit's numbers by rounding only: the masks cancel exactly, and a
fresh rotation only reorders the rounding; the rows selected and their
weights are a function of the data and ``random_state``.

Dropouts: on a transport with ``tolerate_dropouts`` a masked round survives
clients that drop (:func:`masked_round`: Bonawitz et al.'s double masking).
Otherwise a client that does not reply stops the fit with an error naming it
(the transport's timeout); a new fit without it is safe only if it uploaded
to no sum that completed (:func:`~skfal._federated._transport.dropout_advice`):
the sum over all minus the sum over the survivors is its input, fresh keys
or not.

A secure sum needs at least :data:`MIN_PARTICIPANTS` participants in a
federation of several clients (a sum of one is that client's upload). With
two participants, each learns the other's value from the sum and its own.
A federation of one client has nobody to hide from but the server, which
then learns that client's totals (the threat model in the user guide).
"""

import decimal
import functools
import hashlib
import math
import os
from typing import NamedTuple

import numpy as np
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from scipy.special import ndtri

from skfal._federated._transport import PROTECTED, client_step

MIN_PARTICIPANTS = 2

_KEY_BYTES = 32
_SESSION_BYTES = 16
_SEALED_BYTES = _KEY_BYTES + 16  # ChaCha20-Poly1305 appends a 16-byte tag

_FRACTION_BITS = 62
# Exponents (numpy.frexp) of finite non-zero doubles lie in [-1073, 1024].
_MIN_EXPONENT = -1100
_BIN_WIDTH = 32
_N_COARSE = 69  # ceil(2200 / 32) bins cover [-1100, 1108)
_ABSENT = np.iinfo(np.int64).min  # the exponent of an all-zero column

# What a client keeps (declared; tests/test_transport.py checks every fit's).
# A secure sum of the values kept under "<v>" keeps the per-column
# magnitudes "<v>_magnitudes" and the bounds "<v>_bounds" (with
# "<v>_bounds_zero"); a secure maximum stored under "<s>" keeps "<s>_zero".
STATE = {
    "stack_magnitudes": "float64 (d,): its factor's largest entry per column",
    "share_bounds": "int64 (d,): the secure stack's column bounds E_m",
    "coarse_bins": "int64 (d,): the secure maximum's first round (transient)",
    "group_key": "uint8 (32,): the key that opens the group secret (transient)",
}
# The state a client keeps from the key agreement:
KEY_STATE = {
    "private_key": "uint8 (32,): its X25519 private key (never sent)",
    "public_key": "uint8 (32,): its public key",
    "key_session": "uint8 (16,): the fit's public session id",
    "ring_order": "int64 (k,): each client's place on the server's ring",
    "pair_keys": "uint8 (k, 32): HKDF pair keys, row j for client j",
    "paired": "bool (k,): which rows of pair_keys are set",
    "group_secret": "uint8 (32,): the secret all clients share",
    "share_keys": "uint8 (k, 32): pair keys that seal self-mask shares",
    "last_round": "int64 (1,): the last round it masked under (never again)",
    "tolerant": "bool (1,): whether this key agreement's sums survive dropouts",
    "unmask_log": "int64 (m, 3): what it revealed after dropouts: round, "
    "client, 0 (a share of its self mask) or 1 (the round key of their pair)",
}
STATE.update(KEY_STATE)
# No server config may name these (``_transport.run_client_step``).
PROTECTED.update(KEY_STATE, {"group_key"})


# ------------------------------------------------------------------ primitives
def fresh_bytes(n_bytes):
    """``n_bytes`` bytes of the operating system's randomness, as ``uint8``."""
    return np.frombuffer(os.urandom(n_bytes), dtype=np.uint8).copy()


def _hkdf(secret, info, salt=None):
    """HKDF-SHA256 (RFC 5869) of ``secret``: 32 bytes."""
    return HKDF(
        algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=salt, info=info
    ).derive(bytes(secret))


def client_key_pair():
    """A fresh X25519 key pair: ``(private, public)``, each ``uint8`` of 32."""
    private = X25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw()
    return (
        np.frombuffer(private.private_bytes_raw(), dtype=np.uint8).copy(),
        np.frombuffer(public, dtype=np.uint8).copy(),
    )


def pair_keys(private, own_public, other_public, session, purposes):
    """The keys two clients share, one per purpose, from one X25519 exchange
    (:func:`pair_key` for one)."""
    own_public, other_public = bytes(own_public), bytes(other_public)
    if not isinstance(private, X25519PrivateKey):
        private = X25519PrivateKey.from_private_bytes(bytes(private))
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(other_public))
    except ValueError as error:  # e.g. a low-order point: an all-zero secret
        raise ValueError(
            f"A public key the server relayed is not a valid X25519 key "
            f"({error}): the key agreement must be run again."
        ) from None
    lo, hi = sorted((own_public, other_public))
    return [
        _hkdf(shared, b"skfal " + purpose + b"\x00" + lo + hi, salt=bytes(session))
        for purpose in purposes
    ]


def pair_key(private, own_public, other_public, session, purpose):
    """The key two clients share for ``purpose`` (``bytes``), 32 bytes.

    ``HKDF-SHA256(X25519(private, other_public), salt=session, info=b"skfal
    " + purpose + lo + hi)`` with ``lo, hi`` the two public keys in order:
    both clients derive the same key, bound to both keys and the session.
    ``private``: the raw 32 bytes, or an ``X25519PrivateKey`` (loading raw
    bytes costs a scalar multiplication: load once for many pairs).
    """
    return pair_keys(private, own_public, other_public, session, [purpose])[0]


def _keystream(key, nonce, n_words):
    """``8 n_words`` bytes of ChaCha20's keystream (``nonce``: an int)."""
    nonce = bytes(4) + int(nonce).to_bytes(12, "little")
    stream = Cipher(algorithms.ChaCha20(bytes(key), nonce), mode=None).encryptor()
    return stream.update(bytes(8 * n_words))


def round_key(key, round_id):
    """The pair's key of one round: keyed BLAKE2b (RFC 7693, a PRF) of the
    round id under the pair key.

    A client that must let the server remove its masks with a partner who
    dropped out reveals this key, and only it: the pair key, hence every
    other round's mask, stays secret. BLAKE2b rather than HKDF here: it is
    drawn for every pair in every round (20,000 times a round at 1,000
    clients), and :mod:`hashlib`'s keyed BLAKE2b costs a fifth of an HKDF
    call through :mod:`cryptography`.
    """
    return hashlib.blake2b(
        int(round_id).to_bytes(8, "little"),
        key=bytes(key),
        digest_size=_KEY_BYTES,
        person=b"skfal round",
    ).digest()


def _pair_mask(key, round_id, size):
    """The 64-bit words a pair of clients adds and subtracts in one round:
    ChaCha20's keystream under the pair's round key."""
    return round_mask(round_key(key, round_id), size)


def round_mask(key, size):
    """The mask words of a round key (ChaCha20's keystream, nonce 0)."""
    return np.frombuffer(_keystream(key, 0, size), dtype="<u8")


def client_mask(words, me, partners, keys, round_id):
    """Add the pairwise masks to a client's encoded array (modulo ``2^64``).

    ``keys[j]`` is the pair key shared with partner ``j``: ``+`` the mask
    for ``j > me``, ``-`` for ``j < me``.
    """
    out = np.array(words, dtype=np.uint64)
    flat = out.reshape(-1)
    for j in partners:
        if j == me:
            continue
        mask = _pair_mask(keys[j], round_id, flat.size)
        if me < j:
            flat += mask
        else:
            flat -= mask
    return out


def mask_degree(n_participants):
    """How many partners each participant of a sum masks with."""
    if n_participants <= 1:
        return 0
    degree = 2 * math.ceil(math.log2(n_participants))
    return min(degree, n_participants - 1)


def mask_partners(me, participants, order):
    """The partners of ``me`` in a sum over ``participants``.

    The participants sit on a ring in the server's ``order`` (each client's
    place, :func:`ring_order`); each pairs with the ``mask_degree / 2``
    nearest on each side, or with all others when the sum is small. The
    relation is symmetric, so every mask cancels.
    """
    if mask_degree(len(participants)) >= len(participants) - 1:
        return sorted(int(c) for c in participants if c != me)
    ring, place = _ring(
        np.asarray(participants, dtype=np.int64).tobytes(),
        np.asarray(order, dtype=np.int64).tobytes(),
    )
    n, half = len(ring), mask_degree(len(ring)) // 2
    at = place[me]
    return sorted({ring[(at + s) % n] for s in range(-half, half + 1) if s})


@functools.lru_cache(maxsize=16)
def _ring(participants, order):
    """The participants in ring order, and each one's place (cached: every
    participant of a sum computes the same ring)."""
    participants = np.frombuffer(participants, dtype=np.int64)
    order = np.frombuffer(order, dtype=np.int64)
    ring = participants[np.argsort(order[participants], kind="stable")].tolist()
    return ring, {c: i for i, c in enumerate(ring)}


class KeystreamGenerator:
    """Uniform and Gaussian draws from ChaCha20's keystream under ``key``.

    Every secret the protocols draw in bulk (the clients' shared rotations,
    the secure maximum's bin orders, FedSVD's row masks, pads) comes from a
    cipher's output, as the secure sums' masks do: no number of draws, nor
    anything the server learns about some of them, tells it the key or the
    other draws (unlike a statistical generator such as PCG64 or SFC64,
    whose state a few hundred outputs give away). The key comes from OS
    randomness (a private mask) or from HKDF of the group secret (a shared
    one). The methods the mask code calls, with numpy's ``Generator``
    signatures: :meth:`words`, :meth:`random`, :meth:`standard_normal`.

    Parameters
    ----------
    key : bytes-like of 32 bytes
    """

    def __init__(self, key):
        if len(bytes(key)) != _KEY_BYTES:
            raise ValueError(f"A keystream key has {_KEY_BYTES} bytes.")
        # The stream continues across calls (one nonce, one counter).
        self._stream = Cipher(
            algorithms.ChaCha20(bytes(key), bytes(16)), mode=None
        ).encryptor()

    def words(self, n_words):
        """The next ``n_words`` of the keystream, as ``uint64``."""
        raw = self._stream.update(bytes(8 * int(n_words)))
        return np.frombuffer(raw, dtype=np.uint64).copy()

    def _uniform(self, size, offset):
        # The top 53 bits of a word: a double in [0, 1) (offset 0) or, at
        # the centre of its cell, in (0, 1) (offset 0.5: ndtri's domain).
        n = math.prod(np.atleast_1d(size)) if size is not None else 1
        top = self.words(n) >> np.uint64(11)
        values = (top.astype(np.float64) + offset) * 2.0**-53
        return values.reshape(size) if size is not None else values[0]

    def random(self, size=None):
        """Uniform doubles in ``[0, 1)``, 53 random bits each."""
        return self._uniform(size, 0.0)

    def standard_normal(self, size=None, out=None):
        """Standard Gaussians: the normal quantile of uniforms in ``(0, 1)``
        (inversion, exact to rounding; tails to about 8.3 standard
        deviations)."""
        shape = out.shape if out is not None else size
        values = ndtri(self._uniform(shape, 0.5))
        if out is None:
            return values
        out[...] = values
        return out


def shared_generator(group_secret, purpose):
    """A :class:`KeystreamGenerator` every client keys alike from the group
    secret.

    ``purpose`` (a str) names the draw (``"rotation 5"``, ``"bins 3 69 round
    7"``, ...): each gets its own 256-bit HKDF key, so no two secrets share a
    stream.
    """
    return KeystreamGenerator(_hkdf(group_secret, b"skfal shared " + purpose.encode()))


def shared_words(group_secret, purpose, n_words):
    """``n_words`` uint64 every client draws alike from the group secret:
    the first words of :func:`shared_generator`'s keystream for ``purpose``.
    For a pad that hides values from the server."""
    return shared_generator(group_secret, purpose).words(n_words)


def _seal(key, secret, session):
    """ChaCha20-Poly1305 of ``secret`` under a one-use ``key``."""
    return ChaCha20Poly1305(key).encrypt(bytes(12), bytes(secret), bytes(session))


def _open(key, sealed, session):
    try:
        return ChaCha20Poly1305(key).decrypt(bytes(12), bytes(sealed), bytes(session))
    except InvalidTag:
        raise ValueError(
            "The group secret the server relayed does not authenticate under "
            "the key shared with the leader: it was altered in transit."
        ) from None


# ------------------------------------------------------------ secret shares
_SHARE_BYTES = 8 + 2 * 16  # the share's index, then its two 16-byte halves


def share_threshold(n_holders):
    """Shares that rebuild a secret shared among ``n_holders``: a majority."""
    return n_holders // 2 + 1


def split_secret(secret, n_holders):
    """Shamir shares of a 32-byte secret, one per holder (``bytes`` each).

    pycryptodome's Shamir scheme over GF(2^128) (the one Flower's SecAgg+
    uses), on each 16-byte half; any :func:`share_threshold` of them rebuild
    the secret, fewer tell nothing about it.
    """
    threshold = share_threshold(n_holders)
    secret = bytes(secret)
    halves = [Shamir.split(threshold, n_holders, secret[i : i + 16]) for i in (0, 16)]
    return [
        index.to_bytes(8, "little") + low + high
        for (index, low), (_, high) in zip(*halves, strict=True)
    ]


def combine_secret(shares):
    """The 32-byte secret from at least :func:`share_threshold` of its shares."""
    shares = [bytes(share) for share in shares]
    indices = [int.from_bytes(share[:8], "little") for share in shares]
    pairs = list(zip(indices, shares, strict=True))
    low = Shamir.combine([(i, share[8:24]) for i, share in pairs])
    high = Shamir.combine([(i, share[24:40]) for i, share in pairs])
    return low + high


def _share_aad(session, sender, receiver):
    return (
        bytes(session)
        + int(sender).to_bytes(8, "little")
        + int(receiver).to_bytes(8, "little")
    )


def _share_nonce(round_id, sender):
    """The round id and the sender: a pair's two directions (one key) never
    share a nonce."""
    return int(round_id).to_bytes(8, "little") + int(sender).to_bytes(4, "little")


def _seal_share(key, round_id, sender, share, aad):
    nonce = _share_nonce(round_id, sender)
    return ChaCha20Poly1305(bytes(key)).encrypt(nonce, bytes(share), aad)


def _open_share(key, round_id, sender, sealed, aad):
    nonce = _share_nonce(round_id, sender)
    try:
        return ChaCha20Poly1305(bytes(key)).decrypt(nonce, bytes(sealed), aad)
    except InvalidTag:
        raise ValueError(
            "A secret share the server relayed does not authenticate: it was "
            "altered in transit, or sent to the wrong client."
        ) from None


# --------------------------------------------------------------------- clients
def column_exponents(magnitudes):
    """``e`` with ``magnitude < 2^e`` per column (``_ABSENT`` for zeros)."""
    magnitudes = np.asarray(magnitudes, dtype=np.float64)
    exponents = np.frexp(magnitudes)[1].astype(np.int64)
    exponents[magnitudes == 0] = _ABSENT
    return exponents


def _bin_permutations(n_columns, n_bins, group_secret, round_id):
    """The clients' secret order of each column's bins in one masked round
    (the server never sees it): row ``m`` maps bin ``b`` of column ``m`` to
    its position. A fresh order every round, so the server cannot tell that
    two sums' columns fell in the same bin."""
    return _bin_order(n_columns, n_bins, bytes(group_secret), int(round_id))


@functools.lru_cache(maxsize=4)
def _bin_order(n_columns, n_bins, group_secret, round_id):
    """Cached (the last four) for the clients of a simulated fit, who share
    one process and draw the same order; a deployed client's process holds
    its own secrets only."""
    rng = shared_generator(group_secret, f"bins {n_columns} {n_bins} round {round_id}")
    return np.argsort(rng.random((n_columns, n_bins)), axis=1)


def client_exponent_marks(exponents, coarse, group_secret, round_id):
    """One round of the secure maximum: a random word at the bin of each exponent.

    Parameters
    ----------
    exponents : ndarray of shape (n_columns,) of int
        The client's exponents (``_ABSENT`` for an all-zero column).
    coarse : ndarray of shape (n_columns,) of int or None
        ``None`` in the first round (coarse bins); in the second, the winning
        coarse bin of each column (``-1``: every column was zero).
    group_secret : ndarray of shape (32,) of uint8
        The clients' shared secret that permutes the bins.
    round_id : int
        The masked round's public id: the bins' order is fresh in each.

    Returns
    -------
    marks : ndarray of shape (n_columns, n_bins) of uint64
    """
    n_bins = _N_COARSE if coarse is None else _BIN_WIDTH
    n_columns = exponents.shape[0]
    marks = np.zeros((n_columns, n_bins), dtype=np.uint64)
    present = exponents != _ABSENT
    offsets = np.where(present, exponents, _MIN_EXPONENT) - _MIN_EXPONENT
    if coarse is None:
        bins = offsets // _BIN_WIDTH
    else:  # below the winning coarse bin: nothing to mark
        present &= offsets // _BIN_WIDTH == coarse
        bins = offsets % _BIN_WIDTH
    columns = np.flatnonzero(present)
    order = _bin_permutations(n_columns, n_bins, group_secret, round_id)
    # Fresh words of OS randomness, odd: never zero.
    words = np.frombuffer(os.urandom(8 * columns.size), dtype=np.uint64) | 1
    marks[columns, order[columns, bins[columns]]] = words
    return marks


def client_highest_bins(summed_marks, group_secret, round_id):
    """Unpermute the summed marks of round ``round_id``: the highest occupied
    bin per column (or -1)."""
    n_columns, n_bins = summed_marks.shape
    order = _bin_permutations(n_columns, n_bins, group_secret, round_id)
    occupied = np.take_along_axis(summed_marks, order, axis=1) != 0
    highest = n_bins - 1 - np.argmax(occupied[:, ::-1], axis=1)
    return np.where(occupied.any(axis=1), highest, -1).astype(np.int64)


def bounds_from_bins(coarse, fine, headroom):
    """The columns' bounds ``E_m`` from the winning bins (all-zero: any bound)."""
    exponents = _MIN_EXPONENT + _BIN_WIDTH * coarse + fine + headroom
    return np.where(coarse < 0, 0, exponents)


def client_encode(values, bounds):
    """Fixed point: ``round(v 2^(62 - E_m))`` as 64-bit words (two's complement)."""
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), _FRACTION_BITS - bounds)
    return np.rint(scaled).astype(np.int64).view(np.uint64)


def decode_units(words):
    """The server's view of a sum: the words as floats, in units of ``2^E_m``."""
    return np.ldexp(words.view(np.int64).astype(np.float64), -_FRACTION_BITS)


def client_decode(units, bounds):
    """A client's value of a sum the server passed back in units of ``2^E_m``."""
    return np.ldexp(np.asarray(units, dtype=np.float64), bounds)


# ---------------------------------------------------------------------- server
def server_sum_words(uploads):
    """Add the masked uploads modulo ``2^64``: the masks cancel."""
    total = np.zeros_like(uploads[0], dtype=np.uint64)
    for upload in uploads:
        total += upload
    return total


# ------------------------------------------------------------- orchestration
def _check_participants(participants, n_clients, phase):
    """At least two clients in every sum of a federation of several."""
    if not participants:
        raise ValueError(
            f"The {phase!r} step adds up the clients' uploads, and no client "
            "holds anything to add: raise the budget."
        )
    if n_clients > 1 and len(participants) < MIN_PARTICIPANTS:
        raise ValueError(
            f"The {phase!r} step adds up the clients' uploads by secure "
            f"aggregation, which needs at least {MIN_PARTICIPANTS} clients in "
            f"the sum; only client {list(participants)} of {n_clients} takes "
            "part (the others hold nothing to add), so the sum would be that "
            "client's own upload. Raise the budget so that several clients "
            "hold selected rows, or fit without groups."
        )


def _finite(values, phase):
    if not all(np.all(np.isfinite(v)) for v in values):
        raise ValueError(
            f"A client's {phase!r} upload is not finite: its values overflow "
            "float64 (e.g. labels near 1e300 with features near 1e-300). "
            "Divide y by its scale, or multiply X by one."
        )


# ------------------------------------------------------ secure stacked factors
# A client's factor in fixed point, a = round(F 2^(62 - E_m)) with |a| <= 2^62,
# is split into 5 signed limbs of 13 bits (a = sum_p c_p 2^(13 p)); the limbs'
# products are below 2^26, so float64 products and sums of them are exact
# integers, and the Gram matrix comes out as 9 exact "digits" (D_s, the sum of
# the limb products with p + q = s): G = sum_s D_s 2^(13 s), exactly.
_LIMB_BITS = 13
_N_LIMBS = 5
_N_DIGITS = 2 * _N_LIMBS - 1


def client_gram_digits(factor, bounds):
    """The exact Gram matrix of ``factor`` in fixed point, as digit words.

    Returns ``uint64`` words of shape ``(9, d (d + 1) / 2)``: for each digit
    ``s``, the upper triangle of ``D_s`` (two's complement), with
    ``sum_s D_s 2^(13 s) = a^T a`` exactly for ``a = round(F 2^(62 - E))``.
    """
    a = client_encode(factor, bounds).view(np.int64)
    sign, magnitude = np.sign(a), np.abs(a)
    mask = (1 << _LIMB_BITS) - 1
    limbs = [
        (sign * ((magnitude >> (_LIMB_BITS * p)) & mask)).astype(np.float64)
        for p in range(_N_LIMBS)
    ]
    stacked = np.hstack(limbs)  # (h, 5 d): small integers, exact in float64
    products = stacked.T @ stacked  # exact: |sums| < 2^26 h << 2^53
    d = factor.shape[1]
    upper = np.triu_indices(d)
    digits = np.zeros((_N_DIGITS, upper[0].size), dtype=np.int64)
    for p in range(_N_LIMBS):
        for q in range(_N_LIMBS):
            block = products[p * d : (p + 1) * d, q * d : (q + 1) * d]
            digits[p + q] += block[upper].astype(np.int64)
    return digits.view(np.uint64)


def server_gram_factor(words, n_columns):
    """The R factor (upper triangular, ``R^T R = G``) of the summed Gram digits.

    The digits give the Gram matrix ``G`` exactly, as Python integers; its
    Cholesky factor is computed in 100-digit decimal arithmetic (so a Gram
    matrix of condition 1e16, a factor of condition 1e8, loses nothing a
    float64 result can hold) and rounded once to float64, in units of
    ``2^E_m`` per column. A zero pivot (a rank-deficient stack) leaves a
    zero row.
    """
    digits = np.asarray(words).view(np.int64).reshape(_N_DIGITS, -1)
    upper = zip(*np.triu_indices(n_columns), strict=True)
    gram = [[0] * n_columns for _ in range(n_columns)]
    for column, (row, col) in enumerate(upper):
        total = sum(
            int(digits[s, column]) << (_LIMB_BITS * s) for s in range(_N_DIGITS)
        )
        gram[row][col] = gram[col][row] = total
    with decimal.localcontext() as context:
        context.prec = 100
        G = [[decimal.Decimal(g) for g in row] for row in gram]
        R = [[decimal.Decimal(0)] * n_columns for _ in range(n_columns)]
        for j in range(n_columns):
            pivot = G[j][j] - sum(R[i][j] * R[i][j] for i in range(j))
            if pivot <= G[j][j] * decimal.Decimal("1e-60"):
                continue  # a zero pivot: G is singular here; the row stays 0
            R[j][j] = pivot.sqrt()
            for col in range(j + 1, n_columns):
                dot = sum(R[i][j] * R[i][col] for i in range(j))
                R[j][col] = (G[j][col] - dot) / R[j][j]
        out = np.array([[float(r) for r in row] for row in R])
    return np.ldexp(out, -_FRACTION_BITS)


# ------------------------------------------------- over a transport (steps)
def _partners(state, participants):
    """The client's partners in a sum and its pair keys with them."""
    me = state["client"]
    partners = mask_partners(me, participants, state["ring_order"])
    missing = [j for j in partners if not state["paired"][j]]
    if missing:
        raise ValueError(
            f"Client {me} holds no pair key with clients {missing}: the server "
            "did not relay their public keys before this secure sum."
        )
    return partners, state["pair_keys"]


def _masked(state, words, config):
    """The masked upload of a sum: ``(masked words,)``, or with dropouts
    survived ``(masked words, sealed shares of the self mask)``.

    Double masking (Bonawitz et al.): a fresh self mask ``PRG(b)`` on top of
    the pairwise masks, ``b`` shared among the sum's partners, so the server
    can remove it when this client's upload arrived; the masks of a partner
    that dropped are removed from this round's keys of its pairs, which the
    survivors reveal (never both for one client).
    """
    me, round_id = state["client"], int(config["round"])
    if "paired" not in state or "last_round" not in state:
        raise ValueError(
            f"The server asked client {me} to mask round {round_id} before a "
            "key agreement gave it pair keys (new keys drop the old ones). "
            "Refused."
        )
    participants = {int(j) for j in config["participants"]}
    if me not in participants or (
        len(participants) < 2 and state["pair_keys"].shape[0] > 1
    ):
        raise ValueError(
            f"The server asked client {me} to mask round {round_id} among "
            f"clients {sorted(participants)}: a sum it is not part of, or one "
            "with no other participant, leaves its upload unmasked. Refused."
        )
    partners, keys = _partners(state, config["participants"])
    last = int(state["last_round"][0])
    if round_id <= last:
        raise ValueError(
            f"The server asked client {me} to mask under round {round_id}, "
            f"not after its last masked round {last}: the same masks twice "
            "would let the server subtract two uploads. Refused."
        )
    state["last_round"] = np.array([round_id], dtype=np.int64)
    masked = client_mask(words, me, partners, keys, round_id)
    if not state["tolerant"][0]:  # the key agreement's, not this request's
        return (masked,)
    secret = fresh_bytes(_KEY_BYTES)
    flat = masked.reshape(-1)
    flat += np.frombuffer(_keystream(secret, round_id, flat.size), dtype="<u8")
    session = state["key_session"]
    sealed = np.zeros((len(partners), _SHARE_BYTES + 16), dtype=np.uint8)
    for row, (j, share) in enumerate(
        zip(partners, split_secret(secret, len(partners)), strict=True)
    ):
        aad = _share_aad(session, me, j)
        sealed[row] = np.frombuffer(
            _seal_share(state["share_keys"][j], round_id, me, share, aad),
            dtype=np.uint8,
        )
    return masked, sealed


@client_step("key_pair")
def step_key_pair(state, config):
    """Key agreement, 1: draw a fresh X25519 key pair (kept), upload the public key."""
    # Fresh keys, fresh masks: the previous agreement's keys and secrets go,
    # so no round can be masked again under them (the replay guard restarts
    # with them).
    for name in KEY_STATE:
        state.pop(name, None)
    state["private_key"], state["public_key"] = client_key_pair()
    state["last_round"] = np.array([-1], dtype=np.int64)
    return (state["public_key"],)


def _derive_pair_keys(state, ids, keys, private=None):
    if private is None:
        private = X25519PrivateKey.from_private_bytes(bytes(state["private_key"]))
    for j, key in zip(np.asarray(ids, dtype=np.int64), keys, strict=True):
        mask_key, share_key = pair_keys(
            private,
            state["public_key"],
            key,
            state["key_session"],
            [b"mask", b"share"],
        )
        state["pair_keys"][j] = np.frombuffer(mask_key, dtype=np.uint8)
        state["share_keys"][j] = np.frombuffer(share_key, dtype=np.uint8)
        state["paired"][j] = True


def ring_order(ring_seed, n_clients):
    """Each client's place on the server's ring (a public permutation).

    The clients sorted by the ChaCha20 keystream of the server's fresh
    public ``ring_seed`` (8 bytes per client): every party computes the same
    order from 32 bytes, on any platform and numpy version.
    """
    keys = np.frombuffer(_keystream(ring_seed, 0, n_clients), dtype=">u8")
    return np.argsort(np.argsort(keys, kind="stable"), kind="stable").astype(np.int64)


@client_step("pair_keys")
def step_pair_keys(state, config, session, ring_seed, ids, keys, leader_key, *everyone):
    """Key agreement, 2: the pair keys with the neighbours (kept).

    The leader (it is sent every public key) also draws the group secret
    and replies it sealed for each other client; the others keep the key
    they share with the leader to open it.
    """
    n_clients = int(config["n_clients"])
    state["tolerant"] = np.array([bool(config.get("tolerant"))])
    state["unmask_log"] = np.zeros((0, 3), dtype=np.int64)
    state["key_session"] = np.asarray(session, dtype=np.uint8)
    state["ring_order"] = ring_order(ring_seed, n_clients)
    state["pair_keys"] = np.zeros((n_clients, _KEY_BYTES), dtype=np.uint8)
    state["share_keys"] = np.zeros((n_clients, _KEY_BYTES), dtype=np.uint8)
    state["paired"] = np.zeros(n_clients, dtype=bool)
    private = X25519PrivateKey.from_private_bytes(bytes(state["private_key"]))
    public = state["public_key"]
    _derive_pair_keys(state, ids, keys, private)
    if not everyone:
        group_key = pair_key(private, public, leader_key, session, b"group")
        state["group_key"] = np.frombuffer(group_key, dtype=np.uint8).copy()
        return ()
    state["group_secret"] = fresh_bytes(_KEY_BYTES)
    sealed = np.zeros((n_clients, _SEALED_BYTES), dtype=np.uint8)
    for j, key in enumerate(everyone[0]):
        if j != state["client"]:
            shared = pair_key(private, public, key, session, b"group")
            sealed[j] = np.frombuffer(
                _seal(shared, state["group_secret"], session), dtype=np.uint8
            )
    return (sealed,)


@client_step("group_secret")
def step_group_secret(state, config, sealed):
    """Key agreement, 3: open the group secret the leader sealed for this client."""
    key = bytes(state.pop("group_key"))
    secret = _open(key, sealed, state["key_session"])
    state["group_secret"] = np.frombuffer(secret, dtype=np.uint8).copy()


@client_step("solo_secret")
def step_solo_secret(state, config):
    """A federation of one client (a centralized fit): the group secret is
    fixed (zeros), so the fit is reproducible bit for bit. There is nobody
    to keep it from: the server of a one-client federation learns that
    client's totals anyway (the threat model)."""
    state["ring_order"] = np.zeros(1, dtype=np.int64)
    state["pair_keys"] = np.zeros((1, _KEY_BYTES), dtype=np.uint8)
    state["paired"] = np.zeros(1, dtype=bool)
    state["group_secret"] = np.zeros(_KEY_BYTES, dtype=np.uint8)
    state["last_round"] = np.array([-1], dtype=np.int64)
    state["tolerant"] = np.array([False])


@client_step("partner_keys")
def step_partner_keys(state, config, ids, keys):
    """Before a sum over some of the clients: pair keys with new partners."""
    _derive_pair_keys(state, ids, keys)


@client_step("unmask")
def step_unmask(state, config, senders, sealed):
    """After a masked round with dropouts: what the server needs, no more.

    For each partner whose upload arrived (``senders``, with the sealed
    share of its self mask it sent this client), that share; for each
    partner that dropped (``config["dropped"]``), this round's key of their
    pair, so the server can remove its mask from this client's upload.
    Never both for one client: with both, the server would unmask it.
    """
    me, session, round_id = state["client"], state["key_session"], config["round"]
    if not state["tolerant"][0]:
        raise ValueError(
            f"The server asked client {me} to help unmask round {round_id}, "
            "but this key agreement did not tolerate dropouts: its uploads "
            "carry no self mask, so a round key would unmask them. Refused."
        )
    senders = np.asarray(senders, dtype=np.int64)
    partners = mask_partners(me, config["participants"], state["ring_order"])
    dropped = [int(j) for j in config["dropped"] if int(j) in partners]
    # Never both for one client in one round, over every request of it.
    log = state["unmask_log"]
    earlier = log[log[:, 0] == int(round_id)]
    shared_before = set(earlier[earlier[:, 2] == 0, 1].tolist())
    keyed_before = set(earlier[earlier[:, 2] == 1, 1].tolist())
    both = sorted(
        (set(senders.tolist()) | shared_before) & (set(dropped) | keyed_before)
    )
    if both:
        raise ValueError(
            f"The server asked client {me} for the self-mask shares of clients "
            f"{both} and for its round keys with them: together they would "
            "unmask their uploads. Refused."
        )
    opened = np.zeros((senders.size, _SHARE_BYTES), dtype=np.uint8)
    for row, (j, blob) in enumerate(zip(senders, sealed, strict=True)):
        aad = _share_aad(session, j, me)
        share = _open_share(state["share_keys"][j], round_id, j, blob, aad)
        opened[row] = np.frombuffer(share, dtype=np.uint8)
    revealed = [[int(round_id), int(j), 0] for j in senders.tolist()]
    revealed += [[int(round_id), j, 1] for j in dropped]
    state["unmask_log"] = np.concatenate(
        [log, np.array(revealed, dtype=np.int64).reshape(-1, 3)]
    )
    keys = np.zeros((len(dropped), _KEY_BYTES), dtype=np.uint8)
    for row, j in enumerate(dropped):
        keys[row] = np.frombuffer(
            round_key(state["pair_keys"][j], round_id), dtype=np.uint8
        )
    return opened, np.array(dropped, dtype=np.int64), keys


@client_step("exponent_marks")
def step_exponent_marks(state, config, *summed):
    """Secure maximum: the masked marks of one round.

    ``config["magnitudes"]`` names the kept per-column magnitudes; with the
    first round's sum (``summed``) the client marks the fine bins of the
    winning coarse bin.
    """
    exponents = column_exponents(state[config["magnitudes"]])
    secret = state["group_secret"]
    coarse = None
    if summed:
        coarse = client_highest_bins(summed[0], secret, config["rounds"][0])
        state["coarse_bins"] = coarse
    marks = client_exponent_marks(exponents, coarse, secret, config["round"])
    return _masked(state, marks, config)


@client_step("exponent_bounds")
def step_exponent_bounds(state, config, *summed):
    """Secure maximum, end: keep the columns' bounds ``E_m`` (and, under
    ``store + "_zero"``, the columns no participant has a non-zero entry in).

    A participant receives the last round's sum; a client that sits out the
    sum but needs its bounds (to decode the total it is sent) receives both
    rounds' sums and reads the bounds off them the same way.
    """
    secret, (first, second) = state["group_secret"], config["rounds"]
    if len(summed) == 2:
        coarse = client_highest_bins(summed[0], secret, first)
    else:
        coarse = state.pop("coarse_bins")
    fine = client_highest_bins(summed[-1], secret, second)
    state[config["store"]] = bounds_from_bins(coarse, fine, config["headroom"])
    state[config["store"] + "_zero"] = coarse < 0


@client_step("own_bounds")
def step_own_bounds(state, config):
    """A federation of one client: the bounds are its own exponents plus the
    headroom, as the secure maximum would give (nobody to hide them from)."""
    exponents = column_exponents(state[config["magnitudes"]])
    zero = exponents == _ABSENT
    state[config["store"]] = np.where(zero, 0, exponents + config["headroom"])
    state[config["store"] + "_zero"] = zero


@client_step("masked_words")
def step_masked_words(state, config):
    """Secure sum: the kept values, in fixed point, masked."""
    values = state[config["values"]]
    _finite([values], config["phase"])
    return _masked(state, client_encode(values, state[config["bounds"]]), config)


@client_step("stack_magnitudes")
def step_stack_magnitudes(state, config):
    """Secure stack, 1: keep the kept factor's largest entry per column."""
    factor = state[config["factor"]]
    _finite([factor], config["phase"])
    state["stack_magnitudes"] = np.abs(factor).max(axis=0, initial=0.0)


@client_step("gram_digits")
def step_gram_digits(state, config):
    """Secure stack, 2: the kept factor's exact Gram digits, masked."""
    digits = client_gram_digits(state[config["factor"]], state["share_bounds"])
    return _masked(state, digits, config)


# ------------------------------------------------ over a transport (server)
def key_agreement(transport):
    """Fresh keys and a fresh group secret for this transport's clients.

    Once per transport (the clients keep their keys for every protocol the
    fit runs over it): two round trips (public keys up; neighbours' keys
    down with the leader's sealed group secrets up), and the sealed secrets
    travel with the next message. A federation of one client (a
    centralized fit) agrees on nothing: it has no secret to keep (see
    :func:`step_solo_secret`) and sends nothing.
    """
    if "keys" in transport.session:
        return
    clients = list(transport.clients)
    if len(clients) == 1:
        transport.tell("solo_secret", "key_agreement")
        transport.session["keys"] = {"order": np.zeros(1, dtype=np.int64)}
        return
    replies = transport.ask("key_pair", "key_agreement")
    public = np.stack([replies[c][0] for c in clients])
    session, ring_seed = fresh_bytes(_SESSION_BYTES), fresh_bytes(_KEY_BYTES)
    order = ring_order(ring_seed, len(clients))
    leader = clients[0]
    arrays, known = {}, {}
    for c in clients:
        ids = np.array(mask_partners(c, clients, order), dtype=np.int64)
        arrays[c] = (session, ring_seed, ids, public[ids], public[leader])
        known[c] = set(ids.tolist())
    arrays[leader] += (public,)
    tolerant = bool(getattr(transport, "tolerate_dropouts", False))
    replies = transport.ask(
        "pair_keys",
        "key_agreement",
        arrays,
        config={"n_clients": len(clients), "tolerant": tolerant},
    )
    sealed = replies[leader][0]
    others = clients[1:]
    transport.tell(
        "group_secret",
        "key_agreement",
        {c: (sealed[c],) for c in others},
        clients=others,
    )
    transport.session["keys"] = {
        "public": public,
        "order": order,
        "known": known,
        "session": session,
        "tolerant": tolerant,
        "dead": set(),
    }


def relay_partner_keys(transport, participants, phase):
    """Send each participant the public keys of its partners in this sum that
    it has no pair key with yet (one-way, with the sum's first message)."""
    keys = transport.session["keys"]
    for c in participants:
        partners = mask_partners(c, participants, keys["order"])
        new = np.array(
            [j for j in partners if j not in keys["known"][c]], dtype=np.int64
        )
        if new.size:
            transport.tell(
                "partner_keys", phase, {c: (new, keys["public"][new])}, clients=[c]
            )
            keys["known"][c].update(new.tolist())


class MaskedRound(NamedTuple):
    """One masked round as the server holds it: the sum of the uploads (the
    masks removed), the participants whose upload is in it, their replies,
    and the round's public id."""

    total: np.ndarray
    participants: list
    replies: dict
    round_id: int


def masked_round(transport, step, phase, participants, *, config, broadcast=()):
    """One masked round: the participants upload, the server adds.

    A participant's reply is its masked words, then (dropouts survived) the
    sealed shares of its self mask, then whatever else ``step`` replies in
    the clear (:func:`lloyd_rounds`'s flag). Returns a :class:`MaskedRound`.
    Without dropouts survived, every participant must
    reply (a missing reply is the transport's error). With them
    (``transport.tolerate_dropouts``), the server asks the participants
    still there for the shares of the self masks of the uploads that
    arrived, and for this round's keys of their pairs with the participants
    that dropped (:func:`step_unmask`); a self mask with too few shares
    left, or a dropped participant's pair whose other end left too, is a
    clear error.
    """
    keys = transport.session["keys"]
    tolerant = keys.get("tolerant", False)
    round_id = transport.next_round()
    config = {**config, "participants": participants, "round": round_id}
    replies = transport.ask(
        step,
        phase,
        broadcast=broadcast,
        config={**config, "tolerant": tolerant},
        clients=participants,
        tolerate=tolerant,
    )
    survivors = [c for c in participants if c in replies]
    total = server_sum_words([replies[c][0] for c in survivors])
    if not tolerant:
        return MaskedRound(total, participants, replies, round_id)
    dropped = [c for c in participants if c not in replies]
    keys["dead"].update(dropped)
    order = keys["order"]
    partners = {c: mask_partners(c, participants, order) for c in participants}
    inbox = {i: ([], []) for i in survivors}
    for i in survivors:
        for j, blob in zip(partners[i], replies[i][1], strict=True):
            if j in inbox:
                inbox[j][0].append(i)
                inbox[j][1].append(blob)
    asked = [i for i in survivors if inbox[i][0] or set(partners[i]) & set(dropped)]
    answers = transport.ask(
        "unmask",
        phase,
        {
            h: (
                np.array(inbox[h][0], dtype=np.int64),
                np.array(inbox[h][1]).reshape(-1, _SHARE_BYTES + 16),
            )
            for h in asked
        },
        config={"round": round_id, "dropped": dropped, "participants": participants},
        clients=asked,
        tolerate=True,
    )
    keys["dead"].update(h for h in asked if h not in answers)
    self_shares = {i: [] for i in survivors}
    flat = total.reshape(-1)
    removed = set()
    for h, (opened, gone, round_keys) in answers.items():
        for i, share in zip(inbox[h][0], opened, strict=True):
            self_shares[i].append(share)
        for j, key in zip(gone, round_keys, strict=True):
            mask = round_mask(bytes(key), flat.size)
            if h < j:  # h added the pair's mask, j (gone) never subtracted it
                flat -= mask
            else:
                flat += mask
            removed.add((h, int(j)))
    for i in survivors:
        _enough(self_shares[i], len(partners[i]), i, phase)
        secret = combine_secret(self_shares[i])
        flat -= np.frombuffer(_keystream(secret, round_id, flat.size), dtype="<u8")
    stuck = sorted(
        (i, j)
        for j in dropped
        for i in partners[j]
        if i in replies and (i, j) not in removed
    )
    if stuck:
        raise ValueError(
            f"The {phase!r} secure sum cannot be completed: the uploads of "
            f"clients {sorted({i for i, _ in stuck})} carry masks shared with "
            f"clients {sorted({j for _, j in stuck})}, who dropped before "
            "uploading, and they left before revealing them. Start a new fit "
            "without the clients that left."
        )
    return MaskedRound(total, survivors, replies, round_id)


def _enough(shares, n_holders, client, phase):
    needed = share_threshold(n_holders)
    if len(shares) < needed:
        raise ValueError(
            f"The {phase!r} secure sum cannot be completed: the self mask of "
            f"client {client} needs {needed} of the {n_holders} shares its "
            f"partners in this sum hold, and only {len(shares)} of them are "
            "still there. A sum survives as long as fewer than half of each "
            "client's partners drop out; start a new fit without the clients "
            "that left."
        )


def secure_bounds(
    transport, participants, phase, magnitudes, headroom, store, receivers=None
):
    """The secure maximum: each participant keeps the columns' bounds.

    Two masked rounds of marks (coarse, then fine bins); the server adds
    each and passes the sum back. Participants keep ``E_m`` under
    ``store``; the last sum travels with the next message (no round trip).
    ``receivers`` (default: the participants) who do not take part are sent
    both rounds' sums and keep the same bounds: a client that sits out a
    secure sum but must decode its total learns the bounds from messages.
    Returns the participants still there (all, unless the transport
    survives dropouts).
    """
    participants = list(participants)
    key_agreement(transport)
    if transport.n_clients == 1:  # a centralized fit: no marks to exchange
        config = {"magnitudes": magnitudes, "headroom": headroom, "store": store}
        transport.tell("own_bounds", phase, config=config, clients=participants)
        return participants
    others = [c for c in (receivers or ()) if c not in participants]
    relay_partner_keys(transport, participants, phase)
    first = masked_round(
        transport,
        "exponent_marks",
        phase,
        participants,
        config={"magnitudes": magnitudes},
    )
    ending = {"magnitudes": magnitudes, "headroom": headroom, "store": store}
    return finish_bounds(transport, first, phase, ending, others)


def finish_bounds(transport, first, phase, config, others=()):
    """The secure maximum's second round (the fine bins of the first round,
    the :class:`MaskedRound` ``first``) and its end: the participants keep
    the bounds under ``config["store"]``; ``others`` are sent both sums and
    keep them too. Returns the participants still there."""
    relay_partner_keys(transport, first.participants, phase)
    second = masked_round(
        transport,
        "exponent_marks",
        phase,
        first.participants,
        config={"magnitudes": config["magnitudes"], "rounds": [first.round_id]},
        broadcast=(first.total,),
    )
    ending = {
        "headroom": config["headroom"],
        "store": config["store"],
        "rounds": [first.round_id, second.round_id],
    }
    transport.tell(
        "exponent_bounds",
        phase,
        broadcast=(second.total,),
        config=ending,
        clients=second.participants,
    )
    if others:
        transport.tell(
            "exponent_bounds",
            phase,
            broadcast=(first.total, second.total),
            config=ending,
            clients=list(others),
        )
    return second.participants


def secure_sum(
    transport, participants, phase, values, magnitudes, headroom, receivers=None
):
    """Secure aggregation of the arrays the participants kept under ``values``.

    Returns the sum as the server holds it, in units of ``2^E_m`` per column;
    the participants (and ``receivers``, see :func:`secure_bounds`) keep the
    bounds under ``values + "_bounds"``. With dropouts survived, the sum of
    the participants whose uploads arrived (see :func:`masked_round`).
    """
    participants = list(participants)
    _check_participants(participants, transport.n_clients, phase)
    bounds = values + "_bounds"
    participants = secure_bounds(
        transport, participants, phase, magnitudes, headroom, bounds, receivers
    )
    return summed_words(transport, participants, phase, values, bounds)[0]


def summed_words(transport, participants, phase, values, bounds):
    """A secure sum's last round: the participants' kept ``values`` in fixed
    point under the kept ``bounds``, masked; the server's sum (in units of
    ``2^E_m``) and the participants still there."""
    relay_partner_keys(transport, participants, phase)
    config = {"phase": phase, "values": values, "bounds": bounds}
    summed = masked_round(transport, "masked_words", phase, participants, config=config)
    return decode_units(summed.total), summed.participants


def secure_stack(transport, heights, phase, factor, receivers=None):
    """Secure aggregation of stacked factors: the server gets an ``R`` of
    ``[R_1; ...; R_k]``, that is, of ``sum_i R_i^T R_i``, and nothing else.

    Each participant encodes its factor in fixed point (per-column bounds
    from a secure maximum) and uploads the exact Gram matrix of the encoded
    factor as integer digits (:func:`client_gram_digits`), masked like any
    secure sum: the server's sum is the global Gram matrix, exactly, and
    nothing per client, even to a server that colludes with some clients
    (the pairwise masks hold unless it colludes with all of a client's
    partners). It factors the exact integers in high precision
    (:func:`server_gram_factor`), so the ``R`` is as accurate as stacking the
    ``R_i`` in the clear, at any condition number float64 can resolve. A
    client's work and upload, ``O(h_i d^2)`` and ``9 d (d + 1) / 2`` words,
    do not grow with the number of clients.

    ``heights`` are the clients' numbers of factor rows (uploaded, or known
    to the server); those with a factor kept it under ``factor``. Returns
    the ``d x d`` factor in units of ``2^E_m``; the participants (and
    ``receivers``) keep the bounds under ``"share_bounds"``.
    """
    key_agreement(transport)
    participants = [c for c in transport.clients if int(heights[c][0]) > 0]
    _check_participants(participants, transport.n_clients, phase)
    config = {"factor": factor, "phase": phase}
    transport.tell("stack_magnitudes", phase, config=config, clients=participants)
    participants = secure_bounds(
        transport,
        participants,
        phase,
        "stack_magnitudes",
        0,
        "share_bounds",
        receivers,
    )
    relay_partner_keys(transport, participants, phase)
    summed = masked_round(transport, "gram_digits", phase, participants, config=config)
    n_upper = summed.total.shape[1]  # d (d + 1) / 2
    n_columns = (math.isqrt(8 * n_upper + 1) - 1) // 2
    return server_gram_factor(summed.total, n_columns)
