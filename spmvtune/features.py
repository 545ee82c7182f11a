"""Structural features of a sparse matrix, from one O(nnz) pass (sampled rows
beyond ``EXACT_NNZ`` nonzeros).

Notation: the matrix is m x n with nnz nonzeros of v bytes each (4 float32,
8 float64 or complex64, 16 complex128); row i has r_i nonzeros at sorted
columns c_i1 < ... < c_ir; a cache line holds L = 64 / v values of x, so
column c lies on line c // L.  Every feature is a plain float in the
dict :func:`structural_features` returns; its formula is in ``FORMULAS``
(shown by ``spmvtune analyze`` and the docs).
"""
import time

import numpy as np
from numba import njit, prange

from .validate import as_canonical_csr

LINE_BYTES = 64   # bytes of a cache line
#: Up to this many nonzeros every row is inspected; beyond, a random 1/s of
#: the rows (s = ceil(nnz / EXACT_NNZ)) for the per-nonzero statistics (runs,
#: gaps, x lines, dominance, diagonals), which keeps the pass to a few products.
EXACT_NNZ = 2_000_000

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
    "scattering": "mean over non-empty rows of r_i / (c_ir - c_i1 + 1): 1 = dense rows",
    "clustering": "(number of runs of consecutive columns) / nnz: 1 = no two adjacent",
    "x_lines_per_nnz": "(1/nnz) sum_i #(lines of row i not used by row i-1): estimated x misses",
    "x_lines_per_row": "the same sum / m",
    "diagonals": "number of distinct c - i over the (sampled rows') nonzeros: occupied diagonals",
    "diagonals_per_row": "diagonals / m",
    "diag_dominant_share": "#{i : |a_ii| >= sum_{j != i} |a_ij|} / m",
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
                         "largest gap + 9 B of row data, over nnz",
    "delta_saving": "1 - (8 + delta_index_bytes) / (12 + 4 m / nnz): share of CSR bytes saved",
    "sampled_row_stride": "s: per-nonzero statistics use a random 1/s of the rows (1 = exact)",
}


def _row_summary_impl(indptr, indices, n_rows, n_cols, n_chunks):
    """O(1) per row over every row, as per-chunk partials ``(n_chunks, 8)``:
    sum r, sum r^2, sum r^3, min r, max r, empty rows, max |c - i n/m| over the
    row's first and last column (bandwidth), sum max(0, i n/m - c_i1) (profile)."""
    out = np.zeros((n_chunks, 8))
    scale = n_cols / max(n_rows, 1)
    for ch in prange(n_chunks):
        lo = ch * n_rows // n_chunks
        hi = (ch + 1) * n_rows // n_chunks
        s1 = s2 = s3 = empty = reach = lead = 0.0
        rmin = np.inf
        rmax = 0.0
        for i in range(lo, hi):
            k0 = indptr[i]
            k1 = indptr[i + 1]
            r = float(k1 - k0)
            s1 += r
            s2 += r * r
            s3 += r * r * r
            rmin = min(rmin, r)
            rmax = max(rmax, r)
            if k1 == k0:
                empty += 1.0
                continue
            centre = i * scale
            first = indices[k0]
            reach = max(reach, abs(first - centre), abs(indices[k1 - 1] - centre))
            lead += max(0.0, centre - first)
        out[ch, 0] = s1
        out[ch, 1] = s2
        out[ch, 2] = s3
        out[ch, 3] = rmin
        out[ch, 4] = rmax
        out[ch, 5] = empty
        out[ch, 6] = reach
        out[ch, 7] = lead
    return out


def _row_pass_impl(indptr, indices, data, n_rows, rows, line_values, runs, span, new_lines,
                   dom, width, diag_seen):
    """Per-row statistics of the rows ``rows`` (all, or a sorted random sample),
    one parallel pass over their nonzeros.  Outputs have one entry per row of
    ``rows``: runs of consecutive columns, column span, x lines row i-1 did not
    touch (``line_values`` values per line), diagonal dominance, delta width
    (0/1/2/4 bytes)."""
    for t in prange(rows.shape[0]):
        i = rows[t]
        k0 = indptr[i]
        k1 = indptr[i + 1]
        if k1 == k0:
            continue
        r = 1
        g = 0
        diag = 0.0
        off = 0.0
        for k in range(k0, k1):
            c = indices[k]
            if k > k0:
                d = c - indices[k - 1]
                if d != 1:
                    r += 1
                if d > g:
                    g = d
            if c == i:
                diag = abs(data[k])
            else:
                off += abs(data[k])
            diag_seen[c - i + n_rows] = True
        runs[t] = r
        span[t] = indices[k1 - 1] - indices[k0] + 1
        dom[t] = diag >= off
        width[t] = 0 if k1 - k0 < 2 else (1 if g < 256 else (2 if g < 65536 else 4))
        # x lines of row i that row i-1 did not touch (both sorted: a merge)
        p1 = k0
        q = indptr[i - 1] if i > 0 else k0
        prev_line = -1
        fresh = 0
        for k in range(k0, k1):
            line = indices[k] // line_values
            if line == prev_line:
                continue
            prev_line = line
            while q < p1 and indices[q] // line_values < line:
                q += 1
            if not (q < p1 and indices[q] // line_values == line):
                fresh += 1
        new_lines[t] = fresh


_row_summary_par = njit(cache=True, parallel=True)(_row_summary_impl)
_row_summary_ser = njit(cache=True)(_row_summary_impl)
_row_pass_par = njit(cache=True, parallel=True)(_row_pass_impl)
_row_pass_ser = njit(cache=True)(_row_pass_impl)
#: Below this many nonzeros the passes run serially: a parallel launch costs
#: more than it saves.
PARALLEL_NNZ = 200_000
#: Values sampled for the distinct-value features.
VALUE_SAMPLE = 8192
#: Entries sampled (in stretches of rows) to estimate block fill.
BLOCK_SAMPLE = 32_768
#: Above this share of runs per nonzero, block shapes are not estimated.
BLOCKLESS_CLUSTERING = 0.9


@njit(cache=True)
def _mirror_shares(indptr, indices, data, ks):
    """(symmetric, skew, hermitian) shares of the entries ks: (i, j) whose
    (j, i) holds the same value, its negation, or its conjugate."""
    n_rows = indptr.shape[0] - 1
    sym = 0
    skew = 0
    herm = 0
    for k in ks:
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
    n = max(len(ks), 1)
    return sym / n, skew / n, herm / n


def structural_features(A, caches=None, threads=2):
    """dict of the named features in ``FORMULAS`` (floats), plus ``seconds``.

    A: scipy.sparse matrix/array.  caches: {"L2", "L3"} bytes (default: this
    machine's, from the OS).  threads: the thread count the L2 share assumes.
    """
    from .machine import cache_sizes
    t0 = time.perf_counter()
    csr = as_canonical_csr(A)
    caches = caches or cache_sizes()
    m, n = csr.shape
    nnz = csr.nnz
    indptr, indices = csr.indptr, csr.indices          # int32 or int64, no copies
    par = nnz >= PARALLEL_NNZ
    part = (_row_summary_par if par else _row_summary_ser)(indptr, indices, m, n,
                                                           64 if par and m >= 64 else 1)
    stride = max(1, -(-nnz // EXACT_NNZ))
    if stride == 1:
        rows = np.arange(m)
    else:       # one random row per window of `stride` rows: a fixed stride aliases
        starts = np.arange(0, m, stride)                 # with block structure
        rows = starts + np.random.default_rng(0).integers(0, stride, size=len(starts))
        rows = np.minimum(rows, m - 1)
    n_s = len(rows)
    runs = np.zeros(n_s, np.int64)
    span = np.zeros(n_s, np.int64)
    new_lines = np.zeros(n_s, np.int64)
    dom = np.zeros(n_s, np.bool_)
    width = np.zeros(n_s, np.int8)
    diag_seen = np.zeros(m + n + 1, np.bool_)
    vb = csr.data.dtype.itemsize
    (_row_pass_par if par else _row_pass_ser)(indptr, indices, csr.data, m, rows,
                                              max(LINE_BYTES // vb, 1), runs, span,
                                              new_lines, dom, width, diag_seen)
    r_s = (indptr[rows + 1] - indptr[rows]).astype(np.int64)   # lengths of the sampled rows
    nnz_s = max(int(r_s.sum()), 1)

    f = {"rows": float(m), "cols": float(n), "nnz": float(nnz),
         "density": nnz / (m * n) if m * n else 0.0}
    f.update(_size_features(m, n, nnz, vb, caches, threads))
    nz_s = r_s > 0
    s1, s2, s3 = part[:, 0].sum(), part[:, 1].sum(), part[:, 2].sum()
    mean = s1 / m if m else 0.0
    var = max(s2 / m - mean * mean, 0.0) if m else 0.0
    std = var ** 0.5
    third = (s3 / m - 3 * mean * s2 / m + 2 * mean ** 3) if m else 0.0
    rmax = part[:, 4].max() if m else 0.0
    f.update(row_mean=float(mean), row_std=float(std),
             row_min=float(part[:, 3].min()) if m else 0.0, row_max=float(rmax),
             row_cv=float(std / mean) if mean else 0.0,
             row_skew=float(third / std ** 3) if std > 1e-12 * max(mean, 1) else 0.0,
             empty_row_share=float(part[:, 5].sum() / m) if m else 0.0,
             max_row_share=float(rmax / nnz) if nnz else 0.0)
    if nnz:
        f["bandwidth"] = float(part[:, 6].max())
        f["profile_per_row"] = float(part[:, 7].sum() / m)
        f["scattering"] = float(np.mean(r_s[nz_s] / span[nz_s])) if nz_s.any() else 0.0
        f["clustering"] = float(runs.sum() / nnz_s)
    else:
        f.update(bandwidth=0.0, profile_per_row=0.0, scattering=0.0, clustering=0.0)
    f["bandwidth_norm"] = f["bandwidth"] / n if n else 0.0
    f["x_lines_per_nnz"] = float(new_lines.sum() / nnz_s) if nnz else 0.0
    f["x_lines_per_row"] = float(new_lines.sum() / n_s) if m else 0.0
    f["diagonals"] = float(diag_seen.sum())
    f["diagonals_per_row"] = f["diagonals"] / m if m else 0.0
    f["diag_dominant_share"] = float(np.mean(dom[nz_s])) if nz_s.any() else 0.0
    f.update(_value_features(csr.data))
    f["symmetric"] = _symmetry(csr, indptr, indices)
    f.update(_imbalance(indptr, threads))
    f.update(_blocks(csr, f["value_bytes"], f["clustering"]))
    gap_bytes = float(np.sum(width.astype(np.int64) * np.maximum(r_s - 1, 0)))
    f["delta_index_bytes"] = (gap_bytes + 9.0 * n_s) / nnz_s if nnz else 0.0
    f["sampled_row_stride"] = float(stride)
    f["delta_saving"] = (1 - (8 + f["delta_index_bytes"]) / (12 + 4 * m / nnz)) if nnz else 0.0
    f["seconds"] = time.perf_counter() - t0
    return f


#: Cost model of :func:`structural_features` (seconds): a fixed part (dispatch,
#: sorting the value sample) plus a part per nonzero (the passes), measured here.
FEATURES_FIXED_SECONDS = 3e-4
FEATURES_NNZ_SECONDS = 7e-9


def feature_seconds(csr):
    """Estimated seconds of :func:`structural_features` on ``csr``."""
    return FEATURES_FIXED_SECONDS + FEATURES_NNZ_SECONDS * min(csr.nnz, 2 * EXACT_NNZ)


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
    from .machine import cache_sizes
    csr = as_canonical_csr(A)
    caches = caches or cache_sizes()
    m, n = csr.shape
    nnz = csr.nnz
    lengths = np.diff(np.asarray(csr.indptr))
    mean = nnz / m if m else 0.0
    std = float(lengths.std()) if m else 0.0
    rmax = float(lengths.max()) if m else 0.0
    vb = csr.data.dtype.itemsize
    f = {"rows": float(m), "cols": float(n), "nnz": float(nnz),
         "density": nnz / (m * n) if m * n else 0.0}
    f.update(_size_features(m, n, nnz, vb, caches, threads))
    f.update(row_mean=float(mean), row_std=std, row_max=rmax,
             row_min=float(lengths.min()) if m else 0.0,
             row_cv=std / mean if mean else 0.0,
             empty_row_share=float(np.mean(lengths == 0)) if m else 0.0,
             max_row_share=rmax / nnz if nnz else 0.0,
             x_lines_per_nnz=0.125, symmetric=0.0, distinct_values=float(nnz) + 65537.0,
             distinct_value_share=1.0, few_values=0.0, has_nan=0.0,
             value_bytes=float(vb), complex_values=float(csr.data.dtype.kind == "c"),
             delta_index_bytes=4.0 + 9.0 * m / max(nnz, 1),
             bcsr_bytes=f["csr_bytes"], bcsr_fill=1.0, bcsr_r=1.0, bcsr_c=1.0)
    f.update(_imbalance(csr.indptr, threads))
    return f


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
    ks = np.linspace(0, csr.nnz - 1, min(samples, csr.nnz)).astype(np.int64)
    return float(max(_mirror_shares(indptr, indices, csr.data, ks)))


def _value_features(data):
    """distinct_value_share, distinct_values, few_values, has_nan, value_bytes,
    complex_values."""
    nnz = len(data)
    sample = np.sort(data[:: max(1, -(-nnz // VALUE_SAMPLE))])
    s = len(sample)
    distinct = int(np.count_nonzero(sample[1:] != sample[:-1]) + 1) if s else 0
    has_nan = bool(s) and bool(np.isnan(sample[-1]))
    estimate = distinct if distinct <= s / 2 else nnz * distinct / s
    return {"distinct_value_share": distinct / s if s else 0.0,
            "distinct_values": float(estimate), "few_values": float(distinct <= 256),
            "has_nan": float(has_nan), "value_bytes": float(data.dtype.itemsize),
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
    rows, nnz = _imbalance_pair(np.asarray(indptr, dtype=np.int64), int(threads), float(ROW_COST))
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
