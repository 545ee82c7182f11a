"""Input validation: anything a user passes becomes a canonical :class:`CSR` once."""
import numpy as np
import scipy.sparse as sp
from numba import njit

from .pool.registry import CSR, DTYPES


def rounding_eps(*dtypes):
    """Machine epsilon of the least precise of ``dtypes`` (float32 / complex64:
    1.2e-7; float64 / complex128: 2.2e-16)."""
    return max(float(np.finfo(d if np.issubdtype(d, np.inexact) else np.float64).eps)
               for d in map(np.dtype, dtypes))


def first_mismatch(y, A, x, ref=None):
    """The first row where ``y`` differs from ``A @ x`` by more than any
    summation order can (4 eps (row nnz + 1) sum |a x|, eps of the least
    precise of y and the reference), or None.
    A: scipy.sparse CSR; ref: ``A @ x`` when already computed.
    Non-finite results (NaN or Inf in A or x, or an overflow) match where
    SciPy's are non-finite too, or where the bound itself overflows: their
    exact value depends on the summation order."""
    ref = A @ x if ref is None else ref
    eps = rounding_eps(y.dtype, ref.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        scale = (abs(A) @ np.abs(x)).astype(np.float64)
        tol = 4 * eps * (np.diff(A.indptr) + 1) * scale + 1e-300
        bad = ~(np.abs(y - ref) <= tol)
    if bad.any():
        unbounded = ~np.isfinite(tol) | (~np.isfinite(ref) & ~np.isfinite(y))
        bad &= ~unbounded
    return int(np.argmax(bad)) if bad.any() else None


def canonical_dtype(dtype):
    """The value type spmvtune runs for values of ``dtype``: float32, float64,
    complex64 and complex128 are kept; bool and integers become float64.
    TypeError for the rest (long double, ...)."""
    dtype = np.dtype(dtype)
    if dtype.name in DTYPES:
        return dtype
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(f"{dtype.name} values are not supported (spmvtune runs "
                    f"{', '.join(DTYPES)}); convert the matrix, e.g. A.astype(np.float64)")


def as_value_type(A, dtype):
    """``A`` converted to ``dtype`` (one of spmvtune's value types); a real
    matrix made complex keeps a zero imaginary part, a complex one made real
    is refused (that would drop its imaginary part)."""
    dtype = np.dtype(dtype)
    if dtype.name not in DTYPES:
        raise ValueError(f"value type must be one of {', '.join(DTYPES)}, got {dtype.name}")
    if A.dtype.kind == "c" and dtype.kind != "c":
        raise ValueError(f"a {A.dtype.name} matrix cannot be converted to {dtype.name} "
                         "(its imaginary part would be dropped)")
    info = getattr(A, "info", None)
    B = A.astype(dtype)
    if info is not None:
        B.info = info
    return B


def as_canonical_csr(A):
    """A scipy.sparse matrix/array -> :class:`CSR` (sorted, no duplicates).

    Values keep their type when it is float32, float64, complex64 or
    complex128; bool and integer values become float64 (:func:`canonical_dtype`).
    Never modifies ``A``.  Every index array is checked first
    (:func:`as_checked_csr`).  The symmetry recorded by :func:`spmvtune.load`
    (``A.info.symmetry``) is carried along as a hint (kernels that rely on
    symmetry verify it).  A :class:`CSR` is already canonical and is returned
    as it is, so internal callers convert once.
    """
    if isinstance(A, CSR):
        return A
    info = getattr(A, "info", None)
    symmetry = getattr(info, "symmetry", None)
    C = as_checked_csr(A)
    return CSR(tuple(int(s) for s in C.shape), C.indptr, C.indices,
               np.ascontiguousarray(C.data), symmetry)


def as_checked_csr(A):
    """A scipy.sparse matrix/array -> ``scipy.sparse.csr_array`` (values of
    :func:`canonical_dtype`, sorted indices, duplicates summed), never
    modifying ``A``.

    Every index array is checked before SciPy's compiled conversions see it
    (an index out of range there reads or writes out of bounds): CSR/CSC/BSR
    row pointers and indices in one Numba pass, COO coordinates by their
    range; whether indices are sorted and unique is computed, not taken from
    the matrix's flags.  Raises TypeError for non-sparse input or values of
    another type and ValueError naming the first bad entry.
    """
    if not sp.issparse(A):
        raise TypeError(f"expected a scipy.sparse matrix or array, got {type(A).__name__}"
                        " (convert dense arrays with scipy.sparse.csr_array)")
    if A.ndim != 2:
        raise ValueError(f"expected a 2-D sparse matrix, got {A.ndim}-D")
    if not (np.issubdtype(A.dtype, np.number) or A.dtype == np.bool_):
        raise TypeError(f"matrix values must be numbers, got dtype {A.dtype}")
    dtype = canonical_dtype(A.dtype)
    m, n = (int(s) for s in A.shape)
    fmt = A.format
    if fmt in ("csr", "csc"):
        major, minor = (m, n) if fmt == "csr" else (n, m)
        canonical = _check_compressed(A.indptr, A.indices, A.data, major, minor, fmt)
        C = A if fmt == "csr" else A.tocsr()
        if fmt == "csc":
            canonical = _check_compressed(C.indptr, C.indices, C.data, m, n, "csr")
    else:
        if fmt == "bsr":
            _check_bsr(A)
        elif fmt == "coo":
            _check_coo(A)
        C = A.tocsr()
        canonical = _check_compressed(C.indptr, C.indices, C.data, m, n, "csr")
    if not isinstance(C, sp.csr_array):
        C = sp.csr_array(C)                   # shares the arrays
    if C.dtype != dtype:
        C = C.astype(dtype)
    if not canonical:
        C = C.copy() if C is A or C.indices is getattr(A, "indices", None) else C
        C.has_sorted_indices = False          # computed above, not trusted from the flags
        C.has_canonical_format = False
        C.sum_duplicates()
    return C


@njit(cache=True, nogil=True)
def _compressed_status(indptr, indices, n_minor):
    """(status, position, canonical) of compressed row (or column) arrays:
    status 0 fine, 1 indptr[0] != 0, 2 indptr decreases after major index
    ``position``, 3 indptr points past the indices there, 4 the index at
    ``position`` is outside [0, n_minor)."""
    n_major = indptr.shape[0] - 1
    n_idx = indices.shape[0]
    if indptr[0] != 0:
        return 1, 0, False
    canonical = True
    for i in range(n_major):
        a = indptr[i]
        b = indptr[i + 1]
        if b < a:
            return 2, i, False
        if b > n_idx:
            return 3, i, False
        prev = -1
        for k in range(a, b):
            j = indices[k]
            if j < 0 or j >= n_minor:
                return 4, k, False
            if j <= prev:
                canonical = False
            prev = j
    return 0, 0, canonical


def _index_array(a, name):
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    if a.dtype not in (np.int32, np.int64):
        a = a.astype(np.int64)
    return a


def _check_compressed(indptr, indices, data, n_major, n_minor, fmt):
    """Check CSR (fmt "csr") or CSC arrays; returns whether they are canonical."""
    major, minor = ("row", "column") if fmt == "csr" else ("column", "row")
    indptr, indices = _index_array(indptr, "indptr"), _index_array(indices, "indices")
    if indptr.shape[0] != n_major + 1:
        raise ValueError(f"indptr has {indptr.shape[0]} entries, a {fmt} matrix with "
                         f"{n_major} {major}s needs {n_major + 1}")
    status, pos, canonical = _compressed_status(indptr, indices, n_minor)
    if status == 1:
        raise ValueError(f"indptr[0] is {int(indptr[0])}, must be 0")
    if status == 2:
        raise ValueError(f"indptr decreases at {major} {pos} ({int(indptr[pos])} then "
                         f"{int(indptr[pos + 1])})")
    if status == 3:
        raise ValueError(f"indptr[{pos + 1}] = {int(indptr[pos + 1])} points past the "
                         f"{indices.shape[0]} stored indices")
    if status == 4:
        where = int(np.searchsorted(indptr, pos, side="right")) - 1
        raise ValueError(f"{minor} index {int(indices[pos])} of {major} {where} (position "
                         f"{pos}) is outside 0..{n_minor - 1}")
    data = np.asarray(data)
    if data.ndim != 1 or data.shape[0] < indptr[-1]:
        raise ValueError(f"data has shape {data.shape}, indptr needs {int(indptr[-1])} values")
    return canonical


def _check_bsr(A):
    R, C = A.blocksize
    m, n = A.shape
    if R < 1 or C < 1 or m % R or n % C:
        raise ValueError(f"block size {R} x {C} does not divide the shape {m} x {n}")
    data = np.asarray(A.data)
    if data.ndim != 3 or data.shape[1:] != (R, C):
        raise ValueError(f"BSR data has shape {data.shape}, blocks are {R} x {C}")
    indptr = _index_array(A.indptr, "indptr")
    if indptr.shape[0] != m // R + 1:
        raise ValueError(f"indptr has {indptr.shape[0]} entries, {m // R} block rows need "
                         f"{m // R + 1}")
    status, pos, _ = _compressed_status(indptr, _index_array(A.indices, "indices"), n // C)
    if status:
        raise ValueError(f"BSR block arrays are inconsistent (block row or index "
                         f"{pos}: status {status})")
    if data.shape[0] < indptr[-1]:
        raise ValueError(f"BSR data holds {data.shape[0]} blocks, indptr needs {int(indptr[-1])}")


def _check_coo(A):
    data = np.asarray(A.data)
    coords = A.coords if hasattr(A, "coords") else (A.row, A.col)
    if len(coords) != 2:
        raise ValueError(f"COO needs 2 coordinate arrays, got {len(coords)}")
    for name, c, dim in (("row", coords[0], A.shape[0]), ("column", coords[1], A.shape[1])):
        c = _index_array(c, f"{name} indices")
        if c.shape[0] != data.shape[0]:
            raise ValueError(f"{c.shape[0]} {name} indices for {data.shape[0]} values")
        if c.size and (c.min() < 0 or c.max() >= dim):
            bad = int(np.flatnonzero((c < 0) | (c >= dim))[0])
            raise ValueError(f"{name} index {int(c[bad])} at position {bad} is outside "
                             f"0..{dim - 1}")


def check_threads(threads):
    """Thread count: None -> all of Numba's threads; else 1..that number."""
    import numba
    limit = numba.config.NUMBA_NUM_THREADS
    if threads is None:
        return limit
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be an int, got {threads!r}")
    if not 1 <= threads <= limit:
        raise ValueError(f"threads must be in 1..{limit} (NUMBA_NUM_THREADS), got {threads}")
    return int(threads)
