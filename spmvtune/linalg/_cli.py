"""The work behind ``spmvtune solve`` (the click command lives in spmvtune/cli.py)."""
import importlib
import sys
import time
from pathlib import Path

import numpy as np

METHODS = ("cg", "bicgstab", "gmres")
#: Seconds between progress lines on a long solve.
PROGRESS_EVERY = 2.0


class SolveError(ValueError):
    """A problem with the command's input, phrased for one line."""


def read_rhs(spec, n, seed=0):
    """The right-hand side: ``"ones"``, ``"random"`` (standard normal, seeded) or
    a file (.npy, Matrix Market array/coordinate vector, or text: one value per
    line or whitespace/comma separated).  Returns (n,) float64."""
    if spec == "ones":
        return np.ones(n)
    if spec == "random":
        return np.random.default_rng(seed).standard_normal(n)
    path = Path(spec)
    if not path.is_file():
        raise SolveError(f"--rhs {spec}: not 'ones', 'random' or a readable file")
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            b = np.load(path, allow_pickle=False)
        elif name.endswith((".mtx", ".mtx.gz")):
            import scipy.io
            b = scipy.io.mmread(str(path))
            b = b.toarray() if hasattr(b, "toarray") else np.asarray(b)
        else:
            b = np.loadtxt(path, delimiter="," if name.endswith(".csv") else None, ndmin=1)
    except (ValueError, OSError, EOFError) as exc:
        raise SolveError(f"{spec}: cannot read a vector ({exc})") from None
    b = np.asarray(b)
    if b.ndim == 2 and 1 in b.shape:
        b = b.ravel()
    if b.ndim != 1:
        raise SolveError(f"{spec}: expected a vector, got an array of shape {b.shape}")
    if b.shape[0] != n:
        raise SolveError(f"{spec}: {b.shape[0]} values, but the matrix has {n} rows")
    if np.iscomplexobj(b):
        raise SolveError(f"{spec}: complex right-hand sides are not supported here")
    b = b.astype(np.float64)
    if not np.isfinite(b).all():
        i = int(np.flatnonzero(~np.isfinite(b))[0])
        raise SolveError(f"{spec}: entry {i} is {b[i]} (not finite)")
    return b


class Progress:
    """A line on stderr every PROGRESS_EVERY seconds: iteration, residual, time."""

    def __init__(self, label, bnrm2, target, stream=None):
        self.label = label
        self.bnrm2 = bnrm2 or 1.0
        self.target = target
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.next = self.t0 + PROGRESS_EVERY

    def __call__(self, iteration, residual):
        now = time.perf_counter()
        if now < self.next:
            return
        self.next = now + PROGRESS_EVERY
        print(f"  {self.label} iteration {iteration}: residual {residual / self.bnrm2:.2e} "
              f"(target {self.target:.1e}), {now - self.t0:.1f} s", file=self.stream, flush=True)


def warm_up(method, M, n, nnz, threads=None):
    """Load the compiled kernels a solve of this size will run (Numba reads
    them from its cache once per process: about half a second) on a small
    banded system in the same regimes (threaded or serial vector loops,
    threaded or serial product), so that the time of the real solve is the
    solve's.  Returns the seconds it took."""
    import scipy.sparse as sp
    from ..operator import build_operator
    from ..validate import as_canonical_csr, check_threads
    from ._vector import SERIAL_BELOW
    rows = SERIAL_BELOW + 8 if n >= SERIAL_BELOW else min(n, 2048)
    want = min(nnz, 3 * rows)
    k = max(1, -(-want // (2 * rows)))             # half-bandwidth
    offsets = list(range(-k, k + 1))
    T = sp.csr_array(sp.diags_array([np.full(rows - abs(o), 2.0 * k + 1 if o == 0 else -1.0)
                                     for o in offsets], offsets=offsets))
    mod = importlib.import_module(f"spmvtune.linalg.{method}")
    t0 = time.perf_counter()
    mod._solve(T, np.ones(rows), rtol=1e-30, maxiter=2, M=M, threads=threads)
    # the product may run serial or threaded (the selection decides): load both
    csr = as_canonical_csr(T)
    for t in sorted({1, check_threads(threads)}):
        for kernel in ("csr_balanced", "csr_unroll4"):
            build_operator(csr, kernel, t)(np.ones(rows))
    return time.perf_counter() - t0


def solve(A, b, method="cg", *, rtol=1e-5, atol=0.0, maxiter=None, restart=None, M=None,
          x0=None, threads=None, progress=True):
    """Run one of spmvtune.linalg's solvers; returns a dict of what happened
    (x, info, iterations, seconds, relative residual ||b - A x|| / ||b||,
    kernel, threads, products, tuning events, load_seconds: the kernels'
    loading before the solve, not part of ``seconds``)."""
    if method not in METHODS:
        raise SolveError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    mod = importlib.import_module(f"spmvtune.linalg.{method}")
    load = warm_up(method, M, A.shape[0], A.nnz, threads)
    bnrm2 = float(np.linalg.norm(b))
    monitor = Progress(method, bnrm2, max(rtol, atol / bnrm2 if bnrm2 else 0.0)) if progress else None
    kw = {"restart": restart} if method == "gmres" else {}
    details = {}
    t0 = time.perf_counter()
    x, info, iterations = mod._solve(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter, M=M,
                                     monitor=monitor, threads=threads, details=details, **kw)
    seconds = time.perf_counter() - t0
    return dict(details, x=x, info=int(info), iterations=int(iterations), seconds=seconds,
                residual=relative_residual(A, b, x), load_seconds=load)


def solve_scipy(A, b, method="cg", *, rtol=1e-5, atol=0.0, maxiter=None, restart=None, M=None,
                x0=None):
    """The same solve by SciPy (BLAS on one thread, its faster setting here)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as sla

    from ..operator import single_threaded_blas
    count = [0]

    def cb(_):
        count[0] += 1
    if isinstance(M, str):
        M = sp.diags_array(1.0 / A.diagonal())
    kw = {"restart": restart, "callback_type": "pr_norm"} if method == "gmres" else {}
    with single_threaded_blas():
        t0 = time.perf_counter()
        x, info = getattr(sla, method)(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter, M=M,
                                       callback=cb, **kw)
        seconds = time.perf_counter() - t0
    return {"x": x, "info": int(info), "iterations": count[0], "seconds": seconds,
            "residual": relative_residual(A, b, x)}


def relative_residual(A, b, x):
    bn = float(np.linalg.norm(b))
    r = float(np.linalg.norm(b - A @ x))
    return r / bn if bn else r


def status(info):
    if info == 0:
        return "converged"
    if info > 0:
        return f"not converged after maxiter ({info})"
    return f"breakdown (info {info})"
