"""Inner loops shared by the kernel families.

Value types: every kernel is generic over the value type (float32, float64,
complex64, complex128; Numba compiles one specialization per argument
types).  Accumulators start from :func:`zero_of` ``(vals, x)``, the zero of
the product's type, so float32 x float32 sums in float32 (as SciPy's
``csr_matvec`` and MKL do) and complex sums stay complex.

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
from numba.np.numpy_support import as_dtype, from_dtype

from ._intrinsics import prefetch

U0, U1, U2, U3, U4 = (np.uint64(v) for v in range(5))


def value_at(vals, vidx, k):
    """The k-th nonzero value: ``vals[k]`` or ``vals[vidx[k]]``."""
    return vals[k] if vidx is None else vals[vidx[k]]


@overload(value_at, inline="always")
def _value_at(vals, vidx, k):
    if isinstance(vidx, types.NoneType):
        return lambda vals, vidx, k: vals[k]
    return lambda vals, vidx, k: vals[vidx[k]]


def zero_of(vals, x):
    """The zero of the type of ``vals[k] * x[j]`` (the accumulators' type)."""
    return np.result_type(vals.dtype, x.dtype).type(0)


@overload(zero_of, inline="always")
def _zero_of(vals, x):
    t = from_dtype(np.result_type(as_dtype(vals.dtype), as_dtype(x.dtype)))
    return lambda vals, x: t(0)


def mirror(a, conj):
    """The value a stored entry gives its mirror: ``a``, or ``conj(a)`` when
    ``conj`` is not None (hermitian storage)."""
    return a if conj is None else np.conj(a)


@overload(mirror, inline="always")
def _mirror(a, conj):
    if isinstance(conj, types.NoneType):
        return lambda a, conj: a
    return lambda a, conj: np.conj(a)


@njit(cache=True, nogil=True, inline="always")
def row_sum(k0, k1, indices, vals, vidx, dist, x):
    """sum over k in [k0, k1) of value(k) * x[indices[k]] (k0, k1 uint64).

    Four accumulators: with compressed (fewer-byte) formats the kernel stops
    being memory-bound and one accumulator's add-latency chain becomes the
    limit.
    """
    s0 = s1 = s2 = s3 = zero_of(vals, x)
    k = k0
    if dist != U0:
        while k + U4 <= k1:
            prefetch(x, indices[k + dist])
            prefetch(x, indices[k + dist + U1])
            prefetch(x, indices[k + dist + U2])
            prefetch(x, indices[k + dist + U3])
            s0 += value_at(vals, vidx, k) * x[indices[k]]
            s1 += value_at(vals, vidx, k + U1) * x[indices[k + U1]]
            s2 += value_at(vals, vidx, k + U2) * x[indices[k + U2]]
            s3 += value_at(vals, vidx, k + U3) * x[indices[k + U3]]
            k += U4
        while k < k1:
            prefetch(x, indices[k + dist])
            s0 += value_at(vals, vidx, k) * x[indices[k]]
            k += U1
    else:
        while k + U4 <= k1:
            s0 += value_at(vals, vidx, k) * x[indices[k]]
            s1 += value_at(vals, vidx, k + U1) * x[indices[k + U1]]
            s2 += value_at(vals, vidx, k + U2) * x[indices[k + U2]]
            s3 += value_at(vals, vidx, k + U3) * x[indices[k + U3]]
            k += U4
        while k < k1:
            s0 += value_at(vals, vidx, k) * x[indices[k]]
            k += U1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, nogil=True)
def rows_part(p, parts, indptr, indices, vals, vidx, dist, x, y):
    for i in range(parts[p], parts[p + 1]):
        y[i] = row_sum(np.uint64(indptr[i]), np.uint64(indptr[i + U1]),
                       indices, vals, vidx, dist, x)


@njit(cache=True, parallel=True)
def rows_par(parts, indptr, indices, vals, vidx, dist, x, y):
    for p in prange(parts.shape[0] - 1):
        rows_part(np.uint64(p), parts, indptr, indices, vals, vidx, dist, x, y)


@njit(cache=True, nogil=True)
def rows_ser(parts, indptr, indices, vals, vidx, dist, x, y):
    for p in range(parts.shape[0] - 1):
        rows_part(np.uint64(p), parts, indptr, indices, vals, vidx, dist, x, y)
