"""Dense fallback for many right-hand sides: BLAS ``gemm`` (``gemv`` for a 1-D x).

A pruned layer that keeps a large share of its weights is still a dense
product to the hardware: ``gemm`` reuses each loaded block of the matrix for
many vectors at the machine's peak multiply-add rate, where a sparse kernel
pays an index and an indirect load per nonzero.  Above a density that depends
on the shape, k and the machine (the crossover, :mod:`spmvtune.crossover`),
the dense product wins; the cost model predicts it from the measured dense
rate (``MachineProfile.dense_rate``).

Runs NumPy's ``matmul`` with the BLAS library limited to the operator's thread
count for the call (:func:`spmvtune.pool.dense.blas_product`).  Refused above
``MAX_DENSE_BYTES`` of dense storage.
"""
import numpy as np

from .dense import MAX_DENSE_BYTES, blas_product
from .registry import ANY_VECTORS, KernelSpec, KernelUnusable, Prepared, register, value_bytes

#: Below this density the dense product does 50x the multiply-adds of the
#: sparse one: it cannot win at any k.
MIN_DENSITY = 0.02
#: OpenBLAS's idle threads busy-wait about this long after a call (its
#: thread timeout), on the cores whoever runs next needs: timings that follow
#: a BLAS call pause this long first (as for Intel OpenMP's spinning threads).
#: Measured: a 2-thread sparse product run 0-100 ms after dense BLAS took 2x
#: its time, from 200 ms on its steady time (after the first product).
BLAS_SPIN_SECONDS = 0.25
#: The call of the operator: y = D @ x on the operator's threads.
_product = blas_product


def densify(csr, dtype=None):
    """The matrix as a C-contiguous dense array (float64, or float32 for float32 values)."""
    m, n = csr.shape
    dtype = dtype or (np.float32 if csr.data.dtype == np.float32 else np.float64)
    if np.dtype(dtype).itemsize * m * n > MAX_DENSE_BYTES:
        raise KernelUnusable(f"dense copy would take {np.dtype(dtype).itemsize * m * n / 2**20:.0f}"
                             f" MiB (limit {MAX_DENSE_BYTES >> 20} MiB)")
    D = np.zeros((m, n), dtype=dtype)
    rows = np.repeat(np.arange(m), np.diff(csr.indptr))
    D[rows, csr.indices[:csr.nnz]] = csr.data[:csr.nnz]
    return D


def _prepare(csr, threads, *, wide=False):
    D = densify(csr)
    m, n = csr.shape
    return Prepared(_product, (D, int(threads)), D.nbytes, {"density": csr.nnz / max(m * n, 1)})


def storage(f):
    return value_bytes(f) * f["rows"] * f["cols"]


def work(f):
    return f["rows"] * f["cols"]


def applies(f):
    if storage(f) > MAX_DENSE_BYTES:
        return (f"dense copy would take {storage(f) / 2**20:.0f} MiB "
                f"(limit {MAX_DENSE_BYTES >> 20} MiB)")
    if f["density"] < MIN_DENSITY:
        return f"density {f['density']:.2g} < {MIN_DENSITY}: the dense product cannot win"
    return None


register(KernelSpec(
    "dense_mm", ("CMP",),
    "dense BLAS gemm on k vectors at once, for layers dense enough that it wins",
    _prepare, storage=storage, work=work, applies=applies, balance="blas", setup_products=3.0,
    c_template="dense_mm.c", max_vectors=ANY_VECTORS, min_vectors=2,
    dtypes=("float64", "float32"), c_dtypes=("float64",)))
