"""Long-row splitting (IMB): threads split the *nonzeros* evenly, not the rows.

With a power-law row-length distribution one row can hold a large share of
the nonzeros; row partitions then cannot balance.  Here partition ``p`` owns
the nonzeros ``kb[p]:kb[p+1]`` (see :func:`partition.nnz_partition`): it
writes ``y[r]`` for the rows that end inside its range and leaves a partial
sum in ``tails[p]`` for the row still open at its end; the partials are added
after the parallel loop.  ``dist > 0`` adds software prefetch of ``x``.
"""
from functools import partial

import numpy as np
from numba import njit, prange

from ._loops import U1, row_sum
from .indices import nbytes, unsigned_csr
from .partition import nnz_partition
from .prefetch import DEFAULT_DISTANCE, check_distance
from .registry import KernelSpec, Prepared, register


@njit(cache=True, nogil=True)
def _split_part(p, kb, first, end, tail, indptr, indices, data, dist, tails, x, y):
    k_lo = kb[p]
    k_hi = kb[p + U1]
    # only the first row (and the tail) can start before k_lo
    k0 = k_lo
    for r in range(first[p], end[p]):
        k1 = np.uint64(indptr[r + U1])
        y[r] = row_sum(k0, k1, indices, data, None, dist, x)
        k0 = k1
    t = tail[p]
    if t < np.uint64(y.shape[0]):
        tails[p] = row_sum(k0, k_hi, indices, data, None, dist, x)


@njit(cache=True, nogil=True)
def _add_tails(tail, tails, y):
    for p in range(tail.shape[0]):
        if tail[p] < np.uint64(y.shape[0]):
            y[tail[p]] += tails[p]


@njit(cache=True, parallel=True)
def _split_par(kb, first, end, tail, indptr, indices, data, dist, tails, x, y):
    for p in prange(tail.shape[0]):
        _split_part(p, kb, first, end, tail, indptr, indices, data, dist, tails, x, y)
    _add_tails(tail, tails, y)


@njit(cache=True, nogil=True)
def _split_ser(kb, first, end, tail, indptr, indices, data, dist, tails, x, y):
    for p in range(tail.shape[0]):
        _split_part(p, kb, first, end, tail, indptr, indices, data, dist, tails, x, y)
    _add_tails(tail, tails, y)


def _prepare(csr, threads, *, distance=0, wide=False):
    distance = check_distance(distance) if distance else 0
    kb, first, end, tail = nnz_partition(csr.indptr, threads)
    indptr, indices = unsigned_csr(csr, wide, pad=distance)
    data = np.ascontiguousarray(csr.data, dtype=np.float64)
    tails = np.zeros(threads, dtype=np.float64)
    run = _split_par if threads > 1 else _split_ser
    args = (kb, first, end, tail, indptr, indices, data, np.uint64(distance), tails)
    return Prepared(run, args, nbytes(indptr, indices, data),
                    {"distance": distance} if distance else {})


register(KernelSpec(
    "csr_split", ("IMB",),
    "threads split the nonzeros evenly; rows longer than a share are split",
    _prepare, balance="split", siblings=("csr_split_prefetch",), shares_input=True,
    c_template="csr_split.c"))
register(KernelSpec(
    "csr_split_prefetch", ("IMB", "ML"),
    "csr_split plus software prefetch of x (power-law graphs)",
    partial(_prepare, distance=DEFAULT_DISTANCE), {"distance": DEFAULT_DISTANCE},
    balance="split", siblings=("csr_split",),
    c_template="csr_split.c", c_defines={"SPMV_PREFETCH": DEFAULT_DISTANCE}))
