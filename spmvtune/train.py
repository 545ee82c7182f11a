"""Training data for the selector: time every (kernel, threads) pair on many matrices.

For each matrix: structural features, the micro-profile (and the bottleneck
rule's pick, for comparison), and the median time and setup cost of every
usable kernel of the pool at 1 and N threads (interleaved rounds of calibrated
batches after a warm-up, JIT outside the timing, each result checked against
SciPy first).  Each matrix's record is committed to a SQLite results store as
soon as it is measured, so an interrupted sweep loses at most the matrix in
progress and a rerun skips what is done; with a Dask scheduler the matrices
are measured on the cluster's workers, one at a time per worker.

The generated sweep covers every bottleneck class at sizes from in-cache to
several times the L3: families of :mod:`spmvtune.generate` over their
parameters (:func:`generated_matrices`).
"""
import json
import os
import sqlite3
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from . import generate
from .costmodel import pair_key
from .decision import BASELINE
from .operator import build_operator
from .pool import KernelUnusable, canonical_pair, get_kernel, kernel_names
from .timing import STABLE_BATCH_SECONDS, interleaved_samples, relative_spread
from .validate import as_canonical_csr, first_mismatch


#: The generated sweep stays below this many nonzeros (~10x the L3 in CSR bytes):
#: far enough out of cache, and every kernel of the pool fits in memory at once.
MAX_GRID_NNZ = 12_000_000


def generated_matrices(scale=1.0, seeds=(0, 1)):
    """Every matrix of :func:`_grid`, and for the random families up to 200k
    nonzeros also other random draws (``seeds``): several hundred matrices."""
    for name, family, make, small in _grid(scale):
        yield name, family, (lambda m=make: m(seeds[0]))
        if small:
            for seed in seeds[1:]:
                yield f"{name}_s{seed}", family, (lambda m=make, sd=seed: m(sd))


def _grid(scale=1.0):
    """(name, family, build(seed), small) over parameter sweeps of every family,
    from a few thousand to ~25 million nonzeros, so every bottleneck class
    appears both in and out of cache.  ``small``: worth several random draws.
    ``scale`` multiplies the sizes (tests use a small scale)."""
    def s(v):
        return max(int(v * scale), 8)
    sizes = (3_000, 12_000, 50_000, 200_000, 800_000, 3_000_000)
    for n in (12, 18, 26, 40, 60, 75):
        yield (f"stencil27_{n}", "stencil",
               lambda seed, n=n: generate.stencil3d(max(int(n * scale ** (1 / 3)), 3)), False)
    for n in (20, 50, 120, 300, 700, 1500):
        yield f"laplace2d_{n}", "laplace", lambda seed, n=n: generate.laplacian_2d(s(n)), False
    for nb in (500, 3_000, 15_000, 60_000, 200_000, 500_000):
        for bpr, spread in ((4, 10), (10, 50), (20, 1000)):
            if nb * bpr * 9 <= MAX_GRID_NNZ:
                yield (f"fem_{nb}_{bpr}_{spread}", "fem",
                       lambda seed, nb=nb, b=bpr, sp=spread: generate.fem_blocks(s(nb), b, spread=sp,
                                                                                 seed=seed),
                       nb * bpr * 9 <= 200_000)
    for n in sizes:
        for per in (2, 5, 12, 30):
            if n * per <= MAX_GRID_NNZ:
                yield (f"scatter_{n}_{per}", "scatter",
                       lambda seed, n=n, per=per: generate.random_scatter(s(n), per, seed=per + seed),
                       n * per <= 200_000)
    for n in sizes[:5]:
        for exp in (1.05, 1.3, 1.8, 2.5):
            yield (f"powerlaw_{n}_{exp}", "powerlaw",
                   lambda seed, n=n, e=exp: generate.power_law(s(n), 8, exponent=e,
                                                               seed=int(10 * e) + seed),
                   n * 8 <= 200_000)
    for n in (20_000, 100_000, 500_000, 2_000_000, 8_000_000):
        for loc in (None, 30, 3000):
            yield (f"short_{n}_{loc}", "short",
                   lambda seed, n=n, loc=loc: generate.short_rows(s(n), seed=seed, locality=loc),
                   n <= 100_000)
    for m, n in ((2_000, 50_000), (10_000, 300_000), (50_000, 1_000_000), (150_000, 3_000_000)):
        for per in (10, 40):
            yield (f"widelp_{m}_{n}_{per}", "widelp",
                   lambda seed, m=m, n=n, per=per: generate.wide_lp(s(m), s(n), per, seed=seed),
                   m * per <= 200_000)
    for n in sizes:
        for hb in (1, 4, 15):
            if n * (2 * hb + 1) <= MAX_GRID_NNZ:
                yield (f"banded_{n}_{hb}", "banded",
                       lambda seed, n=n, hb=hb: generate.banded(s(n), hb, seed=seed),
                       n * (2 * hb + 1) <= 200_000)
    for n in sizes[:5]:
        for per in (2, 6):
            yield (f"symscatter_{n}_{per}", "symscatter",
                   lambda seed, n=n, per=per: generate.symmetric(generate.random_scatter(s(n), per,
                                                                                         seed=seed)),
                   n * per <= 200_000)
    for n in (300, 1_000, 2_000):
        yield (f"dense_{n}", "dense",
               lambda seed, n=n: generate.random_scatter(s(n), max(s(n) // 3, 1), seed=seed), True)
    yield from _grid_by_class(s)


def pruned_matrices(scale=1.0, seeds=(0,)):
    """Pruned weight matrices of :mod:`spmvtune.generate` at the sizes of real
    layers (several hundred thousand to ~10 million nonzeros), for timing the
    many-vector kernels and the dense crossover: (name, family, build) triples."""
    def s(v):
        return max(int(v * scale), 16)
    g = generate
    out = []
    for m, n in ((512, 512), (1024, 1024), (2048, 2048), (4096, 4096), (1024, 4096),
                 (4096, 1024), (2048, 8192)):
        for sparsity in (0.5, 0.7, 0.8, 0.9, 0.95, 0.99):
            if m * n * (1 - sparsity) <= 10_000_000:
                out.append((f"unstructured_{m}x{n}_{sparsity}", "pruned_unstructured",
                            lambda seed, m=m, n=n, sp=sparsity: g.pruned_unstructured(
                                s(m), s(n), sp, seed=seed)))
    for block in ((4, 4), (8, 1), (1, 8), (2, 2)):
        for sparsity in (0.75, 0.9):
            out.append((f"blocks{block[0]}x{block[1]}_2048_{sparsity}", "pruned_blocks",
                        lambda seed, b=block, sp=sparsity: g.pruned_blocks(
                            s(2048), s(2048), sp, block=b, seed=seed)))
    for n in (1024, 4096):
        out.append((f"nm2_4_{n}", "pruned_nm", lambda seed, n=n: g.pruned_nm(s(n), s(n), seed=seed)))
    for sparsity in (0.0, 0.8):
        out.append((f"channels_2048_{sparsity}", "pruned_channels",
                    lambda seed, sp=sparsity: g.pruned_channels(s(2048), s(2048), 0.5, 0.5, sp,
                                                                seed=seed)))
    for levels in (16, 256):
        out.append((f"quantized{levels}_2048_0.9", "pruned_quantized",
                    lambda seed, lv=levels: g.pruned_unstructured(s(2048), s(2048), 0.9, seed=seed,
                                                                   levels=lv)))
        out.append((f"quantized{levels}_blocks4x4_2048_0.9", "pruned_quantized",
                    lambda seed, lv=levels: g.pruned_blocks(s(2048), s(2048), 0.9, seed=seed,
                                                            levels=lv)))
    for name, family, make in out:
        for seed in seeds:
            yield (name if seed == seeds[0] else f"{name}_s{seed}", family,
                   (lambda m=make, sd=seed: m(sd)))


def _grid_by_class(s):
    """More matrices where the first grid was thin: thread imbalance (one row
    holding over half the work, at sizes where two threads are used) and
    memory-bound and latency-bound matrices just past the L3 (3.5-10M
    nonzeros, cheaper to time than the largest).  Each gets three draws."""
    def out_of_cache(nnz):
        return 3_500_000 <= nnz * s(1_000_000) / 1_000_000 <= 10_000_000
    for n in (20_000, 40_000, 80_000, 150_000):
        for per in (4, 8, 12):
            for share in (0.55, 0.65, 0.75, 0.85):
                if n * per / (1 - share) <= 8_000_000:
                    yield (f"dominant_{n}_{per}_{share}", "dominant",
                           lambda seed, n=n, per=per, sh=share: generate.dominant_row(
                               s(n), per, sh, seed=seed), True)
    for nb in (60_000, 90_000, 120_000):
        for bpr, bs in ((6, 3), (9, 3), (12, 2), (6, 2)):
            for spread in (10, 300):
                if out_of_cache(nb * bpr * bs * bs):
                    yield (f"fembig_{nb}_{bpr}_{bs}_{spread}", "fembig",
                           lambda seed, nb=nb, b=bpr, bs=bs, sp=spread: generate.fem_blocks(
                               s(nb), b, bs=bs, spread=sp, seed=seed), True)
    for n in (600_000, 1_000_000, 1_500_000):
        for hb in (2, 3, 5):
            if out_of_cache(n * (2 * hb + 1)):
                yield (f"bandbig_{n}_{hb}", "bandbig",
                       lambda seed, n=n, hb=hb: generate.banded(s(n), hb, seed=seed), True)
    for n in (400_000, 700_000, 1_000_000, 1_500_000):
        for per in (4, 6, 8, 10):
            if out_of_cache(n * per):
                yield (f"scatterbig_{n}_{per}", "scatterbig",
                       lambda seed, n=n, per=per: generate.random_scatter(s(n), per,
                                                                          seed=100 + seed), True)
    for n in (3_000_000, 4_500_000):
        yield (f"shortbig_{n}", "shortbig",
               lambda seed, n=n: generate.short_rows(s(n), seed=seed), True)
    for n in (450_000, 700_000):
        for exp in (1.3, 1.8, 2.5):
            yield (f"powerbig_{n}_{exp}", "powerbig",
                   lambda seed, n=n, e=exp: generate.power_law(s(n), 8, exponent=e, seed=seed), True)
    for m, n, per in ((100_000, 1_500_000, 40), (150_000, 4_000_000, 30)):
        yield (f"widebig_{m}_{per}", "widebig",
               lambda seed, m=m, n=n, per=per: generate.wide_lp(s(m), s(n), per, seed=seed), True)
    yield from _grid_more(s, out_of_cache)


def _grid_more(s, out_of_cache):
    """Toward hundreds of matrices per class: memory-bound structures just past
    the L3 (banded, FEM blocks, stencils with random values), more imbalanced
    ones, and small in-cache ones (computation-bound).  Three draws each."""
    for n in (500_000, 700_000, 900_000, 1_200_000):
        for hb in (2, 3, 4, 5, 6):
            if out_of_cache(n * (2 * hb + 1)):
                yield (f"bandmb_{n}_{hb}", "bandmb",
                       lambda seed, n=n, hb=hb: generate.banded(s(n), hb, seed=10 + seed), True)
    for nb in (50_000, 70_000, 100_000, 140_000):
        for bpr, bs in ((5, 3), (8, 3), (10, 2), (16, 2)):
            for spread in (10, 30):
                if out_of_cache(nb * bpr * bs * bs):
                    yield (f"femmb_{nb}_{bpr}_{bs}_{spread}", "femmb",
                           lambda seed, nb=nb, b=bpr, bs=bs, sp=spread: generate.fem_blocks(
                               s(nb), b, bs=bs, spread=sp, seed=10 + seed), True)
    for n in (52, 56, 60, 64, 68, 72):
        yield (f"stencilrv_{n}", "stencilrv",
               lambda seed, n=n: generate.stencil3d(max(int(n * s(1_000_000) ** (1 / 3) / 100), 3),
                                                    seed=seed, random_values=True), True)
    for n in (25_000, 60_000, 100_000, 200_000):
        for per in (3, 6, 10):
            for share in (0.6, 0.7, 0.8):
                if n * per / (1 - share) <= 8_000_000:
                    yield (f"dominant2_{n}_{per}_{share}", "dominant2",
                           lambda seed, n=n, per=per, sh=share: generate.dominant_row(
                               s(n), per, sh, seed=20 + seed), True)
    for n in (20_000, 50_000, 100_000):
        for hb in (1, 2, 4, 8):
            yield (f"bandsmall_{n}_{hb}", "bandsmall",
                   lambda seed, n=n, hb=hb: generate.banded(s(n), hb, seed=30 + seed), True)
    for n in (15, 20, 25, 30):
        yield (f"stencilsmall_{n}", "stencilsmall",
               lambda seed, n=n: generate.stencil3d(max(int(n * s(1_000_000) ** (1 / 3) / 100), 3),
                                                    seed=seed, random_values=True), True)
    for nb in (2_000, 5_000, 10_000):
        for bpr in (4, 8):
            yield (f"femsmall_{nb}_{bpr}", "femsmall",
                   lambda seed, nb=nb, b=bpr: generate.fem_blocks(s(nb), b, seed=30 + seed), True)


def thread_counts(threads):
    """Thread counts every kernel is timed at: 1, ``threads`` and, on machines
    with more than two, half of it."""
    return sorted({1, max(threads // 2, 1), threads})


#: Prepared storage (bytes) timed side by side at once; beyond it the pool is
#: timed in groups, each interleaved with the baseline, and scaled by it.
GROUP_BYTES = 4 << 30


def measure_matrix(A, threads, repeats=7, min_seconds=0.0, kernels=None,
                   batch_seconds=STABLE_BATCH_SECONDS, profile=True, vectors=(1,)):
    """Record of one matrix: features, the micro-profile and the rule's pick,
    and the median seconds and setup of every usable (kernel, threads) pair.

    threads: the largest thread count (pairs are timed at :func:`thread_counts`).
    Each pair's result is checked against SciPy before it is timed; a pair
    that cannot represent A is left out, one that raises or is wrong is
    recorded in ``errors`` and the others go on.  Times come from interleaved
    rounds of calibrated batches (:func:`spmvtune.timing.interleaved_samples`).
    vectors: right-hand sides per product to time (1: y = A x with the
    single-vector pool; k > 1: Y = A X with the kernels serving k, anchored
    on ``spmm_csr``).  Keys of ``times`` are "kernel@threads" for one vector
    and "kernel@threads@kK" for k (:func:`spmvtune.costmodel.pair_key`; k a
    power of two up to 256 keeps its own coefficients), of ``setup`` "kernel@threads".
    """
    from .analysis import analyze
    from .features import structural_features, vector_features
    from .machine import machine_profile
    from .select import baseline_for
    csr = as_canonical_csr(A)
    machine = machine_profile()
    vectors = sorted({int(k) for k in vectors})
    f = structural_features(csr, caches=machine.caches, threads=threads)
    if any(k > 1 for k in vectors):
        f.update(vector_features(csr))
    res = analyze(csr, threads=threads, profile=profile and csr.nnz > 0, machine=machine)
    S = sp.csr_array((csr.data, csr.indices, csr.indptr), shape=csr.shape)
    setup, errors, times, spread = {}, {}, {}, {}
    for k in vectors:
        specs = [get_kernel(name) for name in (kernels or kernel_names())]
        specs = [s for s in specs if s.serves(k) or (k == 1 and s.name == BASELINE)]
        t, sp_ = _time_pool(csr, S, f, threads, specs, k, baseline_for(k), setup, errors,
                            repeats, min_seconds, batch_seconds)
        times.update(t)
        spread.update(sp_)
    return {"rows": csr.shape[0], "cols": csr.shape[1], "nnz": csr.nnz, "threads": threads,
            "features": {k: float(v) for k, v in f.items()},
            "profile": res.profile, "scores": res.scores, "rule": res.recommended,
            "rule_threads": res.recommended_threads, "vectors": vectors,
            "times": times, "spread": spread, "setup": setup, "errors": errors,
            "timing": {"repeats": repeats, "batch_seconds": batch_seconds}}


def _time_pool(csr, S, f, threads, specs, k, baseline, setup, errors, repeats, min_seconds,
               batch_seconds):
    """({key: median seconds}, {key: spread}) of every usable pair of ``specs``
    with k right-hand sides, anchored on ``baseline`` at ``threads``."""
    from .pool.dense_mm import BLAS_SPIN_SECONDS
    rng = np.random.default_rng(0)
    dtype = csr.data.dtype                   # products in the matrix's own value type
    shape = (csr.shape[1],) if k == 1 else (csr.shape[1], k)
    x = rng.uniform(-1, 1, shape)
    if dtype.kind == "c":
        x = x + 1j * rng.uniform(-1, 1, shape)
    x = x.astype(dtype)
    y = np.empty((csr.shape[0],) if k == 1 else (csr.shape[0], k), dtype)
    ref = S @ x
    check_cols = [0] if k == 1 else sorted({0, k // 2, k - 1})
    asked = list(dict.fromkeys((s.name, s.threads_for(t)) for s in specs
                               for t in thread_counts(threads)))
    # a pair running another pair's loop is timed once, as that pair
    pairs = list(dict.fromkeys(canonical_pair(n, t) for n, t in asked))
    aliases = {(n, t): canonical_pair(n, t) for n, t in asked if canonical_pair(n, t) != (n, t)}
    times, spread = {}, {}

    def product(op):
        return (lambda: op.matvec(x, out=y)) if k == 1 else (lambda: op.matmat(x, out=y))

    def ready(name, t):
        key = pair_key(name, t, k)
        try:
            op = build_operator(csr, name, t)
        except KernelUnusable:
            return None
        except Exception as exc:            # noqa: BLE001 - a failing kernel must not stop the sweep
            errors[key] = f"{type(exc).__name__}: {exc}"
            return None
        y.fill(np.nan)
        product(op)()
        for c in check_cols:
            yc, xc, rc = (y, x, ref) if k == 1 else (y[:, c], x[:, c], ref[:, c])
            bad = first_mismatch(yc, S, xc, rc)
            if bad is not None:
                errors[key] = (f"wrong result in row {bad}" + (f", column {c}" if k > 1 else "")
                               + f": {yc[bad]!r}, SciPy gives {rc[bad]!r}")
                return None
        setup[pair_key(name, t)] = op.setup_seconds
        return op

    anchor_key = pair_key(baseline, threads, k)
    anchor = ready(baseline, threads)
    # groups of pairs whose estimated storage fits GROUP_BYTES, built one group at a time
    groups, size = [[]], 0
    for name, t in pairs:
        if (name, t) == (baseline, threads) or get_kernel(name).refusal(f):
            continue
        est = get_kernel(name).storage(f)
        if groups[-1] and size + est > GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append((name, t))
        size += est
    base_samples = []
    for group in groups:
        ops = {pair_key(n, t, k): op for n, t in group if (op := ready(n, t)) is not None}
        contestants = {key: product(op) for key, op in ops.items()}
        # BLAS threads spin after a call, on the cores the next contestant needs
        settle = {key: BLAS_SPIN_SECONDS for key, op in ops.items()
                  if get_kernel(op.kernel).balance == "blas"}
        if anchor is not None:
            contestants[anchor_key] = product(anchor)
        if not contestants:
            continue
        samples = interleaved_samples(contestants, repeats=repeats, min_seconds=min_seconds,
                                      batch_seconds=batch_seconds, settle=settle)
        anchor_med = float(np.median(samples[anchor_key])) if anchor is not None else None
        if anchor is not None:
            base_samples += samples[anchor_key]
        for key, v in samples.items():
            if key == anchor_key:
                continue
            med = float(np.median(v))
            # as a ratio to the anchor timed beside it, scaled by all its samples below
            times[key] = med if anchor_med is None else med / anchor_med
            spread[key] = relative_spread(v)
        del ops, contestants                  # free this group's storage
    if anchor is not None:
        t_anchor = float(np.median(base_samples))
        times = {key: v * t_anchor for key, v in times.items()}
        times[anchor_key] = t_anchor
        spread[anchor_key] = relative_spread(base_samples)
    for (n, t), canon in aliases.items():
        if pair_key(*canon, k) in times:
            times[pair_key(n, t, k)] = times[pair_key(*canon, k)]
            spread[pair_key(n, t, k)] = spread[pair_key(*canon, k)]
            if pair_key(*canon) in setup:
                setup[pair_key(n, t)] = setup[pair_key(*canon)]
    return times, spread


class ResultsStore:
    """SQLite store of per-matrix records: ``done(name)``, ``put``, ``records()``."""

    COLUMNS = ["matrix", "family", "record", "created"]

    def __init__(self, path, write=True):
        """Open (or create) the store; ValueError naming the file when it is
        not one (another database, not SQLite) or, with ``write``, when it
        cannot be written.  Another program's database is refused before
        anything in it changes."""
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ValueError(f"{self.path}: cannot create the store (a file is in the way of "
                             f"directory {self.path.parent})") from None
        except OSError as exc:
            raise ValueError(f"{self.path}: cannot create the store ({exc.strerror or exc})") from None
        where = self.path if self.path.exists() else self.path.parent
        if write and not os.access(where, os.W_OK):
            raise ValueError(f"{where} is read-only; choose another --store")
        try:
            con = sqlite3.connect(self.path, timeout=30)
            try:
                tables = {t for (t,) in con.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")}
            finally:
                con.close()
            if tables - {"results"}:
                raise sqlite3.DatabaseError(f"it holds other tables: {', '.join(sorted(tables))}")
            with self._con() as con:
                con.execute("CREATE TABLE IF NOT EXISTS results (matrix TEXT PRIMARY KEY, "
                            "family TEXT, record TEXT NOT NULL, created REAL NOT NULL)")
                cols = [r[1] for r in con.execute("PRAGMA table_info(results)")]
            if cols != self.COLUMNS:
                raise sqlite3.DatabaseError(f"its 'results' table has columns {cols}")
        except sqlite3.DatabaseError as exc:
            what = ("is read-only" if "readonly" in str(exc)
                    else f"is not a spmvtune training store ({exc})")
            raise ValueError(f"{self.path} {what}; choose another --store") from None
        except OSError as exc:
            raise ValueError(f"{self.path}: cannot create the store ({exc.strerror or exc})") from None

    def _con(self):
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def done(self, matrix):
        with self._con() as con:
            return con.execute("SELECT 1 FROM results WHERE matrix = ?", (matrix,)).fetchone() is not None

    def get(self, matrix):
        """The stored record of ``matrix``, or None."""
        with self._con() as con:
            row = con.execute("SELECT record FROM results WHERE matrix = ?", (matrix,)).fetchone()
        return None if row is None else json.loads(row[0])

    def missing(self, matrix, vectors):
        """The right-hand side counts of ``vectors`` not yet measured for ``matrix``
        (a failed matrix counts as done; records before k > 1 hold k = 1)."""
        rec = self.get(matrix)
        if rec is None:
            return sorted(set(vectors))
        if "times" not in rec:
            return []
        return sorted(set(vectors) - set(rec.get("vectors", [1])))

    def merge(self, matrix, family, record):
        """Store ``record``, keeping what an earlier record of ``matrix`` measured
        at other right-hand side counts."""
        old = self.get(matrix)
        if old is not None and "times" in old and "times" in record:
            merged = dict(old)
            for key in ("times", "spread", "setup", "errors", "features"):
                merged[key] = {**old.get(key, {}), **record.get(key, {})}
            merged["vectors"] = sorted(set(old.get("vectors", [1])) | set(record["vectors"]))
            if record.get("profile"):
                merged.update({k: record[k] for k in ("profile", "scores", "rule", "rule_threads")})
            record = merged
        self.put(matrix, family, record)

    def put(self, matrix, family, record):
        with self._con() as con:
            con.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                        (matrix, family, json.dumps(record), time.time()))

    def records(self):
        """[(matrix, family, record)] in insertion order."""
        with self._con() as con:
            rows = con.execute("SELECT matrix, family, record FROM results ORDER BY created").fetchall()
        out = []
        for m, f, r in rows:
            try:
                out.append((m, f, json.loads(r)))
            except (ValueError, TypeError):
                warnings.warn(f"{self.path}: record of {m!r} is not JSON; skipped")
        return out


def measure_item(name, family, builder, threads, max_nnz=None, timing=None):
    """(name, family, record) for one training item; a matrix that cannot be
    built or measured gives a record with ``error`` (the sweep goes on).
    timing: keyword arguments of :func:`measure_matrix` (repeats, batch_seconds)."""
    t0 = time.perf_counter()
    try:
        A = builder()
        if max_nnz is not None and A.nnz > max_nnz:
            raise ValueError(f"{A.nnz} nonzeros > --max-nnz {max_nnz}")
        record = measure_matrix(A, threads, **(timing or {}))
    except Exception as exc:                    # noqa: BLE001 - one matrix, not the sweep
        return name, family, {"error": f"{type(exc).__name__}: {exc}"}
    record["seconds"] = time.perf_counter() - t0
    return name, family, record


_ONE_AT_A_TIME = threading.Lock()


def measure_on_worker(name, family, builder, threads, max_nnz=None, timing=None):
    """The Dask task: one matrix at a time per worker process (timings must not
    share the cores), whatever the worker's thread count."""
    with _ONE_AT_A_TIME:
        return measure_item(name, family, builder, threads, max_nnz, timing)


def sweep(items, store, threads, progress=None, max_nnz=None, scheduler=None, timing=None):
    """Measure each (name, family, builder) not yet in ``store``, here or on
    the Dask cluster at ``scheduler`` (builders must then be picklable by
    cloudpickle and matrix files readable on the workers).

    timing: keyword arguments of :func:`measure_matrix`; its ``vectors``
    (default (1,)) are the right-hand side counts to time: a matrix already
    measured at some of them is measured at the others only (without the
    micro-profile when k = 1 is done) and its record merged.
    Every record, failures included, is committed as soon as it arrives, so a
    rerun moves on.  Returns (measured, skipped, failed) counts."""
    items = list(items)
    timing = dict(timing or {})
    vectors = tuple(timing.pop("vectors", (1,)))
    todo = []
    for name, family, builder in items:
        missing = store.missing(name, vectors)
        if missing:
            todo.append((name, family, builder,
                         {**timing, "vectors": tuple(missing), "profile": 1 in missing}))
    skipped = len(items) - len(todo)
    measured = failed = 0
    for i, (name, family, record) in enumerate(_measured(todo, threads, max_nnz, scheduler), 1):
        store.merge(name, family, record)
        if "error" in record:
            failed += 1
        else:
            measured += 1
        if progress:
            progress(skipped + i, len(items), name, record, record.get("seconds", 0.0))
    return measured, skipped, failed


def _measured(todo, threads, max_nnz, scheduler):
    if scheduler is None:
        for name, family, builder, timing in todo:
            yield measure_item(name, family, builder, threads, max_nnz, timing)
        return
    from .cluster import connect
    client, as_completed = connect(scheduler)
    try:
        futures = {client.submit(measure_on_worker, name, family, builder, threads, max_nnz,
                                 timing, key=f"spmvtune-train-{i}", pure=False): (name, family)
                   for i, (name, family, builder, timing) in enumerate(todo)}
        for fut in as_completed(futures):
            name, family = futures[fut]
            try:
                yield fut.result()
            except Exception as exc:          # noqa: BLE001 - a lost worker costs a row
                yield name, family, {"error": f"Dask task failed: {type(exc).__name__}: {exc}"}
    finally:
        client.close()
