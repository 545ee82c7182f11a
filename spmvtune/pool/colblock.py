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
from .registry import KernelSpec, Prepared, register

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


def _prepare(csr, threads, *, block_bytes=DEFAULT_BLOCK_BYTES, distance=0, wide=False):
    distance = check_distance(distance) if distance else 0
    block_bytes = int(block_bytes)
    if block_bytes < 4096:
        raise ValueError(f"block_bytes must be at least 4096, got {block_bytes}")
    n_rows, n_cols = csr.shape
    width = max(block_bytes // 8, 1)
    n_blocks = max(-(-n_cols // width), 1)
    cols = np.asarray(csr.indices)
    row_nnz = np.diff(csr.indptr)
    block = (cols // width).astype(np.int64)
    order = np.argsort(block, kind="stable")          # (block, row, col) order
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), row_nnz)
    counts = np.bincount(block * n_rows + rows, minlength=n_blocks * n_rows)
    ptr_t = unsigned_for(csr.nnz, wide)
    ptr = np.zeros(n_blocks * n_rows + 1, dtype=ptr_t)
    np.cumsum(counts, out=ptr[1:])
    idx_t = unsigned_for(max(n_cols - 1, 0), wide)
    indices = np.zeros(csr.nnz + distance, dtype=idx_t)
    indices[:csr.nnz] = cols[order]
    data = np.ascontiguousarray(csr.data[order], dtype=np.float64)
    parts = row_partitions(csr, threads, "nnz")
    run = _cb_par if threads > 1 else _cb_ser
    args = (parts, n_blocks, ptr, indices, data, np.uint64(distance))
    info = {"blocks": n_blocks, "block_columns": width}
    if distance:
        info["distance"] = distance
    return Prepared(run, args, nbytes(ptr, indices, data), info)


register(KernelSpec(
    "csr_colblock", ("ML",),
    "columns cut into blocks whose slice of x stays in cache; y swept per block",
    _prepare, {"block_bytes": DEFAULT_BLOCK_BYTES}))
register(KernelSpec(
    "csr_colblock_prefetch", ("ML",),
    "csr_colblock plus software prefetch of x within the block",
    partial(_prepare, distance=PREFETCH_DISTANCE), {"block_bytes": DEFAULT_BLOCK_BYTES, "distance": PREFETCH_DISTANCE}))
