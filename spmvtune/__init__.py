"""spmvtune: fast sparse matrix-vector products, tuned to the machine it runs on.

>>> import spmvtune
>>> A = spmvtune.load("m.mtx")                 # canonical CSR (float64, complex128, ...)
>>> op = spmvtune.select_kernel(A, threads=2)  # prepare once
>>> y = op(x)                                  # then y = A @ x, many times
"""
from .analysis import Analysis, analyze
from .io import MatrixFormatError, MatrixInfo, MatrixLoadError, MatrixTooLargeError, load
from .operator import SpMVOperator, single_threaded_blas
from .pool import KernelUnusable, kernel_names
from .select import select_kernel

__version__ = "0.2.0"

__all__ = ["load", "analyze", "Analysis", "kernel_names", "select_kernel", "SpMVOperator",
           "single_threaded_blas", "MatrixInfo",
           "MatrixLoadError", "MatrixFormatError", "MatrixTooLargeError", "KernelUnusable", "__version__"]
