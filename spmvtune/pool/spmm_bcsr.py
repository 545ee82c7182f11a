"""Many right-hand sides, register-blocked BCSR: ``Y = A X`` with r x c blocks.

With k vectors each nonzero multiplies a slice of a row of ``X``; loading
that slice is the expensive part once ``X`` outgrows the L1.  In an r x c
block the slice of each of its c columns is loaded once and multiply-added
into r rows' accumulators held in vector registers (r <= 4, 8 columns of Y at
a time, :mod:`spmvtune.pool.simd`): r times fewer loads of ``X`` than CSR,
and one column index per block.  Block-pruned weights (4 x 4, 8 x 1 blocks)
fill their blocks exactly; elsewhere explicit zeros cost multiply-adds, so
the shape (r x 1, r = 2..4) is chosen by :func:`spmm_shape` from the fill estimated on
a sample (:func:`spmvtune.pool.bcsr.block_estimates`).

Storage is ``bcsr``'s (aligned blocks, column-major values), so a 1-D ``x``
runs the single-vector BCSR loop on it (``bcsr``'s compiled drivers).
"""
from functools import partial

import numpy as np
from numba import njit, prange

from ._loops import value_at
from .bcsr import _bcsr_par, _bcsr_ser, bcsr_encode, block_bytes, block_estimates
from .indices import nbytes
from .partition import balanced_rows
from .registry import KernelSpec, Prepared, register, value_bytes
from .simd import vfma, vzeros
from .spmm_csr import FULL, MANY, PART, kernel_values, load, store, vector_or_matrix
from .value_index import code_bytes
from .value_index import applies as vi_applies

U0, U1, U2, U3 = (np.uint64(v) for v in range(4))
W1 = np.uint64(8)
#: Block shapes for many vectors: r rows share each load of X.  Wider blocks
#: would only save column indices, which matter little once k vectors share
#: each one; r x 1 blocks fill exactly on 2 x 2, 3 x 3, 4 x 4 and 8 x 1 tiles.
SHAPES = ((2, 1), (3, 1), (4, 1))
#: Cost of loading one slice of X relative to one multiply-add of it (the
#: loads come from L2/L3 once X outgrows the L1).
X_LOAD_COST = 2.0
#: Above this cost relative to CSR (:func:`relative_cost`) the blocks are not considered.
MAX_RELATIVE_COST = 1.2


def relative_cost(shape, fill):
    """Time of the blocked product relative to CSR's: fill (1 + X_LOAD_COST / r) /
    (1 + X_LOAD_COST): the multiply-adds grow with the fill, the loads of X
    shrink with the rows sharing them."""
    r = shape[0]
    return fill * (1.0 + X_LOAD_COST / r) / (1.0 + X_LOAD_COST)


def spmm_shape(estimates):
    """(shape, fill, relative cost) of the cheapest shape of ``SHAPES``
    (estimates: {(r, c): (bytes, fill)} of :func:`block_estimates`)."""
    best = ((2, 1), np.inf, np.inf)
    for shape in SHAPES:
        fill = estimates.get(shape, (np.inf, np.inf))[1]
        cost = relative_cost(shape, fill)
        if cost < best[2]:
            best = (shape, fill, cost)
    return best


@njit(cache=True, nogil=True)
def _block_row(row, m, c0, n, part, rt, ct, b0, b1, bcol, bval, vidx, X, Y):
    """Y[row:row + R, c0:c0 + 8] (first n columns with PART) from blocks b0:b1."""
    R = len(rt)
    C = len(ct)
    Ru = np.uint64(R)
    RC = np.uint64(R * C)
    a0 = a1 = a2 = a3 = vzeros(Y)
    for b in range(b0, b1):
        col = np.uint64(bcol[b])
        v = b * RC
        for c in range(C):
            xv = load(X, col + np.uint64(c), c0, n, part)
            w = v + np.uint64(c) * Ru
            a0 = vfma(a0, value_at(bval, vidx, w), xv)
            if R > 1:
                a1 = vfma(a1, value_at(bval, vidx, w + U1), xv)
            if R > 2:
                a2 = vfma(a2, value_at(bval, vidx, w + U2), xv)
            if R > 3:
                a3 = vfma(a3, value_at(bval, vidx, w + U3), xv)
    if row < m:
        store(Y, row, c0, n, part, a0)
    if R > 1 and row + U1 < m:
        store(Y, row + U1, c0, n, part, a1)
    if R > 2 and row + U2 < m:
        store(Y, row + U2, c0, n, part, a2)
    if R > 3 and row + U3 < m:
        store(Y, row + U3, c0, n, part, a3)


@njit(cache=True, nogil=True)
def mm_blocks_part(p, parts, rt, ct, bptr, bcol, bval, vidx, X, Y):
    """Block rows parts[p]:parts[p+1] of Y = A X."""
    K = np.uint64(Y.shape[1])
    m = np.uint64(Y.shape[0])
    Ru = np.uint64(len(rt))
    for bi in range(parts[p], parts[p + 1]):
        b0 = np.uint64(bptr[bi])
        b1 = np.uint64(bptr[bi + U1])
        row = bi * Ru
        c0 = U0
        while c0 + W1 <= K:
            _block_row(row, m, c0, W1, FULL, rt, ct, b0, b1, bcol, bval, vidx, X, Y)
            c0 += W1
        if c0 < K:
            _block_row(row, m, c0, K - c0, PART, rt, ct, b0, b1, bcol, bval, vidx, X, Y)


@njit(cache=True, parallel=True)
def _mm_par(parts, rt, ct, bptr, bcol, bval, vidx, X, Y):
    for p in prange(parts.shape[0] - 1):
        mm_blocks_part(p, parts, rt, ct, bptr, bcol, bval, vidx, X, Y)


@njit(cache=True, nogil=True)
def _mm_ser(parts, rt, ct, bptr, bcol, bval, vidx, X, Y):
    for p in range(parts.shape[0] - 1):
        mm_blocks_part(p, parts, rt, ct, bptr, bcol, bval, vidx, X, Y)


_RUN_PAR = vector_or_matrix(_bcsr_par, _mm_par)
_RUN_SER = vector_or_matrix(_bcsr_ser, _mm_ser)


def _prepare(csr, threads, *, shape=None, value_indexed=False, wide=False):
    m, n = csr.shape
    if shape is None:
        R, C = spmm_shape(block_estimates(csr))[0]
    else:
        R, C = (int(v) for v in shape)
        if not (2 <= R <= 4 and C == 1):
            raise ValueError(f"block shape must be r x 1 with r in 2..4, got {R} x {C}")
    C = min(C, max(n, 1))                # a block never reaches past the last column
    bptr, bcol, bval, vals = bcsr_encode(csr, R, C, wide, value_indexed)
    fill = len(bval) / max(csr.nnz, 1)
    if value_indexed:
        vidx = bval
    else:
        vals, vidx = kernel_values(bval.astype(csr.data.dtype, copy=False)), None
    parts = balanced_rows(bptr, threads)
    run = _RUN_PAR if threads > 1 else _RUN_SER
    size = nbytes(bptr, bcol, vals) + (0 if vidx is None else vidx.nbytes)
    return Prepared(run, (parts, (0,) * R, (0,) * C, bptr, bcol, vals, vidx), size,
                    {"shape": (R, C), "fill": fill, "bytes_per_nnz": size / max(csr.nnz, 1)})


def fill(f):
    """Estimated fill of the many-vector block shape (``spmm_bcsr_fill`` of
    :func:`spmvtune.features.vector_features`; 2 when the features lack it)."""
    return float(f.get("spmm_bcsr_fill", 2.0))


def block_cost(f):
    """:func:`relative_cost` of the estimated shape (inf without the estimate)."""
    if "spmm_bcsr_fill" not in f:
        return np.inf
    return relative_cost((int(f.get("spmm_bcsr_r", 2)), 1), fill(f))


def applies(f):
    cost = block_cost(f)
    if cost > MAX_RELATIVE_COST:
        return (f"blocks would cost {cost:.2f}x CSR (fill {fill(f):.2f})" if np.isfinite(cost)
                else "block fill not estimated (features of one vector)")
    return None


def storage(f):
    """Values with their fill, one 4-byte column per block, one pointer per block row."""
    r = f.get("spmm_bcsr_r", 2.0)
    c = f.get("spmm_bcsr_c", 1.0)
    return block_bytes(f["nnz"], f["rows"], fill(f), r, c, value_bytes(f))


def work(f):
    """CSR-equivalent multiply-adds: nnz x :func:`relative_cost` (more multiply-adds
    with the fill, fewer loads of X per multiply-add with the rows of a block)."""
    cost = block_cost(f)
    return (cost if np.isfinite(cost) else 2.0) * f["nnz"]


def storage_vi(f):
    distinct = f["distinct_values"] + 1
    stored = fill(f) * f["nnz"]
    return storage(f) - (value_bytes(f) - code_bytes(distinct)) * stored + value_bytes(f) * distinct


def applies_vi(f):
    return applies(f) or vi_applies({**f, "distinct_values": f["distinct_values"] + 1})


#: setup_products: 5-8 baseline products measured on the large stencils and FEM
#: blocks: the blocks store fill x nnz values (x 1.3-1.7 on stencils).
_FACTS = dict(setup_products=8.0, c_template="spmm_bcsr.c", balance="nnz", **MANY)
register(KernelSpec(
    "spmm_bcsr", ("CMP", "MB"),
    "k vectors at once: r x 1 blocks (r = 2..4 rows share each load of X), k in vector registers",
    _prepare, {"shape": None}, storage=storage, work=work, applies=applies,
    siblings=("spmm_csr",), c_defines={"SPMV_BR": 4, "SPMV_BC": 1}, **_FACTS))
register(KernelSpec(
    "spmm_bcsr_vi", ("CMP", "MB"),
    "spmm_bcsr with values as 8/16-bit codes (block-pruned and quantized weights)",
    partial(_prepare, value_indexed=True), {"shape": None}, storage=storage_vi, work=work,
    applies=applies_vi, siblings=("spmm_bcsr",),
    c_defines={"SPMV_BR": 4, "SPMV_BC": 1, "SPMV_VALUE_INDEX": 1}, **_FACTS))
