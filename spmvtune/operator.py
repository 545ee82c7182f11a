"""The operator :func:`spmvtune.select_kernel` returns: ``y = op(x)``, and
:func:`build_operator`, which prepares one kernel of the pool into it."""
import time

import numpy as np

_F64 = np.dtype(np.float64)


class SpMVOperator:
    """``y = A @ x`` with a prepared kernel of the pool.

    Attributes: ``kernel`` (name), ``shape`` (n_rows, n_cols), ``threads``,
    ``setup_seconds`` (conversion time of ``prepare``), ``nbytes`` (bytes of
    the kernel's matrix storage), ``info`` (kernel facts, e.g. bytes/nonzero);
    set by :func:`spmvtune.select_kernel`: ``decision`` (the
    :class:`~spmvtune.decision.Decision`), ``selection_seconds``,
    ``bottlenecks``, ``predicted_speedup`` (over csr_balanced; None when
    forced), ``break_even_calls`` (calls that repay selection + setup),
    ``selection_source`` (how the kernel was chosen: mode, cache, forced).

    A call checks only the type, dtype, shape and contiguity of ``x``; the
    fast path is a float64 C-contiguous 1-D ``x`` (others are converted).  Not
    safe to call from several Python threads at once (kernels keep scratch
    buffers).

    Many right-hand sides: ``op(X)`` with a 2-D ``X`` of shape (n_cols, k) is
    ``op.matmat(X)``, ``Y = A @ X`` of shape (n_rows, k).  Kernels built for
    it (``max_vectors`` > 1, chosen by ``select_kernel(A, n_vectors=k)``)
    read the matrix once for all k columns of a C-contiguous (row-major)
    ``X``; a single-vector kernel runs once per column.
    """

    def __init__(self, kernel, shape, prepared, threads, setup_seconds, nnz):
        self.kernel = kernel
        self.shape = shape
        self.threads = threads
        self.setup_seconds = setup_seconds
        self.nnz = nnz
        self.nbytes = prepared.nbytes
        self.info = prepared.info
        self._run = prepared.run
        self._args = prepared.args
        self._m, self._n = shape
        self.max_vectors = 1
        self.n_vectors = 1
        self.selection_seconds = 0.0
        self.decision = None
        self.bottlenecks = ()
        self.predicted_speedup = None
        self.break_even_calls = None
        self.selection_source = "built"

    def __repr__(self):
        return (f"SpMVOperator(kernel={self.kernel!r}, shape={self.shape}, nnz={self.nnz}, "
                f"threads={self.threads}, setup_seconds={self.setup_seconds:.3g})")

    def __call__(self, x):
        if getattr(x, "ndim", 1) == 2:
            return self.matmat(x)
        return self.matvec(x)

    def matvec(self, x, out=None):
        """y = A @ x.  x: (n_cols,) float64.  out: optional (n_rows,) float64
        C-contiguous array to write into (then nothing is allocated)."""
        if (type(x) is not np.ndarray or x.dtype != _F64 or x.shape != (self._n,)
                or not x.flags.c_contiguous):
            x = self._as_x(x)
        if out is None:
            out = np.empty(self._m)
        elif (type(out) is not np.ndarray or out.dtype != _F64 or out.shape != (self._m,)
              or not out.flags.c_contiguous or not out.flags.writeable):
            raise ValueError(f"out must be a writeable C-contiguous float64 array of shape "
                             f"({self._m},)")
        self._run(*self._args, x, out)
        return out

    def matmat(self, X, out=None):
        """Y = A @ X.  X: (n_cols, k) float64, C-contiguous for the fast path
        (others are converted).  out: optional (n_rows, k) float64 C-contiguous
        array to write into."""
        if (type(X) is not np.ndarray or X.dtype != _F64 or X.ndim != 2
                or X.shape[0] != self._n or not X.flags.c_contiguous):
            X = self._as_X(X)
        k = X.shape[1]
        if out is None:
            out = np.empty((self._m, k))
        elif (type(out) is not np.ndarray or out.dtype != _F64 or out.shape != (self._m, k)
              or not out.flags.c_contiguous or not out.flags.writeable):
            raise ValueError(f"out must be a writeable C-contiguous float64 array of shape "
                             f"({self._m}, {k})")
        if k == 0:
            return out
        if 1 < k <= self.max_vectors or (k == 1 and self.max_vectors > 1):
            self._run(*self._args, X, out)
            return out
        x = np.empty(self._n)                # a single-vector kernel: one column at a time
        y = np.empty(self._m)
        for j in range(k):
            x[:] = X[:, j]
            self._run(*self._args, x, y)
            out[:, j] = y
        return out

    def as_linear_operator(self):
        """A ``scipy.sparse.linalg.LinearOperator`` (for cg, gmres, eigsh, ...).

        Run the solver inside :func:`single_threaded_blas` when the operator
        is threaded: NumPy's BLAS threads otherwise spin between its vector
        operations and take the cores the product needs."""
        from scipy.sparse.linalg import LinearOperator
        return LinearOperator(self.shape, matvec=lambda v: self.matvec(np.ravel(v)),
                              matmat=self.matmat, dtype=np.float64)

    def _as_x(self, x):
        x = np.asarray(x)
        if x.shape != (self._n,):
            raise ValueError(f"x must have shape ({self._n},), got {x.shape}")
        if np.issubdtype(x.dtype, np.complexfloating):
            raise TypeError("complex x is not supported")
        return np.ascontiguousarray(x, dtype=np.float64)

    def _as_X(self, X):
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] != self._n:
            raise ValueError(f"X must have shape ({self._n}, k), got {X.shape}")
        if np.issubdtype(X.dtype, np.complexfloating):
            raise TypeError("complex X is not supported")
        return np.ascontiguousarray(X, dtype=np.float64)


def single_threaded_blas():
    """Context manager: NumPy's BLAS (OpenBLAS, MKL, ...) on one thread.

    Iterative solvers interleave the product with BLAS vector operations
    (dot, axpy).  OpenBLAS's worker threads busy-wait after each call, on the
    very cores a threaded SpMV kernel then needs: SciPy's CG on a 3-D Poisson
    matrix ran 0.83-0.92x end to end (selection included) with a 2-thread
    operator, 1.08-1.23x inside this context, which did not slow SciPy's own
    CG (its vector operations are memory-bound).  Uses threadpoolctl; restores the previous limits on exit.

    >>> with spmvtune.single_threaded_blas():
    ...     x, info = scipy.sparse.linalg.cg(op.as_linear_operator(), b)
    """
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


def build_operator(csr, kernel, threads, options=None, wide_indices=False):
    """Prepare ``kernel`` for ``csr`` (a canonical :class:`~spmvtune.pool.CSR`)
    at ``threads`` (a serial-only kernel gets one) and return the operator,
    without selection metadata.  Raises ValueError for unknown kernels or
    options, :class:`~spmvtune.pool.KernelUnusable` when the kernel cannot
    represent the matrix."""
    from .pool import KernelUnusable, get_kernel
    spec = get_kernel(kernel)
    options = dict(options or {})
    unknown = set(options) - set(spec.options)
    if unknown:
        raise ValueError(f"kernel {spec.name!r} takes options {sorted(spec.options) or 'none'}, "
                         f"got {sorted(unknown)}")
    threads = spec.threads_for(threads)
    t0 = time.perf_counter()
    try:
        prepared = spec.prepare(csr, threads, wide=wide_indices, **options)
    except KernelUnusable as exc:
        raise KernelUnusable(f"kernel {spec.name!r} cannot run this matrix: {exc}") from None
    op = SpMVOperator(spec.name, csr.shape, prepared, threads, time.perf_counter() - t0, csr.nnz)
    op.max_vectors = spec.max_vectors
    return op
