"""The reference every kernel is checked against, the tolerance, and the
value types the tests run."""
import numpy as np
import scipy.sparse as sp

from spmvtune.validate import rounding_eps


def naive_spmv(A, x):
    """y = A @ x by the definition, one row at a time (for small matrices)."""
    y = np.zeros(A.shape[0], dtype=np.result_type(A.dtype, x.dtype))
    for i in range(A.shape[0]):
        for k in range(A.indptr[i], A.indptr[i + 1]):
            y[i] += A.data[k] * x[A.indices[k]]
    return y


def assert_matches(y, A, x, what=""):
    """y equals A @ x (SciPy's, of the promoted type) up to floating-point
    reassociation error, in the precision of the least precise of the two."""
    ref = A @ x
    # bound on the rounding error of any summation order: nnz_row * eps * sum|a x|
    scale = (abs(A) @ np.abs(x)).astype(np.float64)
    row_nnz = np.diff(A.indptr) if A.shape[0] else np.zeros(0)
    tol = 4 * rounding_eps(y.dtype, ref.dtype) * (row_nnz + 1) * scale + 1e-300
    assert y.shape == ref.shape, f"{what}: shape {y.shape} != {ref.shape}"
    assert y.dtype == ref.dtype, f"{what}: dtype {y.dtype} != SciPy's {ref.dtype}"
    bad = ~(np.abs(y - ref) <= tol)
    assert not bad.any(), (f"{what}: {bad.sum()} rows differ, first at row "
                           f"{np.flatnonzero(bad)[0]}: {y[bad][0]!r} vs {ref[bad][0]!r}")


def random_vector(n, dtype, seed=0):
    """Uniform(-1, 1) values of ``dtype`` (independent real and imaginary parts)."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(-1, 1, n)
    if np.dtype(dtype).kind == "c":
        v = v + 1j * rng.uniform(-1, 1, n)
    return v.astype(dtype)


#: The symmetric test families keep their symmetry in complex types by a
#: complex factor (an independent imaginary part would break it).
_KEEP_SYMMETRY = {"symmetric", "skew_symmetric", "laplacian", "diagonal"}


def typed(A, dtype, family="", seed=0):
    """A family matrix in ``dtype``: real types by conversion; complex types
    with an independent random imaginary part (a complex factor for the
    symmetric families)."""
    dtype = np.dtype(dtype)
    if dtype.kind != "c":
        return sp.csr_array(A.astype(dtype))
    if family in _KEEP_SYMMETRY:
        return sp.csr_array(A.astype(dtype) * dtype.type(0.6 + 0.8j))
    imag = np.random.default_rng(seed).uniform(-1, 1, A.nnz)
    return sp.csr_array(((A.data + 1j * imag).astype(dtype), A.indices.copy(), A.indptr.copy()),
                        shape=A.shape)


def hermitian(n=500, seed=11):
    """A hermitian matrix: symmetric real part, skew-symmetric imaginary part."""
    from spmvtune import generate
    S = generate.symmetric(generate.random_scatter(n, 4, seed=seed))
    K = generate.symmetric(generate.random_scatter(n, 4, seed=seed + 1), skew=True)
    H = sp.csr_array(S + 1j * K)
    H.sum_duplicates()
    return H
