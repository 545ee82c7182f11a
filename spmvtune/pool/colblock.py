"""Column blocking (ML, after OSKI's cache blocking).

When x is much larger than the cache and the columns are scattered, every
``x[col]`` is a trip to memory.  Cutting the columns into blocks of
``block_bytes`` of x and sweeping the matrix one column block at a time keeps
the active slice of x in the last-level cache; the price is that y is read and
written once per block (a sequential stream) and a row pointer per block.

Storage: nonzeros reordered by (block, row, col); ``ptr[b * n_rows + i]`` is
the start of row i within block b.  Threads own nnz-balanced row ranges and
sweep the blocks over them.
"""
from functools import partial

import numpy as np
from numba import get_num_threads, njit, prange

from ._loops import U1, row_sum
from .csr import row_partitions
from .indices import as_unsigned, nbytes, padded_copy, unsigned_for
from .partition import balanced_rows
from .prefetch import check_distance
from .registry import DTYPES, KernelSpec, Prepared, index_bytes, register, value_bytes

#: 8 MiB of x per block: best of 1-8 MiB on the project machine (32 MiB L3,
#: shared with other tenants).
DEFAULT_BLOCK_BYTES = 8 << 20
PREFETCH_DISTANCE = 64


@njit(cache=True, nogil=True)
def _cb_part(p, parts, n_blocks, ptr, indices, data, dist, x, y):
    n = np.uint64(y.shape[0])
    r0 = parts[p]
    r1 = parts[p + 1]
    for i in range(r0, r1):
        y[i] = 0.0
    for b in range(n_blocks):
        base = np.uint64(b) * n
        for i in range(r0, r1):
            y[i] += row_sum(np.uint64(ptr[base + i]), np.uint64(ptr[base + i + U1]),
                            indices, data, None, dist, x)


@njit(cache=True, parallel=True)
def _cb_par(parts, n_blocks, ptr, indices, data, dist, x, y):
    for p in prange(parts.shape[0] - 1):
        _cb_part(np.uint64(p), parts, n_blocks, ptr, indices, data, dist, x, y)


@njit(cache=True, nogil=True)
def _cb_ser(parts, n_blocks, ptr, indices, data, dist, x, y):
    for p in range(parts.shape[0] - 1):
        _cb_part(np.uint64(p), parts, n_blocks, ptr, indices, data, dist, x, y)


@njit(cache=True, nogil=True, inline="always")
def _block_of(col, width, shift):
    """Column block of ``col`` (uint64): a shift when the width is a power of two."""
    return col >> shift if shift < 64 else col // width


@njit(cache=True, parallel=True)
def _block_totals(indptr, cols, width, shift, bounds, totals):
    """Pass 1: totals[c, b] = nonzeros of column block b in the rows
    ``bounds[c]:bounds[c + 1]`` of chunk c (chunks in parallel)."""
    w = np.uint64(width)
    sh = np.uint64(shift)
    for c in prange(bounds.shape[0] - 1):
        t = np.zeros(totals.shape[1], np.int64)
        for k in range(np.uint64(indptr[bounds[c]]), np.uint64(indptr[bounds[c + 1]])):
            t[_block_of(np.uint64(cols[k]), w, sh)] += 1
        totals[c] = t


@njit(cache=True, parallel=True)
def _scatter_blocks(indptr, cols, vals, width, shift, bounds, starts, ptr, out_cols, out_vals):
    """Pass 2: nonzeros into (block, row, col) order.  Chunk c keeps a cursor
    per block (from ``starts[c]``): ``ptr[b * n_rows + i]`` is the cursor of
    block b when row i starts, and each entry goes to its block's cursor."""
    n_rows = np.uint64(indptr.shape[0] - 1)
    n_blocks = starts.shape[1]
    w = np.uint64(width)
    sh = np.uint64(shift)
    for c in prange(bounds.shape[0] - 1):
        pos = starts[c].astype(np.uint64)
        for i in range(np.uint64(bounds[c]), np.uint64(bounds[c + 1])):
            at = i
            for b in range(n_blocks):
                ptr[at] = pos[b]
                at += n_rows
            for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + np.uint64(1)])):
                col = np.uint64(cols[k])
                b = _block_of(col, w, sh)
                o = pos[b]
                out_cols[o] = col
                out_vals[o] = vals[k]
                pos[b] = o + np.uint64(1)
    ptr[np.uint64(n_blocks) * n_rows] = indptr[n_rows]


#: Rows per chunk of the parallel passes, at least.
CHUNK_ROWS = 1 << 14


def _prepare(csr, threads, *, block_bytes=DEFAULT_BLOCK_BYTES, distance=0, wide=False):
    distance = check_distance(distance) if distance else 0
    block_bytes = int(block_bytes)
    if block_bytes < 4096:
        raise ValueError(f"block_bytes must be at least 4096, got {block_bytes}")
    n_rows, n_cols = csr.shape
    width = max(block_bytes // csr.data.dtype.itemsize, 1)      # columns of x per block
    n_blocks = max(-(-n_cols // width), 1)
    ptr_t = unsigned_for(csr.nnz, wide)
    idx_t = unsigned_for(max(n_cols - 1, 0), wide)
    if n_blocks == 1:                  # already in (block, row, col) order
        ptr = as_unsigned(csr.indptr, ptr_t)
        indices = padded_copy(csr.indices[:csr.nnz], idx_t, distance)
        data = np.ascontiguousarray(csr.data)
    else:
        n_chunks = max(1, min(4 * get_num_threads(), n_rows // CHUNK_ROWS))
        bounds = np.unique(balanced_rows(csr.indptr, n_chunks).astype(np.int64))
        totals = np.zeros((len(bounds) - 1, n_blocks), dtype=np.int64)
        shift = width.bit_length() - 1 if width & (width - 1) == 0 else 64
        _block_totals(csr.indptr, csr.indices, width, shift, bounds, totals)
        # block-major order: block b of chunk c starts after every block < b
        # and after block b of the chunks before c
        starts = np.cumsum(totals.T.ravel()).reshape(n_blocks, -1).T - totals
        indices = np.empty(csr.nnz + distance, dtype=idx_t)
        indices[csr.nnz:] = 0
        ptr = np.empty(n_blocks * n_rows + 1, dtype=ptr_t)
        data = np.empty(csr.nnz, dtype=csr.data.dtype)
        _scatter_blocks(csr.indptr, csr.indices, csr.data, width, shift, bounds,
                        np.ascontiguousarray(starts), ptr, indices, data)
    parts = row_partitions(csr, threads, "nnz")
    run = _cb_par if threads > 1 else _cb_ser
    args = (parts, n_blocks, ptr, indices, data, np.uint64(distance))
    info = {"blocks": n_blocks, "block_columns": width}
    if distance:
        info["distance"] = distance
    return Prepared(run, args, nbytes(ptr, indices, data), info)


def _block_columns(f):
    return max(int(DEFAULT_BLOCK_BYTES // value_bytes(f)), 1)


def _blocks(f):
    return max(-(-int(f["cols"]) // _block_columns(f)), 1)


def storage(f):
    """Row pointers per column block, then one index and one value per nonzero."""
    return (index_bytes(f["nnz"]) * (_blocks(f) * f["rows"] + 1)
            + (index_bytes(max(f["cols"] - 1, 0)) + value_bytes(f)) * f["nnz"])


def x_span(f):
    return min(f["cols"], _block_columns(f))


def applies(f):
    if _blocks(f) < 2:
        return "x fits one column block (the kernel would be csr_balanced with extra passes)"
    return None


_FACTS = dict(storage=storage, x_span=x_span, applies=applies, setup_products=3.0,
              dtypes=DTYPES, c_template="csr_colblock.c")
register(KernelSpec(
    "csr_colblock", ("ML",),
    "columns cut into blocks whose slice of x stays in cache; y swept per block",
    _prepare, {"block_bytes": DEFAULT_BLOCK_BYTES}, siblings=("csr_colblock_prefetch",),
    c_defines={"SPMV_BLOCK_COLS": DEFAULT_BLOCK_BYTES // 8}, **_FACTS))
register(KernelSpec(
    "csr_colblock_prefetch", ("ML",),
    "csr_colblock plus software prefetch of x within the block",
    partial(_prepare, distance=PREFETCH_DISTANCE),
    {"block_bytes": DEFAULT_BLOCK_BYTES, "distance": PREFETCH_DISTANCE},
    siblings=("csr_prefetch",),
    c_defines={"SPMV_BLOCK_COLS": DEFAULT_BLOCK_BYTES // 8, "SPMV_PREFETCH": PREFETCH_DISTANCE},
    **_FACTS))
