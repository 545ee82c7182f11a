"""Software prefetch of ``x[indices[k + distance]]`` (ML).

Random column patterns leave the CPU waiting on ``x``: issuing the load of the
``x`` entry needed ``distance`` nonzeros ahead hides that latency.  On regular
matrices the extra instructions only cost time, so this must be chosen per
matrix.  Index arrays are padded with ``distance`` zeros so that the look-ahead
never leaves them.
"""
import numpy as np

from ._loops import rows_par, rows_ser
from .csr import row_partitions
from .indices import nbytes, unsigned_csr
from .registry import KernelSpec, Prepared, register

#: In nonzeros.  256 was best or within noise of the best of 16..512 on the
#: large scattered families (random columns, short rows, wide LP).
DEFAULT_DISTANCE = 256


def check_distance(distance):
    distance = int(distance)
    if not 1 <= distance <= 4096:
        raise ValueError(f"prefetch distance must be in 1..4096, got {distance}")
    return distance


def _prepare(csr, threads, *, distance=DEFAULT_DISTANCE, wide=False):
    distance = check_distance(distance)
    parts = row_partitions(csr, threads, "nnz")
    indptr, indices = unsigned_csr(csr, wide, pad=distance)
    data = np.ascontiguousarray(csr.data, dtype=np.float64)
    run = rows_par if threads > 1 else rows_ser
    args = (parts, indptr, indices, data, None, np.uint64(distance))
    return Prepared(run, args, nbytes(indptr, indices, data), {"distance": distance})


register(KernelSpec(
    "csr_prefetch", ("ML", "IMB"),
    "nnz-balanced CSR with software prefetch of x, `distance` nonzeros ahead",
    _prepare, {"distance": DEFAULT_DISTANCE}, siblings=("csr_colblock_prefetch",),
    c_template="csr.c", c_defines={"SPMV_PREFETCH": DEFAULT_DISTANCE}))
