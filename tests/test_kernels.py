"""Every registered kernel x every matrix family x 1 and 2 threads == A @ x.

Parametrized from the registry: a kernel is tested by being registered.
"""
import numpy as np
import pytest

import spmvtune
from spmvtune.pool import KernelUnusable, get_kernel
from conftest import family_matrix
from families import FAMILIES
from reference import assert_matches, naive_spmv

KERNELS = spmvtune.kernel_names()


def _x(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, n)


def expected_unusable(kernel, A):
    """Kernels may refuse a matrix only for these documented reasons."""
    if kernel == "csr_sym":
        return A.shape[0] != A.shape[1] or (A != A.T).nnz and (A != -A.T).nnz
    if kernel in ("csr_vi", "csr_vi_prefetch", "csr_delta_vi", "bcsr_vi"):
        return len(np.unique(A.data)) > 65536
    return False


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_matches_scipy(kernel, family, threads):
    A = family_matrix(family)
    x = _x(A.shape[1])
    try:
        op = spmvtune.select_kernel(A, kernel=kernel, threads=threads)
    except KernelUnusable:
        assert expected_unusable(kernel, A), f"{kernel} refused {family} without reason"
        return
    assert not expected_unusable(kernel, A)
    assert_matches(op(x), A, x, f"{kernel}/{family}/{threads}")
    y = np.full(A.shape[0], np.nan)          # stale output must be overwritten
    assert op.matvec(x, out=y) is y
    assert_matches(y, A, x, f"{kernel}/{family}/{threads} (out=)")
    x2 = _x(A.shape[1], seed=1)               # and repeated calls must not carry state
    assert_matches(op(x2), A, x2, f"{kernel}/{family}/{threads} (2nd call)")


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("family", ["power_law", "wide_gaps", "symmetric", "empty_rows"])
def test_wide_index_path(kernel, family):
    """The uint64 index code paths (used beyond 2**32 nonzeros) give the same result."""
    A = family_matrix(family)
    x = _x(A.shape[1])
    try:
        op = spmvtune.select_kernel(A, kernel=kernel, threads=2, wide_indices=True)
    except KernelUnusable:
        assert expected_unusable(kernel, A)
        return
    assert_matches(op(x), A, x, f"{kernel}/{family}/wide")


@pytest.mark.parametrize("kernel", KERNELS)
def test_int64_input_indices(kernel):
    """scipy matrices with int64 index arrays are accepted."""
    A = family_matrix("random").copy()
    A.indptr = A.indptr.astype(np.int64)
    A.indices = A.indices.astype(np.int64)
    x = _x(A.shape[1])
    op = spmvtune.select_kernel(A, kernel=kernel, threads=2) if kernel != "csr_sym" else None
    if op is not None:
        assert_matches(op(x), A, x, kernel)


@pytest.mark.parametrize("kernel", ["csr_prefetch", "csr_split_prefetch", "csr_vi_prefetch"])
@pytest.mark.parametrize("distance", [1, 7, 512])
def test_prefetch_distance(kernel, distance):
    A = family_matrix("power_law")
    x = _x(A.shape[1])
    op = spmvtune.select_kernel(A, kernel=kernel, threads=2, options={"distance": distance})
    assert op.info["distance"] == distance
    assert_matches(op(x), A, x, f"{kernel} d={distance}")


def test_reference_is_the_definition():
    A = family_matrix("power_law")
    x = _x(A.shape[1])
    assert_matches(naive_spmv(A, x), A, x, "naive")


def test_split_kernel_splits_a_dominant_row():
    """One row holding most nonzeros is shared by both threads and summed right."""
    A = family_matrix("one_dense_row")
    op = spmvtune.select_kernel(A, kernel="csr_split", threads=2)
    tail = op._args[3]
    assert (tail < A.shape[0]).any(), "no partition ended inside a row"
    x = _x(A.shape[1])
    assert_matches(op(x), A, x, "split")


def test_delta_reports_fewer_index_bytes_on_banded():
    op = spmvtune.select_kernel(family_matrix("stencil"), kernel="csr_delta", threads=2)
    assert op.info["index_bytes_per_nnz"] < 0.5 * op.info["csr_index_bytes_per_nnz"]
    op = spmvtune.select_kernel(family_matrix("wide_gaps"), kernel="csr_delta", threads=1)
    assert all(op.info["rows_by_width"][w] > 0 for w in (1, 2, 4))


def test_value_index_unusable_with_many_values():
    A = spmvtune.generate.random_scatter(20_000, 5)     # 100k distinct random values
    with pytest.raises(KernelUnusable, match="distinct values"):
        spmvtune.select_kernel(A, kernel="csr_vi")


def test_symmetric_kernel_halves_storage():
    A = family_matrix("laplacian")
    op = spmvtune.select_kernel(A, kernel="csr_sym", threads=2)
    assert op.info["stored_nnz"] < 0.65 * A.nnz
    assert op.info["sign"] == 1.0
    skew = spmvtune.select_kernel(family_matrix("skew_symmetric"), kernel="csr_sym")
    assert skew.info["sign"] == -1.0


def test_every_kernel_documents_itself():
    for name in KERNELS:
        spec = get_kernel(name)
        assert spec.summary and spec.name == name
        assert set(spec.targets) <= {"MB", "ML", "IMB", "CMP"}


def test_bcsr_picks_the_natural_block_shape():
    op = spmvtune.select_kernel(family_matrix("blocks"), kernel="bcsr")
    assert op.info["shape"] == (3, 3) and op.info["fill"] == 1.0
    assert op.info["bytes_per_nnz"] < 9.0
    op = spmvtune.select_kernel(family_matrix("stencil"), kernel="bcsr_vi")
    assert op.info["shape"] == (1, 3)          # unaligned runs of 3 columns
    assert op.info["bytes_per_nnz"] < 3.0
    op = spmvtune.select_kernel(family_matrix("random"), kernel="bcsr")
    assert op.info["shape"] == (1, 1)


@pytest.mark.parametrize("kernel", ["bcsr", "bcsr_vi"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (2, 3), (3, 3), (4, 4), (4, 1), (1, 8)])
@pytest.mark.parametrize("family", ["blocks", "wide", "tall", "dense_small", "empty_rows", "stencil"])
def test_bcsr_forced_shapes(kernel, shape, family):
    """Every shape is exact, including partial last block rows and columns."""
    A = family_matrix(family)
    x = _x(A.shape[1])
    try:
        op = spmvtune.select_kernel(A, kernel=kernel, threads=2, options={"shape": shape})
    except KernelUnusable:
        assert shape[1] > A.shape[1] or shape[0] > A.shape[0] or expected_unusable(kernel, A)
        return
    assert_matches(op(x), A, x, f"bcsr{shape}/{family}")


def test_colblock_splits_wide_matrices():
    A = family_matrix("wide")
    op = spmvtune.select_kernel(A, kernel="csr_colblock", threads=2, options={"block_bytes": 4096})
    assert op.info["blocks"] == -(-A.shape[1] // 512)
    x = _x(A.shape[1])
    assert_matches(op(x), A, x, "colblock")
