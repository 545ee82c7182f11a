"""Training data for the kernel selector: time every kernel on many matrices.

For each matrix: structural features, the micro-profile, and the median time
and setup cost of every usable kernel of the pool (interleaved rounds after a
warm-up, JIT outside the timing), at the thread count the selector would use
(one thread below ``SMALL_NNZ`` nonzeros).  Each matrix's record is committed to
a SQLite results store as soon as it is measured, so an interrupted sweep loses
at most the matrix in progress and a rerun skips what is done.

The generated sweep covers every bottleneck class at sizes from in-cache to
several times the L3: families of :mod:`spmvtune.generate` over their
parameters (:func:`generated_matrices`).
"""
import json
import sqlite3
import time
import warnings
from pathlib import Path

import numpy as np

from . import generate
from .pool import KernelUnusable, kernel_names
from .select import SMALL_NNZ, build
from .timing import interleaved_samples
from .validate import as_canonical_csr


def generated_matrices(scale=1.0, seeds=(0, 1, 2)):
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
    for n in (12, 18, 26, 40, 60, 85, 110):
        yield (f"stencil27_{n}", "stencil",
               lambda seed, n=n: generate.stencil3d(max(int(n * scale ** (1 / 3)), 3)), False)
    for n in (20, 50, 120, 300, 700, 1500):
        yield f"laplace2d_{n}", "laplace", lambda seed, n=n: generate.laplacian_2d(s(n)), False
    for nb in (500, 3_000, 15_000, 60_000, 200_000, 500_000):
        for bpr, spread in ((4, 10), (10, 50), (20, 1000)):
            if nb * bpr * 9 <= 25_000_000:
                yield (f"fem_{nb}_{bpr}_{spread}", "fem",
                       lambda seed, nb=nb, b=bpr, sp=spread: generate.fem_blocks(s(nb), b, spread=sp,
                                                                                 seed=seed),
                       nb * bpr * 9 <= 200_000)
    for n in sizes:
        for per in (2, 5, 12, 30):
            if n * per <= 25_000_000:
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
            if n * (2 * hb + 1) <= 25_000_000:
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


def measure_matrix(A, threads, repeats=5, min_seconds=0.3, kernels=None):
    """Record of one matrix: features, profile, per-kernel median seconds and setup.

    threads: the thread count for matrices of at least SMALL_NNZ nonzeros.
    Kernels that cannot represent A are left out; a kernel that raises
    otherwise is recorded in ``errors`` and the others go on.
    """
    from .analysis import analyze
    csr = as_canonical_csr(A)
    t = 1 if csr.nnz < SMALL_NNZ else threads
    res = analyze(csr, threads=t, profile=csr.nnz > 0)
    rule_features = analyze(csr, threads=t, profile=False).recommended
    x = np.random.default_rng(0).uniform(-1, 1, csr.shape[1])
    y = np.empty(csr.shape[0])
    ops, setup, errors = {}, {}, {}
    for name in kernels or kernel_names():
        if name == "dense_gemv" and csr.shape[0] * csr.shape[1] > 1 << 22:
            continue
        try:
            op = build(csr, {"kernel": name, "threads": 1 if name == "csr_serial" else t})
        except KernelUnusable:
            continue
        except Exception as exc:            # a failing kernel must not stop the sweep
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        ops[name] = op
        setup[name] = op.setup_seconds
    samples = interleaved_samples({k: (lambda op=op: op.matvec(x, out=y)) for k, op in ops.items()},
                                  repeats=repeats, min_seconds=min_seconds)
    return {"rows": csr.shape[0], "cols": csr.shape[1], "nnz": csr.nnz, "threads": t,
            "features": {k: float(v) for k, v in res.features.items()},
            "profile": res.profile, "scores": res.scores, "rule": res.recommended,
            "rule_features": rule_features,
            "times": {k: float(np.median(v)) for k, v in samples.items()},
            "setup": setup, "errors": errors}


class ResultsStore:
    """SQLite store of per-matrix records: ``done(name)``, ``put``, ``records()``."""

    COLUMNS = ["matrix", "family", "record", "created"]

    def __init__(self, path):
        """Open (or create) the store; ValueError naming the file when it is
        not one (another database, not SQLite, read-only)."""
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
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


def sweep(items, store, threads, progress=None, max_nnz=None):
    """Measure each (name, family, builder) not yet in ``store``.

    builder() returns a matrix or raises (the reason is recorded, the sweep goes
    on).  Returns (measured, skipped, failed) counts."""
    measured = skipped = failed = 0
    items = list(items)
    for i, (name, family, builder) in enumerate(items, 1):
        if store.done(name):
            skipped += 1
            continue
        t0 = time.perf_counter()
        try:
            A = builder()
            if max_nnz is not None and A.nnz > max_nnz:
                raise ValueError(f"{A.nnz} nonzeros > --max-nnz {max_nnz}")
            record = measure_matrix(A, threads)
        except (ValueError, MemoryError, OSError) as exc:
            store.put(name, family, {"error": f"{type(exc).__name__}: {exc}"})
            failed += 1
            continue
        store.put(name, family, record)
        measured += 1
        if progress:
            progress(i, len(items), name, record, time.perf_counter() - t0)
    return measured, skipped, failed
