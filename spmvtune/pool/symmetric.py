"""Symmetric storage (MB, beyond the paper): keep the lower triangle only.

For A = A^T (or A = -A^T, skew; or A = A^H, hermitian), row ``i`` of the
lower triangle L gives both ``y[i] += L[i, j] x[j]`` and
``y[j] += sign * L[i, j] x[i]`` (``conj(L[i, j]) x[i]`` when hermitian), so
each stored nonzero is used twice and the matrix stream halves.

Threads own row ranges ``[r0, r1)``; the transposed updates ``y[j]`` with
``j < r0`` would race with another thread, so they go to a private buffer
covering ``[lo[p], r0)`` (``lo[p]`` = smallest column the partition touches,
so a banded matrix has small buffers) and are added after the parallel loop.
Whether the mirror is conjugated is decided by the *type* of the ``conj``
argument (None or True, see ``_loops.mirror``), so it costs nothing per nonzero.
"""
import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from ._loops import U1, mirror, zero_of
from .csr import row_partitions
from .indices import nbytes, unsigned_csr
from .registry import (CSR, DTYPES, KernelSpec, KernelUnusable, Prepared, csr_bytes, register,
                       value_bytes)


@njit(cache=True, nogil=True)
def _sym_part(p, parts, lo, boff, indptr, indices, data, sign, conj, buf, x, y):
    r0 = parts[p]
    r1 = parts[p + 1]
    b0 = boff[p]
    low = lo[p]
    for i in range(r0, r1):
        y[i] = 0.0
    for j in range(b0, boff[p + 1]):
        buf[j] = 0.0
    for i in range(r0, r1):
        k0 = np.uint64(indptr[i])
        k1 = np.uint64(indptr[i + U1])
        xi = x[i]
        s = zero_of(data, x)
        if k1 > k0 and indices[k1 - U1] == i:     # the diagonal ends the row
            k1 -= U1
            s += data[k1] * xi
        t = sign * xi
        for k in range(k0, k1):
            j = np.uint64(indices[k])
            a = data[k]
            s += a * x[j]
            if j >= r0:
                y[j] += mirror(a, conj) * t
            else:
                buf[b0 + j - low] += mirror(a, conj) * t
        y[i] += s


@njit(cache=True, nogil=True)
def _sym_reduce(parts, lo, boff, buf, y):
    for p in range(parts.shape[0] - 1):
        low = lo[p]
        b0 = boff[p]
        for t in range(boff[p + 1] - b0):
            y[low + t] += buf[b0 + t]


@njit(cache=True, parallel=True)
def _sym_par(parts, lo, boff, indptr, indices, data, sign, conj, buf, x, y):
    for p in prange(parts.shape[0] - 1):
        _sym_part(np.uint64(p), parts, lo, boff, indptr, indices, data, sign, conj, buf, x, y)
    _sym_reduce(parts, lo, boff, buf, y)


@njit(cache=True, nogil=True)
def _sym_ser(parts, lo, boff, indptr, indices, data, sign, conj, buf, x, y):
    for p in range(parts.shape[0] - 1):
        _sym_part(np.uint64(p), parts, lo, boff, indptr, indices, data, sign, conj, buf, x, y)
    _sym_reduce(parts, lo, boff, buf, y)


def symmetry_kind(csr):
    """"symmetric" (A == A^T), "skew-symmetric" (A == -A^T) or "hermitian"
    (A == A^H, complex), else KernelUnusable.

    Always verified (one transpose and a comparison, O(nnz), paid once in
    ``prepare``): a symmetry the file declared only decides which kind is
    tried first, because a loaded matrix may have been edited since (a
    Dirichlet row makes a symmetric matrix general).  For real values
    hermitian is symmetric.
    """
    if csr.shape[0] != csr.shape[1]:
        raise KernelUnusable("symmetric storage needs a square matrix")
    cplx = np.issubdtype(csr.data.dtype, np.complexfloating)
    A = sp.csr_array((csr.data, csr.indices, csr.indptr), shape=csr.shape)
    At = A.T.tocsr()
    mirrors = {"symmetric": lambda: At, "skew-symmetric": lambda: -At}
    if cplx:
        mirrors["hermitian"] = lambda: At.conj()
    order = sorted(mirrors, key=lambda kind: kind != csr.symmetry)     # the declared kind first
    for kind in order:
        if (A != mirrors[kind]()).nnz == 0:
            return kind
    declared = (f" (its file declared {csr.symmetry}: was it changed since?)"
                if csr.symmetry in ("symmetric", "skew-symmetric", "hermitian") else "")
    raise KernelUnusable("matrix is not symmetric, skew-symmetric or hermitian" + declared)


def _prepare(csr, threads, *, wide=False):
    kind = symmetry_kind(csr)
    dtype = csr.data.dtype
    sign = dtype.type(-1 if kind == "skew-symmetric" else 1)
    conj = True if kind == "hermitian" else None
    A = sp.csr_array((csr.data, csr.indices, csr.indptr), shape=csr.shape)
    L = sp.tril(A, format="csr")
    L.sort_indices()
    lower = CSR(csr.shape, L.indptr, L.indices, L.data, csr.symmetry)
    parts = row_partitions(lower, threads, "nnz")
    lo = parts[:-1].copy()
    for p in range(len(parts) - 1):
        a, b = int(L.indptr[parts[p]]), int(L.indptr[parts[p + 1]])
        if b > a:
            lo[p] = min(int(lo[p]), int(L.indices[a:b].min()))
    boff = np.concatenate([[0], np.cumsum(parts[:-1] - lo)]).astype(np.uint64)
    buf = np.zeros(int(boff[-1]), dtype=dtype)
    indptr, indices = unsigned_csr(lower, wide)
    data = np.ascontiguousarray(L.data, dtype=dtype)
    run = _sym_par if threads > 1 else _sym_ser
    args = (parts, lo, boff, indptr, indices, data, sign, conj, buf)
    return Prepared(run, args, nbytes(indptr, indices, data),
                    {"stored_nnz": int(L.nnz), "buffer_entries": len(buf),
                     "sign": float(np.real(sign)), "symmetry": kind}, scratch=(8,))


def storage(f):
    """The lower triangle (about half the nonzeros, plus the diagonal) in CSR and
    the per-thread buffers of transposed updates (at most one value per row)."""
    half = {**f, "nnz": 0.5 * (f["nnz"] + f["rows"])}
    return csr_bytes(half) + value_bytes(f) * f["rows"]


def applies(f):
    if f["rows"] != f["cols"]:
        return "symmetric storage needs a square matrix"
    if f["symmetric"] < 1.0:
        return "the matrix is not symmetric, skew-symmetric or hermitian"
    return None


register(KernelSpec(
    "csr_sym", ("MB",),
    "symmetric, skew or hermitian matrices: lower triangle only, race-free threads",
    _prepare, storage=storage, applies=applies, setup_products=5.0, dtypes=DTYPES,
    c_template="csr_sym.c"))
