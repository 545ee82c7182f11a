"""Compile emitted C kernels and call them through ctypes (tests, benchmarks).

:func:`compile_kernel` builds a shared library with the system C compiler,
cached by a hash of the source and flags in ``<cache dir>/cbuild/`` so the
same source is compiled once.  :class:`CKernel` wraps one emitted kernel:
``plan = k.prepare(csr, threads)``, ``k.run(plan, x, y)``, ``k.free(plan)``.
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

FLAGS = ("-std=c99", "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")


def find_compiler():
    """The C compiler to use ($CC, else cc, gcc, clang), or None."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class CompileError(RuntimeError):
    pass


def compile_kernel(source, flags=FLAGS, cache=None):
    """Path of a shared library built from C ``source`` (cached by hash)."""
    from .machine import cache_dir
    cc = find_compiler()
    if cc is None:
        raise CompileError("no C compiler found (set CC, or install cc/gcc/clang)")
    key = hashlib.sha256((source + "\0" + " ".join(flags) + "\0" + cc).encode()).hexdigest()[:20]
    out_dir = Path(cache or cache_dir()) / "cbuild"
    lib = out_dir / f"{key}.so"
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.c"
        src.write_text(source)
        tmp_lib = Path(tmp) / "kernel.so"
        res = subprocess.run([cc, *flags, str(src), "-o", str(tmp_lib)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise CompileError(f"{cc} failed:\n{res.stderr[-4000:]}")
        shutil.move(str(tmp_lib), lib)        # a rename on one file system
    return lib


class CKernel:
    """An emitted kernel loaded with ctypes (see :mod:`spmvtune.emit`)."""

    def __init__(self, emitted, cache=None):
        self.emitted = emitted
        self.index_dtype = np.int64 if emitted.defines["SPMV_INDEX"] == "int64_t" else np.int32
        from .emit import VALUE_TYPES
        c_type = emitted.defines.get("SPMV_VALUE", "double")
        self.dtype = np.dtype(next(k for k, v in VALUE_TYPES.items() if v[0] == c_type))
        lib = ctypes.CDLL(str(compile_kernel(emitted.source, cache=cache)))
        pre = emitted.prefix
        dptr = ctypes.c_void_p
        self._prepare = getattr(lib, f"{pre}_prepare")
        self._prepare.restype = ctypes.c_void_p
        self._prepare.argtypes = [ctypes.c_int64, ctypes.c_int64, dptr, dptr, dptr, ctypes.c_int]
        self._run = getattr(lib, f"{pre}_run")
        self._run.restype = None
        self._run.argtypes = [ctypes.c_void_p, dptr, dptr]
        self._free = getattr(lib, f"{pre}_free")
        self._free.argtypes = [ctypes.c_void_p]
        self._error = getattr(lib, f"{pre}_last_error")
        self._error.restype = ctypes.c_char_p
        try:                                   # many-vector kernels: Y = A X
            self._matmat = getattr(lib, f"{pre}_matmat")
            self._matmat.restype = None
            self._matmat.argtypes = [ctypes.c_void_p, ctypes.c_int64, dptr, dptr]
        except AttributeError:
            self._matmat = None
        self._lib = lib

    def prepare(self, A, threads=0):
        """A plan for ``scipy.sparse`` matrix ``A`` (canonical CSR; values
        converted to the kernel's value type).  Raises
        ValueError with the kernel's reason when it cannot take the matrix."""
        from .validate import as_checked_csr
        A = as_checked_csr(A)              # C reads the indices unchecked
        arrays = (np.ascontiguousarray(A.indptr, dtype=self.index_dtype),
                  np.ascontiguousarray(A.indices, dtype=self.index_dtype),
                  np.ascontiguousarray(A.data, dtype=self.dtype))
        handle = self._prepare(A.shape[0], A.shape[1], *(a.ctypes.data for a in arrays), threads)
        if not handle:
            raise ValueError(f"{self.emitted.kernel}: {self._error().decode()}")
        return _Plan(handle, arrays, A.shape, self)

    def run(self, plan, x, y):
        self._run(plan.handle, x.ctypes.data, y.ctypes.data)

    def matmat(self, plan, X, Y):
        """Y = A X (X: (n_cols, k), Y: (n_rows, k), C-contiguous float64)."""
        if self._matmat is None:
            raise TypeError(f"{self.emitted.kernel} has no matmat (one vector per call)")
        self._matmat(plan.handle, X.shape[1], X.ctypes.data, Y.ctypes.data)

    def free(self, plan):
        if plan.handle:
            self._free(plan.handle)
            plan.handle = None


class _Plan:
    """A prepared plan; keeps the CSR arrays the C side may point into alive."""

    def __init__(self, handle, arrays, shape, kernel):
        self.handle, self.arrays, self.shape, self._kernel = handle, arrays, shape, kernel

    def __call__(self, x, y=None):
        y = np.empty(self.shape[0], self._kernel.dtype) if y is None else y
        self._kernel.run(self, np.ascontiguousarray(x, dtype=self._kernel.dtype), y)
        return y

    def matmat(self, X, Y=None):
        X = np.ascontiguousarray(X, dtype=np.float64)
        Y = np.empty((self.shape[0], X.shape[1])) if Y is None else Y
        self._kernel.matmat(self, X, Y)
        return Y

    def __del__(self):
        try:
            self._kernel.free(self)
        except Exception:     # noqa: BLE001 - interpreter shutdown
            pass
