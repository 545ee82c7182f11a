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

from ._loops import U0, U1, U2, U3, value_at, zero_of
from .indices import nbytes, unsigned_for
from .partition import balanced_rows
from .registry import DTYPES, KernelSpec, KernelUnusable, Prepared, register, value_bytes
from .value_index import applies as vi_applies
from .value_index import code_bytes, value_index

#: Candidate block shapes (rows <= 4: one accumulator per block row).
SHAPES = ((1, 1), (2, 2), (3, 3), (4, 4), (2, 1), (3, 1), (4, 1), (1, 2), (1, 3), (1, 4), (2, 4), (4, 2))
MAX_FILL = 1.5


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
        s0 = s1 = s2 = s3 = zero_of(bval, x)
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
        _bcsr_part(np.uint64(p), parts, rt, ct, bptr, bcol, bval, vidx, x, y)


@njit(cache=True, nogil=True)
def _bcsr_ser(parts, rt, ct, bptr, bcol, bval, vidx, x, y):
    for p in range(parts.shape[0] - 1):
        _bcsr_part(np.uint64(p), parts, rt, ct, bptr, bcol, bval, vidx, x, y)


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
    dummy_i, dummy_f = np.zeros(1, np.int64), np.zeros(1, csr.data.dtype)
    nb = _runs(indptr, indices, csr.data, C, n, True, dummy_i, dummy_i, dummy_f)
    bptr = np.zeros(csr.shape[0] + 1, dtype=np.int64)
    bcol = np.zeros(nb, dtype=np.int64)
    bval = np.zeros(nb * C, dtype=csr.data.dtype)
    _runs(indptr, indices, csr.data, C, n, False, bptr, bcol, bval)
    return (bptr.astype(unsigned_for(nb, wide)),
            bcol.astype(unsigned_for(max(n - 1, 0), wide)), bval)


@njit(cache=True, nogil=True, inline="always")
def _key(col, C, n_cols):
    """Start column of the block holding ``col``: aligned to C, shifted left to fit."""
    return min((col // C) * C, n_cols - C)


@njit(cache=True, inline="always")
def _union(a, a0, a1, b, b0, b1, out):
    """The sorted union of a[a0:a1] and b[b0:b1] (each sorted, no repeats) into
    ``out``; returns its length."""
    i = a0
    j = b0
    k = 0
    while i < a1 and j < b1:
        x = np.int64(a[i])
        y = np.int64(b[j])
        if x <= y:
            out[k] = x
            i += U1
            if x == y:
                j += U1
        else:
            out[k] = y
            j += U1
        k += 1
    while i < a1:
        out[k] = np.int64(a[i])
        i += U1
        k += 1
    while j < b1:
        out[k] = np.int64(b[j])
        j += U1
        k += 1
    return k

@njit(cache=True, inline="always")
def _keys(u, n, n_cols, counts, R):
    """Add to ``counts[R - 1, C - 1]`` the aligned 1 x C blocks (C = 1..4) that
    the sorted columns ``u[:n]`` occupy."""
    c2 = c3 = c4 = 0
    l2 = l3 = l4 = -1
    for t in range(n):
        col = u[t]
        k = min(col - col % 2, n_cols - 2)
        if k != l2:
            c2 += 1
            l2 = k
        k = min(col - col % 3, n_cols - 3)
        if k != l3:
            c3 += 1
            l3 = k
        k = min(col - col % 4, n_cols - 4)
        if k != l4:
            c4 += 1
            l4 = k
    counts[R - 1, 0] += n
    counts[R - 1, 1] += c2
    counts[R - 1, 2] += c3
    counts[R - 1, 3] += c4

@njit(cache=True)
def _block_counts(indptr, indices, n_cols, starts, stretch, counts):
    """Blocks of every shape R x C (1 <= R, C <= 4) over the rows
    ``[s, s + stretch)`` of each ``s`` in ``starts`` (multiples of 12, so that
    block rows of every R align); ``counts[R - 1, C - 1] += blocks``.
    R = 1 counts greedy unaligned runs (:func:`_runs`), all C in one sweep of
    each row; R > 1 aligned blocks, from the sorted union of the block row's
    columns (pairs of rows, then pairs of pairs for R = 4).  Array indices are
    uint64: Numba checks signed ones for wraparound.  (The structural features
    estimate blocks on every matrix: this is most of their cost on small ones.)"""
    m = np.uint64(indptr.shape[0] - 1)
    rmax = 0
    for s_ in starts:                               # buffers for the unions of 4 rows
        s = np.uint64(s_)
        for i in range(s, min(s + np.uint64(stretch + 3), m)):
            rmax = max(rmax, np.int64(indptr[i + U1]) - np.int64(indptr[i]))
    b1 = np.empty(2 * rmax + 1, np.int64)
    b2 = np.empty(2 * rmax + 1, np.int64)
    b3 = np.empty(4 * rmax + 1, np.int64)
    tot = 0
    n2 = n3 = n4 = 0
    for s_ in starts:
        s = np.uint64(s_)
        e = min(s + np.uint64(stretch), m)
        for i in range(s, e):                     # R = 1: greedy runs of C = 2, 3, 4 at once
            k0 = np.uint64(indptr[i])
            k1 = np.uint64(indptr[i + U1])
            tot += np.int64(k1 - k0)
            e2 = e3 = e4 = -1
            for k in range(k0, k1):
                col = np.int64(indices[k])
                if col >= e2:
                    n2 += 1
                    e2 = min(col, n_cols - 2) + 2
                if col >= e3:
                    n3 += 1
                    e3 = min(col, n_cols - 3) + 3
                if col >= e4:
                    n4 += 1
                    e4 = min(col, n_cols - 4) + 4
        # R = 2 and 4: unions of row pairs, and of two pairs
        for r0 in range(s, e, np.uint64(4)):
            p0 = np.uint64(indptr[r0])
            p1 = np.uint64(indptr[min(r0 + U1, m)])
            p2 = np.uint64(indptr[min(r0 + np.uint64(2), m)])
            p3 = np.uint64(indptr[min(r0 + np.uint64(3), m)])
            p4 = np.uint64(indptr[min(r0 + np.uint64(4), m)])
            na = _union(indices, p0, p1, indices, p1, p2, b1)
            _keys(b1, na, n_cols, counts, 2)
            if r0 + np.uint64(2) < e:
                nb = _union(indices, p2, p3, indices, p3, p4, b2)
                _keys(b2, nb, n_cols, counts, 2)
            else:
                nb = 0
            nc = _union(b1, U0, np.uint64(na), b2, U0, np.uint64(nb), b3)
            _keys(b3, nc, n_cols, counts, 4)
        # R = 3
        for r0 in range(s, e, np.uint64(3)):
            p0 = np.uint64(indptr[r0])
            p1 = np.uint64(indptr[min(r0 + U1, m)])
            p2 = np.uint64(indptr[min(r0 + np.uint64(2), m)])
            p3 = np.uint64(indptr[min(r0 + np.uint64(3), m)])
            na = _union(indices, p0, p1, indices, p1, p2, b1)
            nc = _union(b1, U0, np.uint64(na), indices, p2, p3, b3)
            _keys(b3, nc, n_cols, counts, 3)
    counts[0, 0] += tot
    if n_cols >= 2:
        counts[0, 1] += n2
    if n_cols >= 3:
        counts[0, 2] += n3
    if n_cols >= 4:
        counts[0, 3] += n4


#: Entries sampled to estimate block fill (contiguous stretches of rows).
SAMPLE_NNZ = 100_000


def block_estimates(csr, value_size=8.0, sample_nnz=SAMPLE_NNZ):
    """{(R, C): (estimated bytes, fill)} for every shape of ``SHAPES``, from
    about ``sample_nnz`` entries in 8 evenly spaced stretches of rows.

    fill = stored values (explicit zeros included) / nonzeros; bytes = values
    with fill + one 4-byte column per block + one 4-byte pointer per block row."""
    m, n = csr.shape
    nnz = csr.nnz
    out = {}
    if nnz == 0 or m == 0:                  # nothing to block: 1 x 1 (plain row pointers)
        return {shape: ((4.0 * (m + 1), 1.0) if shape == (1, 1) else (np.inf, np.inf))
                for shape in SHAPES}
    rows_wanted = max(12, int(m * min(1.0, sample_nnz / nnz)))
    stretch = max(12, -(-rows_wanted // 8 // 12) * 12)
    # 8 evenly spaced starts, multiples of 12 (np.linspace's points, in plain Python:
    # this runs on every matrix the features see, and numpy calls cost microseconds)
    last = max(m - stretch, 0)
    step = last / 7
    starts = np.array(sorted({int(k * step) // 12 * 12 for k in range(7)} | {last // 12 * 12}),
                      dtype=np.int64)
    counts = np.zeros((4, 4), np.int64)
    # int32 or int64 indices as they are: no O(nnz) copy for a sample
    _block_counts(csr.indptr, csr.indices, n, starts, stretch, counts)
    counts = counts.tolist()
    stored = counts[0][0]
    for R, C in SHAPES:
        if R > m or C > n or stored == 0:
            out[(R, C)] = (np.inf, np.inf)
            continue
        fill = counts[R - 1][C - 1] * R * C / stored
        out[(R, C)] = (nnz * fill * (value_size + 4.0 / (R * C)) + 4.0 * m / R, fill)
    return out


def best_shape(estimates):
    """(shape, bytes, fill) with the fewest estimated bytes whose fill is at most MAX_FILL."""
    best = ((1, 1), np.inf, 1.0)
    for shape, (est, fill) in estimates.items():
        if fill <= MAX_FILL and est < best[1]:
            best = (shape, est, fill)
    return best


def choose_shape(csr):
    """The block shape with the fewest estimated bytes whose fill is at most MAX_FILL."""
    return best_shape(block_estimates(csr))[0]


@njit(cache=True, parallel=True)
def _bcsr_fill(indptr, indices, data, R, C, n_cols, count_only, bptr, bcol, bval):
    """Aligned R x C blocks, one block row per iteration (rows merged in column
    order).  With count_only, bptr[bi + 1] = blocks of block row bi; else the
    blocks of block row bi go to bptr[bi]:... (column-major values)."""
    m = indptr.shape[0] - 1
    n_brows = (m + R - 1) // R
    for bi in prange(n_brows):
        r0 = bi * R
        nr = min(R, m - r0)
        ptr = np.empty(R, np.int64)
        end = np.empty(R, np.int64)
        for t in range(nr):
            ptr[t] = indptr[r0 + t]
            end[t] = indptr[r0 + t + 1]
        b = -1 if count_only else bptr[bi] - 1
        nb = 0
        last = -1
        while True:
            col = -1
            for t in range(nr):
                if ptr[t] < end[t] and (col < 0 or indices[ptr[t]] < col):
                    col = indices[ptr[t]]
            if col < 0:
                break
            key = _key(col, C, n_cols)
            if key != last:
                last = key
                nb += 1
                b += 1
                if not count_only:
                    bcol[b] = key
            for t in range(nr):
                if ptr[t] < end[t] and indices[ptr[t]] == col:
                    if not count_only:
                        bval[b * R * C + (col - key) * R + t] = data[ptr[t]]
                    ptr[t] += 1
        if count_only:
            bptr[bi + 1] = nb


def bcsr_encode(csr, R, C, wide=False):
    """(bptr, bcol, bval) of aligned R x C blocks (R > 1), in two parallel O(nnz) passes."""
    m, n = csr.shape
    indptr = np.asarray(csr.indptr, dtype=np.int64)
    cols = np.asarray(csr.indices, dtype=np.int64)
    data = np.asarray(csr.data)
    n_brows = -(-m // R)
    bptr = np.zeros(n_brows + 1, dtype=np.int64)
    dummy_i, dummy_f = np.zeros(1, np.int64), np.zeros(1, data.dtype)
    _bcsr_fill(indptr, cols, data, R, C, n, True, bptr, dummy_i, dummy_f)
    np.cumsum(bptr, out=bptr)
    n_blocks = int(bptr[-1])
    bcol = np.zeros(n_blocks, dtype=np.int64)
    bval = np.zeros(n_blocks * R * C, dtype=data.dtype)
    _bcsr_fill(indptr, cols, data, R, C, n, False, bptr, bcol, bval)
    return (bptr.astype(unsigned_for(n_blocks, wide)),
            bcol.astype(unsigned_for(max(n - 1, 0), wide)), bval)


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



def storage(f):
    """Estimated bytes of the best block shape (``bcsr_bytes``, from a sample)."""
    return f["bcsr_bytes"]


def storage_vi(f):
    """The same blocks with value codes: explicit zeros are one more distinct value."""
    distinct = f["distinct_values"] + 1
    stored = f["bcsr_fill"] * f["nnz"]
    return (f["bcsr_bytes"] - (value_bytes(f) - code_bytes(distinct)) * stored
            + value_bytes(f) * distinct)


def applies_vi(f):
    return vi_applies({**f, "distinct_values": f["distinct_values"] + 1})


_FACTS = dict(setup_products=10.0, dtypes=DTYPES, c_template="bcsr.c")
register(KernelSpec(
    "bcsr", ("MB", "CMP"),
    "register-blocked r x c BCSR (1 x c: unaligned runs), shape chosen by estimated bytes",
    _prepare, {"shape": None}, storage=storage, siblings=("bcsr_vi",),
    c_defines={"SPMV_BR": 2, "SPMV_BC": 2}, **_FACTS))
register(KernelSpec(
    "bcsr_vi", ("MB", "CMP"),
    "bcsr with value-indexed values (stencils: runs of 3 at about 2.4 bytes per nonzero)",
    partial(_prepare, value_indexed=True), {"shape": None}, storage=storage_vi,
    applies=applies_vi, siblings=("bcsr",),
    c_defines={"SPMV_BR": 2, "SPMV_BC": 2, "SPMV_VALUE_INDEX": 1}, **_FACTS))
