"""Every matrix in ../shared/matrices/suitesparse (real and complex): loads, and
every kernel that claims its value type matches SciPy, forward and transposed."""
import gzip

import numpy as np
import pytest
import scipy.sparse as sp

import spmvtune
from spmvtune.pool import KernelUnusable, get_kernel
from conftest import shared_files
from reference import assert_matches, random_vector

FILES = shared_files("suitesparse")


def _banner(path):
    """The first line of a Matrix Market file, lower case ("" for other files)."""
    if not path.name.endswith((".mtx", ".mtx.gz")):
        return ""
    with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as f:
        return f.readline().decode("latin1").lower()


#: Kernels that may refuse a matrix (symmetry, distinct values, dense size).
REFUSING = ("csr_sym", "csr_vi", "csr_vi_prefetch", "csr_delta_vi", "bcsr_vi", "dense_gemv",
            "spmm_vi", "spmm_bcsr_vi", "dense_mm")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_kernel_on_shared_matrix(path):
    A = spmvtune.load(path)
    x = random_vector(A.shape[1], A.dtype)
    X = np.stack([random_vector(A.shape[1], A.dtype, seed=s) for s in range(5)], axis=1)
    tried = 0
    kernels = [k for k in spmvtune.kernel_names() if A.dtype.name in get_kernel(k).dtypes]
    for kernel in kernels:
        for threads in (1, 2):
            try:
                op = spmvtune.select_kernel(A, kernel=kernel, threads=threads)
            except KernelUnusable as exc:
                assert kernel in REFUSING, exc
                continue
            assert_matches(op(x), A, x, f"{path.name}/{kernel}/{threads}")
            if op.max_vectors > 1:                   # and Y = A X with 5 right-hand sides
                Y = op(X)
                for j in range(X.shape[1]):
                    assert_matches(Y[:, j], A, X[:, j], f"{path.name}/{kernel}/{threads}/X[:, {j}]")
            tried += 1
    assert tried >= 2 * (len(kernels) - len(REFUSING))


@pytest.mark.parametrize("path", [p for p in FILES if " complex " in _banner(p)],
                         ids=lambda p: p.name)
def test_complex_files_load_and_transpose(path):
    A = spmvtune.load(path)
    assert A.dtype == "complex128"
    op = spmvtune.select_kernel(A, threads=2, cache=False)
    z = random_vector(A.shape[0], A.dtype, seed=1)
    assert_matches(op.rmatvec(z), sp.csr_array(A.conj().T), z, f"{path.name} adjoint")
    if A.info.symmetry == "hermitian":
        assert abs(A - A.conj().T).max() == 0
        sym = spmvtune.select_kernel(A, kernel="csr_sym", threads=2)
        assert sym.info["symmetry"] == "hermitian"


@pytest.mark.parametrize("path", [p for p in FILES if "symmetric" in _banner(p)
                                  or "hermitian" in _banner(p)], ids=lambda p: p.name)
def test_symmetric_files_keep_their_symmetry(path):
    A = spmvtune.load(path)
    assert A.info.symmetry in ("symmetric", "skew-symmetric", "hermitian")
    mirror = {"symmetric": A.T, "skew-symmetric": -A.T, "hermitian": A.conj().T}
    assert abs(A - mirror[A.info.symmetry]).max() == 0
