"""Benchmark discipline (after pyperf): warm-up outside the timing, several
repeats, medians, contestants interleaved so that drift on a shared machine
hits them alike."""
import time

import numpy as np


#: A sample of a fast call is a batch of calls lasting at least this long, so
#: that microsecond products are not measured at the timer's resolution.
MIN_SAMPLE_SECONDS = 2e-4
#: Batches for figures that must hold between runs (train, bench, benchmarks/):
#: on this shared machine ratios held only with batches of ~20 ms.
STABLE_BATCH_SECONDS = 0.02


#: Intel OpenMP (MKL's threads) spins after a call (KMP_BLOCKTIME, default
#: 200 ms), taking a core from whoever runs next.  Measured beside MKL with
#: a pause of 200 ms, two copies of one 3 us kernel came out 1.5x apart and
#: everything ran up to 1.6x slow; with 300 ms mostly within 10%, with 400 ms
#: within 3%.
OPENMP_SPIN_SECONDS = 0.4
#: After a settle pause the next contestant runs untimed at least this long:
#: a vCPU woken from idle runs its first milliseconds up to 2x slower
#: (measured: a 1 ms product took 5-6 calls to return to its steady time).
WAKE_SECONDS = 0.006


def interleaved_samples(contestants, repeats=10, warmup=2, min_seconds=0.0, max_rounds=1000,
                        settle=None, batch_seconds=MIN_SAMPLE_SECONDS, prime=True):
    """Seconds per call of each zero-argument callable, as lists of samples.

    contestants: dict name -> callable.  Each is called ``warmup`` times and
    given a batch size (calls per sample, so a sample lasts at least
    ``batch_seconds``), then the contestants take turns in an order
    shuffled every round (so that what ran just before hits all alike), one
    sample each,
    for at least ``repeats`` rounds and at least ``min_seconds`` of wall time
    (at most ``max_rounds``), so that a noisy period on a shared machine is
    diluted over many rounds.  Each sample follows one untimed call of the
    same contestant, so all are timed in their steady state (threads awake).
    settle: {name: seconds} to sleep after that contestant's sample, so its
    spinning threads (OpenMP's, see ``OPENMP_SPIN_SECONDS``) have stopped
    before the next contestant runs; that one's untimed call is then repeated
    for ``WAKE_SECONDS``, out of the idle CPU's slow start.
    prime: make that untimed call before each sample (False for products of
    a millisecond or more, whose steady state does not depend on it: half the
    cost when the time spent timing counts, as in ``select_kernel``).
    """
    settle = settle or {}
    batch = {}
    for name, fn in contestants.items():
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        fn()
        batch[name] = max(1, int(batch_seconds / max(time.perf_counter() - t0, 1e-9)))
    samples = {name: [] for name in contestants}
    names = list(contestants)
    order = np.random.default_rng()     # a fresh order per call: no position repeats run to run
    start = time.perf_counter()
    rounds = 0
    woken = False
    while rounds < max_rounds and (rounds < repeats or time.perf_counter() - start < min_seconds):
        for i in order.permutation(len(names)):
            name = names[i]
            fn, n = contestants[name], batch[name]
            if prime:
                fn()
                if woken:
                    t_wake = time.perf_counter()
                    while time.perf_counter() - t_wake < WAKE_SECONDS:
                        fn()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
            woken = name in settle
            if woken:
                time.sleep(settle[name])
        rounds += 1
    return samples


def interleaved_medians(contestants, repeats=10, warmup=2, min_seconds=0.0, settle=None,
                        batch_seconds=MIN_SAMPLE_SECONDS, prime=True):
    """Median seconds per call of each contestant (see :func:`interleaved_samples`)."""
    samples = interleaved_samples(contestants, repeats, warmup, min_seconds, settle=settle,
                                  batch_seconds=batch_seconds, prime=prime)
    return {name: float(np.median(s)) for name, s in samples.items()}


def relative_spread(samples):
    """Interquartile range over median: how noisy one contestant's timings were."""
    q1, med, q3 = np.percentile(samples, [25, 50, 75])
    return float((q3 - q1) / med) if med > 0 else float("nan")


def gflops(nnz, seconds):
    """GFLOP/s of one SpMV: 2 flops per nonzero."""
    return 2.0 * nnz / seconds / 1e9 if seconds > 0 else float("nan")
