"""Secure aggregation: the server learns the sum of the clients' arrays, not one.

Pairwise additive masks (Bonawitz et al., "Practical secure aggregation for
privacy-preserving machine learning", CCS 2017; Flower's SecAgg+ is the same
idea):

1. Key agreement (once per fit, :func:`key_session`): every client draws a
   private X25519 key (RFC 7748, elliptic-curve Diffie-Hellman on
   Curve25519) and uploads its public key; the server broadcasts all of
   them; client ``i`` derives the secret ``s_ij = SHA-256(X25519(a_i, A_j))``
   of each pair, which the server, holding only public keys, cannot compute
   (the computational Diffie-Hellman assumption on Curve25519; the server
   is honest-but-curious and relays keys faithfully).
2. Every secure sum (a fresh round id each time): client ``i`` encodes its
   array in fixed point as 64-bit words and adds ``PRG(s_ij, round)`` for
   every other participant ``j > i`` and subtracts it for ``j < i``, modulo
   ``2^64``. Each upload alone is uniformly distributed whatever it encodes;
   in the server's sum every mask appears once with each sign and cancels,
   leaving exactly the sum of the encoded arrays.

Masks cancel exactly only in integer arithmetic, hence the fixed point: a
float ``v`` in column ``m`` travels as ``round(v 2^(62 - E_m))``, with ``2^E_m``
a bound on every client's entries and on the sum in that column. The clients
agree on the bounds without the server learning them: a secure *maximum* of
their exponents, each client marking the bin of its exponent with a random
non-zero word in a table whose bins are permuted by a secret all clients share
(two rounds: 69 coarse bins of 32 exponents, then the 32 exponents of the
winning coarse bin). The server adds the tables as in any secure sum and sends
the result back; it sees which permuted bins are occupied, that is, how many
distinct exponents occur, never which. So the server handles every sum in
units of ``2^E_m`` it does not know: it either passes the sum back to the
clients, or factors it (a QR factorization commutes with scaling the columns
by powers of two, exactly).

Rounding: each client's value is rounded once to ``2^(E_m - 62)``, so a sum of
``k`` arrays is exact to ``k 2^(E_m - 63)``, about ``k 1e-19`` relative to the
column's largest entry (a float64 sum is good to ``1e-16``).

Dropouts: a client that drops after uploading its public key leaves masks that
do not cancel. This simulation has no dropouts; a deployment restarts the round
among the survivors (a fresh round id, so no mask is reused), or uses the
secret-shared masks of Bonawitz et al. to recover without a restart.

Collusion: pairwise masks hide client ``i``'s upload unless the server
colludes with all other participants (then the sum minus theirs is ``i``'s).
A sum with one participant would be that participant's upload: in a
federation of several clients every secure sum needs at least
:data:`MIN_PARTICIPANTS` of them (a federation of one client has nobody to
hide from but the server, which then learns that client's totals, as the
threat model in the user guide says). With two participants, each learns the
other's value from the sum and its own.
"""

import contextlib
import contextvars
import functools
import hashlib
import itertools

import numpy as np

from skfal._federated._masks import haar_orthogonal
from skfal._federated._transport import client_step, stream
from skfal._linalg import column_norms
from skfal._sampling import draw_seed

MIN_PARTICIPANTS = 2

# X25519 (RFC 7748): Curve25519's Montgomery ladder over GF(2^255 - 19).
_P25519 = 2**255 - 19
_A24 = 121665
_BASE_POINT = (9).to_bytes(32, "little")
_KEY_BYTES = 32

_FRACTION_BITS = 62
# Exponents (numpy.frexp) of finite non-zero doubles lie in [-1073, 1024].
_MIN_EXPONENT = -1100
_BIN_WIDTH = 32
_N_COARSE = 69  # ceil(2200 / 32) bins cover [-1100, 1108)
_ABSENT = np.iinfo(np.int64).min  # the exponent of an all-zero column


# --------------------------------------------------------------------- clients
@functools.lru_cache(maxsize=4096)
def x25519(scalar, point):
    """RFC 7748's X25519 function: ``scalar * point`` on Curve25519 (bytes).

    A pure function of its arguments; cached, since a simulation re-derives
    the same keys whenever a fit is repeated with the same ``random_state``.
    """
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    n = int.from_bytes(k, "little")
    p = _P25519
    x1 = int.from_bytes(point, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        bit = (n >> t) & 1
        if swap ^ bit:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % p, (x2 - z2) % p
        aa, bb = a * a % p, b * b % p
        e = (aa - bb) % p
        da, cb = (x3 - z3) * a % p, (x3 + z3) * b % p
        x3 = (da + cb) ** 2 % p
        z3 = x1 * (da - cb) ** 2 % p
        x2 = aa * bb % p
        z2 = e * (aa + _A24 * e) % p
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, p - 2, p) % p).to_bytes(32, "little")


def client_key_pair(seed):
    """A client's X25519 key pair: ``(private bytes, public key as uint8 array)``."""
    private = np.random.RandomState(seed).bytes(_KEY_BYTES)
    public = x25519(private, _BASE_POINT)
    return private, np.frombuffer(public, dtype=np.uint8)


def client_pair_secrets(private, public_keys, me):
    """The secret a client shares with every other client: ``{j: int}``."""
    secrets = {}
    for j, key in enumerate(public_keys):
        if j == me:
            continue
        shared = x25519(private, bytes(key))
        if shared == bytes(_KEY_BYTES):
            raise ValueError(f"Client {j}'s public key is a low-order point.")
        secrets[j] = int.from_bytes(hashlib.sha256(shared).digest(), "big")
    return secrets


def _pair_mask(secret, round_id, size):
    """The pseudorandom 64-bit words a pair of clients adds and subtracts.

    Philox keyed by 128 bits of the pair's secret, one counter block per
    round id: a fresh, independent stream every round.
    """
    key = secret & ((1 << 128) - 1)
    generator = np.random.Philox(key=key, counter=[0, 0, round_id, 0])
    return generator.random_raw(size).astype(np.uint64)


def client_mask(words, me, participants, secrets, round_id):
    """Add the pairwise masks to a client's encoded array (modulo ``2^64``)."""
    out = np.array(words, dtype=np.uint64)
    flat = out.reshape(-1)
    for j in participants:
        if j == me:
            continue
        mask = _pair_mask(secrets[j], round_id, flat.size)
        if me < j:
            flat += mask
        else:
            flat -= mask
    return out


def column_exponents(magnitudes):
    """``e`` with ``magnitude < 2^e`` per column (``_ABSENT`` for zeros)."""
    magnitudes = np.asarray(magnitudes, dtype=np.float64)
    exponents = np.frexp(magnitudes)[1].astype(np.int64)
    exponents[magnitudes == 0] = _ABSENT
    return exponents


@functools.lru_cache(maxsize=64)
def _bin_permutations(n_columns, n_bins, seed):
    """The clients' secret order of each column's bins (the server never sees
    it): row ``m`` maps bin ``b`` of column ``m`` to its position."""
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(n_columns, n_bins))
    keys = np.random.default_rng(sequence).random((n_columns, n_bins))
    return np.argsort(keys, axis=1)


def client_exponent_marks(exponents, coarse, seed, random_state):
    """One round of the secure maximum: a random word at the bin of each exponent.

    Parameters
    ----------
    exponents : ndarray of shape (n_columns,) of int
        The client's exponents (``_ABSENT`` for an all-zero column).
    coarse : ndarray of shape (n_columns,) of int or None
        ``None`` in the first round (coarse bins); in the second, the winning
        coarse bin of each column (``-1``: every column was zero).
    seed : int
        The clients' shared secret that permutes the bins.
    random_state : numpy.random.RandomState
        The client's own randomness for the marks.

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
    order = _bin_permutations(n_columns, n_bins, seed)
    words = random_state.randint(1, 2**63, size=columns.size, dtype=np.int64)
    marks[columns, order[columns, bins[columns]]] = words.astype(np.uint64)
    return marks


def client_highest_bins(summed_marks, seed):
    """Unpermute the summed marks: the highest occupied bin per column (or -1)."""
    n_columns, n_bins = summed_marks.shape
    order = _bin_permutations(n_columns, n_bins, seed)
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
class SecureAggregation:
    """The key material of one protocol run, as each client holds its part.

    ``secrets[c]`` are client ``c``'s pairwise secrets (the simulation keeps
    every client's in one object; each step reads only its own client's), and
    ``group_seed`` the secret all clients share (it permutes the bins of the
    secure maximum). Round ids are public and never repeat.
    """

    def __init__(self, secrets, group_seed):
        self.secrets = secrets
        self.group_seed = group_seed
        self._rounds = itertools.count()

    def next_round(self):
        """A fresh public round id (masks are never reused)."""
        return next(self._rounds)


def client_shared_seeds(shared_seed):
    """The secrets every client derives from the seed they share: the seeds of
    the rotation ``Q``, of the mixing matrix ``M``, and of the bin order."""
    sequence = np.random.SeedSequence(int(shared_seed))
    return tuple(int(s) for s in sequence.generate_state(3, dtype=np.uint32))


_KEY_SESSION = contextvars.ContextVar("skfal_key_session", default=None)


@contextlib.contextmanager
def key_session():
    """Within the block, the protocol runs of one fit share one key agreement.

    The clients keep their keys from one phase to the next (as in a
    deployment), so a fit that runs several protocols (selection, then
    training) agrees on keys once; round ids keep counting, so no mask is
    reused. Nested blocks join the outer session. Nothing is stored on an
    estimator: the keys end with the block.
    """
    if _KEY_SESSION.get() is not None:
        yield
        return
    token = _KEY_SESSION.set({})
    try:
        yield
    finally:
        _KEY_SESSION.reset(token)


def run_key_agreement(n_clients, group_seed, random_state, channel):
    """Every pair of clients agrees on a secret through the server (step 1).

    Parameters
    ----------
    n_clients : int
    group_seed : int
        A secret every client holds (drawn with the clients' shared rotation).
    random_state : numpy.random.RandomState
        Draws each client's private key seed.
    channel : Channel

    Returns
    -------
    secure : SecureAggregation
        Within a :func:`key_session`, the session's keys for these clients
        when they already agreed on some (no message is sent then).
    """
    session = _KEY_SESSION.get()
    if session is not None and n_clients in session:
        return session[n_clients]
    seeds = draw_seed(random_state, size=n_clients)
    pairs = [client_key_pair(seed) for seed in seeds]
    keys = np.stack(
        [channel.up("key_agreement", c, pairs[c][1]) for c in range(n_clients)]
    )
    received = [channel.down("key_agreement", c, keys) for c in range(n_clients)]
    secrets = [
        client_pair_secrets(pairs[c][0], received[c], c) for c in range(n_clients)
    ]
    secure = SecureAggregation(secrets, group_seed)
    if session is not None:
        session[n_clients] = secure
    return secure


def _check_participants(participants, n_clients, phase):
    """At least two clients in every sum of a federation of several."""
    if n_clients > 1 and len(participants) < MIN_PARTICIPANTS:
        raise ValueError(
            f"The {phase!r} step adds up the clients' uploads by secure "
            f"aggregation, which needs at least {MIN_PARTICIPANTS} clients in "
            f"the sum; only client {list(participants)} of {n_clients} takes "
            "part, so the sum would be that client's own upload. Raise the "
            "budget so that several clients hold selected rows, or fit "
            "without groups."
        )


def _masked_round(words, participants, secure, channel, phase):
    """One secure sum of already-encoded words; returns the server's total."""
    round_id = secure.next_round()
    uploads = [
        channel.up(
            phase,
            c,
            client_mask(words[c], c, participants, secure.secrets[c], round_id),
        )
        for c in participants
    ]
    return server_sum_words(uploads)


def run_secure_bounds(magnitudes, secure, channel, phase, headroom, random_state):
    """The secure maximum: every participant learns the columns' bounds ``E_m``.

    Parameters
    ----------
    magnitudes : dict of int to ndarray of shape (n_columns,)
        Each participant's bound on the absolute value of its entries, per
        column.
    secure : SecureAggregation
    channel : Channel
    phase : str
    headroom : int
        Bits added to the largest exponent so that the sum fits as well.
    random_state : numpy.random.RandomState
        Draws the clients' mark seeds.

    Returns
    -------
    bounds : ndarray of shape (n_columns,) of int
        As every participant computes them (the server never does).
    zero : ndarray of shape (n_columns,) of bool
        The columns no participant has a non-zero entry in (bound 0).
    """
    participants = list(magnitudes)
    seeds = draw_seed(random_state, size=len(participants))
    exponents = {c: column_exponents(magnitudes[c]) for c in participants}
    rngs = {
        c: np.random.RandomState(s) for c, s in zip(participants, seeds, strict=True)
    }
    coarse = None
    for _ in range(2):
        marks = {
            c: client_exponent_marks(exponents[c], coarse, secure.group_seed, rngs[c])
            for c in participants
        }
        total = _masked_round(marks, participants, secure, channel, phase)
        received = channel.broadcast(phase, participants, total)
        highest = client_highest_bins(received, secure.group_seed)
        if coarse is None:
            coarse = highest
        else:
            fine = highest
    return bounds_from_bins(coarse, fine, headroom), coarse < 0


def run_secure_sum(values, secure, channel, phase, random_state, magnitudes=None):
    """Secure aggregation of one array per participant.

    Parameters
    ----------
    values : dict of int to ndarray
        Each participant's array (all of the same shape); the last axis
        indexes the columns, each with its own fixed-point bound.
    secure : SecureAggregation
    channel : Channel
        Counts the marks of the secure maximum and the masked uploads,
        all under ``phase``.
    phase : str
    random_state : numpy.random.RandomState
    magnitudes : dict of int to ndarray of shape (n_columns,), default=None
        Each participant's bound on its entries' absolute values per column,
        and on the sum's divided by ``sqrt(k)`` (orthogonally mixed blocks,
        whose columns add in squares); ``None``: the largest absolute value
        per column, and a bound ``k`` times that for the sum.

    Returns
    -------
    units : ndarray
        The sum, as the server holds it: in units of ``2^E_m`` per column.
    bounds : ndarray of shape (n_columns,) of int
        The ``E_m``, known to the participants only (``client_decode``).
    """
    participants = list(values)
    _check_participants(participants, len(secure.secrets), phase)
    if not all(np.all(np.isfinite(v)) for v in values.values()):
        raise ValueError(
            f"A client's {phase!r} upload is not finite: its values overflow "
            "float64 (e.g. labels near 1e300 with features near 1e-300). "
            "Divide y by its scale, or multiply X by one."
        )
    k = len(participants)
    if magnitudes is None:
        magnitudes = {
            c: np.abs(np.reshape(v, (-1, np.shape(v)[-1]))).max(axis=0, initial=0.0)
            for c, v in values.items()
        }
        headroom = int(np.ceil(np.log2(k)))
    else:
        headroom = int(np.ceil(np.log2(k) / 2))
    bounds, _ = run_secure_bounds(
        magnitudes, secure, channel, phase, headroom, random_state
    )
    words = {c: client_encode(values[c], bounds) for c in participants}
    return decode_units(_masked_round(words, participants, secure, channel, phase)), (
        bounds
    )


def run_secure_total(
    values, secure, channel, phase, random_state, receivers, down=None
):
    """A secure sum the server passes back: every receiver's decoded total.

    :func:`run_secure_sum`, then the server broadcasts the sum (in its
    unknown units) to ``receivers`` under phase ``down`` (``phase`` if
    ``None``), and each of them decodes it with the bounds it holds.
    """
    units, bounds = run_secure_sum(values, secure, channel, phase, random_state)
    received = channel.broadcast(phase if down is None else down, receivers, units)
    return client_decode(received, bounds)


# ------------------------------------------------------ secure stacked factors
@functools.lru_cache(maxsize=2)
def _mixing(n_rows, seed):
    """The clients' shared Haar matrix ``M`` (``n_rows x n_rows``)."""
    return haar_orthogonal(n_rows, np.random.RandomState(seed))


def client_mixed_block(factor, offset, n_rows, seed):
    """A client's share ``M[:, rows] R_i`` of the mixed stack ``M [R_1; ...; R_k]``."""
    block = _mixing(n_rows, seed)[:, offset : offset + factor.shape[0]]
    return block @ factor


def server_stack_layout(row_counts):
    """Where each client's factor sits in the stack, and the stack's height."""
    counts = [int(count[0]) for count in row_counts]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return offsets, int(sum(counts))


def run_secure_stack(factors, secure, channel, phase, mixing_seed, random_state):
    """Secure aggregation of stacked factors: the server gets ``M [R_1; ...; R_k]``.

    The server needs an ``R`` of the stacked factors, a function of
    ``sum_i R_i^T R_i`` alone; ``M`` is a Haar orthogonal matrix the clients
    derive from a shared secret. The server receives only the secure sum of
    the clients' shares ``M[:, rows_i] R_i``, and for a Haar ``M`` that sum
    is distributed as ``U R`` with ``U`` uniform on the orthonormal frames:
    it reveals ``sum_i R_i^T R_i`` and nothing else, not even which client
    contributed what. A QR factorization of it gives an ``R`` as accurate as
    stacking the ``R_i`` in the clear.

    Parameters
    ----------
    factors : dict of int to ndarray of shape (r_i, n_columns)
    secure : SecureAggregation
    channel : Channel
        Counts the row counts, the layout, the marks and the masked shares,
        all under ``phase``.
    phase : str
    mixing_seed : int
        The clients' shared secret for ``M``.
    random_state : numpy.random.RandomState

    Returns
    -------
    units : ndarray of shape (sum r_i, n_columns)
        ``M [R_1; ...; R_k]`` as the server holds it, in units of ``2^E_m``.
    bounds : ndarray of shape (n_columns,) of int
        The ``E_m``, known to the clients only.
    """
    participants = list(factors)
    offsets, n_rows = server_stack_layout(
        [channel.up(phase, c, np.array([factors[c].shape[0]])) for c in participants]
    )
    layout = {
        c: channel.down(phase, c, np.array([offsets[i], n_rows]))
        for i, c in enumerate(participants)
    }
    shares = {
        c: client_mixed_block(
            factors[c], int(layout[c][0]), int(layout[c][1]), mixing_seed
        )
        for c in participants
    }
    magnitudes = {c: column_norms(factors[c]) for c in participants}
    return run_secure_sum(shares, secure, channel, phase, random_state, magnitudes)


# ------------------------------------------------- over a transport (steps)
def _group_seed(state):
    """The bin-order secret every client derives from the shared seed."""
    return client_shared_seeds(state["shared_seed"])[2]


def _kept_secrets(state):
    """The pairwise secrets a client kept: ``{j: int}``."""
    return {
        j: int.from_bytes(bytes(row), "big")
        for j, row in enumerate(state["pair_secrets"])
        if j != state["client"]
    }


@client_step("key_pair")
def step_key_pair(state, config):
    """Key agreement, 1: draw a private key (kept), upload the public key."""
    seed = int(stream(state["secret_seed"], "key").randint(2**31 - 1))
    private, public = client_key_pair(seed)
    state["private_key"] = np.frombuffer(private, dtype=np.uint8).copy()
    return (public,)


@client_step("pair_secrets")
def step_pair_secrets(state, config, public_keys):
    """Key agreement, 2: the secret shared with every other client (kept)."""
    me = state["client"]
    secrets = client_pair_secrets(bytes(state["private_key"]), public_keys, me)
    kept = np.zeros((public_keys.shape[0], _KEY_BYTES), dtype=np.uint8)
    for j, secret in secrets.items():
        kept[j] = np.frombuffer(secret.to_bytes(_KEY_BYTES, "big"), dtype=np.uint8)
    state["pair_secrets"] = kept


@client_step("exponent_marks")
def step_exponent_marks(state, config, *summed):
    """Secure maximum: the masked marks of one round.

    ``config["magnitudes"]`` names the kept per-column magnitudes; with the
    first round's sum (``summed``) the client marks the fine bins of the
    winning coarse bin.
    """
    exponents = column_exponents(state[config["magnitudes"]])
    coarse = None
    if summed:
        coarse = client_highest_bins(summed[0], _group_seed(state))
        state["coarse_bins"] = coarse
    rng = stream(state["secret_seed"], "marks", config["round"])
    marks = client_exponent_marks(exponents, coarse, _group_seed(state), rng)
    return (
        client_mask(
            marks,
            state["client"],
            config["participants"],
            _kept_secrets(state),
            config["round"],
        ),
    )


@client_step("exponent_bounds")
def step_exponent_bounds(state, config, *summed):
    """Secure maximum, end: keep the columns' bounds ``E_m`` (and, under
    ``store + "_zero"``, the columns no participant has a non-zero entry in).

    A participant receives the last round's sum; a client that sits out the
    sum but needs its bounds (to decode the total it is sent) receives both
    rounds' sums and reads the bounds off them the same way.
    """
    seed = _group_seed(state)
    if len(summed) == 2:
        coarse = client_highest_bins(summed[0], seed)
    else:
        coarse = state.pop("coarse_bins")
    fine = client_highest_bins(summed[-1], seed)
    state[config["store"]] = bounds_from_bins(coarse, fine, config["headroom"])
    state[config["store"] + "_zero"] = coarse < 0


@client_step("masked_words")
def step_masked_words(state, config):
    """Secure sum: the kept values, in fixed point, masked."""
    values = state[config["values"]]
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"A client's {config['phase']!r} upload is not finite: its values "
            "overflow float64 (e.g. labels near 1e300 with features near "
            "1e-300). Divide y by its scale, or multiply X by one."
        )
    words = client_encode(values, state[config["bounds"]])
    return (
        client_mask(
            words,
            state["client"],
            config["participants"],
            _kept_secrets(state),
            config["round"],
        ),
    )


@client_step("mixed_block")
def step_mixed_block(state, config, layout):
    """Secure stack: keep the share ``M[:, rows] R_i`` of the kept factor."""
    factor = state[config["factor"]]
    mixing_seed = client_shared_seeds(state["shared_seed"])[1]
    state["share"] = client_mixed_block(
        factor, int(layout[0]), int(layout[1]), mixing_seed
    )
    state["share_magnitudes"] = column_norms(factor)


# ------------------------------------------------ over a transport (server)
def key_agreement(transport):
    """Every pair of clients agrees on a secret through the server (once a fit)."""
    if transport.session.get("keys_agreed"):
        return
    keys = transport.ask("key_pair", "key_agreement")
    stacked = np.stack([keys[c][0] for c in transport.clients])
    transport.tell("pair_secrets", "key_agreement", broadcast=(stacked,))
    transport.session["keys_agreed"] = True


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
    """
    participants = list(participants)
    others = [c for c in (receivers or ()) if c not in participants]
    config = {"participants": participants, "magnitudes": magnitudes}
    summed, sums = (), []
    for _ in range(2):
        round_id = transport.next_round()
        marks = transport.ask(
            "exponent_marks",
            phase,
            broadcast=summed,
            config={**config, "round": round_id},
            clients=participants,
        )
        summed = (server_sum_words([marks[c][0] for c in participants]),)
        sums.append(summed[0])
    ending = {"headroom": headroom, "store": store}
    transport.tell(
        "exponent_bounds", phase, broadcast=summed, config=ending, clients=participants
    )
    if others:
        transport.tell(
            "exponent_bounds",
            phase,
            broadcast=tuple(sums),
            config=ending,
            clients=others,
        )


def secure_sum(
    transport, participants, phase, values, magnitudes, headroom, receivers=None
):
    """Secure aggregation of the arrays the participants kept under ``values``.

    Returns the sum as the server holds it, in units of ``2^E_m`` per column;
    the participants (and ``receivers``, see :func:`secure_bounds`) keep the
    bounds under ``values + "_bounds"``.
    """
    participants = list(participants)
    _check_participants(participants, transport.n_clients, phase)
    bounds = values + "_bounds"
    secure_bounds(
        transport, participants, phase, magnitudes, headroom, bounds, receivers
    )
    round_id = transport.next_round()
    config = {"participants": participants, "round": round_id, "phase": phase}
    words = transport.ask(
        "masked_words",
        phase,
        config={**config, "values": values, "bounds": bounds},
        clients=participants,
    )
    return decode_units(server_sum_words([words[c][0] for c in participants]))


def secure_stack(transport, heights, phase, factor, receivers=None):
    """Secure aggregation of stacked factors (:func:`run_secure_stack`).

    ``heights`` are the clients' numbers of factor rows (uploaded, or known
    to the server); those with a factor kept it under ``factor``. Returns
    ``M [R_1; ...; R_k]`` in units of ``2^E_m``; the participants (and
    ``receivers``) keep the bounds under ``"share_bounds"``.
    """
    participants = [c for c in transport.clients if int(heights[c][0]) > 0]
    offsets, n_rows = server_stack_layout([heights[c] for c in participants])
    transport.tell(
        "mixed_block",
        phase,
        {c: (np.array([offsets[i], n_rows]),) for i, c in enumerate(participants)},
        config={"factor": factor},
        clients=participants,
    )
    headroom = int(np.ceil(np.log2(len(participants)) / 2))
    return secure_sum(
        transport,
        participants,
        phase,
        "share",
        "share_magnitudes",
        headroom,
        receivers,
    )


def session_keys(transport):
    """Hand an in-process transport's agreed keys to the fit's key session.

    The in-process simulation's bridge to the protocols that still run on
    :func:`run_key_agreement` (training, clustering): they reuse the keys
    the clients kept, and round ids go on from the transport's.
    """
    session = _KEY_SESSION.get()
    if session is None or not transport.session.get("keys_agreed"):
        return
    transport.flush()
    states = transport.states
    secure = SecureAggregation(
        [_kept_secrets(state) for state in states], _group_seed(states[0])
    )
    secure._rounds = itertools.count(transport.next_round())
    session[transport.n_clients] = secure
    session["transport"] = transport


def session_transport():
    """The in-process transport a sampler left in the fit's key session.

    Its clients keep what the selection left them (their rows to label,
    their weights, their keys), so training in the same fit goes on over it.
    ``None`` outside a session or when no sampler left one; taken once.
    """
    session = _KEY_SESSION.get()
    return None if session is None else session.pop("transport", None)


def adopt_session_keys(transport):
    """The in-process bridge the other way: clients keep the session's keys.

    When the fit's key session holds keys for these clients (agreed by a
    protocol that ran on :func:`run_key_agreement`), each client of the
    in-process ``transport`` keeps its own pairwise secrets and round ids go
    on from the session's, so no key is agreed twice and no mask reused.
    """
    session = _KEY_SESSION.get()
    if session is None or transport.n_clients not in session:
        return
    secure = session[transport.n_clients]
    for c, state in enumerate(transport.states):
        kept = np.zeros((transport.n_clients, _KEY_BYTES), dtype=np.uint8)
        for j, secret in secure.secrets[c].items():
            kept[j] = np.frombuffer(secret.to_bytes(_KEY_BYTES, "big"), dtype=np.uint8)
        state["pair_secrets"] = kept
    transport.session["keys_agreed"] = True
    transport._rounds = secure.next_round()
