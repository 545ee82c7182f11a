"""The pool of SpMV kernels.  Importing this package registers every kernel.

Families (one module each): ``csr`` (baselines, unrolled), ``split`` (long-row
splitting), ``prefetch``, ``value_index``, ``delta``, ``symmetric``, ``dense``; for many
right-hand sides (``Y = A X``): ``spmm_csr``, ``spmm_vi``, ``spmm_bcsr``, ``dense_mm``.
"""
from . import csr, split, prefetch, colblock, value_index, delta, bcsr, symmetric, dense  # noqa: F401  (registers)
from . import spmm_csr, spmm_vi, spmm_bcsr, dense_mm  # noqa: F401  (registers)
from .registry import (BALANCES, CLASSES, CSR, KernelSpec, KernelUnusable, Prepared,
                       canonical_pair, check_siblings, get_kernel, kernel_names, kernel_specs)

check_siblings()

__all__ = ["BALANCES", "CLASSES", "CSR", "KernelSpec", "KernelUnusable", "Prepared",
           "get_kernel", "kernel_names", "kernel_specs"]
