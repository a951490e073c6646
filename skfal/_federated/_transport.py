"""How the protocols' messages travel: the server asks clients to run named steps.

A protocol driver (``*_leverage``, ``pivotal_selection``, ...) runs at the
server. It never touches a client's data: it asks clients to run a *client
step*, registered here by name with :func:`client_step`, and receives their
replies. A step runs as ``step(state, config, *arrays)`` where

- ``state`` is that client's own dict: its rows under ``"X"``, its
  ``"sampling_seed"`` (:func:`client_seeds`), its client number
  ``"client"``, and whatever its earlier steps kept there (its keys and
  the group secret, the rotation, its scores); every
  value a step keeps is a numpy array, so a transport between processes can
  store it between messages;
- ``config`` is the envelope's control: public small values (round ids, who
  takes part, flags) that every party may know; they are not counted as
  message bytes, as an envelope's headers are not;
- ``arrays`` are what the server sent (each counted as a down message) and
  the step returns a tuple of arrays (each counted as an up message).

A :class:`Transport` carries the arrays and counts them on a
:class:`~skfal._federated._channel.Channel` (the byte accounting and the
auditor's transcript); it does no mathematics. :meth:`Transport.tell` is a
one-way message: it is counted at once and delivered with the next
:meth:`Transport.ask` to that client, so it costs no round trip of its own.
A transport implements :meth:`Transport._deliver` alone: the in-process one
here runs the steps in joblib threads on states held in memory; the one in
:mod:`skfal.flower` sends Flower messages. An MPI or gRPC transport would be
the same few lines.

Randomness: a client's draws that decide the result (which rows are drawn)
come from its sampling seed, derived from the federation's seed, which an
in-process fit draws from the estimator's ``random_state``; so the same seed
gives the same rows on every transport. Its keys, its masks and the secrets
it shares with the other clients come from the operating system's randomness,
fresh in every fit (``_secure.py``), and change a result by rounding only.
The server draws only from its own ``random_state`` (and, for public
choices that change no result, from fresh randomness).
"""

from typing import NamedTuple

import numpy as np
from joblib import Parallel, delayed

from skfal._federated._simulation import client_view

# What a client holds before any step (its data, its oracle, its seed), and
# what a step caches for the later steps of the same message only.
STATE = {
    "X": "array (n_i, d) or Rows: its rows",
    "client": "int: its number",
    "sampling_seed": "int: its draws that decide the result",
    "labels": "float64 (n_i,): the simulation's oracle (NaN: not bought)",
    "label_reader": "callable: a deployment's oracle (never stored)",
    "release_model": "bool: whether it sends the model it learns",
    "design": "float64 (n_i, d'): its rows with the intercept column (cache)",
    "scaled_X": "float64 (n_i, d): its rows in the working units (cache)",
}

CLIENT_STEPS = {}

# State entries a client holds from outside the protocol (its data, its
# labeling function, its seeds, whether it releases the model it learns);
# everything else in a state was kept by a step.
DATA_KEYS = frozenset(
    {
        "X",
        "labels",
        "label_reader",
        "release_model",
        "client",
        "sampling_seed",
    }
)
# State entries a step may cache for later steps of the same message only.
LOCAL_KEYS = DATA_KEYS | {"design", "scaled_X"}

# Entries no server config may name (for a step to read, upload or
# overwrite): the client's data and, added by the modules that keep them
# (``_secure.py``), its keys and secrets. Steps take state names from the
# config (what to sum, where to keep a broadcast); a server that named
# "X" or "group_secret" there would read them.
PROTECTED = set(LOCAL_KEYS)

# Purposes of a client's private streams (the spawn key of its seeds).
_SAMPLING = 1


def client_step(name):
    """Register a client step under ``name`` (a decorator)."""

    def register(function):
        if name in CLIENT_STEPS:
            raise ValueError(f"A client step named {name!r} is already registered.")
        CLIENT_STEPS[name] = function
        return function

    return register


def run_client_step(state, name, config, arrays):
    """Run the registered client step ``name`` on ``state``; its reply arrays."""
    try:
        step = CLIENT_STEPS[name]
    except KeyError:
        raise ValueError(
            f"Unknown client step {name!r}; the registered steps are "
            f"{sorted(CLIENT_STEPS)}."
        ) from None
    _check_names(name, config)
    reply = step(state, config, *arrays)
    return tuple(np.asarray(array) for array in (reply or ()))


def _check_names(step, config):
    """Refuse a config that names a protected state entry (``PROTECTED``)."""
    for key, value in (config or {}).items():
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, (list, tuple)):
            continue
        named = sorted({v for v in names if isinstance(v, str)} & PROTECTED)
        if named:
            raise ValueError(
                f"The server's request for step {step!r} names the client's "
                f"protected state {named} (config {key!r}): a step would read, "
                "upload or overwrite its data, keys or secrets. Refused."
            )


def dropout_advice(steps):
    """What to do when clients stopped replying to ``steps`` (an error's end)."""
    return (
        f"They were asked {', '.join(map(repr, steps))}; this protocol needs "
        "every client. Start a new fit once they are back. A fit without "
        "them is safe only if they uploaded to no secure sum that completed "
        "(they stopped at the key agreement or before their first upload): "
        "otherwise the server would hold two totals whose difference is "
        "their input (docs/threat_model.rst, Dropouts)."
    )


def read_labels(state, local_indices):
    """A client's labels at its own rows ``local_indices``, read only there.

    From the client's labeling function (``state["label_reader"]``, called
    with the local indices; a deployment's oracle) or, in a simulation, its
    column of labels (``state["labels"]``). Raises a ValueError naming the
    rows whose label is missing or not finite.
    """
    local_indices = np.asarray(local_indices, dtype=np.int64)
    if local_indices.size == 0:
        return np.empty(0)
    reader = state.get("label_reader")
    if reader is not None:
        labels = np.asarray(reader(local_indices), dtype=np.float64).reshape(-1)
    elif "labels" in state:
        labels = np.asarray(state["labels"], dtype=np.float64)[local_indices]
    else:
        raise ValueError(
            f"Client {state['client']} was asked for labels but has no labeling "
            "function: give the ClientApp one (skfal.flower.client_app(load_data, "
            "label=...))."
        )
    if labels.shape != local_indices.shape:
        raise ValueError(
            f"The labeling function returned {labels.shape[0]} labels for "
            f"{local_indices.size} rows: it must return one label per row asked."
        )
    bad = local_indices[~np.isfinite(labels)]
    if bad.size:
        raise ValueError(
            f"Client {state['client']} has no finite label at {bad.size} of its "
            f"{local_indices.size} selected rows (its rows {bad[:10].tolist()}): "
            "label every selected row, with a finite value."
        )
    return labels


def federation_seed(random_state):
    """The federation's seed an in-process fit with ``random_state`` uses.

    Its first draw: the estimators draw it so, and a deployment hands it to
    every client (``skfal.flower.federation_seed`` is this function).

    Parameters
    ----------
    random_state : int or numpy.random.RandomState
        The estimator's ``random_state``.

    Returns
    -------
    seed : int
        Put it in every SuperNode's node config as ``federation-seed`` to
        reproduce ``fit(X, groups=...)`` with that ``random_state``.
    """
    from sklearn.utils import check_random_state  # not on a client's path

    from skfal._sampling import draw_seed

    return int(draw_seed(check_random_state(random_state)))


def client_seeds(federation_seed, client):
    """A client's sampling seed, derived from the federation's seed.

    Parameters
    ----------
    federation_seed : int
        The seed every client is handed (an in-process fit draws it from the
        estimator's ``random_state``; see :func:`federation_seed`). It is no
        secret: it fixes which rows are drawn, which the server learns
        anyway.
    client : int
        The client's number (its position in the sorted client labels).

    Returns
    -------
    seeds : dict
        ``"sampling_seed"``: the client's draws that decide the result (its
        subsample, its local centres, its pivotal tournament), so the rows
        selected are a function of the data and ``random_state``. Keys,
        masks and every secret the clients share are not derived from it:
        they come from the operating system's randomness in every fit
        (``_secure.py``).
    """
    sequence = np.random.SeedSequence(
        int(federation_seed), spawn_key=(_SAMPLING, int(client))
    )
    return {"sampling_seed": int(sequence.generate_state(1, dtype=np.uint32)[0])}


def stream(seed, *purpose):
    """A client's random stream for one purpose (e.g. ``("marks", round_id)``)."""
    words = [int(seed)]
    for part in purpose:
        words.extend(part.encode() if isinstance(part, str) else [int(part)])
    return np.random.RandomState(np.random.SeedSequence(words).generate_state(4))


class Request(NamedTuple):
    """One step a client is asked to run: its name, control and arrays."""

    step: str
    config: dict
    arrays: tuple


class Transport:
    """The server's side of the messages: ask clients to run named steps.

    Parameters
    ----------
    n_clients : int
        Clients ``0, ..., n_clients - 1``.
    channel : Channel
        Counts (and records) every array sent either way.

    Attributes
    ----------
    clients : tuple of int
        The clients' numbers.
    session : dict
        What the server remembers from one protocol to the next in a fit
        (e.g. that the clients already agreed on keys).
    """

    def __init__(self, n_clients, channel):
        self.clients = tuple(range(n_clients))
        self.channel = channel
        self.session = {}
        self._pending = {c: [] for c in self.clients}
        self._rounds = 0

    @property
    def n_clients(self):
        """The number of clients."""
        return len(self.clients)

    def next_round(self):
        """A fresh public round id for a secure sum (masks are never reused)."""
        self._rounds += 1
        return self._rounds - 1

    def tell(
        self, step, phase, arrays=None, *, broadcast=(), config=None, clients=None
    ):
        """A one-way message: client ``c`` runs ``step`` on ``arrays[c] + broadcast``.

        Counted now as down messages of ``phase``; delivered with the next
        message to that client (:meth:`ask` or :meth:`flush`).
        """
        clients = self.clients if clients is None else clients
        arrays = {} if arrays is None else arrays
        config = {} if config is None else dict(config)
        for c in clients:
            sent = tuple(arrays.get(c, ())) + tuple(broadcast)
            received = tuple(self.channel.down(phase, c, array) for array in sent)
            self._pending[c].append(Request(step, config, received))

    def ask(
        self,
        step,
        phase,
        arrays=None,
        *,
        broadcast=(),
        config=None,
        clients=None,
        reply_phase=None,
        tolerate=False,
    ):
        """Clients run ``step`` and reply: ``{client: tuple of arrays}``.

        Parameters
        ----------
        step : str
            A registered client step.
        phase : str
            The phase the arrays sent are counted under.
        arrays : dict of int to tuple of ndarray, default=None
            What each client is sent.
        broadcast : tuple of ndarray, default=()
            Sent to every asked client too (after its own arrays), counted
            once per client.
        config : dict, default=None
            Public control values.
        clients : sequence of int, default=None
            The clients asked (all by default).
        reply_phase : str, default=None
            The phase the replies are counted under (``phase`` by default).
        tolerate : bool, default=False
            Whether a client may fail to reply (it dropped out): its entry
            is then missing from the replies. Otherwise a missing reply is
            an error naming the clients.

        Returns
        -------
        replies : dict of int to tuple of ndarray
        """
        clients = self.clients if clients is None else tuple(clients)
        self.tell(
            step, phase, arrays, broadcast=broadcast, config=config, clients=clients
        )
        batches = {c: self._pending[c] for c in clients}
        for c in clients:
            self._pending[c] = []
        replies = self._deliver(batches)
        missing = [c for c in clients if c not in replies]
        if missing and not tolerate:
            raise RuntimeError(
                f"No reply from clients {missing}: they dropped out. "
                + dropout_advice([step])
            )
        up = phase if reply_phase is None else reply_phase
        return {
            c: tuple(self.channel.up(up, c, array) for array in replies[c])
            for c in clients
            if c in replies
        }

    def flush(self):
        """Deliver the one-way messages still waiting (at the end of a protocol)."""
        batches = {c: pending for c, pending in self._pending.items() if pending}
        self._pending = {c: [] for c in self.clients}
        if batches:
            self._deliver(batches)

    def gather(self, values):
        """The clients' per-row values in the federation's row order.

        Client by client here; the in-process transport uses the row order
        of the simulation's ``X``.
        """
        return np.concatenate([np.asarray(values[c]) for c in self.clients])

    def rows(self, local, counts):
        """The inverse of :meth:`split`: sorted rows in the federation's order.

        ``local[c]`` are positions among client ``c``'s rows.
        """
        offsets = np.cumsum([0] + [int(counts[c]) for c in self.clients])
        found = [offsets[i] + np.asarray(local[c]) for i, c in enumerate(self.clients)]
        return np.sort(np.concatenate(found).astype(np.int64))

    def rows_of(self, client, local, counts):
        """Client ``client``'s rows ``local`` (positions among its own) as
        rows of the federation, in the order given."""
        before = self.clients[: list(self.clients).index(client)]
        return sum(int(counts[c]) for c in before) + np.asarray(local, dtype=np.int64)

    def split(self, indices, counts):
        """Which of its own rows each client holds among sorted row ``indices``.

        Parameters
        ----------
        indices : ndarray
            Sorted rows in the federation's order (:meth:`gather`).
        counts : dict of int to int
            Each client's number of rows.

        Returns
        -------
        local : dict of int to ndarray
            Each client's positions among its own rows.
        positions : dict of int to ndarray
            Where they sit in ``indices``.
        """
        local, positions, start = {}, {}, 0
        for c in self.clients:
            stop = start + int(counts[c])
            lo, hi = np.searchsorted(indices, [start, stop])
            local[c] = indices[lo:hi] - start
            positions[c] = np.arange(lo, hi)
            start = stop
        return local, positions

    def check_labels(self, rows, what, hint):
        """Before clients read the labels of ``rows`` (federation order).

        Nothing here: a client without a label says so itself. The
        in-process transport names the missing rows of the simulation's
        labels up front (so ``query`` can list them).
        """

    def _deliver(self, batches):
        """Run each client's requests in order; the reply to each one's last.

        Parameters
        ----------
        batches : dict of int to list of Request

        Returns
        -------
        replies : dict of int to tuple of ndarray
        """
        raise NotImplementedError


class InProcessTransport(Transport):
    """Clients' states in this process, their steps in joblib threads.

    Parameters
    ----------
    states : list of dict
        Client ``c``'s own state (its rows under ``"X"`` and its seeds).
    channel : Channel
    client_rows : list of ndarray, default=None
        Where each client's rows sit in the simulation's ``X``: the
        federation's row order for :meth:`gather` and :meth:`split` (the
        simulation's bookkeeping, so a fitted estimator's attributes follow
        the rows of ``X``); client by client when ``None``.
    n_jobs : int, default=None
        Clients run their steps in parallel threads.
    """

    def __init__(self, states, channel, client_rows=None, n_jobs=None):
        super().__init__(len(states), channel)
        self.states = states
        self.client_rows = client_rows
        self.n_jobs = n_jobs
        self.labels = None  # the simulation's y, for check_labels only
        # A simulation of dropouts: {client: (step, "before" or "after")}
        # stops the client at its first run of that step (or its n-th, with
        # (step, when, n)), before replying or right after; it never
        # replies again.
        self.dropouts = {}
        self.dead = set()
        self._runs = {}

    def kept(self, name):
        """What each client kept under ``name`` (``None`` where it did not).

        The simulation's holder of a fitted estimator takes from its clients
        only what a deployment's clients would hand the estimator's holder
        (each one's map ``W``, the centres, each row's cluster); the
        estimators read client states through this alone.
        """
        return [state.get(name) for state in self.states]

    def hand_labels(self, labels):
        """The simulation's oracle: each client holds its column of
        ``labels`` (the simulation's ``y``, NaN where none was bought), which
        its steps read at the rows they must only."""
        self.labels = labels
        for state, rows in zip(self.states, self.client_rows, strict=True):
            state["labels"] = labels[rows]

    def check_labels(self, rows, what, hint):
        if self.labels is None:
            return
        from skfal._validation import check_labels_at  # imports scikit-learn

        check_labels_at(self.labels, np.asarray(rows, dtype=np.int64), what, hint)

    def _run(self, c, requests):
        reply = ()
        for request in requests:
            if c in self.dead:
                return None
            step, when, nth = (*self.dropouts.get(c, (None, None)), 1)[:3]
            if step == request.step:
                runs = self._runs[c, step] = self._runs.get((c, step), 0) + 1
                if runs == nth and when == "before":
                    self.dead.add(c)
                    return None
            reply = run_client_step(
                self.states[c], request.step, request.config, request.arrays
            )
            if step == request.step and runs == nth and when == "after":
                self.dead.add(c)
        return reply

    def _deliver(self, batches):
        clients = list(batches)
        if len(clients) == 1 or self.n_jobs in (None, 1):
            replies = [self._run(c, batches[c]) for c in clients]
        else:
            parallel = Parallel(n_jobs=self.n_jobs, prefer="threads")
            replies = parallel(delayed(self._run)(c, batches[c]) for c in clients)
        return {
            c: reply
            for c, reply in zip(clients, replies, strict=True)
            if reply is not None
        }

    def gather(self, values):
        if self.client_rows is None:
            return super().gather(values)
        n_samples = sum(rows.shape[0] for rows in self.client_rows)
        first = np.asarray(values[self.clients[0]])
        out = np.empty(n_samples, dtype=first.dtype)
        for c, rows in zip(self.clients, self.client_rows, strict=True):
            out[rows] = values[c]
        return out

    def rows(self, local, counts):
        if self.client_rows is None:
            return super().rows(local, counts)
        found = [self.client_rows[c][np.asarray(local[c])] for c in self.clients]
        return np.sort(np.concatenate(found).astype(np.int64))

    def rows_of(self, client, local, counts):
        if self.client_rows is None:
            return super().rows_of(client, local, counts)
        return self.client_rows[client][np.asarray(local, dtype=np.int64)].astype(
            np.int64
        )

    def split(self, indices, counts):
        if self.client_rows is None:
            return super().split(indices, counts)
        n_samples = sum(rows.shape[0] for rows in self.client_rows)
        where = np.full(n_samples, -1, dtype=np.int64)
        where[indices] = np.arange(indices.shape[0])
        local, positions = {}, {}
        for c, rows in zip(self.clients, self.client_rows, strict=True):
            at = where[rows]
            mine = np.flatnonzero(at >= 0)
            local[c], positions[c] = mine, at[mine]
        return local, positions


def simulated_federation(
    X, client_rows, federation_seed, channel, n_jobs=None, labels=None
):
    """The in-process transport of a simulated federation.

    Client ``c`` holds the rows ``X[client_rows[c]]`` (a view when they are
    contiguous), the seeds :func:`client_seeds` derives from
    ``federation_seed`` and, with ``labels`` (the simulation's ``y``, NaN
    where no label was bought), its own column of labels, which its steps
    read at the rows they must only.
    """
    states = [
        {"X": client_view(X, rows), "client": c, **client_seeds(federation_seed, c)}
        for c, rows in enumerate(client_rows)
    ]
    transport = InProcessTransport(states, channel, client_rows, n_jobs)
    if labels is not None:
        transport.hand_labels(labels)
    return transport
