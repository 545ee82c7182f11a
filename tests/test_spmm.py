"""Many right-hand sides: every kernel with max_vectors > 1 x every matrix family
x several k x 1 and 2 threads == SciPy's A @ X, column by column.

Parametrized from the registry: registering a many-vector kernel tests it.
"""
import numpy as np
import pytest
import scipy.sparse as sp

import spmvtune
from conftest import family_matrix
from families import FAMILIES
from reference import assert_matches
from spmvtune.pool import KernelUnusable, get_kernel, kernel_specs
from spmvtune.pool.registry import CSR

MANY = tuple(s.name for s in kernel_specs() if s.max_vectors > 1)
#: k: one masked tail, a full vector + tail, 2 full panels of 32 (+16 +8 +tail on 63).
KS = (2, 9, 63, 64)


def _X(n, k, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).uniform(-1, 1, (n, k)).astype(dtype)


def assert_matches_many(Y, A, X, what):
    assert Y.shape == (A.shape[0], X.shape[1]), f"{what}: shape {Y.shape}"
    for j in range(X.shape[1]):
        assert_matches(Y[:, j], A, X[:, j], f"{what} column {j}")


def expected_unusable(kernel, A):
    if kernel.endswith("_vi"):
        return len(np.unique(A.data)) > 65536
    return False


def test_the_pool_has_many_vector_kernels():
    assert {"spmm_csr", "spmm_vi", "spmm_bcsr", "dense_mm"} <= set(MANY)
    for name in MANY:
        spec = get_kernel(name)
        assert spec.serves(2) and spec.serves(64) and not spec.serves(1)
        assert "float64" in spec.dtypes


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("kernel", MANY)
def test_many_vector_kernel_matches_scipy(kernel, family, threads):
    A = family_matrix(family)
    try:
        op = spmvtune.select_kernel(A, kernel=kernel, threads=threads)
    except KernelUnusable:
        assert expected_unusable(kernel, A), f"{kernel} refused {family} without reason"
        return
    for k in KS:
        X = _X(A.shape[1], k)
        assert_matches_many(op(X), A, X, f"{kernel}/{family}/{threads}/k={k}")
    Y = np.full((A.shape[0], 7), np.nan)             # stale output must be overwritten
    X = _X(A.shape[1], 7, seed=1)
    assert op.matmat(X, out=Y) is Y
    assert_matches_many(Y, A, X, f"{kernel}/{family}/{threads} (out=)")
    x = X[:, 0].copy()                               # and one vector through the same storage
    assert_matches(op(x), A, x, f"{kernel}/{family}/{threads} (1-D)")


@pytest.mark.parametrize("kernel", MANY)
@pytest.mark.parametrize("family", ["power_law"])
def test_many_vector_wide_index_path(kernel, family):
    A = family_matrix(family)
    op = spmvtune.select_kernel(A, kernel=kernel, threads=2, wide_indices=True)
    X = _X(A.shape[1], 11)
    assert_matches_many(op(X), A, X, f"{kernel}/{family}/wide")


@pytest.mark.parametrize("shape", [(2, 1), (3, 1), (4, 1)])
def test_block_shapes(shape):
    kernels = ("spmm_bcsr", "spmm_bcsr_vi") if shape == (4, 1) else ("spmm_bcsr",)
    for family in ("blocks", "random", "one_dense_row", "tall", "single_entry"):
        A = family_matrix(family)
        for kernel in kernels:
            op = spmvtune.select_kernel(A, kernel=kernel, threads=1, options={"shape": shape})
            X = _X(A.shape[1], 13)
            assert_matches_many(op(X), A, X, f"{kernel} {shape} {family}")
    with pytest.raises(ValueError, match="r x 1"):
        spmvtune.select_kernel(family_matrix("blocks"), kernel="spmm_bcsr",
                               options={"shape": (4, 4)})


def test_block_shape_follows_the_pruning_pattern():
    from spmvtune.generate import pruned_blocks
    for block, rows in (((4, 4), 4), ((8, 1), 4), ((2, 2), 2)):
        A = pruned_blocks(256, 256, 0.8, block=block, seed=1)
        op = spmvtune.select_kernel(A, kernel="spmm_bcsr", threads=1)
        assert op.info["shape"][0] == rows and op.info["fill"] == 1.0, (block, op.info)


@pytest.mark.parametrize("kernel", ["spmm_csr", "spmm_bcsr", "dense_mm"])
def test_float32_values_and_vectors(kernel):
    """The kernels are generic over the value type: float32 in, float32 out."""
    A = family_matrix("power_law")
    A32 = sp.csr_array(A, dtype=np.float32)
    csr = CSR(A.shape, A.indptr, A.indices, A32.data)
    prep = get_kernel(kernel).prepare(csr, 1)
    X = _X(A.shape[1], 19, dtype=np.float32)
    Y = np.full((A.shape[0], 19), np.nan, dtype=np.float32)
    prep.run(*prep.args, X, Y)
    ref = A32.astype(np.float64) @ X.astype(np.float64)
    scale = abs(A32).astype(np.float64) @ np.abs(X.astype(np.float64))
    assert np.all(np.abs(Y - ref) <= 1e-5 * (scale + 1e-30))


def test_single_vector_kernels_take_many_vectors_column_by_column():
    A = family_matrix("laplacian")
    for kernel in ("csr_balanced", "bcsr", "csr_sym", "dense_gemv"):
        op = spmvtune.select_kernel(A, kernel=kernel, threads=2)
        X = _X(A.shape[1], 5)
        assert_matches_many(op(X), A, X, kernel)
        assert_matches_many(op.as_linear_operator().matmat(X), A, X, kernel + " (LinearOperator)")


def test_matmat_arguments():
    A = family_matrix("random")
    op = spmvtune.select_kernel(A, kernel="spmm_csr", threads=2)
    X = _X(A.shape[1], 6)
    assert_matches_many(op.matmat(np.asfortranarray(X)), A, X, "Fortran-ordered X")
    assert_matches_many(op.matmat(X.astype(np.float32)), A, X.astype(np.float32), "float32 X")
    assert_matches_many(op.matmat(X.tolist()), A, X, "nested lists")
    assert op.matmat(np.empty((A.shape[1], 0))).shape == (A.shape[0], 0)
    with pytest.raises(ValueError, match=r"X must have shape \(1000, k\)"):
        op.matmat(np.ones((A.shape[1] + 1, 3)))
    with pytest.raises(ValueError, match="out must be"):
        op.matmat(X, out=np.empty((A.shape[0], 5)))
    with pytest.raises(ValueError, match="out must be"):
        op.matmat(X, out=np.empty((A.shape[0], 6), order="F"))
    Xc = X + 1j * X[::-1]                         # real A, complex X: two real products
    Yc = op.matmat(Xc)
    assert Yc.dtype == np.complex128
    np.testing.assert_allclose(Yc, A @ Xc, rtol=1e-12, atol=1e-12)
