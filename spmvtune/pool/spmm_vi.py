"""Many right-hand sides with value-indexed values (pruned and quantized weights).

Quantized networks hold a few distinct weights (16 or 256 levels): the values
become 8/16-bit codes into a table (as ``csr_vi``), which cuts the matrix
stream from 12 to 5-6 bytes per nonzero.  With k vectors the matrix is read
once for all of them, so this pays for small k, where the product is still
memory-bound.  The kernel is :mod:`spmvtune.pool.spmm_csr`'s with codes.
"""
from .csr import row_partitions
from .indices import nbytes, unsigned_csr
from .registry import KernelSpec, Prepared, register
from .spmm_csr import MANY, RUN_PAR, RUN_SER, U0
from .value_index import applies, storage, value_index


def _prepare(csr, threads, *, wide=False):
    vals, vidx = value_index(csr.data)
    parts = row_partitions(csr, threads, "nnz")
    indptr, indices = unsigned_csr(csr, wide)
    run = RUN_PAR if threads > 1 else RUN_SER
    return Prepared(run, (parts, indptr, indices, vals, vidx, U0),
                    nbytes(indptr, indices, vals, vidx),
                    {"distinct_values": len(vals), "value_bytes": vidx.itemsize})


register(KernelSpec(
    "spmm_vi", ("MB",),
    "spmm_csr with values as 8/16-bit codes into a table (quantized weights)",
    _prepare, storage=storage, applies=applies, setup_products=2.0, siblings=("spmm_csr",),
    c_template="spmm_csr.c", c_defines={"SPMV_VALUE_INDEX": 1}, **MANY))
