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
from numba import njit, prange

from ._loops import U1, row_sum
from .csr import row_partitions
from .indices import nbytes, unsigned_for
from .prefetch import check_distance
from .registry import KernelSpec, Prepared, index_bytes, register, value_bytes

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
        _cb_part(p, parts, n_blocks, ptr, indices, data, dist, x, y)


@njit(cache=True, nogil=True)
def _cb_ser(parts, n_blocks, ptr, indices, data, dist, x, y):
    for p in range(parts.shape[0] - 1):
        _cb_part(p, parts, n_blocks, ptr, indices, data, dist, x, y)


@njit(cache=True, parallel=True)
def _count_blocks(indptr, cols, width, n_blocks, counts):
    """counts[b * n_rows + i] = nonzeros of row i in column block b."""
    n_rows = indptr.shape[0] - 1
    for i in prange(n_rows):
        for k in range(indptr[i], indptr[i + 1]):
            counts[(cols[k] // width) * n_rows + i] += 1


@njit(cache=True, parallel=True)
def _scatter_blocks(indptr, cols, vals, width, n_blocks, ptr, out_cols, out_vals):
    """Nonzeros into (block, row, col) order; each row fills its own slots."""
    n_rows = indptr.shape[0] - 1
    for i in prange(n_rows):
        for b in range(n_blocks):
            pos = ptr[b * n_rows + i]
            for k in range(indptr[i], indptr[i + 1]):
                if cols[k] // width == b:
                    out_cols[pos] = cols[k]
                    out_vals[pos] = vals[k]
                    pos += 1


def _prepare(csr, threads, *, block_bytes=DEFAULT_BLOCK_BYTES, distance=0, wide=False):
    distance = check_distance(distance) if distance else 0
    block_bytes = int(block_bytes)
    if block_bytes < 4096:
        raise ValueError(f"block_bytes must be at least 4096, got {block_bytes}")
    n_rows, n_cols = csr.shape
    width = max(block_bytes // 8, 1)
    n_blocks = max(-(-n_cols // width), 1)
    ptr_t = unsigned_for(csr.nnz, wide)
    idx_t = unsigned_for(max(n_cols - 1, 0), wide)
    indices = np.zeros(csr.nnz + distance, dtype=idx_t)
    if n_blocks == 1:                  # already in (block, row, col) order
        ptr = csr.indptr.astype(ptr_t)
        indices[:csr.nnz] = csr.indices
        data = np.ascontiguousarray(csr.data, dtype=np.float64)
    else:
        indptr = np.asarray(csr.indptr, dtype=np.int64)
        cols = np.asarray(csr.indices, dtype=np.int64)
        counts = np.zeros(n_blocks * n_rows, dtype=np.int64)
        _count_blocks(indptr, cols, width, n_blocks, counts)
        ptr64 = np.zeros(n_blocks * n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr64[1:])
        data = np.empty(csr.nnz, dtype=np.float64)
        _scatter_blocks(indptr, cols, np.asarray(csr.data, dtype=np.float64), width, n_blocks,
                        ptr64, indices, data)
        ptr = ptr64.astype(ptr_t)
    parts = row_partitions(csr, threads, "nnz")
    run = _cb_par if threads > 1 else _cb_ser
    args = (parts, n_blocks, ptr, indices, data, np.uint64(distance))
    info = {"blocks": n_blocks, "block_columns": width}
    if distance:
        info["distance"] = distance
    return Prepared(run, args, nbytes(ptr, indices, data), info)


def _blocks(f):
    return max(-(-int(f["cols"]) // (DEFAULT_BLOCK_BYTES // 8)), 1)


def storage(f):
    """Row pointers per column block, then one index and one value per nonzero."""
    return (index_bytes(f["nnz"]) * (_blocks(f) * f["rows"] + 1)
            + (index_bytes(max(f["cols"] - 1, 0)) + value_bytes(f)) * f["nnz"])


def x_span(f):
    return min(f["cols"], DEFAULT_BLOCK_BYTES // 8)


def applies(f):
    if _blocks(f) < 2:
        return "x fits one column block (the kernel would be csr_balanced with extra passes)"
    return None


_FACTS = dict(storage=storage, x_span=x_span, applies=applies, setup_products=6.0,
              c_template="csr_colblock.c")
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
