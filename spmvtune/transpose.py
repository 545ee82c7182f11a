"""Products with ``A^T``: a CSR copy of the transpose, or a scatter from A's CSR.

``y = A^T x`` is best run as a row product over a CSR of ``A^T`` (any kernel
of the pool then applies, chosen by its own selection), but that copy costs
about the matrix's memory again (:func:`transpose_bytes`).  When the memory
budget (``max_extra_bytes``) does not allow it, the product scatters from A's
own CSR instead: row ``i`` of A adds ``A[i, j] x[i]`` to ``y[j]``.  Threads
own nnz-balanced row ranges of A; the first writes into ``y``, each other one
into a private buffer of ``n_cols`` values (memory: (threads - 1) n_cols
values), summed into ``y`` afterwards.  With no memory for even one buffer it
runs on one thread.  The scatter writes ``y`` at random and cannot use the
pool's formats, so it is the fallback, not a choice the selector weighs.
"""
import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from .pool.indices import nbytes, unsigned_csr
from .pool.partition import balanced_rows
from .pool.registry import CSR, Prepared

U1 = np.uint64(1)
#: Name of the scatter kernel in decisions and reports (not a kernel of the
#: pool: it computes A^T x from A's CSR).
SCATTER = "csr_scatter_t"


def self_transposed(csr):
    """Whether ``A^T == A``: declared (symmetric, or hermitian with real
    values) and verified, never trusted: a loaded matrix may have been edited
    in place since (a Dirichlet row makes a symmetric matrix general).  One
    transpose and a comparison, O(nnz)."""
    if not (csr.symmetry == "symmetric" or (csr.symmetry == "hermitian"
                                            and csr.data.dtype.kind != "c")):
        return False
    if csr.shape[0] != csr.shape[1]:
        return False
    T = sp.csr_array((csr.data, csr.indices, csr.indptr), shape=csr.shape).T.tocsr()
    T.sort_indices()              # both canonical: equal arrays are equal matrices
    return (np.array_equal(T.indptr, csr.indptr) and np.array_equal(T.indices, csr.indices)
            and np.array_equal(T.data, csr.data))


def transpose_csr(csr):
    """The canonical :class:`CSR` of ``A^T`` (a copy; ``csr`` itself when
    :func:`self_transposed`).  The declared symmetry carries over (the
    transpose of a skew-symmetric or hermitian matrix is one too)."""
    if self_transposed(csr):
        return csr
    A = sp.csr_array((csr.data, csr.indices, csr.indptr), shape=csr.shape)
    T = A.T.tocsr()
    if not T.has_canonical_format:            # tocsr of a CSC sorts already; never costly
        T.sum_duplicates()
    return CSR(tuple(int(s) for s in T.shape), T.indptr, T.indices,
               np.ascontiguousarray(T.data), csr.symmetry)


def transpose_bytes(csr):
    """Bytes of the CSR copy of ``A^T`` that :func:`transpose_csr` makes (0
    when :func:`self_transposed`)."""
    if self_transposed(csr):
        return 0
    m, n = csr.shape
    idx = 4 if max(csr.nnz, m, n) < 2**31 else 8
    return idx * (n + 1) + (idx + csr.data.dtype.itemsize) * csr.nnz


@njit(cache=True, nogil=True)
def _scatter_rows(r0, r1, indptr, indices, data, x, y):
    for i in range(r0, r1):
        xi = x[i]
        for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + U1])):
            y[indices[k]] += data[k] * xi


@njit(cache=True, nogil=True)
def _scatter_ser(parts, indptr, indices, data, bufs, x, y):
    for j in range(y.shape[0]):
        y[j] = 0
    _scatter_rows(parts[0], parts[parts.shape[0] - 1], indptr, indices, data, x, y)


@njit(cache=True, parallel=True)
def _scatter_par(parts, indptr, indices, data, bufs, x, y):
    P = parts.shape[0] - 1
    n = y.shape[0]
    for p in prange(P):
        out = y if p == 0 else bufs[p - 1]
        for j in range(n):
            out[j] = 0
        _scatter_rows(parts[p], parts[p + 1], indptr, indices, data, x, out)
    for c in prange(P):                                  # y += the private buffers
        j0 = c * n // P
        j1 = (c + 1) * n // P
        for q in range(P - 1):
            b = bufs[q]
            for j in range(j0, j1):
                y[j] += b[j]


def scatter_buffer_bytes(csr, threads):
    """Memory of the private buffers of a scatter product at ``threads``."""
    return (max(threads, 1) - 1) * csr.shape[1] * csr.data.dtype.itemsize


def prepare_scatter(csr, threads, wide=False):
    """:class:`Prepared` computing ``y = A^T x`` from ``csr`` (A's CSR):
    x of A's rows, y of A's columns."""
    threads = max(int(threads), 1)
    parts = balanced_rows(csr.indptr, threads)
    indptr, indices = unsigned_csr(csr, wide)
    data = np.ascontiguousarray(csr.data)
    bufs = np.zeros((threads - 1, csr.shape[1]), dtype=data.dtype)
    run = _scatter_par if threads > 1 else _scatter_ser
    args = (parts, indptr, indices, data, bufs)
    return Prepared(run, args, nbytes(indptr, indices, data) + bufs.nbytes,
                    {"buffers": threads - 1, "buffer_bytes": int(bufs.nbytes)}, scratch=(4,))


def scatter_threads(csr, threads, budget):
    """The most threads (<= ``threads``) whose private buffers fit ``budget``
    bytes (None: no limit)."""
    if budget is None:
        return threads
    per = csr.shape[1] * csr.data.dtype.itemsize
    return max(1, min(threads, 1 + (int(budget) // per if per else threads)))
