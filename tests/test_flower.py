"""skfal on Flower across real processes: a SuperLink, three SuperNodes and the
example app (``examples/flower-app``) run with ``flwr run``.

The run must select the same rows with the same weights as the in-process
``fit(X, groups=...)`` with the same seed, the server must receive no raw row,
and a client that never connects or dies gives a clear error within the
configured timeout. Skipped when flwr is not installed (``skfal[flower]``).

One federation (a SuperLink and its SuperNodes) serves every test of the
module, and a run's end is awaited by ``flwr run --stream`` (one CLI process
blocked on the SuperLink's log stream) rather than by polling ``flwr ls``: on
2 cores each ``flwr`` CLI start costs about 2 s of CPU, taken from the
ClientApps. The SuperNodes are the stock ``flower-supernode`` with one test
setting: an idle SuperNode pulls every 0.5 s instead of Flower's fixed 3 s
(:data:`NODE_PULL_INTERVAL`), which is most of a round trip's latency on a
small table and changes no message.
"""

import json
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from skfal import (  # noqa: E402
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
)
from skfal.flower import federation_seed  # noqa: E402
from tests.test_federated_leverage import contains_raw_row  # noqa: E402

pytestmark = pytest.mark.flower

APP = Path(__file__).resolve().parents[1] / "examples" / "flower-app"
BIN = Path(sys.executable).parent
SIZES = (120, 100, 80)
SEED = 5
MARKER = "SKFAL_FLOWER_TEST"
# Seconds an idle SuperNode waits before pulling again (Flower 1.42: 3 s, a
# constant in flwr.supernode.start_client_internal). The SuperNodes here run
# flower-supernode's own entry point with that module's ``time.sleep``
# capped at this value; were the module laid out differently, they run as
# shipped (slower, same messages).
NODE_PULL_INTERVAL = 0.5
SUPERNODE = f"""
import sys, time
try:
    import flwr.supernode.start_client_internal as loop
except ImportError:
    loop = None


class CappedSleep:
    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds):
        time.sleep(min(seconds, {NODE_PULL_INTERVAL}))


if loop is not None and getattr(loop, "time", None) is time:
    loop.time = CappedSleep()
from flwr.supernode.cli import flower_supernode

sys.argv[0] = "flower-supernode"
sys.exit(flower_supernode())
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Federation:
    """A SuperLink and SuperNodes as subprocesses, torn down on exit.

    Teardown: SIGTERM to every process group started, a wait, SIGKILL to
    those left, then a sweep of any process whose environment carries this
    federation's marker (the SuperExecs and ClientApps they spawned). No
    process is ever killed by name.
    """

    def __init__(self, root, rows, seed, labels):
        self.root = root
        self.rows = rows
        self.labels = labels
        self.seed = seed
        self.marker = uuid.uuid4().hex
        self.processes = []
        home = root / "home"
        (home / ".flwr").mkdir(parents=True)
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",  # flwr run's JSON arrives before the stream ends
            "HOME": str(home),
            "FLWR_HOME": str(home / ".flwr"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.1",
            MARKER: self.marker,
        }
        self.port = free_port()
        (home / ".flwr" / "config.toml").write_text(
            '[superlink]\ndefault = "local"\n[superlink.local]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n'
        )

    def _start(self, name, *args):
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 (closed at exit)
        command = [str(BIN / args[0]), *args[1:]]
        if args[0] == "flower-supernode":
            command = [sys.executable, "-c", SUPERNODE, *args[1:]]
        process = subprocess.Popen(
            command,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append((process, log))
        return process

    def __enter__(self):
        try:
            self._start(
                "superlink",
                "flower-superlink",
                "--insecure",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--disable-runtime-dependency-installation",
            )
            self._wait_healthy()
            self.nodes = [self.start_node(c) for c in range(len(self.rows))]
            self._wait_online()
        except BaseException:
            self.__exit__()
            raise
        return self

    def start_node(self, c):
        config = (
            f'partition-id={c} federation-seed={self.seed} data-path="{self.rows[c]}" '
            f'label-path="{self.labels[c]}"'
        )
        return self._start(
            f"supernode{c}",
            "flower-supernode",
            "--insecure",
            "--superlink",
            f"127.0.0.1:{self.port}",
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
            "--node-config",
            config,
        )

    def _wait_healthy(self, timeout=60):
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"The SuperLink was not healthy within {timeout} s.")

    def flwr(self, *args):
        done = subprocess.run(
            [str(BIN / "flwr"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return done.stdout

    def _wait_online(self, timeout=120):
        """Until every SuperNode has logged its node id: it has registered
        with the SuperLink and activated (is online). Read from the logs, as
        each ``flwr supernode ls`` would start a CLI process."""
        deadline = time.monotonic() + timeout
        logs = [self.root / f"supernode{c}.log" for c in range(len(self.rows))]
        while not all("SuperNode ID:" in log.read_text() for log in logs):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(logs)} SuperNodes were not online within {timeout} s."
                )
            time.sleep(0.2)

    def start_run(self, app, config):
        """``flwr run --stream`` the app: the CLI process, which exits once the
        run has finished (the SuperLink ends the log stream)."""
        overrides = " ".join(
            f'{k}="{v}"' if isinstance(v, str) else f"{k}={v}"
            for k, v in config.items()
        )
        with open(self.root / "flwr-run.log", "a") as log:
            return subprocess.Popen(
                [str(BIN / "flwr"), "run", str(app), "local", "--format", "json"]
                + ["--stream", "-c", overrides],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def finish(self, process, timeout=900):
        """The final status and status details of the run ``process`` started."""
        deadline = time.monotonic() + timeout
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        run_id = re.search(r'"run-id": "(\d+)"', out).group(1)
        while True:  # finished once the stream ends: one look, as a rule
            listing = json.loads(
                self.flwr("ls", "local", "--run-id", run_id, "--format", "json")
            )
            (run,) = listing["runs"]
            if run["status"].startswith("finished"):
                return run["status"], run["status-details"]
            if time.monotonic() > deadline:
                self.flwr("stop", run_id, "local")
                raise TimeoutError(f"Run {run_id} did not finish within {timeout} s.")
            time.sleep(1.0)

    def run(self, app, config, timeout=900):
        """``flwr run`` the app; its final status and status details."""
        return self.finish(self.start_run(app, config), timeout)

    def __exit__(self, *exc):
        for process, _ in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process, _ in self.processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for pid in marked_processes(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _, log in self.processes:
            log.close()


def marked_processes(marker):
    """Pids of the processes whose environment carries ``marker``."""
    found = []
    needle = f"{MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((sum(SIZES), 4))
    X[3] *= 30.0  # a row of high leverage
    groups = np.repeat(np.arange(len(SIZES)), SIZES)
    return X, groups


@pytest.fixture(scope="module")
def target(data):
    X, _ = data
    rng = np.random.RandomState(1)
    return X @ [1.0, -2.0, 0.5, 3.0] + 1.5 + 0.1 * rng.standard_normal(X.shape[0])


@pytest.fixture(scope="module")
def federation(tmp_path_factory, data, target):
    X, groups = data
    root = tmp_path_factory.mktemp("flower")
    rows, labels = [], []
    for c in range(len(SIZES)):
        rows.append(root / f"rows{c}.npy")
        np.save(rows[-1], X[groups == c])
        labels.append(root / f"labels{c}.npy")
        np.save(labels[-1], target[groups == c])
    app = root / "skfalapp"  # letters only: Flower's rule for app directories
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    with Federation(root, rows, federation_seed(SEED), labels) as running:
        running.app = app
        yield running


def test_flower_run_equals_the_in_process_fit(federation, data):
    X, groups = data
    out = federation.root / "fitted.npz"
    audit = federation.root / "received.npz"
    # "fedsvd" runs in the regressor's test (its selection, bytes, round
    # trips and audit); here "qr", with the scores and draws too.
    for protocol in ("qr",):
        status, details = federation.run(
            federation.app,
            {
                "budget": 15,
                "protocol": protocol,
                "random-state": SEED,
                "output": str(out),
                "transcript": str(audit),
            },
        )
        assert status == "finished:completed", details
        fitted = np.load(out)
        ref = LeverageScoreSampler(budget=15, protocol=protocol, random_state=SEED)
        ref.fit(X, groups=groups)
        assert np.array_equal(fitted["sample_indices"], ref.sample_indices_)
        assert np.allclose(
            fitted["sample_weight"], ref.sample_weight_, rtol=1e-10, atol=0
        )
        assert np.allclose(fitted["scores"], ref.scores_, rtol=1e-10, atol=0)
        assert int(fitted["n_draws"][0]) == ref.n_draws_
        for phase, sent in ref.communication_.items():
            assert fitted[f"bytes_{phase}"].tolist() == [sent["up"], sent["down"]]
        # Round trips after the hello: the key agreement (2), the secure maximum
        # of the scales (2), the secure stack (3: "qr") or the masked rows
        # and their basis ("fedsvd"), the tournament and the selection.
        trips = {"qr": 11, "fedsvd": 8}[protocol]
        assert int(fitted["serialized_round_trips"][0]) == trips
        # What crossed the wire: the arrays' bytes, plus Flower's envelope.
        payload = int(fitted["serialized_array_bytes"][0])
        assert payload == sum(sum(b.values()) for b in ref.communication_.values())
        assert int(fitted["serialized_message_bytes"][0]) > payload
        # Wall and CPU seconds of every span, each at least 0 (how long they
        # take depends on the machine: not asserted).
        spans = ("round_trips", "client_steps", "client_io", "serialization")
        for span in (*spans, "connect", "total"):
            for key in (span, f"{span}_cpu"):
                seconds = float(fitted[f"seconds_{key}"][0])
                assert np.isfinite(seconds) and seconds >= 0, key
        # The server received no raw row (the in-process privacy check).
        received = np.load(audit)
        assert len(received.files) > 0
        uploads = sum(s["up"] for s in ref.communication_.values())
        assert sum(received[k].nbytes for k in received.files) == uploads
        for key in received.files:
            assert not contains_raw_row(received[key], X), key
    assert contains_raw_row(X[5:6], X)  # the check is not vacuous


@pytest.mark.parametrize(
    "sizes",
    [(), (3,), (100_000,), (500, 16, 0, 3_000_000), (500, 511, 2040, 16_383, 20_000)],
)
def test_message_bytes_is_the_serialized_size(sizes, monkeypatch):
    # _message_bytes sizes large arrays without serializing them: it must be
    # exactly what Flower's protobuf serialization makes of the message
    # (a request, and a reply with the clients' control values).
    from flwr.app import ConfigRecord, RecordDict
    from flwr.common.serde import message_to_proto
    from flwr.supercore.task_identity import TaskIdentity

    from skfal.flower import _message, _message_bytes, _pack, _reply

    for name, value in (("_run_id", 1), ("_node_id", 7), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)  # as in a Flower app process
    arrays = [np.arange(n, dtype=np.float64) for n in sizes]
    content = RecordDict(
        {"skfal.steps": ConfigRecord({"steps": "[]"}), "skfal.arrays": _pack(arrays)}
    )
    request = _message(content, 7, 30.0)
    request.metadata.__dict__["_message_id"] = "f" * 64
    reply = _reply(request, _pack(arrays[::-1]), {"step-seconds": 0.5, "n": 3})
    for message in (request, reply):
        assert _message_bytes(message) == message_to_proto(message).ByteSize()


def check_bytes_and_audit(fitted, audit, ref, X, forbidden=()):
    """Bytes per phase as ``communication_``; the server received no raw row
    and none of the values in ``forbidden`` (the labels)."""
    for phase, sent in ref.communication_.items():
        assert fitted[f"bytes_{phase}"].tolist() == [sent["up"], sent["down"]], phase
    phases = {k[len("bytes_") :] for k in fitted.files if k.startswith("bytes_")}
    assert phases == set(ref.communication_)
    payload = int(fitted["serialized_array_bytes"][0])
    assert payload == sum(sum(b.values()) for b in ref.communication_.values())
    assert int(fitted["serialized_message_bytes"][0]) > payload
    received = np.load(audit)
    uploads = sum(s["up"] for s in ref.communication_.values())
    assert sum(received[k].nbytes for k in received.files) == uploads
    for key in received.files:
        assert not contains_raw_row(received[key], X), key
        if received[key].dtype.kind == "f":
            assert not np.isin(received[key], forbidden).any(), key


def test_flower_regressor_equals_the_in_process_fit(federation, data, target):
    # FALE on Flower: the leverage selection, the labels read by each
    # ClientApp's labeling function at its selected rows only, then the
    # training ("global": masked data; "local": FedAvg of masked shares).
    # The same client steps and seeds as fit(X, y, groups=...): the same
    # rows, weights and model, and the same bytes per phase.
    X, groups = data
    out = federation.root / "regressor.npz"
    audit = federation.root / "regressor-received.npz"
    pickled = federation.root / "regressor.pkl"
    # Selected by "qr" for global training, by "fedsvd" for local training.
    for training, protocol in (("global", "qr"), ("local", "fedsvd")):
        status, details = federation.run(
            federation.app,
            {
                "estimator": "regressor",
                "training": training,
                "protocol": protocol,
                "budget": 20,
                "random-state": SEED,
                "output": str(out),
                "transcript": str(audit),
                "model": str(pickled),
            },
        )
        assert status == "finished:completed", details
        fitted = np.load(out)
        with open(pickled, "rb") as file:
            server = pickle.load(file)  # an ordinary fitted regressor
        ref = FederatedActiveRegressor(
            budget=20,
            training=training,
            sampler=LeverageScoreSampler(protocol=protocol),
            random_state=SEED,
        )
        ref.fit(X, target, groups=groups)
        assert np.array_equal(fitted["sample_indices"], ref.sample_indices_)
        assert np.allclose(fitted["sample_weight"], ref.sample_weight_, rtol=1e-10)
        assert np.allclose(fitted["coef"], ref.coef_, rtol=1e-10, atol=1e-12)
        assert fitted["intercept"][0] == pytest.approx(ref.intercept_, rel=1e-10)
        assert np.allclose(server.predict(X), ref.predict(X), rtol=1e-10, atol=1e-12)
        assert server.communication_ == ref.communication_
        check_bytes_and_audit(
            fitted, audit, ref, X, forbidden=target[ref.sample_indices_]
        )
        # Round trips after the hello: the selection's (11 or 8), then
        # training's: "global" 12 (two secure sums for the mean, the scales,
        # the secure stack, the solve), "local" 4 (a secure sum, the solve).
        trips = {"qr": 11, "fedsvd": 8}[protocol] + {"global": 12, "local": 4}[training]
        assert int(fitted["serialized_round_trips"][0]) == trips


def test_flower_sensitivity_sampler_equals_the_in_process_fit(federation, data):
    # SensitivitySampler's clustering (Lloyd rounds on secure sums), scores
    # and pivotal selection on Flower: the same medoids, rows and weights as
    # fit(X, groups=...), the same bytes per phase, no raw row received.
    X, groups = data
    out = federation.root / "sensitivity.npz"
    audit = federation.root / "sensitivity-received.npz"
    status, details = federation.run(
        federation.app,
        {
            "estimator": "sensitivity",
            "budget": 20,
            "n-clusters": 3,
            "max-iter": 2,
            "random-state": SEED,
            "output": str(out),
            "transcript": str(audit),
        },
    )
    assert status == "finished:completed", details
    fitted = np.load(out)
    ref = SensitivitySampler(budget=20, n_clusters=3, max_iter=2, random_state=SEED)
    ref.fit(X, groups=groups)
    assert np.array_equal(fitted["sample_indices"], ref.sample_indices_)
    assert np.allclose(fitted["sample_weight"], ref.sample_weight_, rtol=1e-10)
    assert np.array_equal(fitted["medoid_indices"], ref.medoid_indices_)
    assert int(fitted["n_iter"][0]) == ref.n_iter_
    # The server's scores are in the clients' working units X / 2**x: the
    # in-process scores times a power of two the server does not know.
    scored = ref.scores_ > 0  # the bought rows score 0 at both
    assert np.array_equal(fitted["scores"] > 0, scored)
    ratio = fitted["scores"][scored] / ref.scores_[scored]
    assert np.allclose(ratio, ratio[0], rtol=1e-10)
    assert np.log2(ratio[0]) == np.round(np.log2(ratio[0]))
    check_bytes_and_audit(fitted, audit, ref, X)


def test_a_client_that_never_connects_is_a_clear_error(federation):
    start = time.monotonic()
    status, details = federation.run(
        federation.app, {"num-clients": len(SIZES) + 1, "timeout": 2.0}
    )
    assert status == "finished:failed"
    assert "Only 3 of the 4 SuperNodes connected within 2.0 s" in details
    assert time.monotonic() - start < 120


def test_a_client_that_dies_mid_protocol_is_a_clear_error(federation):
    # Kill client 2's SuperNode (SIGKILL: no goodbye to the SuperLink) once it
    # has answered its first messages. A healthy round trip takes a few
    # seconds on 2 idle cores (17-20 s on 2 cores shared with a dozen busy
    # processes); the server's deadline, 30 s, names client 2 before the
    # SuperLink's heartbeat (up to 60 s) would.
    log = federation.root / "supernode2.log"
    before = log.read_text().count("Sent successfully")
    process = federation.start_run(federation.app, {"timeout": 30.0})
    deadline = time.monotonic() + 600
    while log.read_text().count("Sent successfully") < before + 2:
        assert time.monotonic() < deadline, "client 2 never answered"
        assert process.poll() is None, "the run ended before client 2 answered"
        time.sleep(0.2)
    os.killpg(federation.nodes[2].pid, signal.SIGKILL)
    status, details = federation.finish(process, timeout=600)
    assert status == "finished:failed"
    # Either the server's deadline or the SuperLink's heartbeat names it.
    assert re.search(
        r"No reply from clients \[2\] within 30.0 s|Client 2 \(SuperNode \d+\) failed",
        details,
    ), details
