"""Dense fallback: when a matrix is dense enough, BLAS ``gemv`` on the dense
array streams 8 bytes per entry instead of 12 per nonzero and vectorizes.

Uses NumPy's BLAS, limited to the operator's thread count for the call
(:func:`blas_product`).  Refused above ``MAX_DENSE_BYTES``.
"""
import numpy as np

from .registry import DTYPES, KernelSpec, KernelUnusable, Prepared, register, value_bytes

MAX_DENSE_BYTES = 1 << 30


_CONTROLLERS = None


def blas_controllers():
    """threadpoolctl's controllers of the BLAS libraries NumPy uses (cached)."""
    global _CONTROLLERS
    if _CONTROLLERS is None:
        from threadpoolctl import ThreadpoolController
        _CONTROLLERS = ThreadpoolController().select(user_api="blas").lib_controllers
    return _CONTROLLERS


def blas_product(D, threads, x, y):
    """y = D @ x (x 1-D or 2-D) with the BLAS on ``threads`` threads for the
    call (threadpoolctl's controllers, about 2 microseconds; restored after),
    so that the thread count the selector chose is the one that runs."""
    ctl = blas_controllers()
    old = [c.num_threads for c in ctl]
    for c in ctl:
        c.set_num_threads(threads)
    try:
        np.matmul(D, x, out=y)
    finally:
        for c, t in zip(ctl, old):
            c.set_num_threads(t)


def _prepare(csr, threads, *, wide=False):
    m, n = csr.shape
    size = csr.data.dtype.itemsize * m * n
    if size > MAX_DENSE_BYTES:
        raise KernelUnusable(f"dense copy would take {size / 2**20:.0f} MiB "
                             f"(limit {MAX_DENSE_BYTES >> 20} MiB)")
    D = np.zeros((m, n), dtype=csr.data.dtype)
    rows = np.repeat(np.arange(m), np.diff(csr.indptr))
    D[rows, csr.indices] = csr.data
    return Prepared(blas_product, (D, int(threads)), D.nbytes,
                    {"density": csr.nnz / max(m * n, 1)})


#: Below this density the dense product does 20x the work of the sparse one
#: and cannot win; the kernel is not considered there.
MIN_DENSITY = 0.05


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
    "dense_gemv", ("CMP",),
    "dense BLAS gemv, for matrices dense enough that it wins",
    _prepare, storage=storage, work=work, applies=applies, balance="blas",
    setup_products=3.0, dtypes=DTYPES, c_template="dense_gemv.c"))
