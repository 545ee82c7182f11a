"""The reference every kernel is checked against, and the tolerance."""
import numpy as np


def naive_spmv(A, x):
    """y = A @ x by the definition, one row at a time (for small matrices)."""
    y = np.zeros(A.shape[0])
    for i in range(A.shape[0]):
        for k in range(A.indptr[i], A.indptr[i + 1]):
            y[i] += A.data[k] * x[A.indices[k]]
    return y


def assert_matches(y, A, x, what=""):
    """y equals A @ x up to floating-point reassociation error."""
    ref = A @ x
    # bound on the rounding error of any summation order: nnz_row * eps * sum|a x|
    scale = abs(A) @ np.abs(x)
    row_nnz = np.diff(A.indptr) if A.shape[0] else np.zeros(0)
    tol = 4 * np.finfo(float).eps * (row_nnz + 1) * scale + 1e-300
    bad = np.abs(y - ref) > tol
    assert y.shape == ref.shape, f"{what}: shape {y.shape} != {ref.shape}"
    assert not bad.any(), (f"{what}: {bad.sum()} rows differ, first at row "
                           f"{np.flatnonzero(bad)[0]}: {y[bad][0]!r} vs {ref[bad][0]!r}")
