"""The operator :func:`spmvtune.select_kernel` returns: ``y = op(x)``, the
transpose and adjoint products, and :func:`build_operator`, which prepares
one kernel of the pool into it."""
import time

import numpy as np

from .pool.registry import DTYPES


def result_dtype(a_dtype, x_dtype):
    """The type of ``A @ x`` by NumPy's promotion rules (float32 A with float32
    x stays float32; with float64 x it is float64; real with complex is
    complex).  TypeError for types spmvtune does not run (long double, ...)."""
    try:
        r = np.result_type(a_dtype, x_dtype)
    except TypeError:
        r = None
    if r is None or r.name not in DTYPES:
        raise TypeError(f"x of type {np.dtype(x_dtype).name} with a {np.dtype(a_dtype).name} "
                        f"matrix: the product would be {r.name if r is not None else 'undefined'}"
                        f", and spmvtune runs {', '.join(DTYPES)}")
    return r


def _overlap():
    # kernels write y while still reading x: the result would be wrong
    return ValueError("out must not share memory with x (y = A x cannot be computed "
                      "in place); pass another array")


def _real_of(dtype):
    return np.dtype(np.float32) if dtype == np.complex64 else np.dtype(np.float64)


class SpMVOperator:
    """``y = A @ x`` with a prepared kernel of the pool.

    Attributes: ``kernel`` (name), ``shape`` (n_rows, n_cols), ``dtype`` (the
    value type of A), ``threads``, ``setup_seconds`` (conversion time of
    ``prepare``), ``nbytes`` (bytes of the kernel's matrix storage),
    ``extra_bytes`` (memory kept beyond the caller's matrix: the kernel's
    storage unless it runs on the caller's arrays, plus the copy of A^T of a
    transposed operator), ``transpose_nbytes`` (the ``extra_bytes`` of the
    transposed side, None until it is prepared), ``info`` (kernel facts,
    e.g. bytes/nonzero); set by :func:`spmvtune.select_kernel`: ``decision``
    (the :class:`~spmvtune.decision.Decision`), ``selection_seconds``,
    ``bottlenecks``, ``predicted_speedup`` (over csr_balanced; None when
    forced), ``break_even_calls`` (calls that repay selection + setup),
    ``selection_source`` (how the kernel was chosen: mode, cache, forced).

    Products:

    - ``op(x)`` / ``op.matvec(x, out=None)``: ``A x``;
    - ``op.T``: an operator of ``A^T`` (so ``op.T(x)`` is ``A^T x``, no
      conjugation), prepared on first use with its own selection;
    - ``op.rmatvec(x, out=None)``: the adjoint ``A^H x`` (``A^T x`` for real
      A), SciPy's ``LinearOperator.rmatvec`` convention.

    The result's type follows NumPy's promotion of A's and x's types
    (float32 A with float32 x gives float32; with float64 x, float64; a real
    A with complex x, complex).  A call checks only the type, dtype, shape
    and contiguity of ``x``; the fast path is a C-contiguous 1-D ``x`` of
    ``dtype``.  Not safe to call from several Python threads at once
    (kernels keep scratch buffers).

    Many right-hand sides: ``op(X)`` with a 2-D ``X`` of shape (n_cols, k) is
    ``op.matmat(X)``, ``Y = A @ X`` of shape (n_rows, k).  Kernels built for
    it (``max_vectors`` > 1, chosen by ``select_kernel(A, n_vectors=k)``)
    read the matrix once for all k columns of a C-contiguous (row-major)
    ``X``; a single-vector kernel runs once per column.
    """

    def __init__(self, kernel, shape, prepared, threads, setup_seconds, nnz, dtype=np.float64,
                 extra_bytes=None, transpose_source=None):
        self.kernel = kernel
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.threads = threads
        self.setup_seconds = setup_seconds
        self.nnz = nnz
        self.nbytes = prepared.nbytes
        self.extra_bytes = prepared.nbytes if extra_bytes is None else extra_bytes
        self.info = prepared.info
        self._prepared = prepared
        self._run = prepared.run
        self._args = prepared.args
        self._args_by_dtype = {self.dtype: prepared.args}
        self._m, self._n = shape
        self.max_vectors = 1
        self.n_vectors = 1
        self.selection_seconds = 0.0
        self.decision = None
        self.bottlenecks = ()
        self.predicted_speedup = None
        self.break_even_calls = None
        self.selection_source = "built"
        # How op.T is made: (csr, "transpose") selects for the transpose of csr,
        # (csr, "forward") for csr itself; select_kwargs are select_kernel's.
        self._transpose_source = transpose_source
        self._select_kwargs = {"threads": threads}
        self._transpose = None

    def __repr__(self):
        return (f"SpMVOperator(kernel={self.kernel!r}, shape={self.shape}, nnz={self.nnz}, "
                f"dtype={self.dtype.name}, threads={self.threads}, "
                f"setup_seconds={self.setup_seconds:.3g})")

    def __call__(self, x):
        if getattr(x, "ndim", 1) == 2:
            return self.matmat(x)
        return self.matvec(x)

    def matvec(self, x, out=None):
        """y = A @ x.  x: (n_cols,) array-like.  out: optional (n_rows,)
        C-contiguous array of the result's type to write into (then nothing
        is allocated); it must not overlap ``x`` (ValueError)."""
        if (type(x) is not np.ndarray or x.dtype != self.dtype or x.shape != (self._n,)
                or not x.flags.c_contiguous):
            return self._matvec_general(x, out)
        if out is None:
            out = np.empty(self._m, self.dtype)
        elif (type(out) is not np.ndarray or out.dtype != self.dtype or out.shape != (self._m,)
              or not out.flags.c_contiguous or not out.flags.writeable):
            raise ValueError(f"out must be a writeable C-contiguous {self.dtype.name} array of "
                             f"shape ({self._m},)")
        elif np.may_share_memory(x, out):
            raise _overlap()
        self._run(*self._args, x, out)
        return out

    def _matvec_general(self, x, out):
        """Products whose x is not already of A's type: promote as NumPy does."""
        x = np.asarray(x)
        if x.shape != (self._n,):
            raise ValueError(f"x must have shape ({self._n},), got {x.shape}")
        r = result_dtype(self.dtype, x.dtype)
        if out is None:
            out = np.empty(self._m, r)
        elif (type(out) is not np.ndarray or out.dtype != r or out.shape != (self._m,)
              or not out.flags.c_contiguous or not out.flags.writeable):
            raise ValueError(f"out must be a writeable C-contiguous {r.name} array of "
                             f"shape ({self._m},) (the type of A @ x)")
        elif np.may_share_memory(x, out):
            raise _overlap()
        if r.kind == "c" and self.dtype.kind != "c":
            # real A, complex x: A Re(x) + i A Im(x), two real products
            rr = _real_of(r)
            y_re, y_im = np.empty(self._m, rr), np.empty(self._m, rr)
            self._product(np.ascontiguousarray(x.real, dtype=rr), y_re, rr)
            self._product(np.ascontiguousarray(x.imag, dtype=rr), y_im, rr)
            out.real = y_re
            out.imag = y_im
            return out
        self._product(np.ascontiguousarray(x, dtype=r), out, r)
        return out

    def _product(self, x, y, r):
        """run the kernel with x and y of type r (a specialization per type pair)."""
        args = self._args_by_dtype.get(r)
        if args is None:
            args = self._args_by_dtype[r] = self._prepared.args_for(r)
        self._run(*args, x, y)

    # -- transpose and adjoint -----------------------------------------------------

    @property
    def T(self):
        """The operator of ``A^T`` (prepared on first use, then kept): its own
        kernel selection, on a CSR copy of ``A^T`` when ``max_extra_bytes``
        allows, else a kernel that scatters from A's CSR (no copy).  A matrix
        declared symmetric, and still symmetric, is its own transpose."""
        if self._transpose is None:
            self._transpose = self._build_transpose()
        return self._transpose

    @property
    def transpose_nbytes(self):
        """Memory the transposed side keeps (bytes; None until prepared)."""
        t = self._transpose
        if t is None:
            return None
        return 0 if t is self else t.extra_bytes

    def rmatvec(self, x, out=None):
        """The adjoint product ``A^H x`` (``A^T x`` for a real A), as SciPy's
        ``LinearOperator.rmatvec``.  x: (n_rows,).  Returns (n_cols,)."""
        T = self.T
        if self.dtype.kind != "c":
            return T.matvec(x, out)
        x = np.asarray(x)
        if x.dtype.kind == "c":
            x = np.conj(x)
        y = T.matvec(x, out)
        np.conjugate(y, out=y)
        return y

    def _build_transpose(self):
        if self._transpose_source is None:
            raise ValueError("this operator keeps no matrix to transpose")
        csr, how = self._transpose_source
        from .transpose import self_transposed
        if how == "transpose" and self_transposed(csr):
            return self
        from .select import select_kernel
        from .pool import KernelUnusable
        kw = dict(self._select_kwargs)
        budget = kw.pop("max_extra_bytes", None)
        if budget is not None:
            budget = max(int(budget) - self.extra_bytes, 0)
        try:
            T = select_kernel(csr, transpose=how == "transpose", max_extra_bytes=budget, **kw)
        except KernelUnusable:
            if kw.get("kernel") is None:
                raise
            kw.pop("kernel")
            kw.pop("options", None)
            T = select_kernel(csr, transpose=how == "transpose", max_extra_bytes=budget, **kw)
        T._transpose = self
        return T


    def matmat(self, X, out=None):
        """Y = A @ X.  X: (n_cols, k); the fast path is a C-contiguous X of the
        operator's dtype (others follow NumPy's promotion, as ``matvec``).
        out: optional (n_rows, k) C-contiguous array of the result's type to
        write into; it must not overlap X.  Kernels built for many vectors
        read the matrix once for all k columns; others run once per column."""
        if type(X) is not np.ndarray:
            X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] != self._n:
            raise ValueError(f"X must have shape ({self._n}, k), got {X.shape}")
        r = result_dtype(self.dtype, X.dtype)
        k = X.shape[1]
        if out is None:
            out = np.empty((self._m, k), r)
        elif (type(out) is not np.ndarray or out.dtype != r or out.shape != (self._m, k)
              or not out.flags.c_contiguous or not out.flags.writeable):
            raise ValueError(f"out must be a writeable C-contiguous {r.name} array of shape "
                             f"({self._m}, {k}) (the type of A @ X)")
        elif np.may_share_memory(X, out):
            raise _overlap()
        if k == 0:
            return out
        if r == self.dtype and (1 < k <= self.max_vectors or (k == 1 and self.max_vectors > 1)):
            self._run(*self._args, np.ascontiguousarray(X, dtype=r), out)
            return out
        x = np.empty(self._n, X.dtype)          # one column at a time, through matvec
        y = np.empty(self._m, r)
        for j in range(k):
            x[:] = X[:, j]
            self.matvec(x, out=y)
            out[:, j] = y
        return out

    def as_linear_operator(self):
        """A ``scipy.sparse.linalg.LinearOperator`` (for cg, gmres, lsqr, lsmr,
        bicg, qmr, eigsh, ...): ``matvec`` is ``A x``, ``rmatvec`` the adjoint
        ``A^H x`` (prepared on first use), ``dtype`` A's value type.

        Run the solver inside :func:`single_threaded_blas` when the operator
        is threaded: NumPy's BLAS threads otherwise spin between its vector
        operations and take the cores the product needs."""
        from scipy.sparse.linalg import LinearOperator
        return LinearOperator(self.shape, matvec=lambda v: self.matvec(np.ravel(v)),
                              rmatvec=lambda v: self.rmatvec(np.ravel(v)), matmat=self.matmat,
                              dtype=self.dtype)



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
    represent the matrix (or does not run its value type)."""
    from .pool import KernelUnusable, get_kernel
    from .pool.indices import shares_input
    spec = get_kernel(kernel)
    options = dict(options or {})
    unknown = set(options) - set(spec.options)
    if unknown:
        raise ValueError(f"kernel {spec.name!r} takes options {sorted(spec.options) or 'none'}, "
                         f"got {sorted(unknown)}")
    why = spec.dtype_refusal(csr.data.dtype)
    if why:
        raise KernelUnusable(f"kernel {spec.name!r} cannot run this matrix: {why}")
    threads = spec.threads_for(threads)
    t0 = time.perf_counter()
    try:
        prepared = spec.prepare(csr, threads, wide=wide_indices, **options)
    except KernelUnusable as exc:
        raise KernelUnusable(f"kernel {spec.name!r} cannot run this matrix: {exc}") from None
    extra = 0 if spec.shares_input and shares_input(csr, wide_indices) else prepared.nbytes
    op = SpMVOperator(spec.name, csr.shape, prepared, threads, time.perf_counter() - t0, csr.nnz,
                      csr.data.dtype, extra, (csr, "transpose"))
    op.max_vectors = spec.max_vectors
    return op
