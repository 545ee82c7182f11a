"""Input validation: anything a user passes becomes a canonical :class:`CSR` once."""
import numpy as np
import scipy.sparse as sp

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
    A: scipy.sparse CSR; ref: ``A @ x`` when already computed."""
    ref = A @ x if ref is None else ref
    eps = rounding_eps(y.dtype, ref.dtype)
    scale = (abs(A) @ np.abs(x)).astype(np.float64)
    tol = 4 * eps * (np.diff(A.indptr) + 1) * scale + 1e-300
    bad = ~(np.abs(y - ref) <= tol)
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
    Never modifies ``A``.  The symmetry recorded by :func:`spmvtune.load`
    (``A.info.symmetry``) is carried along.  A :class:`CSR` is already
    canonical and is returned as it is, so internal callers convert once.
    """
    if isinstance(A, CSR):
        return A
    if not sp.issparse(A):
        raise TypeError(f"expected a scipy.sparse matrix or array, got {type(A).__name__}"
                        " (convert dense arrays with scipy.sparse.csr_array)")
    if A.ndim != 2:
        raise ValueError(f"expected a 2-D sparse matrix, got {A.ndim}-D")
    dtype = canonical_dtype(A.dtype)
    info = getattr(A, "info", None)
    symmetry = getattr(info, "symmetry", None)
    C = A.tocsr()
    if C.dtype != dtype:
        C = C.astype(dtype)
    if not C.has_canonical_format:
        C = C.copy() if C is A else C
        C.sum_duplicates()
    return CSR(tuple(int(s) for s in C.shape), C.indptr, C.indices,
               np.ascontiguousarray(C.data), symmetry)


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
