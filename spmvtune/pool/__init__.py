"""The pool of SpMV kernels.  Importing this package registers every kernel.

Families (one module each): ``csr`` (baselines, unrolled), ``split`` (long-row
splitting), ``prefetch``, ``value_index``, ``delta``, ``symmetric``, ``dense``.
"""
from . import csr, split, prefetch, colblock, value_index, delta, bcsr, symmetric, dense  # noqa: F401  (registers)
from .registry import (BALANCES, CLASSES, CSR, KernelSpec, KernelUnusable, Prepared,
                       check_siblings, get_kernel, kernel_names, kernel_specs)

check_siblings()

__all__ = ["BALANCES", "CLASSES", "CSR", "KernelSpec", "KernelUnusable", "Prepared",
           "get_kernel", "kernel_names", "kernel_specs"]
