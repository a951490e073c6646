"""Tables larger than memory and sparse tables, against baselines in the same run.

Out of core (issue 12, item 2): a float64 table written chunk by chunk to a
file in a temporary directory (deleted after), opened read-only as a
``numpy.memmap`` and scored and sampled by ``LeverageScoreSampler``
(budget 10,000, pivotal). Printed: the time of one sequential read of the
file (every block summed), before and after the fit, the fit time (with its
phases, ``verbose=1``) and its ratio to those reads (target: at most 3
passes), the blocks the fit read (in passes over the file), and the peak
memory the fit allocated, against the file's size. Skipped with a
message when the disk has too little free space (20 GB for the moonshot).
The file's pages are dropped from the page cache (``posix_fadvise``, where
the platform has it) before the first read and before the fit, so both
start from the disk; the read is also timed from the page cache (a second
read), which is the floor once the file is cached (the fit's later
passes, on a machine with more free memory than the file), and so is one
chunked Gram pass ``sum(block.T @ block)`` (issue 23's baseline). With
``--warm`` nothing is evicted: the fit reads the cached file (issue 23's
row: 20,000,000 x 20, target at most 3 Gram passes and 20% of the file in
memory the fit allocates).

Sparse (item 4): a one-hot table (``n`` rows, 4 categorical columns of 50
levels: 200 columns at 2% density) as CSR; the fit time as a ratio to the
Gram product ``X.T @ X`` on the sparse matrix, and the fit's peak memory
against the size of the dense table. Two encodings: all 200 indicator
columns (what ``OneHotEncoder()`` gives; each categorical's columns sum to
one, so the table is rank deficient: its exact integer Gram decides the rank
by pivoted Cholesky, with one more sparse pass to check the dependencies)
and ``drop="first"`` (196 columns, full rank: CholeskyQR on sparse Gram
products). The scores alone (``leverage_scores``) are timed too.

Dask (issue 23 item 2, ``--dask``, needs ``skfal[dask]``): a
``distributed.LocalCluster`` (2 worker processes, 1 thread each) holds a
float64 table of random chunks (``da.random``, persisted on the workers),
the labels ``y`` are at the client. ``LeverageScoreSampler``,
``FederatedActiveRegressor`` and ``SensitivitySampler`` (budget 10,000,
defaults otherwise) fit it on the cluster. Printed for each: the fit time
against the same estimator's fit of the table gathered into this process
(in the same run, after the cluster's fits), the growth of this process's
resident set during the fit (sampled every millisecond in a thread; each
estimator first fits a small Dask array, so imports and caches are not
counted) against the table's size (target: at most 5%), and the bytes the
workers sent during the fit: to the client (selected rows, the spatial
tree's sample, the clustering's subsample, per-row results where they
still come back) and between workers. Also one ``X.sum()`` pass and one
Gram product ``X.T @ X`` over the Dask array, for scale.

Usage: ``python benchmarks/bench_scale.py [--quick] [--skip-memmap]
[--skip-sparse] [--dask] [--dask-rows N] [--shape N D] [--warm] [--dir DIR]``. Full
size: 100,000,000 x 20 and 10,000,000 x 100 memory-mapped, 1,000,000 x 200
sparse, 8,000,000 x 20 on Dask; ``--quick``: 2,000,000 x 20 and 200,000 x 100
memory-mapped, 100,000 x 200 sparse, 1,000,000 x 20 on Dask.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from _util import best_time, peak_memory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import skfal._rows  # noqa: E402
from skfal import (  # noqa: E402
    FederatedActiveRegressor,
    LeverageScoreSampler,
    SensitivitySampler,
)
from skfal._linalg import equilibrated_r_factor, leverage_scores  # noqa: E402
from skfal._rows import Rows  # noqa: E402
from tests._helpers import rss_growth  # noqa: E402

_WRITE_ROWS = 1_000_000


def write_table(path, n, d, seed=0):
    """A float64 table of standard normals, written one block at a time."""
    rng = np.random.RandomState(seed)
    table = np.memmap(path, dtype=np.float64, mode="w+", shape=(n, d))
    for start in range(0, n, _WRITE_ROWS):
        stop = min(n, start + _WRITE_ROWS)
        table[start:stop] = rng.standard_normal((stop - start, d))
    table.flush()
    del table


def sequential_read(table):
    """One pass over the file: every block read (and summed)."""
    total = 0.0
    for start in range(0, table.shape[0], _WRITE_ROWS):
        total += float(np.asarray(table[start : start + _WRITE_ROWS]).sum())
    return total


def gram_pass(table):
    """One chunked Gram pass over the file: ``sum(block.T @ block)``."""
    gram = 0.0
    for start in range(0, table.shape[0], _WRITE_ROWS):
        block = np.asarray(table[start : start + _WRITE_ROWS])
        gram = gram + block.T @ block
    return gram


def evict(path):
    """Drop the file's pages from the page cache (``posix_fadvise``), if possible.

    Returns whether the next read comes from the disk: without
    ``os.posix_fadvise`` (not on every platform) the page cache is left as
    it is.
    """
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def out_of_core(n, d, directory, warm=False):
    size = n * d * 8
    free = shutil.disk_usage(directory).free
    needed = max(20e9, 1.25 * size) if size >= 10e9 else 1.25 * size
    if free < needed:
        print(
            f"{n:,} x {d}: skipped, {free / 1e9:.1f} GB free in {directory} "
            f"(needs {needed / 1e9:.0f} GB)"
        )
        return
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = Path(tmp) / "table.f64"
        start = time.perf_counter()
        write_table(path, n, d)
        t_write = time.perf_counter() - start
        table = np.memmap(path, dtype=np.float64, mode="r", shape=(n, d))
        cold = not warm and evict(path)
        t_read = best_time(1, sequential_read, table)  # from the disk if cold
        t_cached = best_time(1, sequential_read, table)  # the page cache's
        t_gram = best_time(2, gram_pass, table)  # cached

        rows_read = [0]
        original = skfal._rows.Rows.block

        def counting(self, start, stop, dense=False):
            block = original(self, start, stop, dense)
            rows_read[0] += block.shape[0]
            return block

        skfal._rows.Rows.block = counting
        sampler = LeverageScoreSampler(budget=10_000, random_state=0, verbose=1)
        if not warm:
            evict(path)  # the fit starts from the disk too
        start = time.perf_counter()
        peak = peak_memory(sampler.fit, table)
        t_fit = time.perf_counter() - start
        skfal._rows.Rows.block = original
        # The page cache after the fit (whose vectors may have pushed the
        # file out of it): the read a later pass of the fit competed with.
        t_after = best_time(1, sequential_read, table)
        source = "disk" if cold else "as cached"
        print(
            f"{n:>11,} x {d:<3} {size / 1e9:6.1f} GB  write {t_write:6.1f} s  "
            f"read ({source}) {t_read:6.1f} s, cached {t_cached:6.1f} s, "
            f"after the fit {t_after:6.1f} s  "
            f"fit {t_fit:6.1f} s = {t_fit / t_read:4.2f} reads ({source}) "
            f"= {t_fit / t_cached:4.2f} cached reads "
            f"= {t_fit / t_gram:4.2f} cached Gram passes ({t_gram:5.1f} s)  "
            f"({rows_read[0] / n:.2f} passes)  peak {peak / 1e6:7.1f} MB "
            f"= {peak / size:.4f} x file"
        )
        del table


def one_hot(n, drop_first, seed=0):
    """4 categoricals of 50 levels, one-hot (200 columns, or 196 with drop)."""
    rng = np.random.RandomState(seed)
    levels = 50 - drop_first
    codes = rng.randint(50, size=(n, 4))
    if drop_first:
        keep = codes > 0
        cols = (codes - 1 + levels * np.arange(4))[keep]
        rows = np.repeat(np.arange(n), 4).reshape(n, 4)[keep]
    else:
        cols = (codes + levels * np.arange(4)).ravel()
        rows = np.repeat(np.arange(n), 4)
    data = np.ones(cols.shape[0])
    return sp.csr_matrix((data, (rows, cols)), shape=(n, 4 * levels))


def sparse_table(n, repeat):
    print(
        f"{'table':>26} {'X.T@X s':>8} {'fit s':>7} {'/ gram':>7} {'scores':>7} "
        f"{'path':>17} {'peak MB':>8} {'dense MB':>9} {'peak/dense':>10}"
    )
    for drop_first in (False, True):
        X = one_hot(n, drop_first)
        t_gram = best_time(repeat, lambda X=X: X.T @ X)
        sampler = LeverageScoreSampler(budget=10_000, random_state=0)
        t_fit = best_time(repeat, sampler.fit, X)
        rows = Rows(X)
        t_scores = best_time(repeat, leverage_scores, rows)
        path = equilibrated_r_factor(rows)[2]
        peak = peak_memory(sampler.fit, X)
        dense = X.shape[0] * X.shape[1] * 8
        name = f"{n:,} x {X.shape[1]}" + (" drop=first" if drop_first else "")
        print(
            f"{name:>26} {t_gram:8.3f} {t_fit:7.2f} {t_fit / t_gram:7.1f} "
            f"{t_scores / t_gram:7.1f} {path:>17} "
            f"{peak / 1e6:8.1f} {dense / 1e6:9.1f} {peak / dense:10.3f}"
        )


def on_dask(n, d, repeat):
    import dask.array as da
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        workers = set(client.scheduler_info()["workers"])

        def clear(dask_worker):
            dask_worker.transfer_outgoing_log.clear()

        def sent(dask_worker):
            """Bytes sent to the client (``who`` not a worker), and to workers."""
            out = [0, 0]
            for entry in dask_worker.transfer_outgoing_log:
                out[entry.get("who") in workers] += entry["total"]
            return out

        chunk = max(2 * d, 500_000 if n >= 5_000_000 else 100_000)
        X = client.persist(
            da.random.RandomState(0).standard_normal((n, d), chunks=(chunk, d))
        )
        beta = np.random.RandomState(1).standard_normal(d)
        # The labels live at the client (the user's): n numbers before the fit.
        y = X @ beta + da.random.RandomState(2).standard_normal(n, chunks=chunk)
        y = y.compute()
        small = client.persist(
            da.random.RandomState(3).standard_normal((20_000, d), chunks=(5000, d))
        )
        distributed.wait([X, small])
        t_sum = best_time(repeat, lambda: X.sum().compute())
        t_gram = best_time(repeat, lambda: (X.T @ X).compute())
        print(
            f"{n:,} x {d} float64, {X.nbytes / 1e9:.2f} GB in {X.numblocks[0]} "
            f"chunks: X.sum() {t_sum:.2f} s, X.T @ X {t_gram:.2f} s"
        )
        estimators = {
            "LeverageScoreSampler": lambda: LeverageScoreSampler(
                budget=10_000, random_state=0
            ),
            "FederatedActiveRegressor": lambda: FederatedActiveRegressor(
                budget=10_000, random_state=0
            ),
            "SensitivitySampler": lambda: SensitivitySampler(
                budget=10_000, random_state=0
            ),
        }
        on_cluster = {}
        for name, make in estimators.items():
            make().fit(small, np.zeros(20_000))  # first-call costs not counted
            client.run(clear)
            t_fit, growth = rss_growth(make().fit, X, y)
            to_client, between = np.sum(list(client.run(sent).values()), axis=0)
            on_cluster[name] = (t_fit, growth, to_client, between)
        # The same fits on the table in this process (gathered for the
        # comparison only), after the cluster's: the in-memory baseline.
        local = X.compute()
        print(
            f"{'estimator':>25} {'Dask fit s':>10} {'in memory s':>11} {'ratio':>6} "
            f"{'client growth MB':>16} {'/ array':>8} {'to client MB':>12} "
            f"{'between workers MB':>18}"
        )
        for name, make in estimators.items():
            t_local = best_time(1, make().fit, local, y)
            t_fit, growth, to_client, between = on_cluster[name]
            print(
                f"{name:>25} {t_fit:10.2f} {t_local:11.2f} {t_fit / t_local:6.2f} "
                f"{growth / 1e6:16.1f} {growth / X.nbytes:8.3f} "
                f"{to_client / 1e6:12.1f} {between / 1e6:18.1f}"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="development sizes")
    parser.add_argument("--skip-memmap", action="store_true")
    parser.add_argument("--skip-sparse", action="store_true")
    parser.add_argument(
        "--dask", action="store_true", help="also fit a Dask array on a LocalCluster"
    )
    parser.add_argument(
        "--dask-rows", type=int, help="rows of the Dask table (default 8,000,000)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--warm",
        action="store_true",
        help="keep the file in the page cache (no eviction before the fit)",
    )
    parser.add_argument(
        "--dir", default=tempfile.gettempdir(), help="where the file is written"
    )
    parser.add_argument(
        "--shape",
        type=int,
        nargs=2,
        metavar=("N", "D"),
        help="one memory-mapped shape instead of the defaults",
    )
    args = parser.parse_args()
    if not args.skip_memmap:
        shapes = (
            [(2_000_000, 20), (200_000, 100)]
            if args.quick
            else [(100_000_000, 20), (10_000_000, 100)]
        )
        if args.shape:
            shapes = [tuple(args.shape)]
        print("Out of core: LeverageScoreSampler(budget=10_000).fit(memmap)")
        for n, d in shapes:
            out_of_core(n, d, args.dir, warm=args.warm)
    if not args.skip_sparse:
        print("\nSparse one-hot: LeverageScoreSampler(budget=10_000).fit(csr)")
        sparse_table(100_000 if args.quick else 1_000_000, args.repeat)
    if args.dask:
        print("\nDask: fit(dask array, y), budget 10,000, 2 worker processes")
        n = args.dask_rows or (1_000_000 if args.quick else 8_000_000)
        on_dask(n, 20, args.repeat)


if __name__ == "__main__":
    main()
