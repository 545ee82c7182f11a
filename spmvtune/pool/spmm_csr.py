"""Many right-hand sides, row-wise CSR: ``Y = A X`` for a row-major ``X``.

``X`` is C-contiguous (n_cols, k): the k numbers one nonzero multiplies are
adjacent.  Row i of ``Y`` is swept in panels of up to 32 columns whose partial
sums stay in vector registers (:mod:`spmvtune.pool.simd`) across the row's
nonzeros: each nonzero broadcasts its value and multiply-adds a slice of one
row of ``X``.  The matrix is read once for all k vectors; the row's indices
and values are re-read from L1 for each further panel.  Every panel keeps four
vector accumulators in flight: 32 columns as one chain, 16 as two chains
(alternate nonzeros), 8 and the last ``k mod 8`` (masked loads and stores) as
four chains.

The same storage runs ``y = A x`` for a 1-D ``x`` through the single-vector
row loop of the pool (:func:`spmvtune.pool._loops.rows_par`, compiled once
for every kernel that uses it): :func:`vector_or_matrix` picks by the number
of dimensions.  ``vidx`` is None (values as stored) or 8/16-bit codes into a
table of distinct values (``spmm_vi``).  Kernels are generic over float64 and
float32 (matrix values, X and Y).
"""
import numpy as np
from numba import njit, prange

from ._loops import rows_par, rows_ser, value_at
from .csr import row_partitions
from .indices import nbytes, unsigned_csr
from .registry import ANY_VECTORS, KernelSpec, Prepared, register
from .simd import LANES, vadd, vfma, vload, vload_part, vstore, vstore_part, vzeros

U0, U1, U2, U3, U4 = (np.uint64(v) for v in range(5))
W1, W2, W4 = (np.uint64(LANES * v) for v in (1, 2, 4))
#: Flags carried in tuple *types* (compile-time constants): full vectors or a masked tail.
FULL, PART = (), (0,)


@njit(cache=True, nogil=True, inline="always")
def load(X, j, c0, n, part):
    """``X[j, c0:c0 + LANES]``, or its first ``n`` numbers when ``part`` is PART."""
    if len(part) == 0:
        return vload(X, j, c0)
    return vload_part(X, j, c0, n)


@njit(cache=True, nogil=True, inline="always")
def store(Y, i, c0, n, part, v):
    if len(part) == 0:
        vstore(Y, i, c0, v)
    else:
        vstore_part(Y, i, c0, n, v)


@njit(cache=True, nogil=True)
def _panel4(i, c0, k0, k1, indices, vals, vidx, X, Y):
    """Y[i, c0:c0 + 32]: four vectors, one chain."""
    a0 = a1 = a2 = a3 = vzeros(Y)
    for k in range(k0, k1):
        a = value_at(vals, vidx, k)
        j = indices[k]
        a0 = vfma(a0, a, vload(X, j, c0))
        a1 = vfma(a1, a, vload(X, j, c0 + W1))
        a2 = vfma(a2, a, vload(X, j, c0 + W2))
        a3 = vfma(a3, a, vload(X, j, c0 + W1 + W2))
    vstore(Y, i, c0, a0)
    vstore(Y, i, c0 + W1, a1)
    vstore(Y, i, c0 + W2, a2)
    vstore(Y, i, c0 + W1 + W2, a3)


@njit(cache=True, nogil=True)
def _panel2(i, c0, k0, k1, indices, vals, vidx, X, Y):
    """Y[i, c0:c0 + 16]: two vectors, two chains over alternate nonzeros."""
    a0 = a1 = b0 = b1 = vzeros(Y)
    k = k0
    while k + U2 <= k1:
        a = value_at(vals, vidx, k)
        j = indices[k]
        b = value_at(vals, vidx, k + U1)
        jb = indices[k + U1]
        a0 = vfma(a0, a, vload(X, j, c0))
        a1 = vfma(a1, a, vload(X, j, c0 + W1))
        b0 = vfma(b0, b, vload(X, jb, c0))
        b1 = vfma(b1, b, vload(X, jb, c0 + W1))
        k += U2
    if k < k1:
        a = value_at(vals, vidx, k)
        j = indices[k]
        a0 = vfma(a0, a, vload(X, j, c0))
        a1 = vfma(a1, a, vload(X, j, c0 + W1))
    vstore(Y, i, c0, vadd(a0, b0))
    vstore(Y, i, c0 + W1, vadd(a1, b1))


@njit(cache=True, nogil=True)
def _panel1(i, c0, n, part, k0, k1, indices, vals, vidx, X, Y):
    """Y[i, c0:c0 + 8] (or its first n with PART): one vector, four chains."""
    a0 = a1 = a2 = a3 = vzeros(Y)
    k = k0
    while k + U4 <= k1:
        a0 = vfma(a0, value_at(vals, vidx, k), load(X, indices[k], c0, n, part))
        a1 = vfma(a1, value_at(vals, vidx, k + U1), load(X, indices[k + U1], c0, n, part))
        a2 = vfma(a2, value_at(vals, vidx, k + U2), load(X, indices[k + U2], c0, n, part))
        a3 = vfma(a3, value_at(vals, vidx, k + U3), load(X, indices[k + U3], c0, n, part))
        k += U4
    while k < k1:
        a0 = vfma(a0, value_at(vals, vidx, k), load(X, indices[k], c0, n, part))
        k += U1
    store(Y, i, c0, n, part, vadd(vadd(a0, a1), vadd(a2, a3)))


@njit(cache=True, nogil=True)
def mm_rows_part(p, parts, indptr, indices, vals, vidx, X, Y):
    """Rows parts[p]:parts[p+1] of Y = A X (X: (n, k), Y: (m, k), C-contiguous)."""
    K = np.uint64(Y.shape[1])
    for i in range(parts[p], parts[p + 1]):
        k0 = np.uint64(indptr[i])
        k1 = np.uint64(indptr[i + U1])
        c0 = U0
        while c0 + W4 <= K:
            _panel4(i, c0, k0, k1, indices, vals, vidx, X, Y)
            c0 += W4
        if c0 + W2 <= K:
            _panel2(i, c0, k0, k1, indices, vals, vidx, X, Y)
            c0 += W2
        if c0 + W1 <= K:
            _panel1(i, c0, W1, FULL, k0, k1, indices, vals, vidx, X, Y)
            c0 += W1
        if c0 < K:
            _panel1(i, c0, K - c0, PART, k0, k1, indices, vals, vidx, X, Y)


@njit(cache=True, parallel=True)
def mm_par(parts, indptr, indices, vals, vidx, dist, X, Y):
    """Y = A X over the row partitions ``parts`` (``dist``: unused, so that the
    arguments are those of the single-vector loop)."""
    for p in prange(parts.shape[0] - 1):
        mm_rows_part(p, parts, indptr, indices, vals, vidx, X, Y)


@njit(cache=True, nogil=True)
def mm_ser(parts, indptr, indices, vals, vidx, dist, X, Y):
    for p in range(parts.shape[0] - 1):
        mm_rows_part(p, parts, indptr, indices, vals, vidx, X, Y)


def vector_or_matrix(one, many):
    """``run(*args, x, y)``: ``one`` for a 1-D x (y = A x), ``many`` for a
    2-D X (Y = A X); one attribute test per call."""
    def run(*args):
        return (one if args[-2].ndim == 1 else many)(*args)
    run.vector, run.matrix = one, many
    return run


RUN_PAR = vector_or_matrix(rows_par, mm_par)
RUN_SER = vector_or_matrix(rows_ser, mm_ser)


def kernel_values(data):
    """The matrix values as the kernels read them: float32 stays float32, else float64."""
    dtype = np.float32 if data.dtype == np.float32 else np.float64
    return np.ascontiguousarray(data, dtype=dtype)


def _prepare(csr, threads, *, wide=False):
    parts = row_partitions(csr, threads, "nnz")
    indptr, indices = unsigned_csr(csr, wide)
    vals = kernel_values(csr.data)
    run = RUN_PAR if threads > 1 else RUN_SER
    return Prepared(run, (parts, indptr, indices, vals, None, U0), nbytes(indptr, indices, vals))


def work(f):
    return f["nnz"]


#: Shared by the many-vector kernels' specs.
MANY = dict(max_vectors=ANY_VECTORS, min_vectors=2, dtypes=("float64", "float32"),
            c_dtypes=("float64",))

register(KernelSpec(
    "spmm_csr", ("CMP",),
    "k vectors at once (Y = A X, row-major X): CSR rows, k in vector registers, 32 at a time",
    _prepare, shares_input=True, siblings=("spmm_vi",), c_template="spmm_csr.c",
    c_defines={"SPMV_VALUE_INDEX": 0}, **MANY))
