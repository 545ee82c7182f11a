"""Transpose and adjoint products: op.T, op.rmatvec, select_kernel(transpose=True),
the scatter kernel used when A^T's copy does not fit the memory budget, and
SciPy's solvers that need them (lsqr, lsmr, bicg, qmr) through
as_linear_operator()."""
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla

import spmvtune
from spmvtune import generate
from spmvtune.pool import KernelUnusable
from spmvtune.pool.registry import DTYPES
from spmvtune.transpose import SCATTER, transpose_bytes
from spmvtune.validate import as_canonical_csr
from conftest import family_matrix
from families import FAMILIES
from reference import assert_matches, hermitian, random_vector, typed

T_FAMILIES = ["empty_5x0", "empty_rows", "one_dense_row", "wide", "tall", "power_law", "blocks",
              "symmetric"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    from spmvtune.tuning_cache import TuningCache
    monkeypatch.setenv("SPMVTUNE_CACHE_DIR", str(tmp_path))
    return TuningCache()


def check_transposes(op, A, what, seed=0):
    """op.T(x) == A^T x and op.rmatvec(x) == A^H x, like SciPy's."""
    dtype = op.dtype
    z = random_vector(A.shape[0], dtype, seed)
    assert_matches(op.T(z), sp.csr_array(A.T), z, what + " T")
    assert_matches(op.rmatvec(z), sp.csr_array(A.conj().T), z, what + " rmatvec")
    out = np.full(A.shape[1], np.nan, dtype=np.result_type(dtype, z.dtype))
    assert op.rmatvec(z, out=out) is out
    assert_matches(out, sp.csr_array(A.conj().T), z, what + " rmatvec out=")


RMATVEC_CASES = [(k, d) for k in spmvtune.kernel_names() for d in ("float64", "complex128")
                 if d in spmvtune.pool.get_kernel(k).dtypes]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kernel,dtype", RMATVEC_CASES, ids=[f"{k}-{d}" for k, d in RMATVEC_CASES])
def test_rmatvec_of_every_kernel_matches_scipy(kernel, dtype, threads):
    """The transpose of a forced kernel's operator runs the same kernel on A^T."""
    fams = T_FAMILIES + (["hermitian"] if dtype == "complex128" else [])
    for family in fams:
        A = hermitian() if family == "hermitian" else typed(family_matrix(family), dtype, family)
        try:
            op = spmvtune.select_kernel(A, kernel=kernel, threads=threads)
        except KernelUnusable:
            assert kernel == "csr_sym"
            continue
        check_transposes(op, A, f"{kernel}/{dtype}/{family}/{threads}")
        assert op.T.T is op
        assert op.transpose_nbytes is not None


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_kernel_on_every_family(dtype, threads):
    """With no memory for A^T's copy, A^T x scatters from A's CSR."""
    for family in FAMILIES:
        A = typed(family_matrix(family), dtype, family)
        budget = 0 if threads == 1 else (threads - 1) * A.shape[1] * A.dtype.itemsize
        if budget >= transpose_bytes(as_canonical_csr(A)):
            budget = 0                                # a tiny matrix: its copy would fit
        opT = spmvtune.select_kernel(A, transpose=True, threads=threads, max_extra_bytes=budget,
                                     cache=False)
        assert opT.kernel == SCATTER and opT.shape == A.shape[::-1]
        assert opT.extra_bytes <= budget
        z = random_vector(A.shape[0], dtype)
        assert_matches(opT(z), sp.csr_array(A.T), z, f"scatter/{dtype}/{family}/{threads}")
        y = np.full(A.shape[1], np.nan, dtype=dtype)
        opT.matvec(z, out=y)                          # stale output is overwritten
        assert_matches(y, sp.csr_array(A.T), z, f"scatter/{dtype}/{family}/{threads} (2nd)")
        x = random_vector(A.shape[1], dtype, seed=1)
        assert_matches(opT.T(x), A, x, f"scatter/{dtype}/{family}/{threads} .T")


def test_scatter_with_mixed_types():
    A = family_matrix("power_law").astype(np.float32)
    opT = spmvtune.select_kernel(A, transpose=True, threads=2, cache=False,
                                 max_extra_bytes=A.shape[1] * 4)
    assert opT.kernel == SCATTER and opT.threads == 2
    for dtype in ("float64", "complex64"):
        z = random_vector(A.shape[0], dtype)
        assert_matches(opT(z), sp.csr_array(A.T), z, f"scatter float32 x {dtype}")


def test_transpose_selection(cache):
    A = generate.power_law(4000, 6, exponent=1.3, seed=2)[:, :3000]
    A = sp.csr_array(A)
    opT = spmvtune.select_kernel(A, transpose=True, threads=2)
    assert opT.shape == (A.shape[1], A.shape[0])
    assert opT.info["transpose_copy_bytes"] == transpose_bytes(as_canonical_csr(A))
    assert opT.extra_bytes >= opT.info["transpose_copy_bytes"]
    z = random_vector(A.shape[0], np.float64)
    assert_matches(opT(z), sp.csr_array(A.T), z, "select transpose")
    again = spmvtune.select_kernel(A, transpose=True, threads=2)
    assert again.selection_source == "cache"
    forward = spmvtune.select_kernel(A, threads=2)
    assert forward.selection_source != "cache"           # its own decision
    x = random_vector(A.shape[1], np.float64)
    assert_matches(opT.T(x), A, x, "transpose of the transpose")
    assert opT.T.extra_bytes <= opT.T.nbytes               # no second copy of A


def test_lazy_transpose_respects_the_memory_budget():
    A = family_matrix("power_law")
    copy = transpose_bytes(as_canonical_csr(A))
    op = spmvtune.select_kernel(A, threads=2, max_extra_bytes=copy - 1, cache=False)
    assert op.transpose_nbytes is None                    # nothing prepared yet
    z = random_vector(A.shape[0], np.float64)
    assert_matches(op.rmatvec(z), sp.csr_array(A.T), z, "budgeted rmatvec")
    assert op.T.kernel == SCATTER
    assert op.extra_bytes + op.transpose_nbytes <= copy - 1
    roomy = spmvtune.select_kernel(A, threads=2, cache=False)
    roomy.rmatvec(z)
    assert roomy.T.kernel != SCATTER and roomy.transpose_nbytes >= copy


def test_a_declared_symmetric_matrix_is_its_own_transpose(tmp_path):
    p = tmp_path / "s.mtx"
    p.write_text("%%MatrixMarket matrix coordinate real symmetric\n3 3 3\n1 1 2\n2 1 1\n3 2 -1\n")
    A = spmvtune.load(p)
    op = spmvtune.select_kernel(A, threads=2, cache=False)
    assert op.T is op and op.transpose_nbytes == 0
    z = np.array([1.0, 2.0, 3.0])
    assert_matches(op.rmatvec(z), sp.csr_array(A.T), z, "symmetric")
    assert transpose_bytes(as_canonical_csr(A)) == 0


def test_forced_kernel_that_cannot_take_the_transpose_falls_back():
    A = sp.csr_array(sp.random_array((3, 100), density=0.3, rng=0))   # 2 x 8 blocks fit A, not A^T
    op = spmvtune.select_kernel(A, kernel="bcsr", options={"shape": (2, 8)}, threads=2)
    z = random_vector(A.shape[0], np.float64)
    assert_matches(op.rmatvec(z), sp.csr_array(A.T), z, "fallback")


# -- SciPy's solvers through as_linear_operator() ----------------------------------------

def _rectangular(dtype=np.float64):
    A = generate.random_scatter(400, 6, n_cols=150, seed=5)
    A = sp.csr_array(A + sp.eye_array(400, 150))
    return typed(A, dtype, seed=6)


def _nonsymmetric(dtype=np.float64):
    A = generate.random_scatter(300, 5, seed=7)
    A = sp.csr_array(A + 4 * sp.eye_array(300))
    return typed(A, dtype, seed=8)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("solver", ["lsqr", "lsmr"])
def test_least_squares_solvers_give_scipys_answer(solver, dtype):
    A = _rectangular(dtype)
    b = random_vector(A.shape[0], dtype, seed=9)
    op = spmvtune.select_kernel(A, threads=2, cache=False)
    L = op.as_linear_operator()
    assert L.dtype == dtype
    fn = getattr(sla, solver)
    x = fn(L, b, atol=1e-12, btol=1e-12)[0]
    ref = fn(A, b, atol=1e-12, btol=1e-12)[0]
    np.testing.assert_allclose(x, ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("solver", ["bicg", "qmr"])
def test_nonsymmetric_solvers_give_scipys_answer(solver, dtype):
    A = _nonsymmetric(dtype)
    b = random_vector(A.shape[0], dtype, seed=10)
    op = spmvtune.select_kernel(A, threads=2, cache=False)
    fn = getattr(sla, solver)
    x, info = fn(op.as_linear_operator(), b, rtol=1e-10, maxiter=1000)
    ref, info_ref = fn(A, b, rtol=1e-10, maxiter=1000)
    assert info == 0 and info_ref == 0
    np.testing.assert_allclose(x, ref, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(A @ x, b, rtol=1e-7, atol=1e-8)


def test_float32_operator_in_a_solver():
    A = _rectangular(np.float32)
    b = random_vector(A.shape[0], np.float32, seed=11)
    op = spmvtune.select_kernel(A, threads=2, cache=False)
    x = sla.lsqr(op.as_linear_operator(), b, atol=1e-6, btol=1e-6)[0]
    ref = sla.lsqr(A, b, atol=1e-6, btol=1e-6)[0]
    np.testing.assert_allclose(x, ref, rtol=1e-3, atol=1e-4)


def test_scatter_runs_on_the_callers_int64_arrays_without_a_copy():
    A = family_matrix("power_law").copy()
    A.indptr, A.indices = A.indptr.astype(np.int64), A.indices.astype(np.int64)
    opT = spmvtune.select_kernel(A, transpose=True, threads=1, max_extra_bytes=0, cache=False)
    assert opT.kernel == SCATTER and opT.extra_bytes == 0
    assert all(a.base is not None for a in opT._args[1:3])        # views of A's index arrays
    z = random_vector(A.shape[0], np.float64)
    assert_matches(opT(z), sp.csr_array(A.T), z, "scatter on int64 views")
    x = random_vector(A.shape[1], np.float64)
    assert_matches(opT.T(x), A, x, "forward on int64 views")        # budget 0: 64-bit views
    assert opT.T.extra_bytes == 0
