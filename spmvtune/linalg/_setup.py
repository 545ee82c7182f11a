"""What every solver does before its first iteration, the way SciPy does it.

:func:`make_system` mirrors ``scipy.sparse.linalg._isolve.utils.make_system``
and ``_get_atol_rtol``: the same checks, messages and defaults (``maxiter =
10 n``, ``atol = max(atol, rtol ||b||)``, x0 ``None`` / ``"Mb"`` / an array,
``b`` of shape (n,) or (n, 1)).  It returns a :class:`System` holding the
product (:class:`Product`), the preconditioner and the scratch the fused
kernels need, or ``None`` when the problem is not real double precision (complex
or single precision): the solvers then hand it to SciPy unchanged.
"""
import contextlib
import time

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import aslinearoperator

from ..operator import SpMVOperator
from ..validate import as_canonical_csr
from . import _vector as vec
from ._fused import fused_for

_F64 = np.dtype(np.float64)
#: Product timings kept for the in-solve check of a newly selected kernel.
TIMES_KEPT = 16
#: Timed products per contestant when the solve races the plain and the
#: unrolled CSR loop at its start (:meth:`Product.race`).
RACE_ROUNDS = 4


def _coerce(a, b):
    """SciPy's ``utils.coerce``: the common type of two dtype characters."""
    a = a if a in "fdFD" else "d"
    b = b if b in "fdFD" else "d"
    if "D" in (a, b) or ("F" in (a, b) and "d" in (a, b)):
        return "D"
    if "F" in (a, b):
        return "F"
    return "d" if "d" in (a, b) else "f"


def check_tolerance(name, atol, rtol, bnrm2):
    """SciPy's ``_get_atol_rtol``: the absolute tolerance of the stopping test."""
    if isinstance(atol, str) or atol is None or atol < 0:
        raise ValueError(f"'spmvtune.linalg.{name}' called with invalid `atol`={atol}; "
                         "if set, `atol` must be a real, non-negative number.")
    return max(float(atol), float(rtol) * float(bnrm2))


class Product:
    """``y = A x`` for a solver, and the same fused with ``(z . y, y . y)``.

    Wraps an :class:`~spmvtune.SpMVOperator` (its kernel is called directly,
    with its fused twin from :mod:`._fused` when there is one) or anything
    with a ``matvec`` (a LinearOperator: its result is copied into ``y``).
    ``swap(op)`` changes the operator between iterations (in-solve tuning).
    """

    def __init__(self, n, bounds, red):
        self.n = n
        self.bounds = bounds
        self.red = red
        self.op = None
        self.calls = 0
        self.seconds = 0.0           # time spent in products (measured)
        self._times = np.empty(TIMES_KEPT)   # the last products' seconds, since the last swap
        self._since_swap = 0
        self._swap_seconds = 0.0
        self._racers = None
        self.events = []             # what the product decided (races), for describe()

    def swap(self, op):
        """Run ``op`` from the next product on (ends a race)."""
        self._racers = None
        self._since_swap = 0
        self._swap_seconds = 0.0
        self._use(op)
        return self

    def _use(self, op):
        self.op = op
        if isinstance(op, SpMVOperator):
            self._run, self._args = op._run, op._args
            self._twin = fused_for(op._run)
            self._red = np.empty((max(2, op.threads + 1), 2))
            self._linear = False
        else:
            self._twin = None
            self._linear = True

    def race(self, ops, rounds=None):
        """Alternate the products between ``ops`` (operators of the same
        matrix) for ``rounds`` timed products each, after one untimed product
        each, then keep the one with the fastest median.  The products are the
        solve's own: the race costs nothing but the slower kernel's extra time."""
        self.swap(ops[0])
        if len(ops) > 1:
            self._racers = list(ops)
            self._race_times = [[] for _ in ops]
            self._race_rounds = RACE_ROUNDS if rounds is None else rounds
            self._race_turn = 0
            self._race_seen = [0] * len(ops)

    def _race_step(self, dt):
        turn = self._race_turn
        if self._race_seen[turn]:            # each racer's first product is a warm-up
            self._race_times[turn].append(dt)
        self._race_seen[turn] += 1
        if all(len(t) >= self._race_rounds for t in self._race_times):
            med = [float(np.median(t)) for t in self._race_times]
            best = int(np.argmin(med))
            self.events.append(
                "raced " + ", ".join(f"{op.kernel} {m * 1e3:.3g} ms" for op, m in
                                     zip(self._racers, med)) + f" per product: kept "
                f"{self._racers[best].kernel}")
            times = self._race_times[best][-TIMES_KEPT:]
            self.swap(self._racers[best])
            self._times[:len(times)] = times
            self._since_swap = len(times)
            self._swap_seconds = float(sum(times))
            return
        self._race_turn = (turn + 1) % len(self._racers)
        self._use(self._racers[self._race_turn])

    @property
    def racing(self):
        return self._racers is not None

    @property
    def seconds_per_product(self):
        """Mean seconds of the current kernel's products (0.0 before any)."""
        return self._swap_seconds / self._since_swap if self._since_swap else 0.0

    def recent_times(self):
        """Seconds of the last products (at most TIMES_KEPT) since the last swap."""
        return self._times[:min(self._since_swap, TIMES_KEPT)]

    def _timed(self, t0):
        dt = time.perf_counter() - t0
        self.calls += 1
        self.seconds += dt
        self._times[self._since_swap % TIMES_KEPT] = dt
        self._since_swap += 1
        self._swap_seconds += dt
        if self._racers is not None:
            self._race_step(dt)

    @property
    def fused(self):
        """True when the dots ride along with the product (no extra pass)."""
        return self._twin is not None

    def __call__(self, x, y):
        """y = A x (x, y: (n,) float64, distinct)."""
        t0 = time.perf_counter()
        if self._linear:
            y[:] = np.ravel(self.op.matvec(x))
        else:
            self._run(*self._args, x, y)
        self._timed(t0)

    def dots(self, x, y, z):
        """y = A x; returns ``(z . y, y . y)``."""
        if self._twin is not None:
            t0 = time.perf_counter()
            out = self._twin(*self._args, x, y, z, self._red)
            self._timed(t0)
            return out
        self(x, y)
        return self.dot2(z, y, y, y)

    def dot2(self, a, b, c, d):
        if len(self.bounds) > 2:
            return vec.dot2_par(self.bounds, self.red, a, b, c, d)
        return vec.dot2_ser(self.bounds, self.red, a, b, c, d)


class System:
    """A validated linear system and the solver's working state.

    Attributes: ``n``; ``b`` (n,) float64; ``x`` (n,) float64, the initial
    guess (a fresh array: the solver updates it in place and returns it);
    ``bnrm2`` = ||b||; ``maxiter``; ``product`` (:class:`Product`);
    ``dinv`` (n,) the Jacobi preconditioner's inverse diagonal or None;
    ``psolve`` a callable ``M @ r`` for any other preconditioner, or None;
    ``bounds``/``red`` the vector kernels' partition and scratch;
    ``parallel`` whether the vector kernels run threaded.
    """

    def kernel(self, name):
        """The ``_par`` or ``_ser`` variant of a :mod:`._vector` kernel."""
        return getattr(vec, name + ("_par" if self.parallel else "_ser"))

    def precondition(self, r, out=None):
        """z = M r as a new array (Jacobi, a user operator, or a copy)."""
        if self.dinv is not None:
            return np.multiply(self.dinv, r, out=out)
        if self.psolve is not None:
            z = np.ravel(self.psolve(r))
            if z.dtype != _F64:
                z = z.astype(_F64)
            return z
        if out is None:
            return r.copy()
        np.copyto(out, r)
        return out

    def checkpoint(self, residual, target=None):
        """After each iteration (and once before the first): lets the tuner
        (:mod:`.tune`) estimate the products left and select a kernel."""
        if self.tuner is not None:
            self.tuner.checkpoint(self.product, residual, self.atol if target is None else target)

    def blas_limited(self):
        """One BLAS thread while the solve runs threaded kernels: OpenBLAS's
        spinning workers would take the cores the product needs
        (:func:`spmvtune.single_threaded_blas`).  Nothing to do when every
        kernel of the solve runs on the calling thread."""
        if not (self.parallel or getattr(self.product.op, "threads", 1) > 1):
            return contextlib.nullcontext()
        return _blas_controller().limit(limits=1, user_api="blas")


_CONTROLLER = []


def _blas_controller():
    """threadpoolctl's controller, made once: finding the BLAS libraries
    scans the loaded modules (about a millisecond)."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def _dtype_char(obj):
    dt = getattr(obj, "dtype", None)
    return np.dtype(dt).char if dt is not None else None


def make_system(name, A, b, x0, M, atol, rtol, maxiter, threads=None, products_per_iter=1):
    """The :class:`System` for ``A x = b``, or ``None`` when SciPy should solve it
    (complex or single precision).  Raises what SciPy raises for bad shapes,
    tolerances and initial guesses, and ValueError for a bad ``M``."""
    from ..validate import check_threads
    threads = check_threads(threads)
    matrix = None
    given = A
    if isinstance(A, SpMVOperator):
        shape, xchar = A.shape, "d"
    elif sp.issparse(A):
        if A.ndim != 2:
            raise ValueError(f"expected a 2-D sparse matrix, got {A.ndim}-D")
        shape, xchar = A.shape, A.dtype.char
        matrix = A
    else:
        A = aslinearoperator(A)
        shape = A.shape
        xchar = _dtype_char(A)
    if shape[0] != shape[1]:
        raise ValueError(f'expected square matrix, but got shape={(shape,)}')
    n = shape[0]
    b = np.asanyarray(b)
    if not (b.shape == (n, 1) or b.shape == (n,)):
        raise ValueError(f'shapes of A {shape} and b {b.shape} are incompatible')
    if b.dtype.char not in "fdFD":
        b = b.astype("d")
    if xchar is None:
        xchar = np.asarray(A.matvec(b)).dtype.char
    xtype = _coerce(xchar, b.dtype.char)
    psolve = diagonal = None
    if isinstance(M, str):
        if M != "jacobi":
            raise ValueError(f"M must be None, 'jacobi' or an operator SciPy accepts, got {M!r}")
    elif M is not None and (diagonal := _diagonal(M, n)) is not None:
        pass                            # a diagonal matrix: fused like "jacobi"
    elif M is not None:
        Mop = aslinearoperator(M)
        if Mop.shape != shape:
            raise ValueError('matrix and preconditioner have different shapes')
        if Mop.dtype is not None and np.dtype(Mop.dtype).kind == "c":
            return None
        psolve = Mop.matvec
    elif hasattr(given, "psolve"):      # SciPy honours an operator's own psolve
        psolve = given.psolve
    if xtype != "d":
        return None

    s = System()
    s.n = n
    s.b = np.ascontiguousarray(np.asarray(b, dtype=_F64).ravel())
    s.threads = threads
    s.bounds = vec.vector_bounds(n, threads)
    s.parallel = len(s.bounds) > 2
    s.red = np.zeros((max(2, threads + 1), 2))
    s.dinv = diagonal
    s.psolve = psolve
    s.csr = as_canonical_csr(matrix) if matrix is not None else None
    if isinstance(M, str):
        s.dinv = _jacobi(s.csr, A)
    if x0 is None:
        s.x = np.zeros(n)
    elif isinstance(x0, str):
        if x0 != "Mb":
            raise ValueError(f"x0 must be None, 'Mb' or an array, got {x0!r}")
        s.x = np.ascontiguousarray(s.precondition(s.b.copy()), dtype=_F64)
    else:
        x = np.array(x0, dtype=_F64)
        if not (x.shape == (n, 1) or x.shape == (n,)):
            raise ValueError(f'shapes of A {shape} and x0 {x.shape} are incompatible')
        s.x = np.ascontiguousarray(x.ravel())
    s.bnrm2 = float(np.linalg.norm(s.b))
    s.atol = check_tolerance(name, atol, rtol, s.bnrm2)
    s.maxiter = n * 10 if maxiter is None else int(maxiter)
    s.product = Product(n, s.bounds, s.red)
    s.source = A
    s.tuner = None
    s.max_products = s.maxiter * products_per_iter + 1
    return s


def start(s):
    """Prepare the product (selection starts here, after the checks that can
    still return early, e.g. ``b = 0``)."""
    if s.csr is not None:
        from .tune import Tuner
        s.tuner = Tuner(s.csr, s.threads, s.max_products)
        s.tuner.start(s.product)
    else:
        s.product.swap(s.source)


def _diagonal(M, n):
    """The diagonal of ``M`` as (n,) float64 when M is a real scipy.sparse
    matrix holding nothing off its diagonal (e.g. ``diags(1 / A.diagonal())``),
    else None.  Such an M is applied inside the fused vector loops, with the
    products SciPy's ``M @ r`` computes."""
    if not sp.issparse(M) or M.shape != (n, n) or M.dtype.kind not in "fiu":
        return None
    C = M.tocoo()
    if np.any(C.row != C.col):
        return None
    return np.ascontiguousarray(M.diagonal(), dtype=_F64)


def _jacobi(csr, A):
    if csr is None:
        raise ValueError("M='jacobi' needs A as a scipy.sparse matrix (its diagonal); "
                         f"got {type(A).__name__}")
    d = sp.csr_array((csr.data, csr.indices, csr.indptr), shape=csr.shape).diagonal()
    zero = np.flatnonzero(d == 0)
    if len(zero):
        raise ValueError(f"M='jacobi' needs a nonzero diagonal; A[{zero[0]}, {zero[0]}] is 0 "
                         f"({len(zero)} zero diagonal entries)")
    return 1.0 / d


class Counter:
    """Counts the iterations of a solve handed to SciPy (for the CLI)."""

    def __init__(self, callback):
        self.callback = callback
        self.n = 0

    def __call__(self, xk):
        self.n += 1
        if self.callback is not None:
            self.callback(xk)


def scipy_M(A, M):
    """M as SciPy takes it ("jacobi" becomes the inverse diagonal)."""
    if isinstance(M, str) and M == "jacobi":
        if not sp.issparse(A):
            raise ValueError("M='jacobi' needs A as a scipy.sparse matrix (its diagonal); "
                             f"got {type(A).__name__}")
        return sp.diags_array(1.0 / A.diagonal())
    return M


def describe(s, details):
    """Fill ``details`` (a dict, or None: nothing) with what the solve ran:
    kernel, threads, products and their seconds, whether the dots were fused,
    the tuner's events.  ``s`` None: the solve was handed to SciPy."""
    if details is None:
        return
    if s is None:
        details.update(kernel="scipy", threads=1, products=None, product_seconds=None,
                       fused=False, tuning=["complex or single precision: SciPy solved it"])
        return
    op = s.product.op
    details.update(
        kernel=getattr(op, "kernel", type(op).__name__ if op is not None else None),
        threads=getattr(op, "threads", 1),
        products=s.product.calls, product_seconds=s.product.seconds,
        fused=op is not None and s.product.fused,
        tuning=list(s.product.events) + (list(s.tuner.events) if s.tuner is not None else []))
