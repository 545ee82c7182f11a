"""Index-array conversions shared by the kernels' ``prepare`` steps.

The kernels index with *unsigned* integers: Numba emits a negative-index
wraparound test for every signed array access, which made the CSR loop
1.6-1.8x slower (see ../shared/FINDINGS.md).  Arrays are 32-bit where the
values fit and 64-bit beyond.
"""
import numpy as np
from numba import njit, prange

U32_MAX = np.iinfo(np.uint32).max


def unsigned_for(max_value, wide=False):
    """uint32 if every value up to ``max_value`` fits, else uint64."""
    return np.uint64 if wide or max_value > U32_MAX else np.uint32


def as_unsigned(a, dtype):
    """``a`` (validated: no negative value) as ``dtype``: a zero-copy view when
    the widths agree, else a converted copy."""
    a = np.asarray(a)
    if a.dtype.itemsize == np.dtype(dtype).itemsize and a.flags.c_contiguous:
        return a.view(dtype)
    return a.astype(dtype)


def unsigned_csr(csr, wide=False, pad=0):
    """(indptr, indices) of ``csr`` as unsigned arrays.

    Without ``pad`` these are views of the caller's arrays where the widths
    agree (int32 -> uint32: no memory beyond the caller's matrix).
    ``wide=True`` forces uint64 (tests use it to exercise the 64-bit code
    paths without a 4-billion-nonzero matrix).  ``pad`` appends that many
    zero column indices, so a kernel may read ``indices[k + pad]`` safely.
    """
    n_cols = csr.shape[1]
    indptr = as_unsigned(csr.indptr[:csr.shape[0] + 1], unsigned_for(csr.nnz, wide))
    idx_t = unsigned_for(max(n_cols - 1, 0), wide)
    if pad == 0:
        return indptr, as_unsigned(csr.indices[:csr.nnz], idx_t)
    return indptr, padded_copy(csr.indices[:csr.nnz], idx_t, pad)


@njit(cache=True, parallel=True)
def _copy(src, dst):
    """dst[:len(src)] = src, 16 ranges in parallel (unsigned positions: a
    signed loop index made this 4x slower, its wraparound test blocks
    vectorization)."""
    n = np.uint64(src.shape[0])
    step = (n + np.uint64(15)) // np.uint64(16)
    for c in prange(16):
        k0 = np.uint64(c) * step
        for k in range(k0, min(n, k0 + step)):
            dst[k] = src[k]


def padded_copy(a, dtype, pad):
    """``a`` (validated: no negative value) as ``dtype`` followed by ``pad``
    zeros, copied by both threads."""
    out = np.empty(len(a) + pad, dtype=dtype)
    out[len(a):] = 0
    _copy(a, out)
    return out


def shares_input(csr, wide=False):
    """Whether :func:`unsigned_csr` without padding views the caller's arrays."""
    return (np.dtype(csr.indptr.dtype).itemsize == np.dtype(unsigned_for(csr.nnz, wide)).itemsize
            and np.dtype(csr.indices.dtype).itemsize
            == np.dtype(unsigned_for(max(csr.shape[1] - 1, 0), wide)).itemsize)


def nbytes(*arrays):
    return int(sum(a.nbytes for a in arrays))
