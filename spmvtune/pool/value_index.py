"""Value-indexed values (MB, beyond the paper; CSR-VI of Kourtis et al.).

Many matrices hold few distinct values (pattern graphs: one; stencils: a
handful).  Storing a table ``vals`` of the distinct values and an 8- or 16-bit
code per nonzero cuts the value stream from 8 to 1-2 bytes per nonzero.
"""
from functools import partial

import numpy as np
from numba import get_num_threads, njit, prange
from numba.extending import overload

from ._loops import rows_par, rows_ser, zero_of
from .csr import row_partitions
from .indices import nbytes, unsigned_csr
from .prefetch import DEFAULT_DISTANCE, check_distance
from .registry import (DTYPES, KernelSpec, KernelUnusable, Prepared, csr_bytes, register,
                       value_bytes)

MAX_DISTINCT = 1 << 16
#: Nonzeros per chunk of the parallel passes (each chunk hashes its values
#: into its own table; tables are merged, then codes remapped).
CHUNK_NNZ = 1 << 20
_FIB = np.uint64(0x9E3779B97F4A7C15)
#: Chunk statuses of :func:`_hash_chunks`.
_OK, _TOO_MANY, _NAN = 0, 1, 2


def _slot(bits, k, sign, shift):
    """Slot of the value whose bits are ``bits[k]`` in a table of
    2**(64 - shift) slots: one word (1-D bits, real values) or two ((n, 2)
    bits, complex values); -0.0 (a word of the sign bit alone) hashes as 0.0."""
    h = np.uint64(0)
    for b in np.atleast_1d(bits[k]):
        b = np.uint64(0) if b == sign else np.uint64(b)
        h = (h ^ b ^ (b >> np.uint64(29))) * _FIB
    return (h * _FIB) >> shift


@overload(_slot, inline="always")
def _slot_impl(bits, k, sign, shift):
    # -0.0 -> 0.0 without a branch: b & (0 - (b != sign)) clears the sign word.
    if bits.ndim == 1:
        def impl(bits, k, sign, shift):
            b = np.uint64(bits[k])
            b &= np.uint64(0) - np.uint64(b != sign)
            return ((b ^ (b >> np.uint64(29))) * _FIB) >> shift
    else:
        def impl(bits, k, sign, shift):
            b = np.uint64(bits[k, 0])
            b &= np.uint64(0) - np.uint64(b != sign)
            c = np.uint64(bits[k, 1])
            c &= np.uint64(0) - np.uint64(c != sign)
            h = (b ^ (b >> np.uint64(29))) * _FIB ^ c
            return ((h ^ (h >> np.uint64(29))) * _FIB) >> shift
    return impl


@njit(cache=True, nogil=True)
def _table(local, lbits, n, sign, log2):
    """A table of 2**log2 slots holding the codes of local[:n] (-1: empty)."""
    table = np.full(1 << log2, -1, np.int32)
    shift = np.uint64(64 - log2)
    mask = np.uint64((1 << log2) - 1)
    for t in range(n):
        i = _slot(lbits, t, sign, shift)
        while table[i] >= 0:
            i = (i + np.uint64(1)) & mask
        table[i] = t
    return table


@njit(cache=True, nogil=True)
def _hash_range(data, bits, sign, k0, k1, codes, local, lbits):
    """Codes (in first-seen order) of data[k0:k1] into ``codes``; the distinct
    values (-0.0 as 0.0) into ``local`` (whose bits ``lbits`` views).  Returns
    (count, status): status _TOO_MANY as soon as more than MAX_DISTINCT values
    are seen, _NAN at a NaN.  An open-addressing table, grown while half
    full, stays small (in L1) for matrices with few values; a run of equal
    values skips the hashing."""
    zero = zero_of(local, local)
    log2 = 8
    table = _table(local, lbits, 0, sign, log2)
    shift = np.uint64(64 - log2)
    mask = np.uint64((1 << log2) - 1)
    n = 0
    prev = zero
    prev_code = -1
    for k in range(np.uint64(k0), np.uint64(k1)):        # unsigned: no wraparound test
        v = data[k]
        if v == prev and prev_code >= 0:
            codes[k] = prev_code
            continue
        if v != v:
            return n, _NAN
        j = _slot(bits, k, sign, shift)
        while True:
            c = np.int64(table[j])
            if c < 0:
                if n == MAX_DISTINCT:
                    return n, _TOO_MANY
                local[n] = v + zero
                table[j] = n
                c = n
                n += 1
                if 2 * n > table.shape[0]:
                    log2 += 1
                    table = _table(local, lbits, n, sign, log2)
                    shift = np.uint64(64 - log2)
                    mask = np.uint64((1 << log2) - 1)
                break
            if local[np.uint64(c)] == v:
                break
            j = (j + np.uint64(1)) & mask
        codes[k] = c
        prev = v
        prev_code = c
    return n, _OK


@njit(cache=True, parallel=True)
def _hash_chunks(data, bits, sign, bounds, codes, local, lbits, counts, status):
    for c in prange(bounds.shape[0] - 1):
        counts[c], status[c] = _hash_range(data, bits, sign, bounds[c], bounds[c + 1],
                                           codes, local[c], lbits[c])


@njit(cache=True, nogil=True)
def _lookup_range(data, bits, sign, k0, k1, vals, table, shift, out):
    """out[k] = code of data[k] in the table of ``vals`` for k in k0:k1;
    False as soon as a value is missing from the table (or is NaN)."""
    mask = np.uint64(table.shape[0] - 1)
    prev = zero_of(vals, vals)
    prev_code = -1
    for k in range(np.uint64(k0), np.uint64(k1)):        # unsigned: no wraparound test
        v = data[k]
        if v == prev and prev_code >= 0:
            out[k] = prev_code
            continue
        j = _slot(bits, k, sign, shift)
        while True:
            c = np.int64(table[j])
            if c < 0:
                return False
            if vals[np.uint64(c)] == v:
                break
            j = (j + np.uint64(1)) & mask
        out[k] = c
        prev = v
        prev_code = c
    return True


@njit(cache=True, parallel=True)
def _lookup_chunks(data, bits, sign, bounds, vals, table, shift, out, found):
    for c in prange(bounds.shape[0] - 1):
        found[c] = _lookup_range(data, bits, sign, bounds[c], bounds[c + 1], vals, table,
                                 shift, out)


@njit(cache=True, parallel=True)
def _remap_chunks(bounds, remap, codes, out):
    for c in prange(bounds.shape[0] - 1):
        r = remap[c]
        for k in range(np.uint64(bounds[c]), np.uint64(bounds[c + 1])):
            out[k] = r[codes[k]]


def _bits(a):
    """The bits of values ``a`` (C-contiguous, any shape) as unsigned words
    (one more axis of two words for complex values), and the word of -0.0
    (the sign bit alone)."""
    word = np.dtype(np.uint32 if a.dtype in (np.float32, np.complex64) else np.uint64)
    shape = a.shape if a.itemsize == word.itemsize else a.shape + (2,)
    return a.view(word).reshape(shape), np.uint64(1 << (8 * word.itemsize - 1))


def _unusable(status):
    if (status == _NAN).any():
        raise KernelUnusable("NaN values cannot be value-indexed")
    raise KernelUnusable(f"more than {MAX_DISTINCT} distinct values "
                         "(the value index holds at most that many)")


#: Values hashed first, evenly spaced: their distinct values usually are all.
SAMPLE = 200_000


def _zero_first(vals):
    """Sorted distinct ``vals`` reordered with 0.0 first (added if absent)."""
    rest = vals[vals != 0]
    return np.concatenate([np.zeros(1, dtype=vals.dtype), rest])


def value_index(data, with_zero=False):
    """(vals, vidx): ``vals[vidx] == data``; vidx uint8 or uint16.

    data: (nnz,) of any value type; vals (the same type) holds its distinct
    values, sorted; with ``with_zero``, 0.0 comes first (code 0, added when
    ``data`` lacks it: the explicit zeros of block storage, whose codes are
    then zero-initialized).  Raises :class:`KernelUnusable` when there are
    more than 65536 distinct values (0.0 counted when added), or NaNs.
    -0.0 and 0.0 share one code.

    No sort of the nonzeros.  The distinct values of an evenly spaced sample
    usually are all of them: then one parallel pass looks each value up in
    their hash table and writes its code.  Otherwise (a value the sample
    missed) :func:`_value_index_all` hashes every value.
    """
    data = np.ascontiguousarray(data)
    nnz = len(data)
    if nnz == 0:
        return np.zeros(1, dtype=data.dtype), np.zeros(0, dtype=np.uint8)
    sample = np.ascontiguousarray(data[::max(1, nnz // SAMPLE)])
    codes = np.empty(len(sample), dtype=np.uint16)
    local = np.empty(MAX_DISTINCT, dtype=data.dtype)
    bits, sign = _bits(sample)
    n, status = _hash_range(sample, bits, sign, 0, len(sample), codes, local, _bits(local)[0])
    if status != _OK:
        _unusable(np.array([status]))
    vals = np.unique(local[:n])
    if with_zero:
        vals = _zero_first(vals)
    bounds = _chunk_bounds(nnz)
    bits = _bits(data)[0]
    if len(vals) <= MAX_DISTINCT:
        log2 = max(int(2 * len(vals) - 1).bit_length(), 1)
        table = _table(vals, _bits(vals)[0], len(vals), sign, log2)
        vidx = np.empty(nnz, dtype=np.uint8 if len(vals) <= 256 else np.uint16)
        found = np.zeros(len(bounds) - 1, dtype=np.bool_)
        _lookup_chunks(data, bits, sign, bounds, vals, table, np.uint64(64 - log2), vidx, found)
        if found.all():
            return vals, vidx
    return _value_index_all(data, bits, sign, bounds, with_zero)


def _chunk_bounds(nnz):
    n_chunks = max(1, min(-(-nnz // CHUNK_NNZ), 4 * get_num_threads()))
    return np.linspace(0, nnz, n_chunks + 1).astype(np.int64)


def _value_index_all(data, bits, sign, bounds, with_zero=False):
    """:func:`value_index` hashing every value: two parallel O(nnz) passes.
    Chunks of the values hash into their own small tables (first-seen
    codes, 16-bit) and stop at the first NaN or past MAX_DISTINCT values;
    the tables' union is sorted (at most chunks x 65536 values); then each
    chunk remaps its codes."""
    nnz = len(data)
    n_chunks = len(bounds) - 1
    codes = np.empty(nnz, dtype=np.uint16)
    local = np.empty((n_chunks, MAX_DISTINCT), dtype=data.dtype)
    counts = np.zeros(n_chunks, dtype=np.int64)
    status = np.zeros(n_chunks, dtype=np.int64)
    _hash_chunks(data, bits, sign, bounds, codes, local, _bits(local)[0], counts, status)
    if status.any():
        _unusable(status)
    vals = np.unique(np.concatenate([local[c, :counts[c]] for c in range(n_chunks)]))
    if with_zero:
        vals = _zero_first(vals)
    if len(vals) > MAX_DISTINCT:
        _unusable(status)
    order = np.argsort(vals) if with_zero else None      # vals[1:] is sorted, 0.0 aside
    code_t = np.uint8 if len(vals) <= 256 else np.uint16
    remap = np.zeros((n_chunks, MAX_DISTINCT), dtype=code_t)
    for c in range(n_chunks):
        if order is None:
            remap[c, :counts[c]] = np.searchsorted(vals, local[c, :counts[c]])
        else:
            remap[c, :counts[c]] = order[np.searchsorted(vals[order], local[c, :counts[c]])]
    vidx = np.empty(nnz, dtype=code_t)
    _remap_chunks(bounds, remap, codes, vidx)
    return np.ascontiguousarray(vals, dtype=data.dtype), vidx


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


#: setup_products: measured on the large stencils (poisson100, stencil27): csr_vi 1.3-1.8
#: baseline products, csr_vi_prefetch (plus a padded copy of the indices) 1.6-2.6.
_FACTS = dict(storage=storage, applies=applies, dtypes=DTYPES,
              c_template="csr.c")
register(KernelSpec(
    "csr_vi", ("MB",),
    "values as 8/16-bit codes into a table of distinct values",
    _prepare, siblings=("csr_delta_vi",), setup_products=2.0,
    c_defines={"SPMV_VALUE_INDEX": 1, "SPMV_UNROLL": 4}, **_FACTS))
register(KernelSpec(
    "csr_vi_prefetch", ("MB", "ML"),
    "csr_vi plus software prefetch of x (pattern graphs with scattered columns)",
    partial(_prepare, distance=DEFAULT_DISTANCE), {"distance": DEFAULT_DISTANCE},
    siblings=("csr_prefetch",), setup_products=2.5,
    c_defines={"SPMV_VALUE_INDEX": 1, "SPMV_UNROLL": 4, "SPMV_PREFETCH": DEFAULT_DISTANCE},
    **_FACTS))
