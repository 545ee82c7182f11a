"""The libraries users would otherwise call, for side-by-side timings.

SciPy's ``A @ x`` (single-threaded ``csr_matvec``) and Intel MKL's sparse BLAS
through ctypes: plain CSR (``mkl_sparse_d_mv`` on a fresh handle) and
Inspector-Executor (``mkl_sparse_set_mv_hint`` + ``mkl_sparse_optimize``);
for many right-hand sides ``Y = A X`` (row-major ``X``), ``mkl_sparse_d_mm``
with ``mkl_sparse_set_mm_hint``.
MKL comes from the ``mkl`` wheel (``pip install spmvtune[peers]``); where it
is absent :func:`mkl_available` says why.
"""
import ctypes
import glob
import os
import sys

import numpy as np

_SPARSE_OPERATION_NON_TRANSPOSE = 10
_SPARSE_MATRIX_TYPE_GENERAL = 20
_SPARSE_INDEX_BASE_ZERO = 0
_SPARSE_FILL_MODE_FULL = 42
_SPARSE_DIAG_NON_UNIT = 50
_SPARSE_LAYOUT_ROW_MAJOR = 101


class _Descr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("mode", ctypes.c_int), ("diag", ctypes.c_int)]


_GENERAL = _Descr(_SPARSE_MATRIX_TYPE_GENERAL, _SPARSE_FILL_MODE_FULL, _SPARSE_DIAG_NON_UNIT)
_lib = None
_why_not = None


def _find_mkl_rt():
    roots = [sys.prefix, os.path.dirname(os.path.dirname(sys.executable))]
    for root in roots:
        for name in sorted(glob.glob(os.path.join(root, "lib", "libmkl_rt.so*")), reverse=True):
            return name
    return None


def mkl_library():
    """The loaded ``libmkl_rt`` or None (see :func:`mkl_available`)."""
    global _lib, _why_not
    if _lib is None and _why_not is None:
        path = _find_mkl_rt()
        if path is None:
            _why_not = "libmkl_rt not found (pip install 'spmvtune[peers]')"
            return None
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            _why_not = f"cannot load {path}: {exc}"
            return None
        vp, i32, dbl = ctypes.c_void_p, ctypes.c_int32, ctypes.c_double
        lib.mkl_sparse_d_create_csr.argtypes = [ctypes.POINTER(vp), ctypes.c_int, i32, i32,
                                                vp, vp, vp, vp]
        lib.mkl_sparse_d_mv.argtypes = [ctypes.c_int, dbl, vp, _Descr, vp, dbl, vp]
        lib.mkl_sparse_set_mv_hint.argtypes = [vp, ctypes.c_int, _Descr, i32]
        lib.mkl_sparse_d_mm.argtypes = [ctypes.c_int, dbl, vp, _Descr, ctypes.c_int, vp, i32, i32,
                                        dbl, vp, i32]
        lib.mkl_sparse_set_mm_hint.argtypes = [vp, ctypes.c_int, _Descr, ctypes.c_int, i32, i32]
        lib.mkl_sparse_optimize.argtypes = [vp]
        lib.mkl_sparse_destroy.argtypes = [vp]
        lib.MKL_Set_Num_Threads.argtypes = [ctypes.c_int]
        _lib = lib
    return _lib


def mkl_available():
    """(True, "") or (False, reason)."""
    return (mkl_library() is not None, _why_not or "")


class MKLMatrix:
    """An MKL sparse handle for CSR ``A`` (int32 indices); ``optimize=True`` runs the
    Inspector-Executor analysis for ``expected_calls`` products.  ``self(x, y)``
    computes ``y = A @ x`` with ``threads`` MKL threads; ``self.matmat(X, Y)``
    computes ``Y = A @ X`` for C-contiguous ``X`` (n_cols, k) and ``Y`` (n_rows, k)
    (``mkl_sparse_d_mm``, row-major).  ``n_vectors``: with ``optimize``, the
    analysis is for products with that many right-hand sides (mm hint) instead
    of one (mv hint)."""

    def __init__(self, A, threads, optimize=False, expected_calls=1000, n_vectors=1):
        lib = mkl_library()
        if lib is None:
            raise RuntimeError(_why_not)
        if A.nnz >= 2**31 or max(A.shape) >= 2**31:
            raise ValueError("MKL LP64 interface needs int32-sized matrices")
        self._lib, self.threads = lib, threads
        self._indptr = np.ascontiguousarray(A.indptr, dtype=np.int32)
        self._indices = np.ascontiguousarray(A.indices, dtype=np.int32)
        self._data = np.ascontiguousarray(A.data, dtype=np.float64)
        self._handle = ctypes.c_void_p()
        ip = self._indptr.ctypes.data
        self._check(lib.mkl_sparse_d_create_csr(
            ctypes.byref(self._handle), _SPARSE_INDEX_BASE_ZERO, A.shape[0], A.shape[1],
            ip, ip + 4, self._indices.ctypes.data, self._data.ctypes.data), "create_csr")
        if optimize:
            lib.MKL_Set_Num_Threads(threads)
            if n_vectors > 1:
                self._check(lib.mkl_sparse_set_mm_hint(
                    self._handle, _SPARSE_OPERATION_NON_TRANSPOSE, _GENERAL,
                    _SPARSE_LAYOUT_ROW_MAJOR, int(n_vectors), expected_calls), "set_mm_hint")
            else:
                self._check(lib.mkl_sparse_set_mv_hint(
                    self._handle, _SPARSE_OPERATION_NON_TRANSPOSE, _GENERAL, expected_calls),
                    "set_mv_hint")
            self._check(lib.mkl_sparse_optimize(self._handle), "optimize")

    @staticmethod
    def _check(status, what):
        if status != 0:
            raise RuntimeError(f"mkl_sparse_{what} failed with status {status}")

    def __call__(self, x, y):
        self._lib.MKL_Set_Num_Threads(self.threads)
        self._check(self._lib.mkl_sparse_d_mv(_SPARSE_OPERATION_NON_TRANSPOSE, 1.0, self._handle,
                                              _GENERAL, x.ctypes.data, 0.0, y.ctypes.data), "d_mv")

    def matmat(self, X, Y):
        """Y = A @ X; X (n_cols, k) and Y (n_rows, k) C-contiguous float64."""
        k = X.shape[1]
        self._lib.MKL_Set_Num_Threads(self.threads)
        self._check(self._lib.mkl_sparse_d_mm(_SPARSE_OPERATION_NON_TRANSPOSE, 1.0, self._handle,
                                              _GENERAL, _SPARSE_LAYOUT_ROW_MAJOR, X.ctypes.data,
                                              k, k, 0.0, Y.ctypes.data, k), "d_mm")

    def __del__(self):
        if getattr(self, "_handle", None) and self._handle.value:
            self._lib.mkl_sparse_destroy(self._handle)
            self._handle = ctypes.c_void_p()


# ---- SuiteSparse:GraphBLAS (python-graphblas) -------------------------------------

def graphblas_available():
    """(True, "") or (False, reason): python-graphblas (``pip install 'spmvtune[peers]'``)."""
    try:
        import graphblas  # noqa: F401
    except ImportError as exc:
        return False, f"python-graphblas not installed ({exc}); pip install 'spmvtune[peers]'"
    return True, ""


class GraphBLASMatrix:
    """``A`` as a SuiteSparse:GraphBLAS matrix with ``threads`` threads.

    ``self(x, y)`` computes ``y = A @ x`` including the copies of x into and y
    out of GraphBLAS vectors (what a NumPy user pays: ~0.1 ms here); ``load(x)``
    then ``mxv()`` time the product alone (``w << A.mxv(v)``), which is how
    benchmarks compare it, in its favour."""

    def __init__(self, A, threads):
        import graphblas as gb
        self._gb = gb
        self.threads = threads
        self._A = gb.io.from_scipy_sparse(A)
        self._w = gb.Vector(self._A.dtype, A.shape[0])
        self._v = None

    def load(self, x):
        self._v = self._gb.Vector.from_dense(x)

    def mxv(self):
        self._gb.ss.config["nthreads"] = self.threads
        self._w << self._A.mxv(self._v)

    def __call__(self, x, y):
        self.load(x)
        self.mxv()
        y[:] = self._w.to_dense(fill_value=0)
