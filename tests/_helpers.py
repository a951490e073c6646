"""Test data with known answers, the size of the Monte Carlo tests, and a
probe of this process's memory growth."""

import gc
import os
import threading
import time

import numpy as np

# CI's minimum-versions stage sets this: see monte_carlo_runs.
QUICK_STATISTICS = os.environ.get("SKFAL_QUICK_STATISTICS") == "1"


def monte_carlo_runs(n_runs):
    """How many independent fits a Monte Carlo test averages over.

    ``n_runs``, the size the test was written for, unless
    ``SKFAL_QUICK_STATISTICS=1``: then a quarter of it (at least 50). CI's
    minimum-versions stage sets it: there these tests check that the code
    runs and stays unbiased on the oldest supported NumPy, SciPy and
    scikit-learn, while the main stage (the README's ``pytest``) tests the
    laws at full size. Only for tests whose tolerance is a multiple of the
    Monte Carlo standard error, which widens as runs are dropped.
    """
    return max(n_runs // 4, 50) if QUICK_STATISTICS else n_runs


def matrix_with_known_basis(n_samples, n_features, cond, random_state, n_spikes=5):
    """``X = U diag(s) V^T`` with ``U`` orthonormal and a few high-leverage rows.

    Returns ``X`` and its exact leverage scores, the squared row norms of ``U``.
    The singular values are log-spaced from 1 to ``1 / cond``.
    """
    rng = np.random.RandomState(random_state)
    B = rng.standard_normal((n_samples, n_features))
    B[:n_spikes] *= 100.0  # rows that dominate some direction
    U, _ = np.linalg.qr(B)
    V, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
    s = np.logspace(0, -np.log10(cond), n_features)
    return (U * s) @ V.T, np.einsum("ij,ij->i", U, U)


def hat_diagonal(X):
    """Leverage scores from the definition: the diagonal of X (X^T X)^+ X^T."""
    return np.einsum("ij,ji->i", X, np.linalg.pinv(X.T @ X) @ X.T)


def blobs(n_per=200, centres=((0, 0), (8, 0), (0, 8), (8, 8)), scale=0.3, seed=0):
    """Tight Gaussian blobs around ``centres``; returns ``X`` and the true blob."""
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.normal(c, scale, (n_per, len(c))) for c in centres])
    truth = np.repeat(np.arange(len(centres)), n_per)
    return X, truth


def keep_client_states(monkeypatch):
    """Every in-process client's state of the fits run from now on (a list
    of lists, one per transport): what a client holds, for the attacks that
    collude with one and the checks of what clients keep."""
    from skfal._federated import InProcessTransport

    kept = []
    real = InProcessTransport.__init__

    def keep(self, states, *args, **kwargs):
        kept.append(states)
        real(self, states, *args, **kwargs)

    monkeypatch.setattr(InProcessTransport, "__init__", keep)
    return kept


def _rss():
    """This process's resident set, in bytes (/proc/self/statm, else psutil)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil  # a dependency of distributed

        return psutil.Process().memory_info().rss


def rss_growth(func, *args):
    """``(seconds, bytes)``: the wall time of ``func(*args)``, and the largest
    growth of this process's resident set while it runs (sampled every
    millisecond in a thread, after a garbage collection)."""
    gc.collect()
    start_rss = _rss()
    peak, done = [start_rss], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.perf_counter()
    try:
        func(*args)
    finally:
        elapsed = time.perf_counter() - start
        done.set()
        watcher.join()
    return elapsed, max(peak[0], _rss()) - start_rss
