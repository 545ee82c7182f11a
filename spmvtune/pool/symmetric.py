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
from numba import get_num_threads, njit, prange

from ._loops import U0, U1, mirror, zero_of
from .indices import nbytes, unsigned_for
from .partition import balanced_rows
from .registry import (DTYPES, KernelSpec, KernelUnusable, Prepared, csr_bytes, register,
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


@njit(cache=True, nogil=True, inline="always")
def _find(indices, k0, k1, col):
    """Position of ``col`` in the sorted ``indices[k0:k1]`` (uint64), or k1."""
    lo = k0
    hi = k1
    while lo < hi:
        mid = (lo + hi) >> U1
        if np.uint64(indices[mid]) < col:
            lo = mid + U1
        else:
            hi = mid
    if lo < k1 and np.uint64(indices[lo]) == col:
        return lo
    return k1


@njit(cache=True, parallel=True)
def _check_chunks(indptr, indices, data, bounds, out):
    """For chunks of rows ``bounds[c]:bounds[c + 1]`` in parallel, compare every
    lower-triangle entry (i, j) with its mirror (j, i) (0 when absent) and
    each diagonal entry with itself.  out[c] = (symmetric, skew-symmetric,
    hermitian still possible (1/0), mirrors found, upper-triangle entries,
    lower-triangle entries with the diagonal).  A chunk stops once no kind
    is possible.  Positions are unsigned (no wraparound tests)."""
    zero = zero_of(data, data)
    for c in prange(bounds.shape[0] - 1):
        sym = skew = herm = True
        found = upper = lower = U0
        for i in range(np.uint64(bounds[c]), np.uint64(bounds[c + 1])):
            if not (sym or skew or herm):
                break
            k0 = np.uint64(indptr[i])
            k1 = np.uint64(indptr[i + U1])
            for k in range(k0, k1):
                j = np.uint64(indices[k])
                a = data[k]
                if j > i:
                    upper += k1 - k
                    break
                lower += U1
                if j == i:
                    skew &= a == -a
                    herm &= a == np.conj(a)
                    sym &= a == a
                    continue
                # In a row pattern symmetric about the diagonal (a stencil's
                # interior) the mirror of the s-th entry of row i is the
                # s-th from the end of row j: try there before searching.
                m0 = np.uint64(indptr[j])
                m1 = np.uint64(indptr[j + U1])
                q = m1 - U1 - (k - k0)
                if not (q >= m0 and q < m1 and np.uint64(indices[q]) == i):
                    q = _find(indices, m0, m1, i)
                if q < m1:
                    b = data[q]
                    found += U1
                else:
                    b = zero
                sym &= a == b
                skew &= a == -b
                herm &= a == np.conj(b)
        out[c, 0] = sym
        out[c, 1] = skew
        out[c, 2] = herm
        out[c, 3] = found
        out[c, 4] = upper
        out[c, 5] = lower


@njit(cache=True, parallel=True)
def _unmatched_upper_nonzero(indptr, indices, data, bounds, out):
    """out[c] = 1 when chunk c holds an upper-triangle entry (i, j) != 0 whose
    mirror (j, i) is absent (only needed when some upper entry has none)."""
    for c in prange(bounds.shape[0] - 1):
        bad = 0
        for i in range(np.uint64(bounds[c]), np.uint64(bounds[c + 1])):
            for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + U1])):
                j = np.uint64(indices[k])
                if j > i and data[k] != 0:
                    m1 = np.uint64(indptr[j + U1])
                    if _find(indices, np.uint64(indptr[j]), m1, i) == m1:
                        bad = 1
                        break
            if bad:
                break
        out[c] = bad


@njit(cache=True, parallel=True)
def _copy_lower(indptr, indices, data, bounds, starts, lptr, lind, ldata):
    """The lower triangle (diagonal included: a prefix of each sorted row)
    of chunks of rows in parallel, chunk c from entry starts[c] on."""
    for c in prange(bounds.shape[0] - 1):
        o = np.uint64(starts[c])
        for i in range(np.uint64(bounds[c]), np.uint64(bounds[c + 1])):
            for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + U1])):
                j = np.uint64(indices[k])
                if j > i:
                    break
                lind[o] = j
                ldata[o] = data[k]
                o += U1
            lptr[i + U1] = o


@njit(cache=True, nogil=True)
def _lowest_columns(parts, lptr, lind):
    """lo[p] = the smallest column partition p's rows touch (at most its first row)."""
    lo = parts[:-1].copy()
    for p in range(parts.shape[0] - 1):
        for i in range(parts[p], parts[p + 1]):
            if lptr[i + U1] > lptr[i]:
                lo[p] = min(lo[p], np.uint64(lind[lptr[i]]))
    return lo


#: Rows per chunk of the parallel passes, at least.
CHUNK_ROWS = 1 << 14


def _chunks(indptr):
    n_rows = len(indptr) - 1
    n_chunks = max(1, min(4 * get_num_threads(), n_rows // CHUNK_ROWS))
    return np.unique(balanced_rows(indptr, n_chunks).astype(np.int64))


def symmetry_kind(csr):
    """"symmetric" (A == A^T), "skew-symmetric" (A == -A^T) or "hermitian"
    (A == A^H, complex), else KernelUnusable (see :func:`verify_symmetry`)."""
    return verify_symmetry(csr)[0]


def verify_symmetry(csr):
    """(kind, bounds, lower): the kind of :func:`symmetry_kind`, the chunks
    of rows the check ran over and each chunk's lower-triangle entries.

    "symmetric" (A == A^T), "skew-symmetric" (A == -A^T) or "hermitian"
    (A == A^H, complex), else KernelUnusable.

    Always verified, paid once in ``prepare``: one parallel O(nnz) pass
    compares each lower-triangle entry with its mirror, found by a binary
    search of the mirror row's sorted columns (an absent entry is 0, as are
    explicit zeros without a mirror); a second pass runs only when some
    upper-triangle entry has no mirror.  A symmetry the file declared only
    decides which kind is preferred when several hold, because a loaded
    matrix may have been edited since (a Dirichlet row makes a symmetric
    matrix general).  For real values hermitian is symmetric.
    """
    if csr.shape[0] != csr.shape[1]:
        raise KernelUnusable("symmetric storage needs a square matrix")
    cplx = np.issubdtype(csr.data.dtype, np.complexfloating)
    bounds = _chunks(csr.indptr)
    out = np.zeros((len(bounds) - 1, 6), dtype=np.int64)
    _check_chunks(csr.indptr, csr.indices, csr.data, bounds, out)
    ok = dict(zip(("symmetric", "skew-symmetric", "hermitian"), out[:, :3].all(axis=0)))
    if not cplx:
        del ok["hermitian"]
    if any(ok.values()) and out[:, 3].sum() != out[:, 4].sum():
        bad = np.zeros(len(bounds) - 1, dtype=np.int64)
        _unmatched_upper_nonzero(csr.indptr, csr.indices, csr.data, bounds, bad)
        if bad.any():
            ok = {}
    order = sorted(ok, key=lambda kind: kind != csr.symmetry)     # the declared kind first
    for kind in order:
        if ok[kind]:
            return kind, bounds, out[:, 5]
    declared = (f" (its file declared {csr.symmetry}: was it changed since?)"
                if csr.symmetry in ("symmetric", "skew-symmetric", "hermitian") else "")
    raise KernelUnusable("matrix is not symmetric, skew-symmetric or hermitian" + declared)


def _prepare(csr, threads, *, wide=False):
    kind, bounds, lower = verify_symmetry(csr)
    dtype = csr.data.dtype
    sign = dtype.type(-1 if kind == "skew-symmetric" else 1)
    conj = True if kind == "hermitian" else None
    starts = np.concatenate([[0], np.cumsum(lower)]).astype(np.int64)
    stored = int(starts[-1])
    n = csr.shape[0]
    indptr = np.empty(n + 1, dtype=unsigned_for(stored, wide))
    indptr[0] = 0
    indices = np.empty(stored, dtype=unsigned_for(max(n - 1, 0), wide))
    data = np.empty(stored, dtype=dtype)
    _copy_lower(csr.indptr, csr.indices, csr.data, bounds, starts, indptr, indices, data)
    parts = balanced_rows(indptr, threads)
    lo = _lowest_columns(parts, indptr, indices)
    boff = np.concatenate([[0], np.cumsum(parts[:-1] - lo)]).astype(np.uint64)
    buf = np.zeros(int(boff[-1]), dtype=dtype)
    run = _sym_par if threads > 1 else _sym_ser
    args = (parts, lo, boff, indptr, indices, data, sign, conj, buf)
    return Prepared(run, args, nbytes(indptr, indices, data),
                    {"stored_nnz": stored, "buffer_entries": len(buf),
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
    _prepare, storage=storage, applies=applies, setup_products=8.0, dtypes=DTYPES,
    c_template="csr_sym.c"))
