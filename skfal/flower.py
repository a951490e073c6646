"""Run skfal's federated protocols across real processes on Flower (``flwr``).

The same client and server steps as a ``fit(X, groups=...)`` run here with the
server in a Flower ServerApp and each client in a ClientApp on its own
SuperNode, over Flower's Message API: every message carries the names of the
client steps to run (a ``ConfigRecord``) and their arrays (an
``ArrayRecord``); a client keeps what its steps keep between messages in the
Flower ``context.state``. With the same seeds, a Flower run and the in-process
fit select the same rows with the same weights and, for a
``FederatedActiveRegressor``, learn the same model: each client reads the
labels of its selected rows only, through the labeling function of its
:func:`client_app`, and sends the learned model to the server unless its app
says ``release_model=False``.

This is the only skfal module that imports ``flwr`` (``pip install
skfal[flower]``).

Seeds and trust
---------------
Every SuperNode's node config holds ``partition-id`` (the client's number:
``0, ..., n - 1``, its position among the sorted ``groups`` of the in-process
fit) and ``federation-seed``, one integer every client is handed. It fixes
only the client's draws that decide which rows are selected (its
:func:`~skfal._federated._transport.client_seeds`), which the server learns
anyway. Keys, masks and the secrets the clients share (the rotation ``Q``,
the orders of the secure maximum's bins) are drawn
from each node's operating-system randomness in every run and agreed by
X25519 key agreement (``skfal._federated._secure``), so neither the server
nor the seed's holder can compute them. :func:`federation_seed` gives the
seed an in-process fit with a ``random_state`` hands its simulated clients,
so a deployment selects the same rows with the same weights (to rounding)
and learns the same model (to rounding) as that fit.
"""

import json
import math
import time

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.clientapp import ClientApp

from skfal._federated import Channel, Transport, client_seeds, run_client_step
from skfal._federated._transport import LOCAL_KEYS, dropout_advice, federation_seed
from skfal._sampling import draw_seed
from skfal.federated import transcript

# The client side (client_app, run in a fresh process for every message)
# imports only the protocol steps above: no estimator, no scikit-learn. The
# server side's functions import the estimators, scikit-learn and Flower's
# ServerApp when they run.

__all__ = [
    "client_app",
    "federation_seed",
    "fit",
    "server_app",
]

MESSAGE_TYPE = "query.skfal"
_STEPS, _ARRAYS, _META, _STATE = "skfal.steps", "skfal.arrays", "skfal.meta", "skfal"
_HELLO = "hello"
# A message outlives the server's own deadline, so that a late client shows
# as a TimeoutError naming it rather than as an expired message.
_TTL_MARGIN = 30.0


def _pack(arrays):
    """Arrays as an ``ArrayRecord`` whose keys keep their order."""
    return ArrayRecord(
        array_dict={f"{i:05d}": Array(np.asarray(a)) for i, a in enumerate(arrays)}
    )


def _unpack(record):
    """The arrays of an ``ArrayRecord`` written by :func:`_pack`, in order."""
    return tuple(record[key].numpy() for key in sorted(record))


def _json(config):
    """Control values as JSON (numpy scalars as Python numbers)."""

    def plain(value):
        if isinstance(value, np.integer | np.bool_):
            return value.item()
        raise TypeError(f"{value!r} is no JSON control value")

    return json.dumps(config, default=plain)


class FlowerTransport(Transport):
    """The server's messages as Flower messages to the clients' SuperNodes.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
        The ServerApp's grid.
    node_ids : sequence of int
        The SuperNode of client ``0, 1, ...``.
    channel : Channel
        Counts the arrays, as in-process.
    timeout : float, default=120.0
        Seconds to wait for the replies of one message; a client that has not
        replied by then (dead, disconnected) raises a ``TimeoutError``.
    poll_interval : float, default=0.05
        Seconds between the first pulls of the replies; the wait doubles
        after every pull that brings no reply, up to
        ``max(poll_interval, 0.5)`` (see :func:`exchange`).

    Attributes
    ----------
    serialized : dict
        Bytes actually sent: ``{"messages", "round_trips", "array_bytes",
        "array_record_bytes", "message_bytes"}``: the arrays' own bytes (as
        counted in ``communication_``), their serialized form in the
        ``ArrayRecord``s (``.npy`` headers added), and whole serialized
        messages (records and Flower's envelope).
    timings : dict
        Seconds: ``"round_trips"`` (wall time from pushing the messages to
        the last reply, summed over round trips), ``"client_steps"`` (the
        slowest client's steps, summed over round trips), ``"client_io"``
        (the slowest client's loading of its rows and its state, likewise)
        and ``"serialization"`` (the server packing and unpacking arrays,
        and counting their bytes). Round trips less the clients' work is
        Flower's messaging latency (polling, a ClientApp process per
        message). Each key has a ``"..._cpu"`` twin: the CPU seconds
        (``time.process_time``, all threads of the process) spent in the
        same spans, by the ServerApp's process (``"round_trips_cpu"``,
        ``"serialization_cpu"``) or by the client's ClientApp process (the
        slowest client's, by CPU time, per round trip:
        ``"client_steps_cpu"``, ``"client_io_cpu"``). Where processes share
        cores, wall time counts the waiting for the other processes too;
        CPU time counts the work alone.
    """

    def __init__(self, grid, node_ids, channel, *, timeout=120.0, poll_interval=0.05):
        super().__init__(len(node_ids), channel)
        self.grid = grid
        self.node_ids = list(node_ids)
        self.timeout = float(timeout)
        self.poll_interval = float(poll_interval)
        self.serialized = dict.fromkeys(
            ("messages", "round_trips", "array_bytes", "array_record_bytes"), 0
        )
        self.serialized["message_bytes"] = 0
        spans = ("round_trips", "client_steps", "client_io", "serialization")
        self.timings = dict.fromkeys((*spans, *(f"{span}_cpu" for span in spans)), 0.0)

    def _count(self, message, arrays):
        """Count ``message`` (whose ``ArrayRecord`` of arrays is ``arrays``)."""
        self.serialized["array_bytes"] += sum(
            math.prod(a.shape) * np.dtype(a.dtype).itemsize for a in arrays.values()
        )
        self.serialized["array_record_bytes"] += sum(
            len(a.data) for a in arrays.values()
        )
        self.serialized["message_bytes"] += _message_bytes(message)
        self.serialized["messages"] += 1

    def _deliver(self, batches):
        started = _clock()
        outgoing = {}
        for c, requests in batches.items():
            steps = [
                {"step": r.step, "config": r.config, "n_arrays": len(r.arrays)}
                for r in requests
            ]
            arrays = _pack([a for r in requests for a in r.arrays])
            content = RecordDict(
                {_STEPS: ConfigRecord({"steps": _json(steps)}), _ARRAYS: arrays}
            )
            message = _message(content, self.node_ids[c], self.timeout)
            self._count(message, arrays)
            outgoing[c] = message
        pushed = _clock()
        try:
            replies = exchange(self.grid, outgoing, self.timeout, self.poll_interval)
        except TimeoutError as error:
            steps = sorted({r.step for requests in batches.values() for r in requests})
            raise TimeoutError(f"{error} {dropout_advice(steps)}") from None
        pulled = _clock()
        self.serialized["round_trips"] += 1
        metas = [reply.content.config_records[_META] for reply in replies.values()]
        for span, key in (("client_steps", "step"), ("client_io", "io")):
            self.timings[span] += max(m[f"{key}-seconds"] for m in metas)
            self.timings[f"{span}_cpu"] += max(m[f"{key}-cpu-seconds"] for m in metas)
        unpacked = {}
        for c, reply in replies.items():
            arrays = reply.content.array_records[_ARRAYS]
            self._count(reply, arrays)
            unpacked[c] = _unpack(arrays)
        done = _clock()
        self._add("round_trips", pushed, pulled)
        self._add("serialization", started, pushed)
        self._add("serialization", pulled, done)
        return unpacked

    def _add(self, span, start, stop):
        """Add the wall and CPU seconds from ``start`` to ``stop`` to ``span``."""
        self.timings[span] += stop[0] - start[0]
        self.timings[f"{span}_cpu"] += stop[1] - start[1]


def _clock():
    """Wall and CPU seconds now (``perf_counter``, ``process_time``)."""
    return time.perf_counter(), time.process_time()


# Arrays of at least this many serialized bytes are sized, not serialized,
# by _message_bytes.
_SIZED = 4096


def _varint_size(value):
    """Bytes of the protobuf varint ``value``."""
    return max(1, (value.bit_length() + 6) // 7)


def _field_size(number, length):
    """Bytes of a length-delimited protobuf field ``number`` of ``length`` bytes."""
    return _varint_size(number << 3 | 2) + _varint_size(length) + length


def _message_bytes(message):
    """The bytes of ``message`` serialized as Flower's protobuf ``Message``.

    ``flwr.common.serde.message_to_proto(message).ByteSize()``, computed
    without copying the arrays: converting and sizing a message copies each
    array's bytes once per level of nesting, milliseconds for a megabyte.
    Large arrays are converted with empty data and their fields' sizes
    added (protobuf's framing: a tag, a varint length, the bytes).

    Parameters
    ----------
    message : flwr.app.Message

    Returns
    -------
    n_bytes : int
    """
    from flwr.common.serde import (
        message_to_proto,
        metadata_to_proto,
        recorddict_to_proto,
    )
    from flwr.proto.message_pb2 import Message as ProtoMessage
    from flwr.proto.recorddict_pb2 import Array as ProtoArray
    from flwr.proto.recorddict_pb2 import ArrayRecord as ProtoArrayRecord
    from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict

    if message.has_error() or not message.has_content():
        return message_to_proto(message).ByteSize()
    sized, content = {}, RecordDict()
    for key, record in message.content.items():
        if isinstance(record, ArrayRecord) and any(
            len(a.data) >= _SIZED for a in record.values()
        ):
            sized[key] = {k: len(a.data) for k, a in record.items()}
            record = ArrayRecord(
                array_dict={
                    k: a
                    if len(a.data) < _SIZED
                    else Array(a.dtype, tuple(a.shape), a.stype, b"")
                    for k, a in record.items()
                }
            )
        content[key] = record
    if not sized:
        return message_to_proto(message).ByteSize()
    number = {
        "data": ProtoArray.DESCRIPTOR.fields_by_name["data"].number,
        "value": ProtoArrayRecord.Item.DESCRIPTOR.fields_by_name["value"].number,
        "arrays": ProtoArrayRecord.DESCRIPTOR.fields_by_name["items"].number,
        "record": ProtoRecordDict.Item.DESCRIPTOR.fields_by_name["array_record"].number,
        "records": ProtoRecordDict.DESCRIPTOR.fields_by_name["items"].number,
        "content": ProtoMessage.DESCRIPTOR.fields_by_name["content"].number,
    }
    stripped = ProtoMessage(
        metadata=metadata_to_proto(message.metadata),
        content=recorddict_to_proto(content),
    )

    def grown(field, size, added):
        """How much field ``field`` of ``size`` bytes grows by ``added`` bytes."""
        return _field_size(number[field], size + added) - _field_size(
            number[field], size
        )

    full = 0  # the content's serialized bytes
    for item in stripped.content.items:
        item_size = item.ByteSize()
        if item.key in sized:
            added = 0
            for entry in item.array_record.items:
                length = sized[item.key][entry.key]
                if length >= _SIZED:
                    data = _field_size(number["data"], length)
                    entry_added = grown("value", entry.value.ByteSize(), data)
                    added += grown("arrays", entry.ByteSize(), entry_added)
            item_size += grown("record", item.array_record.ByteSize(), added)
        full += _field_size(number["records"], item_size)
    content = stripped.content.ByteSize()
    return stripped.ByteSize() + grown("content", content, full - content)


def _message(content, node_id, timeout):
    """A message to one SuperNode that outlives the server's deadline."""
    return Message(
        content,
        dst_node_id=node_id,
        message_type=MESSAGE_TYPE,
        group_id="skfal",
        ttl=timeout + _TTL_MARGIN,
    )


def exchange(grid, messages, timeout, poll_interval=0.05):
    """Push ``{client: message}`` and pull every reply, or raise within ``timeout``.

    The replies are pulled ``poll_interval`` seconds apart at first; the wait
    doubles after every pull that brings none, up to ``max(poll_interval,
    0.5)`` seconds, and starts again from ``poll_interval`` after one that
    brings some. A round trip takes seconds on Flower (a SuperNode pulls
    every 3 s and starts a process per message), and every pull is a
    request the ServerApp and the SuperLink serve: pulling every 50 ms
    would spend seconds of CPU per fit on both, taken from the clients when
    they share the machine.

    Raises
    ------
    RuntimeError
        A client's reply is an error (its ClientApp raised, or its node is
        unavailable).
    TimeoutError
        Some client has not replied within ``timeout`` seconds.
    """
    clients = list(messages)
    ids = list(grid.push_messages([messages[c] for c in clients]))
    waiting = dict(zip(ids, clients, strict=True))
    replies = {}
    deadline = time.monotonic() + timeout
    wait, longest = poll_interval / 2, max(poll_interval, 0.5)
    while waiting:
        pulled = list(grid.pull_messages(list(waiting)))
        wait = poll_interval if pulled else min(2 * wait, longest)
        for reply in pulled:
            c = waiting.pop(reply.metadata.reply_to_message_id)
            if reply.has_error():
                raise RuntimeError(
                    f"Client {c} (SuperNode {messages[c].metadata.dst_node_id}) "
                    f"failed: Flower error code {reply.error.code}: "
                    f"{reply.error.reason}"
                )
            replies[c] = reply
        if waiting and time.monotonic() > deadline:
            late = sorted(waiting.values())
            raise TimeoutError(
                f"No reply from clients {late} within {timeout} s: their "
                "SuperNodes died, disconnected or are too slow (raise the "
                "timeout for slow clients)."
            )
        if waiting:
            time.sleep(wait)
    return replies


def connect(grid, n_clients, *, timeout=120.0, poll_interval=0.05):
    """Wait for ``n_clients`` SuperNodes; each client's node id and features.

    Every online node is asked its ``partition-id`` (carried in each reply,
    since a restarted SuperNode has a new node id).

    Returns
    -------
    node_ids : list of int
        The node of client ``0, ..., n_clients - 1``.
    n_features : int
        The clients' number of features (they must agree).
    """
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= n_clients:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Only {len(nodes)} of the {n_clients} SuperNodes connected "
                f"within {timeout} s."
            )
        time.sleep(max(poll_interval, 0.2))
    content = {
        node: _message(
            RecordDict(
                {
                    _STEPS: ConfigRecord({"steps": _json([{"step": _HELLO}])}),
                    _ARRAYS: _pack([]),
                }
            ),
            node,
            timeout,
        )
        for node in nodes
    }
    remaining = max(deadline - time.monotonic(), 1.0)
    replies = exchange(grid, content, remaining, poll_interval)
    found, widths = {}, set()
    for node, reply in replies.items():
        meta = reply.content.config_records[_META]
        partition = int(meta["partition-id"])
        if partition in found:
            raise ValueError(
                f"SuperNodes {found[partition]} and {node} both have "
                f"partition-id={partition}: give every client its own."
            )
        found[partition] = node
        widths.add(int(meta["n-features"]))
    if sorted(found) != list(range(n_clients)):
        raise ValueError(
            f"Expected SuperNodes with partition-id 0..{n_clients - 1}; "
            f"found {sorted(found)}."
        )
    if len(widths) != 1:
        raise ValueError(f"The clients' rows have different widths {sorted(widths)}.")
    return [found[c] for c in range(n_clients)], widths.pop()


def fit(estimator, grid, *, n_clients, timeout=120.0):
    """Fit ``estimator`` over the clients of a Flower grid: the server's side.

    Parameters
    ----------
    estimator : LeverageScoreSampler, SensitivitySampler or FederatedActiveRegressor
        Unfitted; cloned. Its ``random_state`` is the server's. A regressor
        must use a ``LeverageScoreSampler`` (the default ``sampler``) or a
        ``SensitivitySampler``.
    grid : flwr.serverapp.Grid
    n_clients : int
        SuperNodes to wait for (``partition-id`` ``0, ..., n_clients - 1``).
    timeout : float, default=120.0
        Seconds to wait for the nodes to connect, and for each reply.

    Returns
    -------
    fitted : LeverageScoreSampler or FederatedActiveRegressor
        A sampler has ``scores_``, ``sample_indices_`` (rows numbered client
        by client: client 0's rows first), ``sample_weight_``, ``n_draws_``,
        ``communication_``, ``clients_`` (the partition ids); the map
        ``whitener_`` stays with the clients (each ClientApp keeps its own),
        so ``transform`` is not available at the server. A
        ``SensitivitySampler`` has the selection, ``scores_`` (in the
        clients' working units ``X / 2**x``, ``x`` known to the clients
        only), ``medoid_indices_``, ``probe_indices_``, ``n_clusters_``,
        ``n_iter_``, ``medoid_losses_``, ``n_queries_`` and
        ``communication_``; the centres and each row's cluster stay with the
        clients. A regressor has
        ``sampler_`` (that sampler), ``sample_indices_``, ``sample_weight_``,
        ``n_queries_``, ``communication_`` (selection and training),
        ``coef_`` and ``intercept_`` (the model the clients released;
        ``None`` when their ClientApps keep it, ``release_model=False``, and
        ``predict`` then raises), and ``masked_model_`` (what the server
        computed: the R factor it broadcast, or the summed FedAvg shares, in
        units it does not know). Both also have ``client_sample_indices_``
        (each client's selected rows, in its own numbering), ``serialized_``
        and ``timings_`` (as :class:`FlowerTransport`'s, and ``"connect"``:
        waiting for the nodes, ``"total"``: the whole fit, each with its
        ``"..._cpu"`` twin, the ServerApp process's CPU seconds). The
        server's own compute is ``total - connect - round_trips -
        serialization``, in wall or in CPU seconds.
    """
    from sklearn.base import clone
    from sklearn.utils import check_random_state

    from skfal._leverage import LeverageScoreSampler
    from skfal._regressor import FederatedActiveRegressor
    from skfal._sensitivity import SensitivitySampler

    runs = LeverageScoreSampler | FederatedActiveRegressor | SensitivitySampler
    if not isinstance(estimator, runs):
        raise TypeError(
            "skfal.flower.fit runs the protocols of LeverageScoreSampler, "
            "SensitivitySampler and FederatedActiveRegressor; got "
            f"{type(estimator).__name__}."
        )
    estimator = clone(estimator)
    started = _clock()
    node_ids, n_features = connect(grid, n_clients, timeout=timeout)
    connected = _clock()
    transport = FlowerTransport(grid, node_ids, Channel(), timeout=timeout)
    rng = check_random_state(estimator.random_state)
    estimator.n_features_in_ = n_features
    if isinstance(estimator, FederatedActiveRegressor):
        counts = estimator._fit_federated(transport, n_features, rng)
    else:
        draw_seed(rng)  # in-process, this draw is the dealer's federation seed
        estimator.clients_ = np.arange(n_clients)
        counts = estimator._fit_federated(transport, n_features, rng)
    local, _ = transport.split(estimator.sample_indices_, counts)
    estimator.client_sample_indices_ = [local[c] for c in transport.clients]
    estimator.serialized_ = dict(transport.serialized)
    timings = dict(transport.timings)
    finished = _clock()
    for span, (start, stop) in (
        ("connect", (started, connected)),
        ("total", (started, finished)),
    ):
        timings[span] = stop[0] - start[0]
        timings[f"{span}_cpu"] = stop[1] - start[1]
    estimator.timings_ = timings
    return estimator


def client_app(load_data, label=None, *, release_model=True):
    """A Flower ``ClientApp`` running skfal's client steps on a node's rows.

    Parameters
    ----------
    load_data : callable
        ``load_data(node_config) -> X_i``: the node's rows (array of shape
        ``(n_i, n_features)``), called once per message; the node config
        holds ``partition-id`` and ``federation-seed``, see the module
        docstring.
    label : callable, default=None
        ``label(node_config, local_indices) -> y``: the labels of the node's
        rows ``local_indices`` (positions among the rows ``load_data``
        returns), one per row. Called only for the rows the server selected,
        once per fit (the node keeps them), and only by training
        (``FederatedActiveRegressor``); a sampler never calls it. ``None``:
        this node cannot label, and training stops with an error saying so.
    release_model : bool, default=True
        Whether this node sends the model it learns to the server. ``True``:
        the ServerApp process ends holding the fitted model (``coef_``,
        ``intercept_``), as the in-process estimator object does; that is
        what a deployment is usually for. ``False``: the node keeps the model
        (in its ``context.state``) and the server ends with the selection and
        the masked model only (``coef_`` is ``None``; ``predict`` raises). In
        neither case does the server receive a client's own local model,
        its rows or its labels (see the threat model in the user guide).
        A node config key ``release-model`` (``true``/``false``) overrides it
        for one node.

    Returns
    -------
    app : flwr.clientapp.ClientApp
    """
    app = ClientApp()

    @app.query("skfal")
    def query(message, context):
        config = context.node_config
        missing = [k for k in ("partition-id", "federation-seed") if k not in config]
        if missing:
            raise ValueError(
                f"This SuperNode's node config lacks {missing}: start it with "
                "--node-config 'partition-id=<client number> "
                "federation-seed=<the federation's seed>' (see skfal.flower)."
            )
        client = int(config["partition-id"])
        loading = _clock()
        X = np.asarray(load_data(config), dtype=np.float64)
        loaded = _clock()
        if X.ndim != 2:
            raise ValueError(
                f"load_data must return a 2-D array of rows; got shape {X.shape}."
            )
        steps = json.loads(message.content.config_records[_STEPS]["steps"])
        meta = {"partition-id": client, "n-features": int(X.shape[1])}
        if steps == [{"step": _HELLO}]:
            return _reply(message, _pack(()), meta)
        release = config.get("release-model", release_model)
        if isinstance(release, str):
            release = release.strip().lower() not in ("false", "0", "no")
        state = {"X": X, "client": client, "release_model": bool(release)}
        if label is not None:
            state["label_reader"] = lambda rows: label(config, rows)
        started = _clock()
        if "secret-seed" in config:
            raise ValueError(
                "The node config key 'secret-seed' is no longer used: keys and "
                "masks are drawn from the node's OS randomness in every run. "
                "Remove it from --node-config."
            )
        state.update(client_seeds(int(config["federation-seed"]), client))
        saved = {}
        if _STATE in context.state.array_records:
            saved = dict(context.state.array_records[_STATE].items())
        restored = {key: array.numpy() for key, array in saved.items()}
        state.update(restored)
        arrays = list(_unpack(message.content.array_records[_ARRAYS]))
        reply = ()
        stepping = _clock()
        for request in steps:
            mine = tuple(arrays[: request["n_arrays"]])
            del arrays[: request["n_arrays"]]
            reply = run_client_step(state, request["step"], request["config"], mine)
        stepped = _clock()
        context.state.array_records[_STATE] = ArrayRecord(
            array_dict={
                key: _kept(value, saved.get(key), restored.get(key))
                for key, value in state.items()
                if key not in LOCAL_KEYS
            }
        )
        packed = _pack(reply)
        done = _clock()
        for unit, i in (("seconds", 0), ("cpu-seconds", 1)):
            meta[f"step-{unit}"] = stepped[i] - stepping[i]
            meta[f"io-{unit}"] = (
                (loaded[i] - loading[i])
                + (stepping[i] - started[i])
                + (done[i] - stepped[i])
            )
        return _reply(message, packed, meta)

    return app


def _kept(value, saved, restored):
    """The state entry ``value`` as an ``Array``: ``saved`` when unchanged.

    ``restored`` is what ``saved`` was loaded as at the start of this
    message; when a step left that very array in place with the same bytes,
    the ``Array`` it came from is kept rather than serialized again.
    """
    value = np.asarray(value)
    if (
        saved is not None
        and value is restored
        and tuple(value.shape) == tuple(saved.shape)
        and str(value.dtype) == saved.dtype
        and saved.data.endswith(value.tobytes(order="A"))
    ):
        return saved
    return Array(value)


def _reply(message, arrays, meta):
    """The reply to ``message``: the ``ArrayRecord`` ``arrays`` and ``meta``."""
    return Message(
        RecordDict({_ARRAYS: arrays, _META: ConfigRecord(meta)}),
        reply_to=message,
    )


def server_app(estimator, *, n_clients=None, timeout=120.0, on_fit=None):
    """A Flower ``ServerApp`` that fits ``estimator`` over the SuperNodes.

    Run-config keys override the arguments: ``num-clients``, ``timeout``,
    ``random-state``, ``protocol`` (a regressor's sampler's) and any other
    parameter of the estimator, hyphenated (``budget``, ``training``,
    ``n-clusters``, ``max-iter``, ...); ``transcript`` (a path, ``.npz``)
    saves every array the server received, for an audit.

    Parameters
    ----------
    estimator : estimator or callable
        The estimator to fit (a ``LeverageScoreSampler``,
        ``SensitivitySampler`` or ``FederatedActiveRegressor``, as
        :func:`fit` takes), or ``estimator(run_config)`` returning it (an app
        that fits what its run config names).
    n_clients : int, default=None
        SuperNodes to wait for (required here or in the run config).
    timeout : float, default=120.0
    on_fit : callable, default=None
        ``on_fit(fitted, context)``: what to do with the fitted estimator
        (save it, e.g. to a path in the run config).

    Returns
    -------
    app : flwr.serverapp.ServerApp
    """
    from flwr.serverapp import ServerApp
    from sklearn.base import clone

    from skfal._leverage import LeverageScoreSampler
    from skfal._regressor import FederatedActiveRegressor

    app = ServerApp()

    @app.main()
    def main(grid, context):
        run_config = context.run_config
        chosen = estimator
        if not hasattr(chosen, "fit") and callable(chosen):
            chosen = chosen(run_config)
        params = {}
        if "random-state" in run_config:
            params["random_state"] = int(run_config["random-state"])
        if "budget" in run_config:
            params["budget"] = run_config["budget"]
        regressor = isinstance(chosen, FederatedActiveRegressor)
        if "protocol" in run_config:
            protocol = str(run_config["protocol"])
            if regressor:
                sampler = chosen.sampler or LeverageScoreSampler()
                params["sampler"] = clone(sampler).set_params(protocol=protocol)
            elif "protocol" in chosen.get_params():
                params["protocol"] = protocol
        own = chosen.get_params(deep=False)
        for key, value in run_config.items():  # e.g. training, n-clusters
            name = key.replace("-", "_")
            if name in own and name not in params and name != "sampler":
                params[name] = value
        clients = int(run_config.get("num-clients", n_clients or 0))
        if clients < 1:
            raise ValueError(
                "Give the number of clients: server_app(n_clients=...) or the "
                "run-config key num-clients."
            )
        audit = str(run_config.get("transcript", ""))
        with transcript() as messages:
            fitted = fit(
                clone(chosen).set_params(**params),
                grid,
                n_clients=clients,
                timeout=float(run_config.get("timeout", timeout)),
            )
        if audit:  # every array the server received, for an auditor
            received = [m for m in messages if m.receiver == "server"]
            np.savez(
                audit,
                **{
                    f"{i:05d}_{m.phase}_{m.sender.replace(' ', '')}": m.array
                    for i, m in enumerate(received)
                },
            )
        if on_fit is not None:
            on_fit(fitted, context)

    return app
