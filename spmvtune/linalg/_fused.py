"""The product fused with the dot products that follow it.

A solver needs ``y = A x`` and then dots of ``y``: ``p . Ap`` in CG,
``rtilde . v`` and ``(t . s, t . t)`` in BiCGSTAB.  For the row kernels of the
pool (plain CSR, the unrolled loop, value-indexed and prefetching CSR), each
row's result is still in a register when it is written: these twins of the
pool's kernels also accumulate ``z[i] * y[i]`` and ``y[i] * y[i]`` per
partition, which saves a pass that would read ``y`` and ``z`` again.  ``z[i]``
is read in row order, so when ``z`` is ``x`` (CG's ``p``), it is already in
cache.

:func:`fused_for` maps an operator's kernel to its twin; other kernels (blocked,
symmetric, split, column-blocked, delta) run as they are, followed by one
:func:`~spmvtune.linalg._vector.dot2_par` pass.
"""
import copy

import numpy as np
from numba import njit, prange

from ..pool import _loops, csr as _csr
from ..pool._loops import row_sum

U0, U1, U4 = np.uint64(0), np.uint64(1), np.uint64(4)
U2, U3 = np.uint64(2), np.uint64(3)


@njit(cache=True, nogil=True)
def _plain_part(p, parts, indptr, indices, data, x, y, z):
    zy = yy = 0.0
    for i in range(parts[p], parts[p + 1]):
        s = 0.0
        for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + U1])):
            s += data[k] * x[indices[k]]
        y[i] = s
        zy += z[i] * s
        yy += s * s
    return zy, yy


@njit(cache=True, parallel=True)
def plain_par(parts, indptr, indices, data, x, y, z, red):
    for p in prange(parts.shape[0] - 1):
        red[p, 0], red[p, 1] = _plain_part(p, parts, indptr, indices, data, x, y, z)
    return _sum2(red, parts.shape[0] - 1)


@njit(cache=True, nogil=True)
def plain_ser(parts, indptr, indices, data, x, y, z, red):
    zy = yy = 0.0
    for p in range(parts.shape[0] - 1):
        a, b = _plain_part(p, parts, indptr, indices, data, x, y, z)
        zy += a
        yy += b
    return zy, yy


@njit(cache=True, nogil=True)
def _unroll_part(p, parts, indptr, indices, data, x, y, z):
    zy = yy = 0.0
    for i in range(parts[p], parts[p + 1]):
        k = np.uint64(indptr[i])
        end = np.uint64(indptr[i + U1])
        s0 = s1 = s2 = s3 = 0.0
        while k + U4 <= end:
            s0 += data[k] * x[indices[k]]
            s1 += data[k + U1] * x[indices[k + U1]]
            s2 += data[k + U2] * x[indices[k + U2]]
            s3 += data[k + U3] * x[indices[k + U3]]
            k += U4
        while k < end:
            s0 += data[k] * x[indices[k]]
            k += U1
        s = (s0 + s1) + (s2 + s3)
        y[i] = s
        zy += z[i] * s
        yy += s * s
    return zy, yy


@njit(cache=True, parallel=True)
def unroll_par(parts, indptr, indices, data, x, y, z, red):
    for p in prange(parts.shape[0] - 1):
        red[p, 0], red[p, 1] = _unroll_part(p, parts, indptr, indices, data, x, y, z)
    return _sum2(red, parts.shape[0] - 1)


@njit(cache=True, nogil=True)
def unroll_ser(parts, indptr, indices, data, x, y, z, red):
    zy = yy = 0.0
    for p in range(parts.shape[0] - 1):
        a, b = _unroll_part(p, parts, indptr, indices, data, x, y, z)
        zy += a
        yy += b
    return zy, yy


@njit(cache=True, nogil=True)
def _rows_part(p, parts, indptr, indices, vals, vidx, dist, x, y, z):
    zy = yy = 0.0
    for i in range(parts[p], parts[p + 1]):
        s = row_sum(np.uint64(indptr[i]), np.uint64(indptr[i + U1]),
                    indices, vals, vidx, dist, x)
        y[i] = s
        zy += z[i] * s
        yy += s * s
    return zy, yy


@njit(cache=True, parallel=True)
def rows_par(parts, indptr, indices, vals, vidx, dist, x, y, z, red):
    for p in prange(parts.shape[0] - 1):
        red[p, 0], red[p, 1] = _rows_part(p, parts, indptr, indices, vals, vidx, dist, x, y, z)
    return _sum2(red, parts.shape[0] - 1)


@njit(cache=True, nogil=True)
def rows_ser(parts, indptr, indices, vals, vidx, dist, x, y, z, red):
    zy = yy = 0.0
    for p in range(parts.shape[0] - 1):
        a, b = _rows_part(p, parts, indptr, indices, vals, vidx, dist, x, y, z)
        zy += a
        yy += b
    return zy, yy


@njit(cache=True, nogil=True)
def _sum2(red, nparts):
    s = t = 0.0
    for p in range(nparts):
        s += red[p, 0]
        t += red[p, 1]
    return s, t


_TWINS = {
    _csr._rows_par: plain_par, _csr._rows_ser: plain_ser,
    _csr._unroll_par: unroll_par, _csr._unroll_ser: unroll_ser,
    _loops.rows_par: rows_par, _loops.rows_ser: rows_ser,
}


def fused_for(run):
    """The fused twin of a pool kernel's ``run`` function, or None.

    A twin is called ``twin(*args, x, y, z, red)`` with the kernel's own
    argument tuple and returns ``(z . y, y . y)``; ``red`` is a float64 scratch
    array with at least one row of two per partition."""
    return _TWINS.get(run)


def unrolled_sibling(op):
    """``csr_unroll4`` running on the arrays ``csr_balanced`` prepared (both
    are plain CSR with the same unsigned indices and nnz-balanced partitions;
    only the inner loop differs), or None when ``op`` is another kernel.
    Lets a solve try the unrolled loop without a second conversion."""
    run = {_csr._rows_par: _csr._unroll_par, _csr._rows_ser: _csr._unroll_ser}.get(op._run)
    if run is None or op.kernel != "csr_balanced":
        return None
    sib = copy.copy(op)
    sib.kernel = "csr_unroll4"
    sib._run = run
    sib.setup_seconds = 0.0
    return sib
