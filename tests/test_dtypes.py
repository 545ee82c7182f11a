"""Value types: every kernel x every type it claims (besides float64, which
tests/test_kernels.py covers on every family) x representative families x 1
and 2 threads, against SciPy's product of the same types; NumPy promotion
for mixed types; the registry's refusals.

Numba compiles one specialization per value type, so the families here are a
representative subset (empty, empty rows, one dense row, rectangular,
symmetric / skew / hermitian, blocks, stencil) rather than all of them.
"""
import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

import spmvtune
from spmvtune.pool import KernelUnusable, get_kernel, registry
from spmvtune.pool.registry import DTYPES
from conftest import family_matrix
from reference import assert_matches, hermitian, random_vector, typed

FAMILIES = ["empty_0x5", "empty_rows", "one_dense_row", "wide", "symmetric", "skew_symmetric",
            "blocks", "stencil"]
CASES = [(k, d) for k in spmvtune.kernel_names() for d in get_kernel(k).dtypes if d != "float64"]


def matrix(family, dtype):
    if family == "hermitian":
        return sp.csr_array(hermitian().astype(dtype))
    return typed(family_matrix(family), dtype, family)


def one_shape(kernel, A):
    """Block kernels at one shape (2 x 1, which the many-vector ones take too,
    where it fits): each shape is its own compiled kernel, and every shape is
    checked in float64 by test_kernels and test_spmm; here the types are what
    varies (fewer specializations to compile on a fresh machine)."""
    if "shape" in get_kernel(kernel).options and A.shape[0] >= 2:
        return {"shape": (2, 1)}
    return None


def is_symmetric_kind(A):
    if A.shape[0] != A.shape[1]:
        return False
    return any((A != B).nnz == 0 for B in (A.T, -A.T, A.T.conj()))


def families_for(dtype):
    return FAMILIES + (["hermitian"] if np.dtype(dtype).kind == "c" else [])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kernel,dtype", CASES, ids=[f"{k}-{d}" for k, d in CASES])
def test_kernel_matches_scipy_in_its_types(kernel, dtype, threads):
    for family in families_for(dtype):
        A = matrix(family, dtype)
        x = random_vector(A.shape[1], dtype)
        try:
            op = spmvtune.select_kernel(A, kernel=kernel, threads=threads,
                                        options=one_shape(kernel, A))
        except KernelUnusable as exc:
            assert kernel == "csr_sym" and not is_symmetric_kind(A), f"{family}: {exc}"
            continue
        assert op.dtype == dtype
        what = f"{kernel}/{dtype}/{family}/{threads}"
        y = op(x)
        assert y.dtype == dtype, what
        assert_matches(y, A, x, what)
        out = np.full(A.shape[0], np.nan, dtype=dtype)
        assert op.matvec(x, out=out) is out
        assert_matches(out, A, x, what + " (out=)")


def test_hermitian_matrix_runs_on_symmetric_storage():
    H = hermitian()
    op = spmvtune.select_kernel(H, kernel="csr_sym", threads=2)
    assert op.info["symmetry"] == "hermitian" and op.info["stored_nnz"] < 0.6 * H.nnz
    x = random_vector(H.shape[1], np.complex128)
    assert_matches(op(x), H, x, "hermitian csr_sym")
    # complex symmetric (not hermitian): the mirror is not conjugated
    S = typed(family_matrix("symmetric"), np.complex128, seed=3)
    S = sp.csr_array(S + S.T)
    op = spmvtune.select_kernel(S, kernel="csr_sym", threads=2)
    assert op.info["symmetry"] == "symmetric"
    x = random_vector(S.shape[1], np.complex128)
    assert_matches(op(x), S, x, "complex symmetric csr_sym")


MIXED = [("float32", "float64"), ("float64", "float32"), ("float32", "complex64"),
         ("float64", "complex128"), ("complex64", "float64"), ("complex64", "complex128"),
         ("complex128", "float32"), ("float32", "int64")]


@pytest.mark.parametrize("kernel", ["csr_balanced", "csr_sym", "dense_gemv"])
@pytest.mark.parametrize("a_dtype,x_dtype", MIXED)
def test_mixed_types_follow_numpy_promotion(kernel, a_dtype, x_dtype):
    A = typed(family_matrix("symmetric"), a_dtype, "symmetric")
    op = spmvtune.select_kernel(A, kernel=kernel, threads=2)
    x = (np.arange(A.shape[1]) % 7 - 3 if x_dtype == "int64"
         else random_vector(A.shape[1], x_dtype, seed=4))
    y = op(x)
    assert y.dtype == np.result_type(a_dtype, x_dtype)
    assert_matches(y, A, x, f"{kernel} {a_dtype} @ {x_dtype}")
    assert op(random_vector(A.shape[1], a_dtype)).dtype == a_dtype     # the native type again
    with pytest.raises(ValueError, match="out must be"):
        op.matvec(x, out=np.empty(A.shape[0], np.float32 if y.dtype != np.float32 else np.float64))


def test_float32_stays_float32_and_streams_fewer_bytes():
    from spmvtune.features import structural_features
    A = family_matrix("random")
    f64 = structural_features(A)
    f32 = structural_features(A.astype(np.float32))
    assert f64["value_bytes"] == 8 and f32["value_bytes"] == 4 and f32["complex_values"] == 0
    base = get_kernel("csr_balanced")
    # bytes per nonzero: 12 -> 8 (4-byte index + value)
    assert base.storage(f64) - base.storage(f32) == pytest.approx(4 * A.nnz)
    op = spmvtune.select_kernel(A.astype(np.float32), threads=2, cache=False)
    assert op.dtype == np.float32 and op(np.ones(A.shape[1], np.float32)).dtype == np.float32
    fc = structural_features(typed(A, np.complex64))
    assert fc["value_bytes"] == 8 and fc["complex_values"] == 1
    assert registry.value_dtype(fc) == "complex64" and registry.value_dtype(f32) == "float32"


def test_a_kernel_refuses_types_it_does_not_claim(monkeypatch):
    """A kernel registered for float64 only is refused, with a reason, for the
    other types, and the selector never picks it for them."""
    only64 = dataclasses.replace(get_kernel("csr_unroll4"), name="only_f64", dtypes=("float64",),
                                 siblings=())
    monkeypatch.setitem(registry._REGISTRY, "only_f64", only64)
    A32 = family_matrix("random").astype(np.float32)
    with pytest.raises(KernelUnusable, match="only_f64 runs float64 values, not float32"):
        spmvtune.select_kernel(A32, kernel="only_f64")
    from spmvtune.features import structural_features
    assert "not float32" in only64.refusal(structural_features(A32))
    op = spmvtune.select_kernel(A32, mode="exhaustive", threads=2, cache=False)
    assert op.kernel != "only_f64"
    assert spmvtune.select_kernel(family_matrix("random"), kernel="only_f64").dtype == np.float64


def test_every_kernel_claims_known_types():
    for name in spmvtune.kernel_names():
        spec = get_kernel(name)
        assert spec.dtypes and set(spec.dtypes) <= set(DTYPES)
        assert "float64" in spec.dtypes


def test_canonical_types():
    from spmvtune.validate import as_canonical_csr
    for dtype in DTYPES:
        assert as_canonical_csr(sp.csr_array(np.eye(3, dtype=dtype))).data.dtype == dtype
    for dtype in (np.int8, np.int64, np.uint16, np.bool_):
        assert as_canonical_csr(sp.csr_array(np.eye(3, dtype=dtype))).data.dtype == np.float64
    with pytest.raises(TypeError, match="longdouble|float128"):
        as_canonical_csr(sp.csr_array(np.eye(3, dtype=np.longdouble)))


def test_the_cache_keeps_decisions_per_type():
    from spmvtune.tuning_cache import decision_key
    from spmvtune.validate import as_canonical_csr
    A = family_matrix("random")
    keys = {decision_key(as_canonical_csr(A.astype(d)), 2, "auto") for d in DTYPES}
    keys.add(decision_key(as_canonical_csr(A), 2, "auto", transpose=True))
    assert len(keys) == len(DTYPES) + 1
