"""One matrix -> one result row: every contestant checked against SciPy, then
timed side by side (interleaved rounds, medians; JIT and setup outside the timing).

The matrix is measured in its own value type (``Options.dtype`` converts it
first): x and y are of that type, and SciPy's product of the same types is
the peer.  MKL (``mkl_sparse_d_mv``) runs float64 only.

Contestants: ``scipy`` (``A @ x``, one thread), ``baseline`` (csr_balanced),
``selected`` (what ``select_kernel(A)`` picks, with its selection and setup
cost), optionally every kernel of the pool (the fastest is the *oracle*),
``selected_1t`` (selected for one thread), and MKL plain CSR / Inspector-Executor
when the ``peers`` extra is installed; with ``Options.dense`` also ``dense``:
NumPy's BLAS on the dense matrix at the same thread count.

An item with k > 1 ``vectors`` measures ``Y = A X`` (X: (n_cols, k),
row-major): SciPy's ``A @ X``, ``select_kernel(A, n_vectors=k)``, the
``spmm_csr`` baseline, MKL's ``mkl_sparse_d_mm`` (plain and with the mm
hint) and dense ``gemm``; GFLOP/s count 2 nnz k flops.
"""
import socket
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..io import MatrixLoadError

#: Status of a row: measured, or why not.
OK, FAILED, SKIPPED, TIMEOUT = "ok", "failed", "skipped", "timeout"
#: A kernel is "correct" (for selection accuracy) within this of the fastest.
NEAR_BEST = 0.05
PEERS = ("scipy", "mkl_csr", "mkl_ie", "graphblas", "dense")


@dataclass(frozen=True)
class Options:
    threads: int
    repeats: int = 10
    all_kernels: bool = False
    one_thread: bool = False
    mkl: bool = True
    graphblas: bool = True
    cache: bool = True
    max_nnz: int | None = None
    kernels: tuple = field(default_factory=tuple)   # with all_kernels: only these
    dtype: str | None = None        # convert each matrix to this value type first
    dense: bool = False             # dense BLAS as a peer
    threshold: float | None = None  # drop |a| <= threshold on load


def measure_item(item, opts, phase=None):
    """Load and measure one :class:`~spmvtune.bench.items.Item`; never raises
    for a bad matrix or a failing kernel: the row says ``status`` and ``reason``.
    phase: called with what is being done ("loading the file", ...), so that
    a process that crashes can say where (:mod:`spmvtune.bench.runner`)."""
    from .items import load_item, stored_entries
    phase = phase or (lambda what: None)
    row = base_row(item, opts)
    t0 = time.perf_counter()

    def failed(reason):
        return dict(row, status=FAILED, reason=reason, elapsed=time.perf_counter() - t0)
    try:
        phase("reading the header")
        entries = stored_entries(item)
        if opts.max_nnz is not None and entries is not None and entries > opts.max_nnz:
            return dict(row, status=SKIPPED, reason=f"{entries} entries > --max-nnz {opts.max_nnz}",
                        nnz=entries, elapsed=time.perf_counter() - t0)
        if item.vectors > 1:
            row["vectors"] = item.vectors
        phase("loading the file")
        A = load_item(item, opts.threshold)
        if opts.dtype is not None:
            from ..validate import as_value_type
            A = as_value_type(A, opts.dtype)
    except MemoryError as exc:
        return failed(str(exc) or f"{item.ref}: out of memory while loading")
    except Exception as exc:          # noqa: BLE001 - any bad file costs its row only
        return failed(str(exc) if isinstance(exc, MatrixLoadError)
                      else f"{item.ref}: {type(exc).__name__}: {exc}")
    row.update(rows=int(A.shape[0]), cols=int(A.shape[1]), nnz=int(A.nnz), dtype=A.dtype.name)
    if opts.max_nnz is not None and A.nnz > opts.max_nnz:
        return dict(row, status=SKIPPED, reason=f"{A.nnz} nonzeros > --max-nnz {opts.max_nnz}",
                    elapsed=time.perf_counter() - t0)
    try:
        row.update(measure_matrix(A, opts, phase, item.vectors))
    except Exception as exc:          # noqa: BLE001 - a sweep reports and goes on
        return failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    row["elapsed"] = time.perf_counter() - t0
    return row


def base_row(item, opts):
    """The fields every row has, measured or not."""
    return {"matrix": item.key, "name": item.name, "source": item.kind,
            "threads": opts.threads, "host": socket.gethostname(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def dense_peer(A, threads):
    """``fn(x, y)``: y = A x (or Y = A X) by NumPy's BLAS on the dense matrix
    with ``threads`` BLAS threads, or None when the dense copy is over the
    dense kernels' limit."""
    from ..pool.dense import MAX_DENSE_BYTES
    from ..pool.dense_mm import _product
    if 8 * A.shape[0] * A.shape[1] > MAX_DENSE_BYTES:
        return None
    D = A.toarray()
    return lambda x, y: _product(D, threads, x, y)


def measure_matrix(A, opts, phase=None, vectors=1):
    """The measured fields of a row for a ``scipy.sparse`` matrix ``A``.

    Times in seconds per product, ``intensity`` in flop/byte (CSR bytes of
    :func:`spmvtune.machine.csr_bytes`), ``gbps`` the selected kernel's effective GB/s and
    ``bandwidth_percent`` that against this machine's measured read bandwidth.
    vectors: right-hand sides per product (k > 1: :func:`measure_many`).
    """
    if vectors > 1:
        return measure_many(A, opts, vectors)
    from .. import select_kernel
    from ..analysis import structural_bottlenecks
    from ..machine import csr_bytes, machine_profile
    from ..pool import KernelUnusable, get_kernel, kernel_names
    from ..select import BASELINE
    from ..timing import OPENMP_SPIN_SECONDS, STABLE_BATCH_SECONDS, interleaved_medians
    from ..validate import first_mismatch

    phase = phase or (lambda what: None)
    A = A.tocsr()
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, A.shape[1])
    if A.dtype.kind == "c":
        x = x + 1j * rng.uniform(-1, 1, A.shape[1])
    x = x.astype(A.dtype)
    y = np.empty(A.shape[0], A.dtype)
    ref = A @ x
    contestants, errors = {"scipy": lambda: A @ x}, {}
    kernel_bytes = {}

    def check(name, fn):
        """Add ``fn`` as a contestant if its product agrees with SciPy."""
        phase(f"checking {name} against SciPy")
        try:
            y.fill(np.nan)
            fn()
            if (bad := first_mismatch(y, A, x, ref)) is not None:
                raise AssertionError(f"row {bad}: {y[bad]!r} but SciPy gives {ref[bad]!r}")
        except Exception as exc:      # noqa: BLE001 - a failing kernel must not stop the sweep
            errors[name] = f"{type(exc).__name__}: {exc}"
            return False
        contestants[name] = fn
        return True

    phase("selecting a kernel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # foreign-model warnings: once per CLI run
        sel = select_kernel(A, threads=opts.threads, cache=opts.cache)
    check("selected", lambda: sel.matvec(x, out=y))
    wanted = ([BASELINE] + [n for n in (opts.kernels or kernel_names()) if n != BASELINE]
              if opts.all_kernels else [BASELINE])
    # with --all-kernels every kernel runs at the sweep's threads and, as
    # "kernel@1", on one thread: the oracle is the fastest (kernel, threads) pair
    pairs = [(name, opts.threads) for name in wanted]
    if opts.all_kernels and opts.threads > 1:
        pairs += [(name, 1) for name in wanted if not get_kernel(name).serial_only]
    for name, t in pairs:
        label = "baseline" if (name, t) == (BASELINE, opts.threads) else (
            name if t == opts.threads else f"{name}@{t}")
        phase(f"preparing {label}")
        try:
            op = select_kernel(A, kernel=name, threads=t)
        except KernelUnusable:
            continue
        except Exception as exc:      # noqa: BLE001
            errors[label] = f"{type(exc).__name__}: {exc}"
            continue
        if check(label, lambda op=op: op.matvec(x, out=y)):
            kernel_bytes[label] = op.nbytes
    if opts.one_thread:
        sel1 = select_kernel(A, threads=1, cache=opts.cache)
        check("selected_1t", lambda: sel1.matvec(x, out=y))
    if opts.mkl and A.dtype == np.float64 and max(A.shape) < 2**31:
        from ..peers import MKLMatrix, mkl_available
        if mkl_available()[0]:
            for label, optimize in (("mkl_csr", False), ("mkl_ie", True)):
                phase(f"preparing {label}")
                try:
                    m = MKLMatrix(A, opts.threads, optimize=optimize)
                except Exception as exc:   # noqa: BLE001
                    errors[label] = f"{type(exc).__name__}: {exc}"
                    continue
                check(label, lambda m=m: m(x, y))
    if opts.dense and (dense := dense_peer(A, opts.threads)) is not None:
        check("dense", lambda: dense(x, y))

    if opts.graphblas:
        from ..peers import GraphBLASMatrix, graphblas_available
        if graphblas_available()[0]:
            try:
                g = GraphBLASMatrix(A, opts.threads)
                if check("graphblas", lambda g=g: g(x, y)):
                    contestants["graphblas"] = g.mxv        # the product alone (x loaded)
            except Exception as exc:   # noqa: BLE001
                errors["graphblas"] = f"{type(exc).__name__}: {exc}"
    if opts.dense and (dense := dense_peer(A, opts.threads)) is not None:
        check("dense", lambda: dense(x, y))
    phase("timing " + ", ".join(contestants))
    from ..pool.dense_mm import BLAS_SPIN_SECONDS
    spin = {k: OPENMP_SPIN_SECONDS for k in ("mkl_csr", "mkl_ie") if k in contestants}
    spin.update({k: BLAS_SPIN_SECONDS for k in ("dense",) if k in contestants})
    spin.update({k: BLAS_SPIN_SECONDS for k in contestants if k == "selected"
                 and sel.kernel.startswith("dense")})
    seconds = interleaved_medians(contestants, repeats=opts.repeats, settle=spin,
                                  batch_seconds=STABLE_BATCH_SECONDS)
    if opts.all_kernels and "baseline" in seconds:
        seconds[BASELINE] = seconds["baseline"]      # timed once, listed in the pool too
    bottlenecks = list(sel.bottlenecks) or structural_bottlenecks(A, opts.threads)
    nbytes = csr_bytes(A.shape[0], A.shape[1], A.nnz, A.dtype.itemsize)
    bw = machine_profile(opts.threads).bandwidth(opts.threads)
    out = {"status": OK if not errors else FAILED,
           "reason": "; ".join(f"{k}: {v}" for k, v in errors.items()) or None,
           "seconds": seconds, "kernel_errors": errors,
           "selected_kernel": sel.kernel, "selected_threads": sel.threads,
           "selected_bytes": sel.nbytes, "kernel_bytes": kernel_bytes,
           "break_even_calls": sel.break_even_calls,
           "selection_source": sel.selection_source,
           "selection_seconds": sel.selection_seconds, "setup_seconds": sel.setup_seconds,
           "bottlenecks": bottlenecks,
           "intensity": 2.0 * A.nnz / nbytes, "bytes": nbytes,
           "machine_bandwidth": bw}
    if "baseline" in seconds:
        out["selection_products"] = ((sel.selection_seconds + sel.setup_seconds)
                                     / seconds["baseline"])
    pool = {k: v for k, v in seconds.items() if k not in PEERS + ("selected", "baseline", "selected_1t")}
    if opts.all_kernels and pool:
        # the selected configuration competes too (it may run on fewer threads)
        oracle = min(pool, key=pool.get)
        best = pool[oracle]
        if "selected" in seconds and seconds["selected"] <= best:
            oracle, best = sel.kernel, seconds["selected"]
        out["oracle_kernel"] = oracle
        out["oracle_seconds"] = best
        if "selected" in seconds:
            out["regret"] = seconds["selected"] / best - 1.0
    if "selected" in seconds:
        out["gbps"] = nbytes / seconds["selected"] / 1e9
        out["bandwidth_percent"] = 100.0 * out["gbps"] / bw
    return out


def measure_many(A, opts, k):
    """The measured fields of a row for ``Y = A X`` with k right-hand sides
    (X row-major): the contestants of :func:`measure_matrix` for k vectors,
    each checked against SciPy's ``A @ X`` on three columns, timed side by side."""
    from .. import select_kernel
    from ..analysis import structural_bottlenecks
    from ..machine import csr_bytes, machine_profile
    from ..pool import KernelUnusable, kernel_specs
    from ..pool.dense_mm import BLAS_SPIN_SECONDS
    from ..select import BASELINE_MANY
    from ..timing import OPENMP_SPIN_SECONDS, STABLE_BATCH_SECONDS, interleaved_medians
    from ..validate import first_mismatch

    A = A.tocsr()
    m, n = A.shape
    X = np.random.default_rng(0).uniform(-1, 1, (n, k))
    Y = np.empty((m, k))
    ref = A @ X
    cols = sorted({0, k // 2, k - 1})
    contestants, errors = {"scipy": lambda: A @ X}, {}

    def check(name, fn):
        try:
            Y.fill(np.nan)
            fn()
            for c in cols:
                if (bad := first_mismatch(Y[:, c], A, X[:, c], ref[:, c])) is not None:
                    raise AssertionError(f"row {bad}, column {c}: {Y[bad, c]!r} but SciPy "
                                         f"gives {ref[bad, c]!r}")
        except Exception as exc:      # noqa: BLE001 - a failing kernel must not stop the sweep
            errors[name] = f"{type(exc).__name__}: {exc}"
            return False
        contestants[name] = fn
        return True

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = select_kernel(A, threads=opts.threads, cache=opts.cache, n_vectors=k)
    check("selected", lambda: sel.matmat(X, out=Y))
    wanted = [BASELINE_MANY]
    if opts.all_kernels:
        wanted += [s.name for s in kernel_specs() if s.serves(k) and s.name != BASELINE_MANY
                   and (not opts.kernels or s.name in opts.kernels)]
    for name in wanted:
        try:
            op = select_kernel(A, kernel=name, threads=opts.threads)
        except KernelUnusable:
            continue
        except Exception as exc:      # noqa: BLE001
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        check("baseline" if name == BASELINE_MANY else name, lambda op=op: op.matmat(X, out=Y))
    if opts.one_thread:
        sel1 = select_kernel(A, threads=1, cache=opts.cache, n_vectors=k)
        check("selected_1t", lambda: sel1.matmat(X, out=Y))
    if opts.mkl and max(A.shape) < 2**31:
        from ..peers import MKLMatrix, mkl_available
        if mkl_available()[0]:
            for label, optimize in (("mkl_csr", False), ("mkl_ie", True)):
                try:
                    mk = MKLMatrix(A, opts.threads, optimize=optimize, n_vectors=k)
                except Exception as exc:   # noqa: BLE001
                    errors[label] = f"{type(exc).__name__}: {exc}"
                    continue
                check(label, lambda mk=mk: mk.matmat(X, Y))
    if opts.dense and (dense := dense_peer(A, opts.threads)) is not None:
        check("dense", lambda: dense(X, Y))

    spin = {c: OPENMP_SPIN_SECONDS for c in ("mkl_csr", "mkl_ie") if c in contestants}
    spin.update({c: BLAS_SPIN_SECONDS for c in contestants
                 if c == "dense" or (c == "selected" and sel.kernel.startswith("dense"))
                 or c.startswith("dense_")})
    seconds = interleaved_medians(contestants, repeats=opts.repeats, settle=spin,
                                  batch_seconds=STABLE_BATCH_SECONDS)
    if opts.all_kernels and "baseline" in seconds:
        seconds[BASELINE_MANY] = seconds["baseline"]
    nbytes = csr_bytes(m, n, A.nnz) + 8.0 * (k - 1) * (m + n)
    bw = machine_profile(opts.threads).bandwidth(opts.threads)
    out = {"status": OK if not errors else FAILED, "vectors": k,
           "reason": "; ".join(f"{c}: {v}" for c, v in errors.items()) or None,
           "seconds": seconds, "kernel_errors": errors,
           "selected_kernel": sel.kernel, "selected_threads": sel.threads,
           "selection_source": sel.selection_source,
           "selection_seconds": sel.selection_seconds, "setup_seconds": sel.setup_seconds,
           "bottlenecks": list(sel.bottlenecks) or structural_bottlenecks(A, opts.threads),
           "intensity": 2.0 * A.nnz * k / nbytes, "bytes": nbytes, "machine_bandwidth": bw}
    if "baseline" in seconds:
        out["selection_products"] = ((sel.selection_seconds + sel.setup_seconds)
                                     / seconds["baseline"])
    pool = {c: v for c, v in seconds.items() if c not in PEERS + ("selected", "baseline",
                                                                   "selected_1t")}
    if opts.all_kernels and pool:
        oracle = min(pool, key=pool.get)
        best = pool[oracle]
        if "selected" in seconds and seconds["selected"] <= best:
            oracle, best = sel.kernel, seconds["selected"]
        out["oracle_kernel"], out["oracle_seconds"] = oracle, best
        if "selected" in seconds:
            out["regret"] = seconds["selected"] / best - 1.0
    if "selected" in seconds:
        out["gbps"] = nbytes / seconds["selected"] / 1e9
        out["bandwidth_percent"] = 100.0 * out["gbps"] / bw
    return out


def gflops_of(row):
    """{contestant: GFLOP/s} of a measured row (2 nnz k flops per product)."""
    flops = 2.0 * row["nnz"] * row.get("vectors", 1)
    return {k: flops / s / 1e9 for k, s in row.get("seconds", {}).items() if s > 0}
