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
from numba import get_num_threads, njit, prange

from ._loops import U0, U1, U2, U3, U4, value_at, zero_of
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


def block_bytes(nnz, rows, fill, R, C, value_size=8.0):
    """Bytes of R x C blocks holding ``nnz`` nonzeros at ``fill`` stored values
    per nonzero: the values, one 4-byte column per block, one 4-byte pointer per
    block row."""
    return nnz * fill * (value_size + 4.0 / (R * C)) + 4.0 * rows / R


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
        out[(R, C)] = (block_bytes(nnz, m, fill, R, C, value_size), fill)
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


#: Flags carried in tuple *types* (compile-time constants): count the blocks
#: only, or write them.
COUNT, FILL = (), (0,)


@njit(cache=True, nogil=True)
def _encode_brows(br0, br1, indptr, indices, data, rt, ct, n_cols, fl, b0, bptr, bcol, bval):
    """Blocks of block rows br0:br1, the first numbered ``b0``; returns the
    number after the last (uint64).  R = len(rt), C = len(ct) and whether to write
    (fl == FILL) or only count (COUNT) are compile-time constants.  R == 1:
    greedy runs of up to C columns, each starting at the row's next unplaced
    column (moved left to end by ``n_cols``); R > 1: aligned blocks
    (:func:`_key`), the R rows of a block row merged block by block, their
    positions p0..p3 in registers.  A block at ``key`` takes each row's
    entries below key + C (those before it are placed already).  Writing
    fills bptr, bcol and the column-major values.

    Positions are unsigned (a signed index costs a wraparound test) and
    columns int64; the per-row steps are written out, not called: a helper
    function for them (even inlined) made this loop 3-9x slower."""
    R = len(rt)
    C = len(ct)
    Ru = np.uint64(R)
    Cu = np.uint64(C)
    RCu = np.uint64(R * C)
    m = np.uint64(indptr.shape[0] - 1)
    big = np.int64(n_cols) + 1
    b = np.uint64(b0)
    for bi in range(np.uint64(br0), np.uint64(br1)):
        r0 = bi * Ru
        if R == 1:
            k = np.uint64(indptr[r0])
            k1 = np.uint64(indptr[r0 + U1])
            while k < k1:
                start = min(np.int64(indices[k]), n_cols - C)
                lim = start + C
                v = b * Cu
                if len(fl):
                    bcol[b] = start
                while k < k1:
                    col = np.int64(indices[k])
                    if col >= lim:
                        break
                    if len(fl):
                        bval[v + np.uint64(col - start)] = data[k]
                    k += U1
                b += U1
        else:
            p0 = np.uint64(indptr[r0])
            e0 = np.uint64(indptr[r0 + U1])
            p1 = e1 = p2 = e2 = p3 = e3 = e0
            if r0 + U1 < m:
                e1 = np.uint64(indptr[r0 + U2])
            if R > 2:
                p2 = e2 = e1
                if r0 + U2 < m:
                    e2 = np.uint64(indptr[r0 + U3])
            if R > 3:
                p3 = e3 = e2
                if r0 + U3 < m:
                    e3 = np.uint64(indptr[r0 + U4])
            while True:
                key = big
                if p0 < e0:
                    key = min(key, _key(np.int64(indices[p0]), C, n_cols))
                if p1 < e1:
                    key = min(key, _key(np.int64(indices[p1]), C, n_cols))
                if R > 2 and p2 < e2:
                    key = min(key, _key(np.int64(indices[p2]), C, n_cols))
                if R > 3 and p3 < e3:
                    key = min(key, _key(np.int64(indices[p3]), C, n_cols))
                if key == big:
                    break
                lim = key + C
                v = b * RCu
                if len(fl):
                    bcol[b] = key
                while p0 < e0:
                    col = np.int64(indices[p0])
                    if col >= lim:
                        break
                    if len(fl):
                        bval[v + np.uint64(col - key) * Ru] = data[p0]
                    p0 += U1
                while p1 < e1:
                    col = np.int64(indices[p1])
                    if col >= lim:
                        break
                    if len(fl):
                        bval[v + np.uint64(col - key) * Ru + U1] = data[p1]
                    p1 += U1
                if R > 2:
                    while p2 < e2:
                        col = np.int64(indices[p2])
                        if col >= lim:
                            break
                        if len(fl):
                            bval[v + np.uint64(col - key) * Ru + U2] = data[p2]
                        p2 += U1
                if R > 3:
                    while p3 < e3:
                        col = np.int64(indices[p3])
                        if col >= lim:
                            break
                        if len(fl):
                            bval[v + np.uint64(col - key) * Ru + U3] = data[p3]
                        p3 += U1
                b += U1
        if len(fl):
            bptr[bi + U1] = b
    return b


@njit(cache=True, parallel=True)
def _encode_chunks(indptr, indices, data, rt, ct, n_cols, bounds, fl, starts,
                   bptr, bcol, bval):
    """Chunks of block rows ``bounds[c]:bounds[c + 1]`` in parallel: count
    their blocks into ``starts[c + 1]`` (fl == COUNT), or write them from
    block ``starts[c]`` on (FILL)."""
    for c in prange(bounds.shape[0] - 1):
        if len(fl):
            _encode_brows(bounds[c], bounds[c + 1], indptr, indices, data, rt, ct, n_cols,
                          fl, starts[c], bptr, bcol, bval)
        else:
            starts[c + 1] = _encode_brows(bounds[c], bounds[c + 1], indptr, indices, data,
                                          rt, ct, n_cols, fl, 0, bptr, bcol, bval)


#: Rows per chunk of the parallel encoding passes, at least.
CHUNK_ROWS = 1 << 14


def bcsr_encode(csr, R, C, wide=False, value_indexed=False):
    """(bptr, bcol, bval, vals) of R x C blocks (R == 1: unaligned runs; R >
    1: aligned blocks), unsigned indices, in two parallel O(nnz) passes over
    chunks of block rows: count the blocks, then write them.

    vals is None, or with ``value_indexed`` the table of distinct values
    (:func:`value_index` of the matrix's values, 0.0 first when blocks hold
    explicit zeros) and bval their 8/16-bit codes: the codes are placed
    directly, never a block array of values."""
    m, n = csr.shape
    n_brows = -(-m // R)
    n_chunks = max(1, min(4 * get_num_threads(), m // CHUNK_ROWS))
    bounds = np.unique(np.concatenate([balanced_rows(csr.indptr, n_chunks).astype(np.int64) // R,
                                       [0, n_brows]]))
    starts = np.zeros(len(bounds), dtype=np.int64)
    rt, ct = (0,) * R, (0,) * C
    dummy_i, dummy_f = np.zeros(1, np.uint32), np.zeros(1, csr.data.dtype)
    _encode_chunks(csr.indptr, csr.indices, csr.data, rt, ct, n, bounds, COUNT, starts,
                   dummy_i, dummy_i, dummy_f)
    starts = np.cumsum(starts)
    n_blocks = int(starts[-1])
    vals, data = None, csr.data
    if value_indexed:
        # explicit zeros are zero-initialized codes: 0.0 must be code 0
        vals, data = value_index(csr.data, with_zero=n_blocks * R * C > csr.nnz)
    bptr = np.empty(n_brows + 1, dtype=unsigned_for(n_blocks, wide))
    bptr[0] = 0
    bcol = np.empty(n_blocks, dtype=unsigned_for(max(n - 1, 0), wide))
    bval = np.zeros(n_blocks * R * C, dtype=data.dtype)
    _encode_chunks(csr.indptr, csr.indices, data, rt, ct, n, bounds, FILL, starts,
                   bptr, bcol, bval)
    return bptr, bcol, bval, vals


def _prepare(csr, threads, *, shape=None, value_indexed=False, wide=False):
    m, n = csr.shape
    R, C = choose_shape(csr) if shape is None else tuple(int(v) for v in shape)
    if not (1 <= R <= 4 and 1 <= C <= 8):
        raise ValueError(f"block shape must be within 1..4 x 1..8, got {R} x {C}")
    if C > max(n, 1) or R > max(m, 1):
        raise KernelUnusable(f"{R} x {C} blocks do not fit a {m} x {n} matrix")
    bptr, bcol, bval, vals = bcsr_encode(csr, R, C, wide, value_indexed)
    fill = len(bval) / max(csr.nnz, 1)
    vals, vidx = (vals, bval) if value_indexed else (bval, None)
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


#: setup_products: measured 4-5 baseline products on the large stencils and FEM blocks
#: (1-3 on the scattered families), bcsr_vi about one more (the value codes).
_FACTS = dict(dtypes=DTYPES, c_template="bcsr.c")
register(KernelSpec(
    "bcsr", ("MB", "CMP"),
    "register-blocked r x c BCSR (1 x c: unaligned runs), shape chosen by estimated bytes",
    _prepare, {"shape": None}, storage=storage, siblings=("bcsr_vi",), setup_products=5.0,
    c_defines={"SPMV_BR": 2, "SPMV_BC": 2}, **_FACTS))
register(KernelSpec(
    "bcsr_vi", ("MB", "CMP"),
    "bcsr with value-indexed values (stencils: runs of 3 at about 2.4 bytes per nonzero)",
    partial(_prepare, value_indexed=True), {"shape": None}, storage=storage_vi,
    applies=applies_vi, siblings=("bcsr",), setup_products=6.0,
    c_defines={"SPMV_BR": 2, "SPMV_BC": 2, "SPMV_VALUE_INDEX": 1}, **_FACTS))
