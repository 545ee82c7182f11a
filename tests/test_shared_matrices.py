"""Every real matrix in ../shared/matrices/suitesparse: loads, and every kernel matches."""
import numpy as np
import pytest

import spmvtune
from spmvtune.pool import KernelUnusable
from conftest import shared_files
from reference import assert_matches

FILES = shared_files("suitesparse")


def _load_or_skip_complex(path):
    try:
        return spmvtune.load(path)
    except spmvtune.MatrixFormatError as exc:
        if "complex" in str(exc):
            pytest.skip("complex matrix: refused by design")
        raise


#: Kernels that may refuse a matrix (symmetry, distinct values, dense size).
REFUSING = ("csr_sym", "csr_vi", "csr_vi_prefetch", "csr_delta_vi", "bcsr_vi", "dense_gemv",
            "spmm_vi", "spmm_bcsr_vi", "dense_mm")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_kernel_on_real_matrix(path):
    A = _load_or_skip_complex(path)
    x = np.random.default_rng(0).uniform(-1, 1, A.shape[1])
    X = np.random.default_rng(1).uniform(-1, 1, (A.shape[1], 5))
    tried = 0
    for kernel in spmvtune.kernel_names():
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
    assert tried >= 2 * (len(spmvtune.kernel_names()) - len(REFUSING))


@pytest.mark.parametrize("path", [p for p in FILES if "symmetric" in p.read_bytes()[:200].decode("latin1")
                                  and b"complex" not in p.read_bytes()[:200]],
                         ids=lambda p: p.name)
def test_symmetric_files_keep_their_symmetry(path):
    A = spmvtune.load(path)
    assert A.info.symmetry in ("symmetric", "skew-symmetric")
    assert abs(A - (A.T if A.info.symmetry == "symmetric" else -A.T)).max() == 0
