"""Register blocking, BCSR (MB + CMP; OSKI's classic optimization).

Matrices from PDE systems with several unknowns per node (FEM) are made of
small dense r x c blocks.  Storing one column index per block instead of per
nonzero cuts the index stream to 4 / (r c) bytes per nonzero, and each loaded
``x[j]`` serves r rows.  Explicit zeros fill incomplete blocks, so the shape
is chosen in ``prepare`` by the estimated bytes (values with fill + indices) on
a sample of block rows, as OSKI does; ``shape=(r, c)`` forces one.

Storage: block row ``bi`` holds blocks ``bptr[bi]:bptr[bi+1]``; block ``b``
starts at column ``bcol[b]`` and its r*c values, column-major (the r values
of one column together), at ``bval[b*r*c:]``.
A block never reaches past the last column: where ``n_cols`` is not a
multiple of c, the last block column is shifted left to end at ``n_cols``.
"""
from functools import partial

import numpy as np
from numba import njit, prange

from ._loops import U1, U2, U3, value_at
from .indices import nbytes, unsigned_for
from .partition import balanced_rows
from .registry import KernelSpec, KernelUnusable, Prepared, register
from .value_index import value_index

#: Candidate block shapes (rows <= 4: one accumulator per block row).
SHAPES = ((1, 1), (2, 2), (3, 3), (4, 4), (2, 1), (3, 1), (4, 1), (1, 2), (1, 3), (1, 4), (2, 4), (4, 2))
MAX_FILL = 1.5
_SAMPLE_NNZ = 400_000


@njit(cache=True, nogil=True)
def _bcsr_part(p, parts, rt, ct, bptr, bcol, bval, vidx, x, y):
    # The block shape travels in the *types* of rt and ct (tuples of length R
    # and C), so each shape compiles to its own kernel with constant trip
    # counts: the c loop unrolls and the tests on R fold away, leaving R
    # independent accumulator chains (R <= 4) and one x load per column.
    R = len(rt)
    C = len(ct)
    Ru = np.uint64(R)
    RC = np.uint64(R * C)
    m = np.uint64(y.shape[0])
    for bi in range(parts[p], parts[p + 1]):
        s0 = s1 = s2 = s3 = 0.0
        for b in range(np.uint64(bptr[bi]), np.uint64(bptr[bi + U1])):
            c0 = np.uint64(bcol[b])
            v = b * RC
            for c in range(C):
                xv = x[c0 + np.uint64(c)]
                w = v + np.uint64(c) * Ru          # column c of the block, R values
                if R == 1:                          # one row: spread columns over 4 chains
                    t = value_at(bval, vidx, w) * xv
                    if c % 4 == 0:
                        s0 += t
                    elif c % 4 == 1:
                        s1 += t
                    elif c % 4 == 2:
                        s2 += t
                    else:
                        s3 += t
                    continue
                s0 += value_at(bval, vidx, w) * xv
                if R > 1:
                    s1 += value_at(bval, vidx, w + U1) * xv
                if R > 2:
                    s2 += value_at(bval, vidx, w + U2) * xv
                if R > 3:
                    s3 += value_at(bval, vidx, w + U3) * xv
        row = bi * np.uint64(R)
        if R == 1:
            y[row] = (s0 + s1) + (s2 + s3)
        elif row < m:
            y[row] = s0
        if R > 1 and row + U1 < m:
            y[row + U1] = s1
        if R > 2 and row + U2 < m:
            y[row + U2] = s2
        if R > 3 and row + U3 < m:
            y[row + U3] = s3


@njit(cache=True, parallel=True)
def _bcsr_par(parts, rt, ct, bptr, bcol, bval, vidx, x, y):
    for p in prange(parts.shape[0] - 1):
        _bcsr_part(p, parts, rt, ct, bptr, bcol, bval, vidx, x, y)


@njit(cache=True, nogil=True)
def _bcsr_ser(parts, rt, ct, bptr, bcol, bval, vidx, x, y):
    for p in range(parts.shape[0] - 1):
        _bcsr_part(p, parts, rt, ct, bptr, bcol, bval, vidx, x, y)


@njit(cache=True)
def _runs(indptr, indices, data, C, n_cols, count_only, bptr, bcol, bval):
    """Greedy 1 x C runs: a run starts at a row's next unplaced column (moved
    left to end by ``n_cols``) and takes the entries below start + C.
    Returns the number of runs; fills bptr/bcol/bval unless count_only."""
    nb = 0
    for i in range(indptr.shape[0] - 1):
        k = indptr[i]
        end = indptr[i + 1]
        while k < end:
            start = min(indices[k], n_cols - C)
            if not count_only:
                bcol[nb] = start
            while k < end and indices[k] < start + C:
                if not count_only:
                    bval[nb * C + indices[k] - start] = data[k]
                k += 1
            nb += 1
        if not count_only:
            bptr[i + 1] = nb
    return nb


def runs_encode(csr, C, wide=False):
    """BCSR(1, C) with unaligned runs (stencils: runs of consecutive columns
    that do not start at multiples of C)."""
    indptr = np.asarray(csr.indptr, dtype=np.int64)
    indices = np.asarray(csr.indices, dtype=np.int64)
    n = csr.shape[1]
    dummy_i, dummy_f = np.zeros(1, np.int64), np.zeros(1)
    nb = _runs(indptr, indices, csr.data, C, n, True, dummy_i, dummy_i, dummy_f)
    bptr = np.zeros(csr.shape[0] + 1, dtype=np.int64)
    bcol = np.zeros(nb, dtype=np.int64)
    bval = np.zeros(nb * C)
    _runs(indptr, indices, csr.data, C, n, False, bptr, bcol, bval)
    return (bptr.astype(unsigned_for(nb, wide)),
            bcol.astype(unsigned_for(max(n - 1, 0), wide)), bval)


def _block_keys(rows, cols, R, C, n_cols):
    """(block row, block start column) of each entry; starts shifted to fit."""
    start = np.minimum((cols // C) * C, n_cols - C)
    return rows // R, start


def estimate_bytes(csr, R, C):
    """Estimated bytes of BCSR(R, C) storage and the fill ratio, from a sample."""
    m, n = csr.shape
    if R > m or C > n:
        return np.inf, np.inf
    indptr = np.asarray(csr.indptr, dtype=np.int64)
    # a few evenly spaced stretches of block rows, about _SAMPLE_NNZ entries in all
    stretch = max(R, (int(m * min(1.0, _SAMPLE_NNZ / max(csr.nnz, 1))) // 8 // R) * R)
    starts = np.linspace(0, max(m - stretch, 0), 8).astype(np.int64) // R * R
    stored = blocks = 0
    for s in np.unique(starts):
        e = min(s + stretch, m)
        k0, k1 = indptr[s], indptr[e]
        if R == 1:
            sub = np.asarray(indptr[s:e + 1] - k0)
            nb = _runs(sub, np.asarray(csr.indices[k0:k1], dtype=np.int64), csr.data[k0:k1],
                       C, n, True, sub, sub, csr.data[:1])
        else:
            rows = np.repeat(np.arange(s, e), np.diff(indptr[s:e + 1]))
            br, bc = _block_keys(rows, np.asarray(csr.indices[k0:k1], dtype=np.int64), R, C, n)
            nb = len(np.unique(br * n + bc))
        blocks += nb
        stored += k1 - k0
    if stored == 0:
        return 0.0, 1.0
    fill = blocks * R * C / stored
    return csr.nnz * (fill * 8.0 + 4.0 / (R * C)) + 4.0 * m / R, fill


def choose_shape(csr):
    """The block shape with the fewest estimated bytes whose fill is at most MAX_FILL."""
    best, best_bytes = (1, 1), np.inf
    for R, C in SHAPES:
        est, fill = estimate_bytes(csr, R, C)
        if fill <= MAX_FILL and est < best_bytes:
            best, best_bytes = (R, C), est
    return best


def bcsr_encode(csr, R, C, wide=False):
    m, n = csr.shape
    indptr = np.asarray(csr.indptr, dtype=np.int64)
    rows = np.repeat(np.arange(m, dtype=np.int64), np.diff(indptr))
    cols = np.asarray(csr.indices, dtype=np.int64)
    br, bc = _block_keys(rows, cols, R, C, n)
    key = br * n + bc
    order = np.argsort(key, kind="stable")
    skey = key[order]
    new = np.ones(len(skey), dtype=bool)
    new[1:] = skey[1:] != skey[:-1]
    block_of = np.cumsum(new) - 1                   # block index of each sorted entry
    n_blocks = int(new.sum())
    ukey = skey[new]
    n_brows = -(-m // R)
    bptr = np.zeros(n_brows + 1, dtype=np.int64)
    np.cumsum(np.bincount(ukey // n if n else ukey, minlength=n_brows), out=bptr[1:])
    bval = np.zeros(n_blocks * R * C)
    rr = rows[order] - br[order] * R
    cc = cols[order] - bc[order]
    bval[block_of * (R * C) + cc * R + rr] = csr.data[order]     # column-major blocks
    bcol = (ukey % n if n else ukey).astype(unsigned_for(max(n - 1, 0), wide))
    return bptr.astype(unsigned_for(n_blocks, wide)), bcol, bval


def _prepare(csr, threads, *, shape=None, value_indexed=False, wide=False):
    m, n = csr.shape
    R, C = choose_shape(csr) if shape is None else tuple(int(v) for v in shape)
    if not (1 <= R <= 4 and 1 <= C <= 8):
        raise ValueError(f"block shape must be within 1..4 x 1..8, got {R} x {C}")
    if C > max(n, 1) or R > max(m, 1):
        raise KernelUnusable(f"{R} x {C} blocks do not fit a {m} x {n} matrix")
    if R == 1:
        bptr, bcol, bval = runs_encode(csr, C, wide)
    else:
        bptr, bcol, bval = bcsr_encode(csr, R, C, wide)
    fill = len(bval) / max(csr.nnz, 1)
    vals, vidx = value_index(bval) if value_indexed else (bval, None)
    parts = balanced_rows(bptr, threads)
    run = _bcsr_par if threads > 1 else _bcsr_ser
    args = (parts, (0,) * R, (0,) * C, bptr, bcol, vals, vidx)
    size = nbytes(bptr, bcol, vals) + (0 if vidx is None else vidx.nbytes)
    return Prepared(run, args, size, {"shape": (R, C), "fill": fill,
                                      "bytes_per_nnz": size / max(csr.nnz, 1)})



register(KernelSpec(
    "bcsr", ("MB", "CMP"),
    "register-blocked r x c BCSR (1 x c: unaligned runs), shape chosen by estimated bytes",
    _prepare, {"shape": None}))
register(KernelSpec(
    "bcsr_vi", ("MB", "CMP"),
    "bcsr with value-indexed values (stencils: runs of 3 at about 2.4 bytes per nonzero)",
    partial(_prepare, value_indexed=True), {"shape": None}))
