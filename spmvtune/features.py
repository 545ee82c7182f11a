"""Structural features of a sparse matrix, from one parallel pass over the rows.

The pass reads every row's length and first and last column (row-length
statistics, bandwidth, profile: exact, O(m)).  The per-nonzero statistics
(marked *sampled* in ``FORMULAS``: runs, x lines, delta widths, dominance,
scattering, diagonals) inspect every row up to ``EXACT_NNZ`` nonzeros; beyond,
a random sample of rows of about ``SAMPLE_POINTS`` visits (row i drawn with
probability ~ (r_i + r_mean) / S, rows holding a whole window of S always),
weighted so that each estimate is unbiased for the exact value (within ~2% on
the matrices of ``benchmarks/features_check.py``).  Values, symmetry and block
shapes use their own fixed samples.  On large matrices the whole call costs
about one product (``feature_seconds``).

Notation: the matrix is m x n with nnz nonzeros of v bytes each (4 float32,
8 float64 or complex64, 16 complex128); row i has r_i nonzeros at sorted
columns c_i1 < ... < c_ir; a cache line holds L = 64 / v values of x, so
column c lies on line c // L.  Every feature is a plain float in the
dict :func:`structural_features` returns; its formula is in ``FORMULAS``
(shown by ``spmvtune analyze`` and the docs).
"""
import time

import numpy as np
from numba import get_num_threads, get_thread_id, njit, prange

from .pool._intrinsics import prefetch
from .validate import as_canonical_csr

LINE_BYTES = 64   # bytes of a cache line
#: Up to this many nonzeros every row is inspected.  Beyond, the per-nonzero
#: statistics come from the rows that SAMPLE_POINTS random points select (one
#: point in each window of S units, row i owning r_i + alpha units, alpha the
#: mean row length; see :func:`_sampling`): 2^15 points keep the estimates the
#: cost model reads within ~2% (x_lines_per_nnz, whose events are rare on banded
#: matrices, ~1% sd).
EXACT_NNZ = 1 << 18
SAMPLE_POINTS = 1 << 15

FORMULAS = {
    "rows": "m", "cols": "n", "nnz": "nnz",
    "density": "nnz / (m n)",
    "csr_bytes": "(4 + v) nnz + 4 (m + 1): the CSR arrays with 32-bit indices (12 nnz + "
                 "4 (m + 1) for float64)",
    "working_set_bytes": "csr_bytes + v (m + n): matrix plus x and y",
    "ws_over_l2": "working_set_bytes / (L2 per core x threads)",
    "ws_over_l3": "working_set_bytes / L3",
    "x_over_l3": "v n / L3: whether x alone fits the last-level cache",
    "row_mean": "mean of r_i", "row_std": "standard deviation of r_i",
    "row_min": "min r_i", "row_max": "max r_i",
    "row_cv": "row_std / row_mean",
    "row_skew": "mean((r_i - mean)^3) / std^3",
    "empty_row_share": "#{i : r_i = 0} / m",
    "max_row_share": "max r_i / nnz: the largest share of the work one row holds",
    "bandwidth": "max over nonzeros of |c - i n / m| (diagonal scaled for rectangles)",
    "bandwidth_norm": "bandwidth / n",
    "profile_per_row": "(1/m) sum_i max(0, i n / m - c_i1)",
    "scattering": "mean over non-empty rows of r_i / (c_ir - c_i1 + 1): 1 = dense rows "
                  "(sampled)",
    "clustering": "(number of runs of consecutive columns) / nnz: 1 = no two adjacent "
                  "(sampled)",
    "x_lines_per_nnz": "(1/nnz) sum_i #(lines of row i not used by row i-1): estimated x misses "
                       "(sampled)",
    "x_lines_per_row": "the same sum / m (sampled)",
    "diagonals": "number of distinct c - i over the nonzeros: occupied diagonals (sampled: "
                 "those the sample met, plus an estimate of the ones it missed)",
    "diagonals_per_row": "diagonals / m",
    "diag_dominant_share": "#{i : |a_ii| >= sum_{j != i} |a_ij|} / #{i : r_i > 0} (sampled)",
    "distinct_value_share": "distinct values / values, on an evenly spaced sample of up to "
                            "8192 values",
    "distinct_values": "distinct values of that sample d; when d > half the sample s, the "
                       "estimate nnz d / s (nearly all values differ)",
    "few_values": "1 if the sample has <= 256 distinct values (value-index codes fit 8 bits)",
    "has_nan": "1 if the sample holds a NaN",
    "value_bytes": "v: bytes per stored value (4 float32, 8 float64 and complex64, "
                   "16 complex128)",
    "complex_values": "1 if the values are complex (complex64, complex128)",
    "symmetric": "the largest of the shares of sampled entries (i, j) whose mirror (j, i) "
                 "holds the same value (symmetric), its negation (skew-symmetric) or its "
                 "conjugate (hermitian)",
    "imbalance_rows": "threads x the largest share of nnz + m of the equal row blocks "
                      "(1 = balanced; row-partitioned kernels at `threads`)",
    "imbalance_nnz": "the same for the nnz-balanced row blocks (a long row cannot be split)",
    "bcsr_bytes": "estimated bytes of BCSR storage with the best block shape (sampled "
                  "stretches of rows; fill <= 1.5)",
    "bcsr_fill": "stored values (with explicit zeros) / nnz of that shape",
    "bcsr_r": "rows of that block shape", "bcsr_c": "columns of that block shape",
    "delta_index_bytes": "index bytes per nonzero of csr_delta: per row 1/2/4 B gaps by its "
                         "largest gap + 9 B of row data, over nnz (sampled)",
    "delta_saving": "1 - (8 + delta_index_bytes) / (12 + 4 m / nnz): share of CSR bytes saved",
    "sampled_row_stride": "s: the sampled statistics come from rows holding 1/s of the "
                          "nonzeros (1 = every row inspected)",
}


#: Statistics of one chunk of rows (the values :func:`_chunk` writes).
_S1, _S2, _S3, _RMIN, _RMAX, _EMPTY, _REACH, _LEAD = range(8)    # every row, exact
_W, _RUNS, _LINES, _GAPS, _ROWW, _SCAT, _DOM = range(8, 15)    # visited rows, weighted
_VIS_U, _CERT = 15, 16        # nonzeros of the sampled / certain visited rows
_DLO, _DHI = 17, 18           # the lowest and highest diagonal c - i of a visited row
_VIS_M = 19                   # nonzeros of the sampled visited rows that marked diagonals
_NSTAT = 20
#: Seed of the sample's points (fixed: the features of a matrix are reproducible).
SAMPLE_SEED = np.uint64(0x5DEECE66D)
# Array indices are uint64 in the loops below: with signed ones Numba checks every
# access for negative wraparound (a loop over the row pointer ran 7x slower).
_U0 = np.uint64(0)
_U1 = np.uint64(1)


@njit(cache=True, inline="always")
def _mix(x):
    """splitmix64's finalizer: a well-spread uint64 hash of x."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _point(w, S, seed):
    """The sampled unit of window ``w`` (units ``[w S, (w + 1) S)``): a fixed
    pseudo-random offset (a hash of w), so that every chunk of rows finds the
    same points without sharing a generator."""
    z = _mix(np.uint64(w) ^ seed)
    # offset = floor(z' S / 2^32) for the top 32 bits z' of z: uniform in [0, S) without
    # a division (Lemire's range reduction; S < 2^32)
    return w * S + np.int64(((z >> np.uint64(32)) * np.uint64(S)) >> np.uint64(32))


@njit(cache=True, inline="always")
def _seek(k, S, seed):
    """(window, point) of the first sampled unit at or after unit k."""
    w = k // S
    p = _point(w, S, seed)
    if p < k:
        w += 1
        p = _point(w, S, seed)
    return w, p


@njit(cache=True, inline="always")
def _row_end(indptr, i, alpha):
    """Units of rows 0..i (their nonzeros + alpha per row); i: uint64."""
    return np.int64(indptr[i + _U1]) + alpha * (np.int64(i) + 1)


@njit(cache=True, inline="always")
def _visit(indptr, indices, data, i, line_shift, n_rows, diag, doff, mark):
    """Row i's (uint64, non-empty) runs, span, delta width, x lines row i-1 did
    not touch, diagonal dominance, lowest and highest diagonal.  With mark 2
    (a row visited for certain) it sets bit 7 of its diagonals' bytes in
    ``diag[doff:]``, with mark 1 (a sampled row) it counts a visit in their low
    bits (up to 127), with mark 0 it leaves them."""
    k0 = np.uint64(indptr[i])
    k1 = np.uint64(indptr[i + _U1])
    ii = np.int64(i)
    base = doff + n_rows - ii                    # diag[base + c] holds diagonal c - i
    first = np.int64(indices[k0])
    prev = first - 2                             # the first column starts a run; a gap
    runs = 0                                     # of 2 leaves the width bucket unchanged
    g = 0
    dg = 0.0
    off = 0.0
    for k in range(k0, k1):
        c = np.int64(indices[k])
        d = c - prev
        if d != 1:
            runs += 1
        g = max(g, d)
        prev = c
        a = abs(data[k])
        if c == ii:
            dg = a
        else:
            off += a
        if mark == 0:
            continue
        j = np.uint64(base + c)
        v = diag[j]
        if mark == 2:
            if v < 128:                   # test first: a store only the first time
                diag[j] = v | 128
        elif (v & 127) < 127:
            diag[j] = v + 1
    span = prev - first + 1
    width = 0 if k1 - k0 < np.uint64(2) else (1 if g < 256 else (2 if g < 65536 else 4))
    # x lines of row i that row i-1 did not touch (both sorted: a merge)
    q = np.uint64(indptr[i - _U1]) if i > _U0 else k0
    prev_line = -1
    fresh = 0
    for k in range(k0, k1):
        line = np.int64(indices[k]) >> line_shift
        if line == prev_line:
            continue
        prev_line = line
        while q < k0 and (np.int64(indices[q]) >> line_shift) < line:
            q += _U1
        if not (q < k0 and (np.int64(indices[q]) >> line_shift) == line):
            fresh += 1
    return runs, span, width, fresh, dg >= off, first - ii, prev - ii


@njit(cache=True, inline="always")
def _prefetch_rows(indptr, indices, data, i, k0, k1):
    """Prefetch what a visit of row i reads: its values and columns and row i-1's
    columns, the lines of at most 16 lines' worth of each."""
    vstep = np.uint64(max(64 // data.itemsize, 1))
    istep = np.uint64(64 // indices.itemsize)
    for k in range(k0, min(k1, k0 + np.uint64(16) * vstep), vstep):
        prefetch(data, k)
    prefetch(data, k1 - _U1)
    p0 = np.uint64(indptr[i - _U1]) if i > _U0 else k0
    for k in range(p0, min(k1, p0 + np.uint64(32) * istep), istep):
        prefetch(indices, k)
    prefetch(indices, k1 - _U1)


#: Rows scanned at a time before the sample visits those of them it picked
#: (their indices are still in cache).
_BLOCK = np.uint64(2048)
#: Visits queued behind the point search: the values of a sampled row are
#: prefetched this many visits before they are read (they are a cache miss).
_AHEAD = 8


@njit(cache=True, inline="always")
def _account(indptr, indices, data, i, g, mark, line_shift, n_rows, diag, doff, acc):
    """Visit row i and add its statistics, times its weight g, to ``acc``."""
    runs, span, width, fresh, dom, dlo, dhi = _visit(indptr, indices, data, i, line_shift,
                                                     n_rows, diag, doff, mark)
    r = float(np.uint64(indptr[i + _U1]) - np.uint64(indptr[i]))
    acc[_W - _W] += g * r
    acc[_RUNS - _W] += g * runs
    acc[_LINES - _W] += g * fresh
    acc[_GAPS - _W] += g * width * (r - 1.0)
    acc[_ROWW - _W] += g
    acc[_SCAT - _W] += g * (r / span)
    if dom:
        acc[_DOM - _W] += g
    acc[_DLO - _W] = min(acc[_DLO - _W], dlo)
    acc[_DHI - _W] = max(acc[_DHI - _W], dhi)


@njit(cache=True)
def _chunk(indptr, indices, data, n_rows, n_cols, line_shift, S, alpha, seed, marks, lo, hi,
           diag, doff, out):
    """Statistics of rows ``lo:hi`` into ``out`` (``_NSTAT`` values): every row for
    the row-length moments, bandwidth and profile; the rows the sample visits for
    the per-nonzero and per-row statistics, weighted so that their sums estimate
    sums over all rows (exact when S = 1: every row, weight 1).

    The sample: row i owns r_i + alpha consecutive units (its nonzeros plus
    alpha for the row itself, so that short rows are not left out), and one
    pseudo-random unit per window of S units selects its row: row i is visited
    w_i times with E[w_i] = (r_i + alpha) / S and weighs g = w_i / (r_i + alpha)
    (Hansen-Hurwitz).  Rows of r_i + alpha >= 2 S hold a whole window: they are
    always visited, with their expected weight 1 / S.  Those mark their
    diagonals in ``diag[doff:]``, and so does a random share marks / 2^16 of the
    other visited rows (by a hash of the row: fewer marks where rows are long)."""
    lo = np.uint64(lo)
    hi = np.uint64(hi)
    scale = n_cols / max(n_rows, 1)
    s2 = _U0
    s3 = reach = lead = 0.0
    rmin = np.uint64(0xFFFFFFFFFFFFFFFF)
    rmax = _U0
    empty = 0
    acc = np.zeros(_NSTAT - _W)
    acc[_DLO - _W] = np.inf
    acc[_DHI - _W] = -np.inf
    vis_u = vis_m = cert = 0.0
    q_row = np.zeros(_AHEAD, np.uint64)                   # visits waiting for their prefetch
    q_g = np.zeros(_AHEAD)
    q_mark = np.zeros(_AHEAD, np.int64)
    queued = 0
    heavy = 2 * S
    w, p = _seek(np.int64(indptr[lo]) + alpha * np.int64(lo), S, seed)
    i = lo                                                # the row search's cursor
    for b0 in range(lo, hi, _BLOCK):                      # blocks of rows still in cache
        b1 = min(b0 + _BLOCK, hi)                         # when the sample visits them
        # every row: O(1) each, from the row pointer and the row's first and last column
        k0 = np.uint64(indptr[b0])
        for r0 in range(b0, b1):
            k1 = np.uint64(indptr[r0 + _U1])
            r = k1 - k0
            s2 += r * r
            fr = float(r)
            s3 += fr * fr * fr
            rmin = min(rmin, r)
            rmax = max(rmax, r)
            if r == _U0:
                empty += 1
            else:
                centre = float(r0) * scale
                first = float(indices[k0])
                reach = max(reach, abs(first - centre), abs(float(indices[k1 - _U1]) - centre))
                lead += max(0.0, centre - first)
            k0 = k1
        if S == 1:                                        # every row, in order, weight 1
            for r0 in range(b0, b1):
                r = np.uint64(indptr[r0 + _U1]) - np.uint64(indptr[r0])
                if r != _U0:
                    _account(indptr, indices, data, r0, 1.0, 2, line_shift, n_rows, diag,
                             doff, acc)
                    cert += float(r)
            continue
        u_hi = _row_end(indptr, b1 - _U1, alpha)
        upr = max((u_hi - _row_end(indptr, b0, alpha)) // max(np.int64(b1 - b0) - 1, 1), 1)
        while p < u_hi:
            e_i = _row_end(indptr, i, alpha)
            if e_i <= p:                                  # find the row holding p: guess
                j = min(i + _U1 + np.uint64((p - e_i) // upr), b1 - _U1)   # by the mean
                steps = 0                                 # row, then step to it
                while steps < 8 and j > i + _U1 and _row_end(indptr, j - _U1, alpha) > p:
                    j -= _U1
                    steps += 1
                while steps < 8 and _row_end(indptr, j, alpha) <= p:
                    j += _U1
                    steps += 1
                if steps == 8:                            # irregular rows: bisect
                    a = i                                 # end(a) <= p < end(b)
                    b = b1 - _U1
                    while b - a > _U1:
                        mid = a + (b - a) // np.uint64(2)
                        if _row_end(indptr, mid, alpha) <= p:
                            a = mid
                        else:
                            b = mid
                    j = b
                i = j
            end = _row_end(indptr, i, alpha)
            hits = 0
            while p < end:                                # the points in row i
                hits += 1
                w += 1
                p = _point(w, S, seed)
            k0 = np.uint64(indptr[i])
            k1 = np.uint64(indptr[i + _U1])
            r = np.int64(k1 - k0)
            if r > 0:
                units = r + alpha
                certain = units >= heavy
                if certain:
                    cert += r
                    mark = 2
                else:
                    vis_u += r
                    mark = 1 if (_mix(i ^ ~seed) >> np.uint64(48)) < marks else 0
                    if mark:
                        vis_m += r
                _prefetch_rows(indptr, indices, data, i, k0, k1)
                slot = queued % _AHEAD
                if queued >= _AHEAD:
                    _account(indptr, indices, data, q_row[slot], q_g[slot], q_mark[slot],
                             line_shift, n_rows, diag, doff, acc)
                q_row[slot] = i
                q_g[slot] = 1.0 / S if certain else hits / units
                q_mark[slot] = mark
                queued += 1
            i += _U1
    for t in range(max(queued - _AHEAD, 0), queued):
        slot = t % _AHEAD
        _account(indptr, indices, data, q_row[slot], q_g[slot], q_mark[slot], line_shift,
                 n_rows, diag, doff, acc)
    out[_S1] = float(np.uint64(indptr[hi]) - np.uint64(indptr[lo]))
    out[_S2] = float(s2)
    out[_S3] = s3
    out[_RMIN] = float(rmin) if hi > lo else np.inf
    out[_RMAX] = float(rmax)
    out[_EMPTY] = float(empty)
    out[_REACH] = reach
    out[_LEAD] = lead
    out[_W:] = acc
    out[_VIS_U] = vis_u
    out[_VIS_M] = vis_m
    out[_CERT] = cert


@njit(cache=True, parallel=True)
def _pass_par(indptr, indices, data, n_rows, n_cols, line_shift, S, alpha, seed, marks, bounds,
              diag, diag_len):
    """:func:`_chunk` over the chunks ``bounds[c]:bounds[c + 1]`` in parallel, each
    thread marking diagonals in its own ``diag[t * diag_len:]``."""
    n_chunks = bounds.shape[0] - 1
    out = np.zeros((n_chunks, _NSTAT))
    for ch in prange(n_chunks):
        _chunk(indptr, indices, data, n_rows, n_cols, line_shift, S, alpha, seed, marks,
               bounds[ch], bounds[ch + 1], diag, np.int64(get_thread_id()) * diag_len, out[ch])
    return out


@njit(cache=True)
def _pass_ser(indptr, indices, data, n_rows, n_cols, line_shift, S, alpha, seed, marks, diag):
    """:func:`_chunk` over all rows on this thread.  (No ``get_thread_id`` here:
    loaded from Numba's cache into a process whose thread pool has not started,
    a serial function calling it crashed.)"""
    out = np.zeros((1, _NSTAT))
    _chunk(indptr, indices, data, n_rows, n_cols, line_shift, S, alpha, seed, marks, 0, n_rows,
           diag, 0, out[0])
    return out


#: Nonzeros of sampled rows that mark their diagonals (about; the rest skip it:
#: on long random rows the marks are cache misses, and so is counting them).
DIAG_SAMPLE_NNZ = 1 << 19
#: Blocks of diagonals whose rarely met ones are extrapolated apart (:func:`_diagonals`).
DIAG_BLOCKS = 64
#: A diagonal the sample met this many times (or a row visited for certain
#: met at all) is taken as known; the rarer ones are extrapolated (:func:`_diagonals`).
COVERED = 8


@njit(cache=True)
def _diag_range(diag, n_threads, words, lo, hi):
    """Over the marks of :func:`_visit` in the 8-byte words ``lo:hi`` of each
    thread's ``words`` words of ``diag`` (a uint64 view): (diagonals seen, those
    covered (by a certain row, or met >= COVERED times), and over the others the
    sum of visits H and of visit pairs P = sum n (n - 1) / 2).  Deterministic:
    the totals do not depend on which thread visited which row.  Words no
    thread marked are skipped whole."""
    d = cov = h = pairs = 0
    for w in range(lo, hi):
        any_mark = np.uint64(0)
        for t in range(n_threads):
            any_mark |= diag[t * words + w]
        if any_mark == 0:
            continue
        for b in range(8):
            shift = np.uint64(8 * b)
            cnt = 0
            certain = False
            for t in range(n_threads):
                v = (diag[t * words + w] >> shift) & np.uint64(255)
                if v >= 128:
                    certain = True
                cnt += np.int64(v & np.uint64(127))
            if certain or cnt:
                d += 1
                if certain or cnt >= COVERED:
                    cov += 1
                else:
                    h += cnt
                    pairs += cnt * (cnt - 1) // 2
    return d, cov, h, pairs


@njit(cache=True, parallel=True)
def _diag_blocks_par(diag, n_threads, words, lo, hi, n_blocks):
    """:func:`_diag_range` over ``n_blocks`` equal blocks of the words ``lo:hi``."""
    out = np.zeros((n_blocks, 4), np.int64)
    for b in prange(n_blocks):
        d, cov, h, pairs = _diag_range(diag, n_threads, words, lo + b * (hi - lo) // n_blocks,
                                       lo + (b + 1) * (hi - lo) // n_blocks)
        out[b, 0] = d
        out[b, 1] = cov
        out[b, 2] = h
        out[b, 3] = pairs
    return out


@njit(cache=True)
def _diag_blocks_ser(diag, n_threads, words, lo, hi, n_blocks):
    """The serial twin of :func:`_diag_blocks_par`: Numba's on-disk cache keys a
    function by name and line, not flags, so the two cannot be one function."""
    out = np.zeros((n_blocks, 4), np.int64)
    for b in range(n_blocks):
        d, cov, h, pairs = _diag_range(diag, n_threads, words, lo + b * (hi - lo) // n_blocks,
                                       lo + (b + 1) * (hi - lo) // n_blocks)
        out[b, 0] = d
        out[b, 1] = cov
        out[b, 2] = h
        out[b, 3] = pairs
    return out


@njit(cache=True)
def _reduce(st):
    """The chunks' statistics combined: sums, but min / max where they are ones."""
    out = st[0].copy()
    for ch in range(1, st.shape[0]):
        for k in range(_NSTAT):
            v = st[ch, k]
            if k == _RMIN or k == _DLO:
                out[k] = min(out[k], v)
            elif k == _RMAX or k == _REACH or k == _DHI:
                out[k] = max(out[k], v)
            else:
                out[k] += v
    return out


@njit(cache=True)
def _chunk_bounds(indptr, n_rows, n_chunks, per_nnz):
    """Row bounds of ``n_chunks`` chunks of about equal cost i + per_nnz indptr[i]."""
    bounds = np.zeros(n_chunks + 1, np.int64)
    total = n_rows + per_nnz * indptr[n_rows]
    for c in range(1, n_chunks):
        target = c * total / n_chunks
        a = bounds[c - 1]
        b = n_rows
        while a < b:
            mid = (a + b) // 2
            if mid + per_nnz * indptr[mid] < target:
                a = mid + 1
            else:
                b = mid
        bounds[c] = a
    bounds[n_chunks] = n_rows
    return bounds


#: Below this many nonzeros the passes run serially: a parallel launch costs
#: more than it saves.
PARALLEL_NNZ = 50_000
#: Values sampled for the distinct-value features.
VALUE_SAMPLE = 8192
#: Entries sampled (in stretches of rows) to estimate block fill.
BLOCK_SAMPLE = 32_768
#: Above this share of runs per nonzero, block shapes are not estimated.
BLOCKLESS_CLUSTERING = 0.9


@njit(cache=True)
def _mirror_shares(indptr, indices, data, samples):
    """(symmetric, skew, hermitian) shares of ``samples`` evenly spaced entries
    (those of ``np.linspace(0, nnz - 1, samples)``): (i, j) whose (j, i) holds
    the same value, its negation, or its conjugate."""
    n_rows = indptr.shape[0] - 1
    nnz = indptr[n_rows]
    step = (nnz - 1) / (samples - 1) if samples > 1 else 0.0
    sym = 0
    skew = 0
    herm = 0
    for t in range(samples):
        k = nnz - 1 if t == samples - 1 and samples > 1 else np.int64(t * step)
        lo = 0
        hi = n_rows
        while hi - lo > 1:                       # the row of entry k
            mid = (lo + hi) // 2
            if indptr[mid] <= k:
                lo = mid
            else:
                hi = mid
        i = lo
        j = indices[k]
        a = indptr[j]
        b = indptr[j + 1]
        while b - a > 0:                         # entry (j, i) by bisection
            mid = (a + b) // 2
            if indices[mid] < i:
                a = mid + 1
            else:
                b = mid
        if a < indptr[j + 1] and indices[a] == i:
            if data[a] == data[k]:
                sym += 1
            if data[a] == -data[k]:
                skew += 1
            if data[a] == np.conj(data[k]):
                herm += 1
    n = max(samples, 1)
    return sym / n, skew / n, herm / n


def structural_features(A, caches=None, threads=2):
    """dict of the named features in ``FORMULAS`` (floats), plus ``seconds``.

    A: scipy.sparse matrix/array.  caches: {"L2", "L3"} bytes (default: this
    machine's, from the OS).  threads: the thread count the L2 share assumes.
    """
    t0 = time.perf_counter()
    csr = as_canonical_csr(A)
    caches = caches or _cache_sizes()
    m, n = csr.shape
    nnz = csr.nnz
    indptr, indices, data = csr.indptr, csr.indices, csr.data     # no copies
    vb = data.dtype.itemsize
    alpha, S = _sampling(m, nnz)
    par = nnz >= PARALLEL_NNZ and m >= 64
    T = get_num_threads() if par else 1
    diag_len = (m + n + 8) // 8 * 8           # bytes per thread (whole 8-byte words)
    diag = np.zeros(T * diag_len, np.uint8)
    line_shift = int(max(LINE_BYTES // vb, 1)).bit_length() - 1
    # sampled rows mark their diagonals with probability marks / 2^16: about
    # DIAG_SAMPLE_NNZ of the nonzeros the sample visits (about nnz (r + alpha) / S)
    visited = nnz * (nnz / max(m, 1) + alpha) / S
    marks = np.uint64(min(65536, int(65536 * DIAG_SAMPLE_NNZ / max(visited, 1.0)) + 1))
    if par:
        # a row costs 1, a nonzero of a visited row about 2 (the row and its predecessor)
        bounds = _chunk_bounds(indptr, m, 64, 2.0 if S == 1 else 2.0 * (nnz / m + alpha) / S)
        st = _pass_par(indptr, indices, data, m, n, line_shift, S, alpha, SAMPLE_SEED, marks,
                       bounds, diag, diag_len)
    else:
        st = _pass_ser(indptr, indices, data, m, n, line_shift, S, alpha, SAMPLE_SEED, marks, diag)
    tot = _reduce(st).tolist()
    # the words holding diagonals tot[_DLO] .. tot[_DHI] (at c - i + m)
    lo, hi = ((int(tot[_DLO]) + m, int(tot[_DHI]) + m + 1) if tot[_DHI] >= tot[_DLO]
              else (0, 0))                                       # (no visited row)
    w_lo, w_hi = lo // 8, -(-hi // 8)
    blocks = 1 if S == 1 else DIAG_BLOCKS          # exact: one count, nothing to extrapolate
    count = _diag_blocks_par if par and w_hi - w_lo > 4096 else _diag_blocks_ser
    dq = count(diag.view(np.uint64), T, diag_len // 8, w_lo, w_hi, blocks)

    f = {"rows": float(m), "cols": float(n), "nnz": float(nnz),
         "density": nnz / (m * n) if m * n else 0.0}
    f.update(_size_features(m, n, nnz, vb, caches, threads))
    s1, s2, s3 = tot[_S1], tot[_S2], tot[_S3]
    mean = s1 / m if m else 0.0
    var = max(s2 / m - mean * mean, 0.0) if m else 0.0
    std = var ** 0.5
    third = (s3 / m - 3 * mean * s2 / m + 2 * mean ** 3) if m else 0.0
    rmax = tot[_RMAX] if m else 0.0
    f.update(row_mean=mean, row_std=std, row_min=tot[_RMIN] if m else 0.0, row_max=rmax,
             row_cv=std / mean if mean else 0.0,
             row_skew=third / std ** 3 if std > 1e-12 * max(mean, 1) else 0.0,
             empty_row_share=tot[_EMPTY] / m if m else 0.0,
             max_row_share=rmax / nnz if nnz else 0.0)
    W = tot[_W]                       # estimated nnz (exact when S = 1): sums per nonzero
    rw = tot[_ROWW]                   # estimated non-empty rows: sums per row
    if nnz:
        f.update(bandwidth=tot[_REACH], profile_per_row=tot[_LEAD] / m,
                 scattering=tot[_SCAT] / rw, clustering=tot[_RUNS] / W,
                 x_lines_per_nnz=tot[_LINES] / W, x_lines_per_row=tot[_LINES] / W * nnz / m,
                 diag_dominant_share=tot[_DOM] / rw,
                 delta_index_bytes=tot[_GAPS] / W + 9.0 * m / nnz)
    else:
        f.update(bandwidth=0.0, profile_per_row=0.0, scattering=0.0, clustering=0.0,
                 x_lines_per_nnz=0.0, x_lines_per_row=0.0, diag_dominant_share=0.0,
                 delta_index_bytes=0.0)
    f["bandwidth_norm"] = f["bandwidth"] / n if n else 0.0
    f["diagonals"] = _diagonals(m, n, nnz, dq, tot[_VIS_M], tot[_CERT])
    f["diagonals_per_row"] = f["diagonals"] / m if m else 0.0
    f.update(_value_features(data))
    f["symmetric"] = _symmetry(csr, indptr, indices)
    f.update(_imbalance(indptr, threads))
    f.update(_blocks(csr, f["value_bytes"], f["clustering"]))
    f["sampled_row_stride"] = nnz / max(tot[_VIS_U] + tot[_CERT], 1.0) if S > 1 else 1.0
    f["delta_saving"] = (1 - (8 + f["delta_index_bytes"]) / (12 + 4 * m / nnz)) if nnz else 0.0
    f["seconds"] = time.perf_counter() - t0
    return f


def _sampling(m, nnz):
    """(alpha, S) of the row sample: units per row beyond its nonzeros, units per
    window; (0, 1) to inspect every row (up to EXACT_NNZ nonzeros, and where
    windows would span fewer than 2 mean rows: the sample would visit most rows
    anyway, each at more cost than in order)."""
    if nnz <= EXACT_NNZ:
        return 0, 1
    alpha = max(1, round(nnz / m))
    S = -(-(nnz + alpha * m) // SAMPLE_POINTS)
    return (0, 1) if S < 2 * (nnz / m + alpha) else (alpha, S)


def _diagonals(m, n, nnz, dq, visited_nnz, certain_nnz):
    """Occupied diagonals: exact when every row was visited.  Otherwise, per
    block of diagonals (``dq``, rows of :func:`_diag_range`), the covered ones
    plus an estimate of the rarely met ones: with q the share of their nonzeros
    the sample visited (that of the sampled rows), they hold about N = H / q
    nonzeros and P / q^2 pairs of nonzeros on one diagonal; taking their
    occupancies as Poisson (zero-truncated) of mean lam = 2 pairs / N gives
    N (1 - e^-lam) / lam diagonals.  Blocks keep lam local: diagonals far from
    the main one are shorter and emptier."""
    if dq.shape[0] == 1 and dq[0, 2] == 0:               # exact (or nothing extrapolated)
        return float(dq[0, 0])
    d, cov, h, pairs = (dq[:, k].astype(np.float64) for k in range(4))
    rest = nnz - certain_nnz
    q = min(visited_nnz / rest, 1.0) if rest > 0 else 1.0
    if not h.any() or q >= 1.0:
        return float(d.sum())
    n_low = h / q
    lam = 2.0 * pairs / (q * q) / np.maximum(n_low, 1e-300)
    low = np.where(lam < 1e-9, n_low, n_low * -np.expm1(-lam) / np.maximum(lam, 1e-9))
    est = np.maximum(cov + low, d).sum()
    return float(max(d.sum(), min(est, m + n - 1, nnz)))


#: Cost model of :func:`structural_features` (seconds), fitted to its times on
#: this project's machine (2 threads, 1k to 29M nonzeros; within 0.4-2x):
#: every row inspected (nnz <= EXACT_NNZ), a fixed part (the call, the value
#: and symmetry samples) plus a part per nonzero; sampled, a fixed part (the
#: sample's visits, the block-shape sample) plus parts per row and column
#: (the row scan, the diagonal marks) and a small one per nonzero.
FEATURES_FIXED_SECONDS = 2.6e-5
FEATURES_NNZ_SECONDS = 8.5e-9
FEATURES_SAMPLED_SECONDS = 2.1e-3
FEATURES_LINE_SECONDS = 1.25e-9
FEATURES_SAMPLED_NNZ_SECONDS = 8e-11


def feature_seconds(csr):
    """Estimated seconds of :func:`structural_features` on ``csr``."""
    m, n = csr.shape
    if _sampling(m, csr.nnz)[1] == 1:
        return FEATURES_FIXED_SECONDS + FEATURES_NNZ_SECONDS * csr.nnz
    return (FEATURES_SAMPLED_SECONDS + FEATURES_LINE_SECONDS * (m + n)
            + FEATURES_SAMPLED_NNZ_SECONDS * csr.nnz)


#: Features only the many-vector selection (k > 1) computes (:func:`vector_features`).
VECTOR_FORMULAS = {
    "spmm_bcsr_fill": "stored values (explicit zeros included) / nnz of the r x 1 block "
                      "shape spmm_bcsr chooses (r = 2..4, fewest multiply-adds plus loads of X; "
                      "sampled stretches of rows)",
    "spmm_bcsr_r": "rows of that block shape", "spmm_bcsr_c": "its columns (1)",
}


def vector_features(A):
    """dict of ``VECTOR_FORMULAS`` (floats): what the many-vector kernels need
    beyond :func:`structural_features` (a block-fill estimate on a sample)."""
    from .pool.bcsr import block_estimates
    from .pool.spmm_bcsr import spmm_shape
    csr = as_canonical_csr(A)
    if csr.nnz == 0:
        return {"spmm_bcsr_fill": 1.0, "spmm_bcsr_r": 2.0, "spmm_bcsr_c": 1.0}
    (r, c), fill, _ = spmm_shape(block_estimates(csr, 8.0, BLOCK_SAMPLE))
    return {"spmm_bcsr_fill": float(fill), "spmm_bcsr_r": float(r), "spmm_bcsr_c": float(c)}


def cheap_features(A, caches=None, threads=2):
    """The features a selection can afford on a tiny product: those of the
    shape and the row pointer (O(m), no pass over the nonzeros), with neutral
    values for the rest (x swept in order, no symmetry, value or block
    structure assumed), so that only plain CSR kernels can gain from them."""
    csr = as_canonical_csr(A)
    caches = caches or _cache_sizes()
    m, n = csr.shape
    nnz = csr.nnz
    mean = nnz / m if m else 0.0
    std, rmin, rmax, empty = _lengths(csr.indptr, mean) if m else (0.0, 0.0, 0.0, 0.0)
    vb = csr.data.dtype.itemsize
    f = {"rows": float(m), "cols": float(n), "nnz": float(nnz),
         "density": nnz / (m * n) if m * n else 0.0}
    f.update(_size_features(m, n, nnz, vb, caches, threads))
    f.update(row_mean=float(mean), row_std=std, row_max=rmax,
             row_min=rmin, row_cv=std / mean if mean else 0.0,
             empty_row_share=empty / m if m else 0.0,
             max_row_share=rmax / nnz if nnz else 0.0,
             x_lines_per_nnz=0.125, symmetric=0.0, distinct_values=float(nnz) + 65537.0,
             distinct_value_share=1.0, few_values=0.0, has_nan=0.0,
             value_bytes=float(vb), complex_values=float(csr.data.dtype.kind == "c"),
             delta_index_bytes=4.0 + 9.0 * m / max(nnz, 1),
             bcsr_bytes=f["csr_bytes"], bcsr_fill=1.0, bcsr_r=1.0, bcsr_c=1.0)
    f.update(_imbalance(csr.indptr, threads))
    return f


@njit(cache=True)
def _lengths(indptr, mean):
    """(standard deviation, min, max, zeros) of the row lengths (m >= 1), in one
    O(m) loop over the row pointer: the deviation from ``mean`` in a second sum,
    as ``np.std`` takes it."""
    m = np.uint64(indptr.shape[0] - 1)
    ss = 0.0
    rmin = np.uint64(0xFFFFFFFFFFFFFFFF)
    rmax = _U0
    empty = 0
    for i in range(m):
        r = np.uint64(indptr[i + _U1]) - np.uint64(indptr[i])
        d = float(r) - mean
        ss += d * d
        rmin = min(rmin, r)
        rmax = max(rmax, r)
        empty += r == _U0
    return (ss / float(m)) ** 0.5, float(rmin), float(rmax), float(empty)


_CACHES = []


def _cache_sizes():
    """This machine's cache sizes (read from the OS once)."""
    if not _CACHES:
        from .machine import cache_sizes
        _CACHES.append(cache_sizes())
    return _CACHES[0]


def _size_features(m, n, nnz, vb, caches, threads):
    """csr_bytes, working_set_bytes, ws_over_l2, ws_over_l3, x_over_l3 for
    values of ``vb`` bytes."""
    f = {"csr_bytes": (4.0 + vb) * nnz + 4.0 * (m + 1)}
    f["working_set_bytes"] = f["csr_bytes"] + vb * (m + n)
    f["ws_over_l2"] = f["working_set_bytes"] / (caches["L2"] * max(threads, 1))
    f["ws_over_l3"] = f["working_set_bytes"] / caches["L3"]
    f["x_over_l3"] = vb * n / caches["L3"]
    return f


def _symmetry(csr, indptr, indices, samples=512):
    """Sampled even where the file declared a symmetry: the matrix may have been
    edited since it was loaded (``csr_sym`` verifies it exactly in prepare)."""
    m, n = csr.shape
    if m != n or csr.nnz == 0:
        return 0.0
    return float(max(_mirror_shares(indptr, indices, csr.data, min(samples, csr.nnz))))


@njit(cache=True)
def _distinct(data, stride):
    """(s, distinct, NaNs) over the sample ``data[::stride]`` of s values: distinct
    counts each NaN as a value of its own (as adjacent unequal entries of the
    sorted sample did) and -0.0 as 0.0; by hashing, not sorting."""
    nnz = data.shape[0]
    s = (nnz + stride - 1) // stride
    re = np.empty(s)
    im = np.empty(s)
    nan = 0
    kept = 0
    for t in range(s):
        v = data[t * stride]
        a = v.real + 0.0                          # + 0.0: -0.0 becomes 0.0
        b = v.imag + 0.0
        if a != a or b != b:
            nan += 1
            continue
        re[kept] = a
        im[kept] = b
        kept += 1
    ka = re[:kept].view(np.uint64)
    kb = im[:kept].view(np.uint64)
    size = 16
    while size < 2 * kept:
        size *= 2
    mask = np.uint64(size - 1)
    table_a = np.empty(size, np.uint64)
    table_b = np.empty(size, np.uint64)
    used = np.zeros(size, np.bool_)
    distinct = 0
    for t in range(kept):
        x = ka[t]
        y = kb[t]
        h = _mix(x ^ _mix(y)) & mask              # (values' low bits are often all zero)
        while used[h] and not (table_a[h] == x and table_b[h] == y):
            h = (h + np.uint64(1)) & mask
        if not used[h]:
            used[h] = True
            table_a[h] = x
            table_b[h] = y
            distinct += 1
    return s, distinct + nan, nan


def _value_features(data):
    """distinct_value_share, distinct_values, few_values, has_nan, value_bytes,
    complex_values (distinct values of an evenly spaced sample)."""
    nnz = len(data)
    s, distinct, nan = _distinct(data, max(1, -(-nnz // VALUE_SAMPLE)))
    estimate = distinct if distinct <= s / 2 else nnz * distinct / s
    return {"distinct_value_share": distinct / s if s else 0.0,
            "distinct_values": float(estimate), "few_values": float(distinct <= 256),
            "has_nan": float(nan > 0), "value_bytes": float(data.dtype.itemsize),
            "complex_values": float(data.dtype.kind == "c")}


@njit(cache=True)
def _imbalance_pair(indptr, threads, row_cost):
    """threads x the heaviest share of nnz + row_cost rows, for equal row blocks
    and for blocks of equal cost (the bounds of ``partition.balanced_rows``)."""
    m = indptr.shape[0] - 1
    total = indptr[m] + row_cost * m
    if total <= 0:
        return 1.0, 1.0
    worst_even = 0.0
    worst_bal = 0.0
    lo_e = 0
    lo_b = 0
    for p in range(1, threads + 1):
        hi_e = int(round(p * m / threads))
        w = indptr[hi_e] - indptr[lo_e] + row_cost * (hi_e - lo_e)
        worst_even = max(worst_even, w)
        lo_e = hi_e
        target = p * total / threads             # first row whose cost reaches the target
        a = lo_b
        b = m
        while a < b:
            mid = (a + b) // 2
            if indptr[mid] + row_cost * mid < target:
                a = mid + 1
            else:
                b = mid
        hi_b = m if p == threads else a
        w = indptr[hi_b] - indptr[lo_b] + row_cost * (hi_b - lo_b)
        worst_bal = max(worst_bal, w)
        lo_b = hi_b
    return threads * worst_even / total, threads * worst_bal / total


def _imbalance(indptr, threads):
    """imbalance_rows and imbalance_nnz (see ``FORMULAS``)."""
    from .pool.partition import ROW_COST
    rows, nnz = _imbalance_pair(indptr, int(threads), float(ROW_COST))   # int32 or int64
    return {"imbalance_rows": float(rows), "imbalance_nnz": float(nnz)}


def _blocks(csr, value_size, clustering):
    """bcsr_bytes, bcsr_fill, bcsr_r, bcsr_c of the best block shape; skipped
    (1 x 1) when almost no two nonzeros of a row are adjacent, where no block
    shape can keep its fill low."""
    from .pool.bcsr import best_shape, block_estimates
    if clustering > BLOCKLESS_CLUSTERING:
        r, c, nbytes, fill = 1, 1, np.inf, 1.0
    else:
        (r, c), nbytes, fill = best_shape(block_estimates(csr, value_size, BLOCK_SAMPLE))
    if not np.isfinite(nbytes):
        nbytes, fill = (4.0 + value_size) * csr.nnz + 4.0 * (csr.shape[0] + 1), 1.0
    return {"bcsr_bytes": float(nbytes), "bcsr_fill": float(fill),
            "bcsr_r": float(r), "bcsr_c": float(c)}
