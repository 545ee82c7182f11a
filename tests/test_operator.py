"""The operator select_kernel returns, and the validation around it."""
import numpy as np
import pytest
import scipy.sparse as sp

import spmvtune
from spmvtune.pool import KernelUnusable
from conftest import family_matrix
from reference import assert_matches


@pytest.fixture(scope="module")
def A():
    return family_matrix("random")


def test_default_selection(A):
    op = spmvtune.select_kernel(A)
    assert op.kernel in spmvtune.kernel_names()
    assert op.setup_seconds >= 0 and op.nbytes > 0
    x = np.ones(A.shape[1])
    assert_matches(op(x), A, x, "default")
    assert "SpMVOperator" in repr(op)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil", "dok", "bsr", "dia"])
@pytest.mark.parametrize("kind", ["matrix", "array"])
def test_accepts_every_scipy_format(fmt, kind):
    B = family_matrix("banded").asformat(fmt)
    B = sp.csr_matrix(B).asformat(fmt) if kind == "matrix" else B
    op = spmvtune.select_kernel(B, kernel="csr_balanced", threads=2)
    x = np.arange(B.shape[1], dtype=float)
    assert_matches(op(x), sp.csr_array(B), x, fmt)


def test_integer_and_unsorted_input_not_modified():
    B = sp.csr_array((np.array([1, 2, 3]), np.array([2, 0, 0]), np.array([0, 2, 3])), shape=(2, 3))
    B.has_sorted_indices = False
    before = B.indices.copy()
    op = spmvtune.select_kernel(B, kernel="csr_delta")
    np.testing.assert_array_equal(op(np.array([1.0, 10.0, 100.0])), [102.0, 3.0])
    np.testing.assert_array_equal(B.indices, before)


def test_duplicates_are_summed():
    B = sp.csr_array((np.array([1.0, 2.0]), np.array([1, 1]), np.array([0, 2])), shape=(1, 2))
    op = spmvtune.select_kernel(B, kernel="csr_vi")
    assert op(np.array([0.0, 1.0]))[0] == 3.0


def test_x_conversions(A):
    op = spmvtune.select_kernel(A, kernel="csr_balanced")
    x = np.arange(A.shape[1])
    assert_matches(op(x), A, x.astype(float), "int x")
    assert_matches(op(list(x.astype(float))), A, x.astype(float), "list x")
    xs = np.arange(2 * A.shape[1], dtype=float)[::2]
    assert_matches(op(xs), A, xs, "strided x")
    with pytest.raises(ValueError, match="shape"):
        op(np.ones(A.shape[1] + 1))
    X = np.ones((A.shape[1], 1))                  # 2-D: many right-hand sides (op.matmat)
    assert_matches(op(X)[:, 0], A, X[:, 0], "one column")
    with pytest.raises(ValueError, match="shape"):
        op(np.ones((A.shape[1] + 1, 1)))
    with pytest.raises(ValueError, match="shape"):
        op(np.ones((A.shape[1], 1, 1)))
    xc = np.ones(A.shape[1]) + 2j                         # real A, complex x: complex y
    assert op(xc).dtype == np.complex128
    np.testing.assert_allclose(op(xc), A @ xc, rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="longdouble|float128"):
        op(np.ones(A.shape[1], dtype=np.longdouble))
    with pytest.raises(TypeError):
        op(np.array(["a"] * A.shape[1]))


def test_out_validation(A):
    op = spmvtune.select_kernel(A, kernel="csr_balanced")
    x = np.ones(A.shape[1])
    for bad in (np.empty(A.shape[0] + 1), np.empty(A.shape[0], dtype=np.float32),
                np.empty(2 * A.shape[0])[::2]):
        with pytest.raises(ValueError, match="out must be"):
            op.matvec(x, out=bad)
    ro = np.empty(A.shape[0])
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        op.matvec(x, out=ro)


def test_bad_arguments(A):
    with pytest.raises(ValueError, match="unknown kernel 'nope'"):
        spmvtune.select_kernel(A, kernel="nope")
    with pytest.raises(ValueError, match="threads must be in"):
        spmvtune.select_kernel(A, threads=0)
    with pytest.raises(TypeError, match="threads must be an int"):
        spmvtune.select_kernel(A, threads=1.5)
    with pytest.raises(ValueError, match="takes options"):
        spmvtune.select_kernel(A, kernel="csr_balanced", options={"distance": 3})
    with pytest.raises(ValueError, match="distance"):
        spmvtune.select_kernel(A, kernel="csr_prefetch", options={"distance": 0})
    with pytest.raises(TypeError, match="scipy.sparse"):
        spmvtune.select_kernel(np.eye(3))
    with pytest.raises(TypeError, match="not supported"):
        spmvtune.select_kernel(sp.csr_array(np.eye(3, dtype=np.longdouble)))
    with pytest.raises(KernelUnusable, match="csr_sym.*square"):
        spmvtune.select_kernel(family_matrix("wide"), kernel="csr_sym")


def test_serial_kernel_runs_one_thread(A):
    assert spmvtune.select_kernel(A, kernel="csr_serial", threads=2).threads == 1


def test_small_matrix_default_uses_one_thread():
    op = spmvtune.select_kernel(family_matrix("diagonal"))
    assert op.threads == 1


def test_loaded_symmetry_used_by_symmetric_kernel(tmp_path):
    p = tmp_path / "s.mtx"
    p.write_text("%%MatrixMarket matrix coordinate real symmetric\n3 3 3\n1 1 2\n2 1 1\n3 3 1\n")
    A = spmvtune.load(p)
    op = spmvtune.select_kernel(A, kernel="csr_sym")
    assert op.info["stored_nnz"] == 3
    x = np.array([1.0, 2.0, 3.0])
    assert_matches(op(x), A, x, "sym")


def test_canonical_csr_is_converted_once(A):
    """select -> analyze -> features/profile hand the converted matrix down."""
    from spmvtune.validate import as_canonical_csr
    csr = as_canonical_csr(A)
    assert as_canonical_csr(csr) is csr


def test_single_threaded_blas_limits_and_restores():
    from threadpoolctl import threadpool_info
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("NumPy reports no BLAS thread pool")
    before = [i["num_threads"] for i in blas]
    with spmvtune.single_threaded_blas():
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


def test_first_mismatch_finds_the_wrong_row_only():
    from spmvtune.validate import first_mismatch
    A = sp.csr_array(sp.random_array((50, 40), density=0.3, random_state=2))
    x = np.random.default_rng(0).uniform(-1, 1, 40)
    y = A @ x
    assert first_mismatch(y, A, x) is None
    assert first_mismatch(y[::-1].copy()[::-1], A, x, ref=A @ x) is None
    y[7] += 1e-6
    assert first_mismatch(y, A, x) == 7
    y[7] = np.nan
    assert first_mismatch(y, A, x) == 7
