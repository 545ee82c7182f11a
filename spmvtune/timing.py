"""Benchmark discipline (after pyperf): warm-up outside the timing, several
repeats, medians, contestants interleaved so that drift on a shared machine
hits them alike."""
import time

import numpy as np


def interleaved_medians(contestants, repeats=10, warmup=2, budget=None):
    """Median seconds per call of each zero-argument callable.

    contestants: dict name -> callable.  Each is called ``warmup`` times, then
    the contestants take turns, one call each, ``repeats`` rounds.  ``budget``
    (seconds) stops adding rounds once exceeded (at least 3 rounds).
    Returns dict name -> median seconds.
    """
    for fn in contestants.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in contestants}
    start = time.perf_counter()
    for r in range(repeats):
        for name, fn in contestants.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
        if budget is not None and r >= 2 and time.perf_counter() - start > budget:
            break
    return {name: float(np.median(s)) for name, s in samples.items()}


def gflops(nnz, seconds):
    """GFLOP/s of one SpMV: 2 flops per nonzero."""
    return 2.0 * nnz / seconds / 1e9 if seconds > 0 else float("nan")
