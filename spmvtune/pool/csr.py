"""Plain CSR kernels: the baselines (MB-neutral) and the unrolled loop (CMP).

Each family is a per-partition ``_*_part`` function and two drivers: ``_par``
(``prange`` over partitions, one partition per thread) and ``_ser`` (a plain
loop, for one thread, which avoids the thread-pool launch on small matrices).
All loop arithmetic stays unsigned (``U1`` etc.); mixing uint64 with a signed
int would promote to float64 in Numba.  Both drivers pass the partition number
as ``np.uint64(p)``: Numba types a ``prange`` body with an int64 and again
with a uint64 index, so without the cast every ``_part`` function (where the
compile time goes) would be compiled twice per value type.
"""
import numpy as np
from numba import njit, prange

from ._loops import zero_of
from .indices import nbytes, unsigned_csr
from .partition import balanced_rows, even_rows
from .registry import DTYPES, KernelSpec, Prepared, register

U0, U1, U2, U3, U4 = (np.uint64(v) for v in range(5))


@njit(cache=True, nogil=True)
def _rows_part(p, parts, indptr, indices, data, x, y):
    for i in range(parts[p], parts[p + 1]):
        s = zero_of(data, x)
        for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + U1])):
            s += data[k] * x[indices[k]]
        y[i] = s


@njit(cache=True, parallel=True)
def _rows_par(parts, indptr, indices, data, x, y):
    for p in prange(parts.shape[0] - 1):
        _rows_part(np.uint64(p), parts, indptr, indices, data, x, y)


@njit(cache=True, nogil=True)
def _rows_ser(parts, indptr, indices, data, x, y):
    for p in range(parts.shape[0] - 1):
        _rows_part(np.uint64(p), parts, indptr, indices, data, x, y)


@njit(cache=True, nogil=True)
def _unroll_part(p, parts, indptr, indices, data, x, y):
    for i in range(parts[p], parts[p + 1]):
        k = np.uint64(indptr[i])
        end = np.uint64(indptr[i + U1])
        s0 = s1 = s2 = s3 = zero_of(data, x)
        while k + U4 <= end:
            s0 += data[k] * x[indices[k]]
            s1 += data[k + U1] * x[indices[k + U1]]
            s2 += data[k + U2] * x[indices[k + U2]]
            s3 += data[k + U3] * x[indices[k + U3]]
            k += U4
        while k < end:
            s0 += data[k] * x[indices[k]]
            k += U1
        y[i] = (s0 + s1) + (s2 + s3)


@njit(cache=True, parallel=True)
def _unroll_par(parts, indptr, indices, data, x, y):
    for p in prange(parts.shape[0] - 1):
        _unroll_part(np.uint64(p), parts, indptr, indices, data, x, y)


@njit(cache=True, nogil=True)
def _unroll_ser(parts, indptr, indices, data, x, y):
    for p in range(parts.shape[0] - 1):
        _unroll_part(np.uint64(p), parts, indptr, indices, data, x, y)


def row_partitions(csr, threads, balance):
    """Row bounds for ``threads`` partitions: "nnz" balanced or "rows" even."""
    if balance == "nnz":
        return balanced_rows(csr.indptr, threads)
    return even_rows(csr.shape[0], threads)


def _prepare_rows(par, ser, balance):
    def prepare(csr, threads, *, wide=False):
        threads = 1 if ser is None else threads
        parts = row_partitions(csr, threads, balance)
        indptr, indices = unsigned_csr(csr, wide)
        data = np.ascontiguousarray(csr.data)
        run = ser if threads == 1 or par is None else par
        return Prepared(run, (parts, indptr, indices, data),
                        nbytes(indptr, indices, data))
    return prepare


register(KernelSpec(
    "csr_serial", (), "one thread, plain CSR loop: the reference baseline",
    _prepare_rows(None, _rows_ser, "rows"), balance="serial", serial_only=True, shares_input=True,
    dtypes=DTYPES, one_thread_is="csr_balanced",
    c_template="csr.c", c_defines={"SPMV_SERIAL": 1, "SPMV_BALANCE": 0}))
register(KernelSpec(
    "csr_rows", (), "threads over equal row blocks: the usual parallel CSR",
    _prepare_rows(_rows_par, _rows_ser, "rows"), balance="rows", shares_input=True, dtypes=DTYPES,
    one_thread_is="csr_balanced",
    c_template="csr.c", c_defines={"SPMV_BALANCE": 0}))
register(KernelSpec(
    "csr_balanced", ("IMB",), "threads over row blocks of equal nonzero count",
    _prepare_rows(_rows_par, _rows_ser, "nnz"), siblings=("csr_unroll4",), shares_input=True,
    dtypes=DTYPES,
    c_template="csr.c", c_defines={"SPMV_BALANCE": 1}))
register(KernelSpec(
    "csr_unroll4", ("CMP",), "nnz-balanced, inner loop unrolled with 4 accumulators",
    _prepare_rows(_unroll_par, _unroll_ser, "nnz"), siblings=("csr_balanced",), shares_input=True,
    dtypes=DTYPES,
    c_template="csr.c", c_defines={"SPMV_UNROLL": 4}))
