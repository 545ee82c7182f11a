"""Delta-compressed column indices (MB; CSR-DU of Kourtis et al., simplified).

Row ``i`` stores its first column ``first[i]`` and then the gaps between
consecutive columns.  All gaps of a row share one width, the smallest of 1, 2
or 4 bytes that holds the row's largest gap (``width[i]``); a row with one
large jump simply uses a wider width (the "escape").  The gaps of all 1-byte
rows are concatenated in ``d8``, and likewise ``d16``, ``d32``; each partition
starts with its own offsets into the three streams (``offs[p]``), so the
kernel needs no per-row offset.  Banded and blocked matrices drop from 4 to
about 1 byte of index per nonzero.

Per row: ``indptr`` (values), ``first`` (4 B), ``width`` (1 B).
"""
from functools import partial

import numpy as np
from numba import get_num_threads, njit, prange

from ._loops import U0, U1, U2, U3, U4, value_at, zero_of
from .csr import row_partitions
from .indices import U32_MAX, as_unsigned, nbytes, unsigned_for
from .partition import balanced_rows
from .registry import DTYPES, KernelSpec, KernelUnusable, Prepared, register, value_bytes
from .value_index import applies as vi_applies
from .value_index import code_bytes, value_index

WIDTHS = (1, 2, 4)
_STREAM_T = (np.uint8, np.uint16, np.uint32)


@njit(cache=True, parallel=True)
def _delta_widths(indptr, cols, bounds, first, width, counts):
    """Pass 1, chunks of rows ``bounds[c]:bounds[c + 1]`` in parallel: each
    row's first column and gap width (0: fewer than two nonzeros), and
    ``counts[c, w]`` = gaps the chunk stores at width ``WIDTHS[w]``.
    Positions are unsigned (no wraparound tests), columns int64."""
    for c in prange(bounds.shape[0] - 1):
        n1 = n2 = n4 = U0
        for i in range(np.uint64(bounds[c]), np.uint64(bounds[c + 1])):
            k0 = np.uint64(indptr[i])
            k1 = np.uint64(indptr[i + U1])
            if k1 - k0 < U2:
                first[i] = cols[k0] if k1 > k0 else 0
                width[i] = 0
                continue
            first[i] = cols[k0]
            big = 0
            prev = np.int64(cols[k0])
            for k in range(k0 + U1, k1):
                col = np.int64(cols[k])
                big = max(big, col - prev)
                prev = col
            n = k1 - k0 - U1
            if big < 256:
                width[i] = 1
                n1 += n
            elif big < 65536:
                width[i] = 2
                n2 += n
            else:
                width[i] = 4
                n4 += n
        counts[c, 0] = n1
        counts[c, 1] = n2
        counts[c, 2] = n4


@njit(cache=True, nogil=True, inline="always")
def _put_gaps(cols, k0, k1, d, o):
    prev = np.int64(cols[k0])
    for k in range(k0 + U1, k1):
        col = np.int64(cols[k])
        d[o] = col - prev
        prev = col
        o += U1
    return o


@njit(cache=True, parallel=True)
def _delta_fill(indptr, cols, bounds, width, starts, d8, d16, d32):
    """Pass 2: each chunk writes its rows' gaps from its offsets ``starts[c]``."""
    for c in prange(bounds.shape[0] - 1):
        o8 = np.uint64(starts[c, 0])
        o16 = np.uint64(starts[c, 1])
        o32 = np.uint64(starts[c, 2])
        for i in range(np.uint64(bounds[c]), np.uint64(bounds[c + 1])):
            w = width[i]
            k0 = np.uint64(indptr[i])
            k1 = np.uint64(indptr[i + U1])
            if w == 1:
                o8 = _put_gaps(cols, k0, k1, d8, o8)
            elif w == 2:
                o16 = _put_gaps(cols, k0, k1, d16, o16)
            elif w == 4:
                o32 = _put_gaps(cols, k0, k1, d32, o32)


#: Rows per chunk of the parallel encoding passes, at least.
CHUNK_ROWS = 1 << 14


def chunk_bounds(indptr, parts):
    """Row bounds of chunks for parallel passes: about 4 nnz-balanced chunks
    per thread, cut at every partition bound too (int64)."""
    n_rows = len(indptr) - 1
    n_chunks = max(1, min(4 * get_num_threads(), n_rows // CHUNK_ROWS))
    return np.union1d(balanced_rows(indptr, n_chunks).astype(np.int64),
                      np.asarray(parts, dtype=np.int64))


def delta_encode(csr, parts):
    """Encode the column indices of ``csr`` for row partitions ``parts``.

    Returns a dict: first (n_rows,) uint32, width (n_rows,) uint8 (0 for rows
    with fewer than two nonzeros), d8/d16/d32 gap streams, offs (nparts, 3)
    uint64 start offsets of each partition into the streams.  Two parallel
    O(nnz) passes over chunks of rows: widths and gap counts, then the gaps.
    """
    n_rows = csr.shape[0]
    if csr.shape[1] - 1 > U32_MAX:
        raise KernelUnusable("more than 2**32 columns: gaps may not fit 32 bits")
    bounds = chunk_bounds(csr.indptr, parts)
    first = np.empty(n_rows, dtype=np.uint32)
    width = np.empty(n_rows, dtype=np.uint8)
    counts = np.zeros((len(bounds), 3), dtype=np.int64)        # a last row of zeros
    _delta_widths(csr.indptr, csr.indices, bounds, first, width, counts)
    starts = np.zeros((len(bounds), 3), dtype=np.int64)
    np.cumsum(counts[:-1], axis=0, out=starts[1:])              # stream offsets per chunk
    streams = [np.empty(int(starts[-1, w]), dtype=t) for w, t in enumerate(_STREAM_T)]
    _delta_fill(csr.indptr, csr.indices, bounds, width, starts, *streams)
    offs = starts[np.searchsorted(bounds, np.asarray(parts[:-1], dtype=np.int64))]
    enc = {"first": first, "width": width, "offs": offs.astype(np.uint64)}
    for nbytes_, d in zip(WIDTHS, streams):
        enc[f"d{8 * nbytes_}"] = d
    return enc


@njit(cache=True, nogil=True, inline="always")
def _gap_sum(s, c, gaps, o, n, k, vals, vidx, x):
    """Continue a row at column c: n gaps from gaps[o:], values from position k.

    Unrolled by 4 with 4 accumulators (see ``_loops.row_sum``).
    """
    s1 = s2 = s3 = zero_of(vals, x)
    t = U0
    while t + U4 <= n:
        c0 = c + gaps[o + t]
        c1 = c0 + gaps[o + t + U1]
        c2 = c1 + gaps[o + t + U2]
        c = c2 + gaps[o + t + U3]
        s += value_at(vals, vidx, k + t) * x[c0]
        s1 += value_at(vals, vidx, k + t + U1) * x[c1]
        s2 += value_at(vals, vidx, k + t + U2) * x[c2]
        s3 += value_at(vals, vidx, k + t + U3) * x[c]
        t += U4
    while t < n:
        c += gaps[o + t]
        s += value_at(vals, vidx, k + t) * x[c]
        t += U1
    return (s + s1) + (s2 + s3)


@njit(cache=True, nogil=True)
def _delta_part(p, parts, indptr, first, width, d8, d16, d32, offs, vals, vidx, x, y):
    o8, o16, o32 = offs[p, 0], offs[p, 1], offs[p, 2]
    for i in range(parts[p], parts[p + 1]):
        k0 = np.uint64(indptr[i])
        k1 = np.uint64(indptr[i + U1])
        if k0 == k1:
            y[i] = 0.0
            continue
        c = np.uint64(first[i])
        s = value_at(vals, vidx, k0) * x[c]
        n = k1 - k0 - U1
        w = width[i]
        if w == 1:
            s = _gap_sum(s, c, d8, o8, n, k0 + U1, vals, vidx, x)
            o8 += n
        elif w == 2:
            s = _gap_sum(s, c, d16, o16, n, k0 + U1, vals, vidx, x)
            o16 += n
        elif w == 4:
            s = _gap_sum(s, c, d32, o32, n, k0 + U1, vals, vidx, x)
            o32 += n
        y[i] = s


@njit(cache=True, parallel=True)
def _delta_par(parts, indptr, first, width, d8, d16, d32, offs, vals, vidx, x, y):
    for p in prange(parts.shape[0] - 1):
        _delta_part(np.uint64(p), parts, indptr, first, width, d8, d16, d32, offs, vals, vidx, x, y)


@njit(cache=True, nogil=True)
def _delta_ser(parts, indptr, first, width, d8, d16, d32, offs, vals, vidx, x, y):
    for p in range(parts.shape[0] - 1):
        _delta_part(np.uint64(p), parts, indptr, first, width, d8, d16, d32, offs, vals, vidx, x, y)


def _prepare(csr, threads, *, value_indexed=False, wide=False):
    parts = row_partitions(csr, threads, "nnz")
    enc = delta_encode(csr, parts)
    indptr = as_unsigned(csr.indptr, unsigned_for(csr.nnz, wide))
    if value_indexed:
        vals, vidx = value_index(csr.data)
    else:
        vals, vidx = np.ascontiguousarray(csr.data), None
    streams = (enc["d8"], enc["d16"], enc["d32"])
    run = _delta_par if threads > 1 else _delta_ser
    args = (parts, indptr, enc["first"], enc["width"], *streams, enc["offs"], vals, vidx)
    index_bytes = nbytes(indptr, enc["first"], enc["width"], *streams)
    value_bytes = nbytes(vals) + (0 if vidx is None else vidx.nbytes)
    nnz = max(csr.nnz, 1)
    csr_index_bytes = 4 * csr.nnz + 4 * (csr.shape[0] + 1)
    info = {"index_bytes_per_nnz": index_bytes / nnz,
            "csr_index_bytes_per_nnz": csr_index_bytes / nnz,
            "rows_by_width": dict(zip((0, 1, 2, 4), np.bincount(enc["width"], minlength=5)[
                [0, 1, 2, 4]].tolist()))}
    return Prepared(run, args, index_bytes + value_bytes, info)


def storage(f, value_size=None):
    """The gap streams and per-row data (``delta_index_bytes`` per nonzero, which
    counts the 9 bytes per row) plus the values."""
    v = value_bytes(f) if value_size is None else value_size
    return (f["delta_index_bytes"] + v) * f["nnz"]


def storage_vi(f):
    return storage(f, code_bytes(f["distinct_values"])) + value_bytes(f) * f["distinct_values"]


def applies(f):
    if f["cols"] - 1 > U32_MAX:
        return "more than 2**32 columns: gaps may not fit 32 bits"
    return None


def applies_vi(f):
    return applies(f) or vi_applies(f)


_NOTE = "gaps stored per row at 1/2/4 bytes after an absolute first column"
register(KernelSpec(
    "csr_delta", ("MB",),
    "column indices as 8/16/32-bit gaps chosen per row",
    _prepare, storage=storage, applies=applies, setup_products=3.0,
    siblings=("csr_delta_vi",), dtypes=DTYPES, c_template="csr_delta.c", c_note=_NOTE))
register(KernelSpec(
    "csr_delta_vi", ("MB",),
    "csr_delta with value-indexed values: about 2 bytes per nonzero on stencils",
    partial(_prepare, value_indexed=True), storage=storage_vi, applies=applies_vi,
    setup_products=4.0, siblings=("csr_vi",), dtypes=DTYPES, c_template="csr_delta.c",
    c_defines={"SPMV_VALUE_INDEX": 1}, c_note=_NOTE))
