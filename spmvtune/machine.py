"""Facts about this machine that the benchmarks report results against."""
import time

import numpy as np
from numba import njit, prange

from .pool.partition import even_rows


@njit(cache=True, parallel=True)
def _read_sum(a, parts):
    """Sum of a (n,) float64 array, each partition summed by one thread."""
    partial = np.zeros(parts.shape[0] - 1)
    for p in prange(parts.shape[0] - 1):
        s0 = s1 = s2 = s3 = 0.0
        i = parts[p]
        end = parts[p + 1]
        while i + np.uint64(4) <= end:
            s0 += a[i]
            s1 += a[i + np.uint64(1)]
            s2 += a[i + np.uint64(2)]
            s3 += a[i + np.uint64(3)]
            i += np.uint64(4)
        while i < end:
            s0 += a[i]
            i += np.uint64(1)
        partial[p] = (s0 + s1) + (s2 + s3)
    return partial.sum()


def read_bandwidth(threads, nbytes=1 << 30, repeats=5):
    """Read-only memory bandwidth in GB/s (10^9 B/s) with ``threads`` threads.

    Sums a float64 array of ``nbytes`` (far beyond the caches); the median of
    ``repeats`` passes after one warm-up pass.
    """
    a = np.ones(nbytes // 8)
    parts = even_rows(len(a), threads)
    _read_sum(a, parts)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _read_sum(a, parts)
        times.append(time.perf_counter() - t0)
    return a.nbytes / np.median(times) / 1e9
