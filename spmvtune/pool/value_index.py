"""Value-indexed values (MB, beyond the paper; CSR-VI of Kourtis et al.).

Many matrices hold few distinct values (pattern graphs: one; stencils: a
handful).  Storing a table ``vals`` of the distinct values and an 8- or 16-bit
code per nonzero cuts the value stream from 8 to 1-2 bytes per nonzero.
"""
from functools import partial

import numpy as np

from ._loops import rows_par, rows_ser
from .csr import row_partitions
from .indices import nbytes, unsigned_csr
from .prefetch import DEFAULT_DISTANCE, check_distance
from .registry import (KernelSpec, KernelUnusable, Prepared, csr_bytes, register,
                       value_bytes)

MAX_DISTINCT = 1 << 16


def _distinct(a):
    a = np.sort(a)
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = a[1:] != a[:-1]        # NaN != NaN: each NaN would count; NaNs are rare
    return a[keep]


def value_index(data):
    """(vals, vidx): ``vals[vidx] == data``; vidx uint8 or uint16.

    data: (nnz,) float64.  Raises :class:`KernelUnusable` when there are more
    than 65536 distinct values, or NaNs.  -0.0 and 0.0 share one code.
    """
    # The distinct values of an evenly spaced sample usually are all of them:
    # then one searchsorted + a check replaces sorting every value.  Only when
    # the check fails is the whole array sorted.
    vals = _distinct(data[:: max(1, len(data) // 200_000)])
    if len(vals) > MAX_DISTINCT:
        raise KernelUnusable(f"more than {MAX_DISTINCT} distinct values "
                             "(the value index holds at most that many)")
    if np.isnan(vals[-1:]).any():
        raise KernelUnusable("NaN values cannot be value-indexed")
    vidx = np.minimum(np.searchsorted(vals, data), max(len(vals) - 1, 0))
    if len(data) and not np.array_equal(vals[vidx], data):
        vals = _distinct(data)
        if len(vals) > MAX_DISTINCT:
            raise KernelUnusable(f"more than {MAX_DISTINCT} distinct values "
                                 "(the value index holds at most that many)")
        if np.isnan(vals[-1:]).any():
            raise KernelUnusable("NaN values cannot be value-indexed")
        vidx = np.searchsorted(vals, data)
    code_t = np.uint8 if len(vals) <= 256 else np.uint16
    if len(vals) == 0:
        vals = np.zeros(1)
    return np.ascontiguousarray(vals, dtype=np.float64), vidx.astype(code_t)


def _prepare(csr, threads, *, distance=0, wide=False):
    distance = check_distance(distance) if distance else 0
    vals, vidx = value_index(csr.data)
    parts = row_partitions(csr, threads, "nnz")
    indptr, indices = unsigned_csr(csr, wide, pad=distance)
    run = rows_par if threads > 1 else rows_ser
    args = (parts, indptr, indices, vals, vidx, np.uint64(distance))
    info = {"distinct_values": len(vals), "value_bytes": vidx.itemsize}
    if distance:
        info["distance"] = distance
    return Prepared(run, args, nbytes(indptr, indices, vals, vidx), info)


def code_bytes(distinct):
    """Bytes of one value code for ``distinct`` distinct values."""
    return 1 if distinct <= 256 else 2


def applies(f):
    """Usable when the (sampled) distinct values fit 16-bit codes and none is NaN."""
    if f.get("has_nan", 0.0):
        return "NaN values cannot be value-indexed"
    if f["distinct_values"] > MAX_DISTINCT:
        return f"more than {MAX_DISTINCT} distinct values"
    return None


def storage(f):
    """Row pointers, one index and one code per nonzero, the table of distinct values."""
    return (csr_bytes(f, value_size=code_bytes(f["distinct_values"]))
            + value_bytes(f) * f["distinct_values"])


_FACTS = dict(storage=storage, applies=applies, setup_products=3.0, c_template="csr.c")
register(KernelSpec(
    "csr_vi", ("MB",),
    "values as 8/16-bit codes into a table of distinct values",
    _prepare, siblings=("csr_delta_vi",),
    c_defines={"SPMV_VALUE_INDEX": 1, "SPMV_UNROLL": 4}, **_FACTS))
register(KernelSpec(
    "csr_vi_prefetch", ("MB", "ML"),
    "csr_vi plus software prefetch of x (pattern graphs with scattered columns)",
    partial(_prepare, distance=DEFAULT_DISTANCE), {"distance": DEFAULT_DISTANCE},
    siblings=("csr_prefetch",),
    c_defines={"SPMV_VALUE_INDEX": 1, "SPMV_UNROLL": 4, "SPMV_PREFETCH": DEFAULT_DISTANCE},
    **_FACTS))
