"""The machine profile: what SpMV can expect from this machine.

Measured once per CPU model and thread count and cached as JSON in the user's
cache directory (``spmvtune machine --refresh`` remeasures): core count, cache
sizes (from the OS), read-only and triad memory bandwidth at 1..N threads, the
in-cache CSR rate, and the launch overhead of a threaded kernel.  Everything
else (features, profiler, bottleneck scores, benchmarks) reads it.

For many right-hand sides (``Y = A X``) it also holds, in ``extra``, the rate
of NumPy's dense BLAS product (``dense_gflops``) and of the ``spmm_csr``
kernel with X in the L2 (``spmm_gflops``) and in the L3 (``spmm_l3_gflops``)
at a few k: the cost model's compute rates, from which it predicts where
dense BLAS overtakes the sparse kernels.  They are capabilities: the fastest
of many calls, so a busy moment on a shared machine does not lower them.
"""
import functools
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from numba import njit, prange

from .pool.partition import even_rows

PROFILE_VERSION = 4
#: Latencies assumed where a profile does not say (ns): an L3 hit, a DRAM access.
DEFAULT_LATENCY_NS = {"L3": 12.0, "memory": 90.0}
#: Right-hand sides at which the many-vector rates are measured.
RATE_VECTORS = {"dense_gflops": (1, 8, 64), "spmm_gflops": (8, 64), "spmm_l3_gflops": (8, 64)}
#: Where a profile lacks a many-vector rate: multiples of the in-cache CSR rate
#: (a BLAS gemm runs at a large share of the peak; the vector kernels at a few
#: times the scalar CSR loop), by k.
FALLBACK_RATE_FACTORS = {"dense_gflops": {1: 2.0, 8: 6.0, 64: 12.0},
                         "spmm_gflops": {8: 2.5, 64: 3.0}, "spmm_l3_gflops": {8: 1.2, 64: 1.5}}


@dataclass
class MachineProfile:
    """Units: bytes, GB/s (10^9 B/s), GFLOP/s, microseconds."""
    cpu_model: str
    cores: int
    threads: int
    caches: dict                      # {"L1d": bytes, "L2": bytes (per core), "L3": bytes}
    read_bandwidth: dict              # {threads: GB/s}, read-only stream
    triad_bandwidth: dict             # {threads: GB/s}, a = b + s c (2 reads + 1 write)
    incache_csr_gflops: dict          # {threads: GFLOP/s} of csr_balanced on an L2-sized matrix
    launch_overhead_us: float         # extra cost of a threaded call over a serial one
    latency_ns: dict = field(default_factory=lambda: dict(DEFAULT_LATENCY_NS))
    measured_at: str = ""
    version: int = PROFILE_VERSION
    extra: dict = field(default_factory=dict)

    def __setattr__(self, name, value):
        self.__dict__.pop("_memo", None)          # a changed field: forget derived lookups
        super().__setattr__(name, value)

    def _memoized(self, key, compute):
        """Lookups the cost model repeats for every kernel (selection is on a hot path)."""
        memo = self.__dict__.setdefault("_memo", {})
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    def bandwidth(self, threads):
        """Read bandwidth (GB/s) at ``threads`` (the closest measured count)."""
        return self._memoized(("bw", threads), lambda: _closest(self.read_bandwidth, threads))

    def incache_rate(self, threads):
        return self._memoized(("csr", threads),
                              lambda: _closest(self.incache_csr_gflops, threads))

    def dense_rate(self, threads, k=1):
        """GFLOP/s of a dense BLAS product with ``k`` vectors at ``threads``."""
        return self._vector_rate("dense_gflops", threads, k)

    def spmm_rate(self, threads, k, level="L2"):
        """GFLOP/s of the many-vector CSR kernel with ``k`` vectors at ``threads``,
        X in the L2 or (``level="L3"``) only in the L3."""
        return self._vector_rate("spmm_gflops" if level == "L2" else "spmm_l3_gflops", threads, k)

    def _vector_rate(self, name, threads, k):
        return self._memoized((name, threads, k), lambda: self._vector_rate_of(name, threads, k))

    def _vector_rate_of(self, name, threads, k):
        table = (self.extra or {}).get(name)
        if table:
            row = table[_closest_key(table, threads)]
        else:
            row = {kk: f * self.incache_rate(threads)
                   for kk, f in FALLBACK_RATE_FACTORS[name].items()}
        return _interpolate_log(row, k)

    def product_seconds(self, nnz, rows, cols, threads):
        """Estimated seconds of one baseline CSR product: the slower of streaming
        its bytes (:func:`csr_bytes`) at the read bandwidth and computing 2 nnz
        flops at the in-cache rate."""
        return max(csr_bytes(rows, cols, nnz) / (self.bandwidth(threads) * 1e9),
                   2.0 * max(nnz, 1) / (self.incache_rate(threads) * 1e9))

    def to_dict(self):
        return asdict(self)


def machine_fingerprint():
    """A short hex key of this machine kind: CPU model, core count, cache sizes."""
    import hashlib
    text = json.dumps([cpu_model(), os.cpu_count(), cache_sizes()], sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def csr_bytes(rows, cols, nnz, value_bytes=8):
    """Bytes one CSR product moves at least: 4 + v per nonzero (value of v
    bytes + int32 index; 12 for float64), 4 per row pointer, y written and x
    read once (v each)."""
    return (4.0 + value_bytes) * nnz + 4.0 * (rows + 1) + value_bytes * (rows + cols)


def _closest(table, threads):
    return float(table[_closest_key(table, threads)])


def _closest_key(table, threads):
    """The key of ``table`` (ints or their strings) closest to ``threads``."""
    keys = sorted(int(k) for k in table)
    k = min(keys, key=lambda v: (abs(v - threads), -v))
    return k if k in table else str(k)


def _interpolate_log(row, k):
    """Linear in log k between the measured points of ``row`` {k: rate}; flat outside."""
    pts = sorted((int(kk), float(v)) for kk, v in row.items())
    if k <= pts[0][0]:
        return pts[0][1]
    for (k0, v0), (k1, v1) in zip(pts, pts[1:]):
        if k <= k1:
            w = np.log(k / k0) / np.log(k1 / k0)
            return float(v0 + w * (v1 - v0))
    return pts[-1][1]


@functools.lru_cache(maxsize=1)
def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def cache_sizes():
    """Data/unified cache sizes of CPU 0 from sysfs: {"L1d", "L2", "L3"} in bytes.

    Falls back to common sizes (32 KiB, 1 MiB, 32 MiB) where the OS does not say.
    """
    sizes = {"L1d": 32 << 10, "L2": 1 << 20, "L3": 32 << 20}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for d in sorted(base.glob("index*")):
        try:
            level = int((d / "level").read_text())
            kind = (d / "type").read_text().strip()
            text = (d / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        if kind == "Instruction":
            continue
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        value = int(text.rstrip("KMG")) * mult
        sizes["L1d" if level == 1 else f"L{level}"] = value
    return sizes


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


@njit(cache=True, parallel=True)
def _triad(a, b, c, s, parts):
    for p in prange(parts.shape[0] - 1):
        for i in range(parts[p], parts[p + 1]):
            a[i] = b[i] + s * c[i]


def _median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def read_bandwidth(threads, nbytes=256 << 20, repeats=5):
    """Read-only memory bandwidth in GB/s with ``threads`` threads (median of passes
    over a float64 array of ``nbytes``, far beyond the caches)."""
    a = np.ones(nbytes // 8)
    parts = even_rows(len(a), threads)
    return a.nbytes / _median_time(lambda: _read_sum(a, parts), repeats) / 1e9


def triad_bandwidth(threads, nbytes=256 << 20, repeats=5):
    """STREAM-triad bandwidth in GB/s (3 arrays of ``nbytes / 3``; writes counted once)."""
    n = nbytes // 24
    a, b, c = np.empty(n), np.ones(n), np.ones(n)
    parts = even_rows(n, threads)
    return 24 * n / _median_time(lambda: _triad(a, b, c, 2.0, parts), repeats) / 1e9


def incache_csr_gflops(threads, cache_bytes, repeats=50, launch_us=0.0):
    """GFLOP/s of the baseline kernel on a random banded matrix of about
    ``cache_bytes`` / 2 (in cache), the thread launch (``launch_us``) taken
    out: the cost model counts it apart.  Sized so that one product lasts
    far longer than a launch (a few hundred microseconds)."""
    from . import generate
    from .operator import build_operator
    from .validate import as_canonical_csr
    nnz = max(cache_bytes // 2 // 12, 1000)
    A = generate.banded(nnz // 9, half_bandwidth=4)
    op = build_operator(as_canonical_csr(A), "csr_balanced", threads)
    x = np.ones(A.shape[1])
    y = np.empty(A.shape[0])
    t = _best_time(lambda: op.matvec(x, out=y), calls=repeats)
    t = max(t - (launch_us * 1e-6 if threads > 1 else 0.0), 0.5 * t)
    return 2 * A.nnz / t / 1e9


def _best_time(fn, calls=30, seconds=0.3):
    """The fastest single call of ``fn`` (after one warm-up), over at least
    ``calls`` calls or ``seconds``: a capability, which a busy moment on a
    shared machine (a descheduled BLAS thread) does not lower."""
    fn()
    best = float("inf")
    start = time.perf_counter()
    n = 0
    while n < calls or (time.perf_counter() - start < seconds and n < 100 * calls):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        n += 1
    return best


def dense_gflops(threads, l3_bytes, ks=RATE_VECTORS["dense_gflops"]):
    """{k: GFLOP/s} of NumPy's BLAS product of a square matrix of a quarter
    of the L3 with k vectors (BLAS on ``threads`` threads; fastest call)."""
    from .pool.dense_mm import _product
    n = max(int((l3_bytes / 4 / 8) ** 0.5), 64)
    D = np.random.default_rng(0).uniform(-1, 1, (n, n))
    out = {}
    for k in ks:
        X = np.ones((n, k)) if k > 1 else np.ones(n)
        Y = np.empty((n, k)) if k > 1 else np.empty(n)
        out[k] = 2.0 * n * n * k / _best_time(lambda: _product(D, threads, X, Y)) / 1e9
    return out


def spmm_gflops(threads, cache_bytes, ks=RATE_VECTORS["spmm_gflops"], per_row=64):
    """{k: GFLOP/s} of the ``spmm_csr`` kernel on a random matrix with ``per_row``
    nonzeros per row whose X (n_cols x k) takes a quarter of ``cache_bytes``
    (the L2: X stays in it; the L3: X comes from it), fastest call."""
    from . import generate
    from .operator import build_operator
    from .validate import as_canonical_csr
    out = {}
    for k in ks:
        n = max(int(cache_bytes / 4 / (8 * k)), per_row)
        A = generate.random_scatter(max(4096 * 64 // per_row // max(k // 8, 1), 256), per_row,
                                    n_cols=n)
        op = build_operator(as_canonical_csr(A), "spmm_csr", threads)
        X = np.ones((n, k))
        Y = np.empty((A.shape[0], k))
        out[k] = 2.0 * A.nnz * k / _best_time(lambda: op.matmat(X, out=Y)) / 1e9
    return out


@njit(cache=True)
def _chase(nxt, steps):
    i = 0
    for _ in range(steps):
        i = nxt[i]
    return i


def load_latency_ns(nbytes, steps=2_000_000, seed=0):
    """Nanoseconds per dependent load when chasing pointers through ``nbytes``
    (one pointer per 64-byte line, a random cycle: no prefetcher helps)."""
    n = max(nbytes // 64, 2)
    order = np.random.default_rng(seed).permutation(n)
    nxt = np.empty(n * 8, dtype=np.int64)           # 8 int64 = one cache line per node
    nxt[order * 8] = np.roll(order, -1) * 8
    _chase(nxt, 1000)
    _chase(nxt, min(steps, 4 * n))                  # warm the caches and the TLB
    t0 = time.perf_counter()
    _chase(nxt, steps)
    return (time.perf_counter() - t0) / steps * 1e9


def launch_overhead_us(threads, repeats=2000):
    """Microseconds a threaded call of a tiny matrix costs beyond a serial one."""
    import scipy.sparse as sp

    from .operator import build_operator
    from .validate import as_canonical_csr
    A = as_canonical_csr(sp.csr_array(sp.eye_array(16)))
    x = np.ones(16)
    y = np.empty(16)
    ser = build_operator(A, "csr_balanced", 1)
    par = build_operator(A, "csr_balanced", max(threads, 2))

    def per_call(op):
        for _ in range(repeats):                   # threads awake, code loaded
            op.matvec(x, out=y)
        t0 = time.perf_counter()
        for _ in range(repeats):
            op.matvec(x, out=y)
        return (time.perf_counter() - t0) / repeats * 1e6
    return max(min(per_call(par) for _ in range(3)) - min(per_call(ser) for _ in range(3)), 0.0)


def measure(threads=None):
    """Measure a fresh profile (a few seconds)."""
    import numba
    max_threads = numba.config.NUMBA_NUM_THREADS if threads is None else threads
    counts = sorted({1, max_threads} | set(range(1, max_threads + 1, max(1, max_threads // 4))))
    caches = cache_sizes()
    # a shared machine's second core comes and goes: rates are the best of three
    # tries (what the hardware can do), the launch cost the median of three
    launch = float(np.median([launch_overhead_us(max_threads) for _ in range(3)]))

    def best(fn):
        return max(fn() for _ in range(3))
    return MachineProfile(
        cpu_model=cpu_model(), cores=os.cpu_count() or 1, threads=max_threads, caches=caches,
        read_bandwidth={t: best(lambda t=t: read_bandwidth(t)) for t in counts},
        triad_bandwidth={t: triad_bandwidth(t) for t in counts},
        incache_csr_gflops={t: best(lambda t=t: incache_csr_gflops(t, caches["L3"] // 4,
                                                                   launch_us=launch))
                            for t in counts},
        launch_overhead_us=launch,
        latency_ns={"L3": load_latency_ns(caches["L3"] // 4),
                    "memory": load_latency_ns(256 << 20)},
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        extra={"dense_gflops": {t: dense_gflops(t, caches["L3"]) for t in counts},
               "spmm_gflops": {t: spmm_gflops(t, caches["L2"]) for t in counts},
               "spmm_l3_gflops": {t: spmm_gflops(t, caches["L3"]) for t in counts}})


def cache_dir():
    """spmvtune's cache directory (``SPMVTUNE_CACHE_DIR`` or the platform's user cache)."""
    env = os.environ.get("SPMVTUNE_CACHE_DIR")
    if env:
        return Path(env)
    return _user_cache_dir()


@functools.lru_cache(maxsize=1)
def _user_cache_dir():
    import platformdirs
    return Path(platformdirs.user_cache_dir("spmvtune"))


def profile_path(threads):
    return cache_dir() / _profile_name(cpu_model(), threads)


_LOADED = {}


@functools.lru_cache(maxsize=8)
def _profile_name(model, threads):
    import hashlib
    return "machine-" + hashlib.sha256(f"{model}|{threads}|v{PROFILE_VERSION}".encode()
                                       ).hexdigest()[:16] + ".json"


def machine_profile(threads=None, refresh=False):
    """The cached profile for this CPU and thread count, measured when missing,
    unreadable, or ``refresh=True``."""
    import numba
    threads = numba.config.NUMBA_NUM_THREADS if threads is None else threads
    path = profile_path(threads)
    if not refresh:
        try:
            stamp = (str(path), path.stat().st_mtime_ns)
        except OSError:
            stamp = None
        if stamp is not None and stamp in _LOADED:
            return _LOADED[stamp]          # read once per process (selection is on a hot path)
        try:
            data = json.loads(path.read_text())
            if data.get("version") == PROFILE_VERSION and data.get("cpu_model") == cpu_model():
                for k in ("read_bandwidth", "triad_bandwidth", "incache_csr_gflops"):
                    data[k] = {int(t): v for t, v in data[k].items()}
                prof = MachineProfile(**data)
                if stamp is not None:
                    _LOADED.clear()
                    _LOADED[stamp] = prof
                return prof
        except (OSError, ValueError, TypeError, KeyError):
            pass                                   # missing, corrupt or foreign: remeasure
    prof = measure(threads)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(prof.to_dict(), indent=2))
        os.replace(tmp, path)                      # atomic: concurrent processes are safe
    except OSError:
        pass                                       # a read-only cache only costs a remeasure
    return prof
