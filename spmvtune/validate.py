"""Input validation: anything a user passes becomes a canonical :class:`CSR` once."""
import numpy as np
import scipy.sparse as sp

from .pool.registry import CSR


def first_mismatch(y, A, x, ref=None):
    """The first row where ``y`` differs from ``A @ x`` by more than any
    summation order can (4 eps (row nnz + 1) sum |a x|), or None.
    A: scipy.sparse CSR; ref: ``A @ x`` when already computed."""
    ref = A @ x if ref is None else ref
    tol = 4 * np.finfo(float).eps * (np.diff(A.indptr) + 1) * (abs(A) @ np.abs(x)) + 1e-300
    bad = ~(np.abs(y - ref) <= tol)
    return int(np.argmax(bad)) if bad.any() else None


def as_canonical_csr(A):
    """A scipy.sparse matrix/array -> :class:`CSR` (float64, sorted, no duplicates).

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
    if np.issubdtype(A.dtype, np.complexfloating):
        raise TypeError("complex matrices are not supported (spmvtune kernels are real float64)")
    info = getattr(A, "info", None)
    symmetry = getattr(info, "symmetry", None)
    C = A.tocsr()
    if C.dtype != np.float64:
        C = C.astype(np.float64)
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
