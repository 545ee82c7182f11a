"""Inner loops shared by the kernel families.

Two choices are made by *type* or by a per-row test outside the inner loop,
never inside it:

- ``vidx is None``: values are read as ``vals[k]`` (plain CSR); otherwise
  ``vals[vidx[k]]`` (a table of distinct values indexed by 8/16-bit codes).
  :func:`value_at` is an ``@overload`` so the choice costs nothing at run time.
- ``dist > 0``: prefetch ``x[indices[k + dist]]`` while summing (the index
  array must be padded with ``dist`` entries).
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ._intrinsics import prefetch

U0, U1 = np.uint64(0), np.uint64(1)


def value_at(vals, vidx, k):
    """The k-th nonzero value: ``vals[k]`` or ``vals[vidx[k]]``."""
    return vals[k] if vidx is None else vals[vidx[k]]


@overload(value_at, inline="always")
def _value_at(vals, vidx, k):
    if isinstance(vidx, types.NoneType):
        return lambda vals, vidx, k: vals[k]
    return lambda vals, vidx, k: vals[vidx[k]]


@njit(cache=True, nogil=True)
def row_sum(k0, k1, indices, vals, vidx, dist, x):
    """sum over k in [k0, k1) of value(k) * x[indices[k]] (k0, k1 uint64)."""
    s = 0.0
    if dist != U0:
        for k in range(k0, k1):
            prefetch(x, indices[k + dist])
            s += value_at(vals, vidx, k) * x[indices[k]]
    else:
        for k in range(k0, k1):
            s += value_at(vals, vidx, k) * x[indices[k]]
    return s


@njit(cache=True, nogil=True)
def rows_part(p, parts, indptr, indices, vals, vidx, dist, x, y):
    for i in range(parts[p], parts[p + 1]):
        y[i] = row_sum(np.uint64(indptr[i]), np.uint64(indptr[i + U1]),
                       indices, vals, vidx, dist, x)


@njit(cache=True, parallel=True)
def rows_par(parts, indptr, indices, vals, vidx, dist, x, y):
    for p in prange(parts.shape[0] - 1):
        rows_part(p, parts, indptr, indices, vals, vidx, dist, x, y)


@njit(cache=True, nogil=True)
def rows_ser(parts, indptr, indices, vals, vidx, dist, x, y):
    for p in range(parts.shape[0] - 1):
        rows_part(p, parts, indptr, indices, vals, vidx, dist, x, y)
