"""Micro-profiler: a few short timed runs that tell where SpMV time goes.

Runs (all with the baseline ``csr_balanced`` kernel at the caller's thread count):

- **baseline**: median time ``t_base`` of ``repeats`` products, each thread's
  partition also timed with the cycle counter -> ``imbalance = max / mean``.
- **regular x**: the same matrix bytes, but row i's columns replaced by a
  contiguous stretch of x, so x is read in order -> ``t_regular``; the time that
  vanishes, ``latency_share = 1 - t_regular / t_base``, is the cost of scattered
  x accesses (memory latency).

Derived with the machine profile: ``bandwidth_share`` = (CSR bytes + x + y) /
t_base / measured read bandwidth, and ``incache_share`` = achieved GFLOP/s /
in-cache CSR rate.  The whole profile costs at most ~30 baseline products,
reported as ``cost_spmvs``.

So that a busy machine cannot make a bandwidth-bound matrix look slow: y is
touched before timing, each run is warmed up twice, ``t_base`` is the fastest
of the repeats, and a ``t_base`` far above the machine profile's estimate
(``RECHECK_FACTOR``) is measured again (``rechecks``).
"""
import time
from dataclasses import asdict, dataclass

import numpy as np
from numba import njit, prange

from .pool._intrinsics import cycles
from .pool.csr import _rows_part, row_partitions
from .pool.indices import unsigned_csr
from .validate import as_canonical_csr, check_threads


@njit(cache=True, parallel=True)
def _rows_timed(parts, indptr, indices, data, x, y, ticks):
    for p in prange(parts.shape[0] - 1):
        t0 = cycles()
        _rows_part(np.uint64(p), parts, indptr, indices, data, x, y)
        ticks[p] = cycles() - t0


@njit(cache=True, parallel=True)
def _regular_columns(indptr, n_rows, n_cols, out):
    """Row i's nonzeros get consecutive columns from round(i n / m), clipped."""
    for i in prange(n_rows):
        k0 = indptr[i]
        r = indptr[i + 1] - k0
        start = min(i * n_cols // max(n_rows, 1), max(n_cols - r, 0))
        for t in range(r):
            out[k0 + t] = min(start + t, n_cols - 1)


@dataclass
class Profile:
    """Measured evidence.  Seconds, GB/s (10^9 B/s), GFLOP/s; shares are ratios."""
    threads: int
    t_base: float
    t_regular: float
    imbalance: float               # slowest partition / mean partition (cycles)
    latency_share: float           # 1 - t_regular / t_base, clipped to [0, 1]
    bytes_moved: float             # CSR bytes + x + y per product
    achieved_gbs: float
    bandwidth_gbs: float           # machine read bandwidth at this thread count
    bandwidth_share: float
    achieved_gflops: float
    incache_gflops: float
    incache_share: float
    cost_seconds: float
    cost_spmvs: float              # cost in baseline products
    t_predicted: float = 0.0       # the machine profile's estimate of t_base
    rechecks: int = 0              # extra rounds taken because t_base was far above it

    def to_dict(self):
        return asdict(self)


def micro_profile(A, threads=None, machine=None, repeats=8):
    """Profile ``A`` (any scipy.sparse) at ``threads``; returns a :class:`Profile`."""
    from .machine import machine_profile
    t_start = time.perf_counter()
    threads = check_threads(threads)
    machine = machine or machine_profile()
    csr = as_canonical_csr(A)
    m, n = csr.shape
    nparts = max(threads, 2)                 # per-partition timing even on one thread
    parts = row_partitions(csr, nparts, "nnz")
    indptr, indices = unsigned_csr(csr)
    data = csr.data
    x = np.ones(n, data.dtype)
    y = np.empty(m, data.dtype)
    ticks = np.zeros(nparts, dtype=np.uint64)

    def timed(idx):
        _rows_timed(parts, indptr, idx, data, x, y, ticks)

    regular = np.empty_like(indices)
    _regular_columns(np.asarray(csr.indptr, dtype=np.int64), m, max(n, 1), regular)
    y.fill(0.0)                               # first-touch y before anything is timed
    t_base, t_reg, cyc = _time_pair(lambda: timed(indices), lambda: timed(regular),
                                    repeats, ticks)
    # cross-check with what the structure predicts: a time far above it is the
    # machine being busy (or pages still cold), not the matrix; measure again
    t_pred = machine.product_seconds(csr.nnz, m, n, threads)
    retries = 0
    while t_base > RECHECK_FACTOR * t_pred and retries < MAX_RECHECKS:
        tb2, tr2, cyc2 = _time_pair(lambda: timed(indices), lambda: timed(regular),
                                    repeats, ticks)
        retries += 1
        if tb2 < t_base:
            t_base, t_reg, cyc = tb2, tr2, cyc2
    busy = cyc[cyc > 0]
    imbalance = float(busy.max() / busy.mean()) if len(busy) else 1.0
    nnz = max(csr.nnz, 1)
    vb = data.dtype.itemsize
    bytes_moved = (4.0 + vb) * csr.nnz + 4.0 * (m + 1) + vb * (m + n)
    achieved = bytes_moved / t_base / 1e9
    bw = machine.bandwidth(threads)
    gflops = 2.0 * nnz / t_base / 1e9
    incache = machine.incache_rate(threads)
    cost = time.perf_counter() - t_start
    return Profile(threads=threads, t_base=t_base, t_regular=t_reg, imbalance=imbalance,
                   t_predicted=t_pred, rechecks=retries,
                   latency_share=float(np.clip(1 - t_reg / t_base, 0, 1)),
                   bytes_moved=bytes_moved, achieved_gbs=achieved, bandwidth_gbs=bw,
                   bandwidth_share=achieved / bw, achieved_gflops=gflops,
                   incache_gflops=incache, incache_share=gflops / incache,
                   cost_seconds=cost, cost_spmvs=cost / t_base)


#: A baseline time this many times the machine profile's estimate is measured again.
RECHECK_FACTOR = 1.6
MAX_RECHECKS = 2


def _time_pair(base, regular, repeats, ticks):
    """Seconds of ``base`` and ``regular``, alternated so that drift on a shared
    machine hits both alike, and the per-partition cycles of base.

    The base time is the fastest repeat (what the product reaches when nothing
    else disturbs it: the bandwidth share must not count a busy neighbour as
    a slow matrix); the regular time keeps the median ratio regular/base of
    the pairs, so the latency share compares like with like."""
    for _ in range(2):                        # warm-up: JIT, first touch, TLB, threads
        base()
        regular()
    tb, tr, per_part = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        base()
        tb.append(time.perf_counter() - t0)
        per_part.append(ticks.astype(np.float64).copy())
        t0 = time.perf_counter()
        regular()
        tr.append(time.perf_counter() - t0)
    ratio = float(np.median(np.array(tr) / np.array(tb)))
    fastest = float(np.min(tb))
    return fastest, fastest * ratio, np.median(np.array(per_part), axis=0)
