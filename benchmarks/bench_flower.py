"""Wall time of a Flower run of LeverageScoreSampler against the in-process fit.

Starts a SuperLink and one SuperNode per client as processes on localhost
(the harness of ``tests/test_flower.py``), runs ``examples/flower-app``, and
splits the ServerApp's fit into start-up (waiting for the nodes), the
clients' compute, serialization (the server's packing and the clients'
loading of rows and state) and messaging latency (the rest of each round
trip: Flower's polling and a ClientApp process per message), next to the
in-process ``fit(X, groups=...)`` on the same rows and the number of round
trips.

Target (issue 13): compute plus serialization within 3x of the in-process
fit; messaging latency reported against Flower 1.42's floor (an idle
SuperNode pulls every 3 s).

Usage: ``python benchmarks/bench_flower.py [--clients 10] [--rows 100000]
[--features 20]`` (needs ``pip install -e ".[flower]"``).
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _util import best_time  # noqa: E402

from skfal import LeverageScoreSampler  # noqa: E402
from skfal.flower import federation_seed  # noqa: E402
from tests.test_flower import APP, Federation  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rows", type=int, default=100_000, help="per client")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--protocol", default="qr", choices=["qr", "fedsvd"])
    args = parser.parse_args()

    rng = np.random.RandomState(0)
    X = rng.standard_normal((args.clients * args.rows, args.features))
    groups = np.repeat(np.arange(args.clients), args.rows)
    budget, seed = 100, 0
    sampler = LeverageScoreSampler(
        budget=budget, protocol=args.protocol, random_state=seed
    )
    ref = sampler.fit(X, groups=groups)
    in_process = best_time(3, sampler.fit, X, groups=groups)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows, labels = [], []
        for c in range(args.clients):
            rows.append(root / f"rows{c}.npy")
            np.save(rows[-1], X[groups == c])
            # Each node's labeling reads its file (the selection reads none).
            labels.append(root / f"labels{c}.npy")
            np.save(labels[-1], np.zeros(int(np.sum(groups == c))))
        app = root / "skfalapp"
        shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__"))
        out = root / "fitted.npz"
        started = time.perf_counter()
        with Federation(root, rows, federation_seed(seed), labels) as federation:
            up = time.perf_counter() - started
            config = {
                "num-clients": args.clients,
                "budget": budget,
                "protocol": args.protocol,
                "random-state": seed,
                "timeout": 600.0,
                "output": str(out),
            }
            status, details = federation.run(app, config)
            if status != "finished:completed":
                raise RuntimeError(details)
            fitted = np.load(out)
    assert np.array_equal(fitted["sample_indices"], ref.sample_indices_)

    def sec(key):
        return float(fitted[f"seconds_{key}"][0])

    compute = sec("client_steps") + (
        sec("total") - sec("connect") - sec("round_trips") - sec("serialization")
    )
    serialization = sec("serialization") + sec("client_io")
    trips = int(fitted["serialized_round_trips"][0])
    latency = sec("round_trips") - sec("client_steps") - sec("client_io")
    print(
        f"{args.clients} clients x {args.rows} x {args.features}, "
        f"protocol={args.protocol!r}, budget={budget}"
    )
    print(f"in-process fit (best of 3)      {in_process:8.2f} s")
    print(f"processes up (link + nodes)     {up:8.2f} s")
    print(f"start-up (nodes connect, hello) {sec('connect'):8.2f} s")
    print(f"compute (clients + server)      {compute:8.2f} s")
    print(f"serialization (both sides)      {serialization:8.2f} s")
    print(
        f"  compute + serialization = {(compute + serialization) / in_process:.1f}"
        " x in-process (target <= 3)"
    )
    print(
        f"messaging latency               {latency:8.2f} s over {trips} round "
        f"trips: {latency / trips:.2f} s each (floor: a 3 s node pull)"
    )
    print(f"ServerApp fit, total            {sec('total'):8.2f} s")


if __name__ == "__main__":
    main()
