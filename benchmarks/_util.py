"""Timing and memory helpers shared by the benchmark scripts."""

import time
import tracemalloc


def best_time(repeat, func, *args, **kwargs):
    """Shortest of ``repeat`` wall-clock times of ``func(*args, **kwargs)``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times)


def peak_memory(func, *args, **kwargs):
    """Peak bytes allocated (NumPy included) while ``func`` runs."""
    tracemalloc.start()
    func(*args, **kwargs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak
