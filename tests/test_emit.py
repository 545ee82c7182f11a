"""Emitted C kernels: compiled with the system compiler, loaded with ctypes and
checked against SciPy on every matrix family of the pool tests; the emit
command end to end, including a C program built against the header."""
import functools
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

import spmvtune
from families import FAMILIES
from reference import assert_matches, hermitian, random_vector, typed
from spmvtune.cbuild import CKernel, find_compiler
from spmvtune.cli import main
from spmvtune.emit import VALUE_TYPES, Emitted, render, templated_kernels
from spmvtune.pool import get_kernel
from conftest import family_matrix

pytestmark = pytest.mark.skipif(find_compiler() is None,
                                reason="no C compiler (cc/gcc/clang, or $CC) on this machine")
BUNDLED = Path(__file__).resolve().parents[1] / "matrices"


@functools.lru_cache(maxsize=None)
def built(kernel, index_bits=32, dtype=None, **info):
    op = types.SimpleNamespace(info=info) if info else None
    return CKernel(render(kernel, op=op, index_bits=index_bits, dtype=dtype))


def check(ck, A, threads):
    """C result == SciPy's (to rounding), or the kernel refused with a reason.
    A must hold the kernel's value type (see ``typed``)."""
    assert A.dtype == ck.dtype
    x = random_vector(A.shape[1], ck.dtype, seed=3)
    try:
        plan = ck.prepare(A, threads)
    except ValueError as exc:
        assert str(exc).startswith(ck.emitted.kernel + ": ") and len(str(exc)) > 20
        return False
    y = np.full(A.shape[0], np.nan, dtype=ck.dtype)
    plan(x, y)
    assert_matches(y, A, x, ck.emitted.kernel)
    plan(x, y)                        # a plan runs many times
    assert_matches(y, A, x, ck.emitted.kernel)
    return True


def test_every_kernel_has_a_template():
    assert templated_kernels() == spmvtune.kernel_names()


@pytest.mark.parametrize("kernel", templated_kernels())
@pytest.mark.parametrize("threads", [1, 2])
def test_emitted_kernel_matches_scipy_on_every_family(kernel, threads):
    ck = built(kernel)
    used = sum(check(ck, FAMILIES[f](), threads) for f in FAMILIES)
    assert used == len(FAMILIES) or (kernel == "csr_sym" and used >= 4)


@pytest.mark.parametrize("kernel", ["csr_balanced", "csr_split", "csr_delta", "bcsr_vi",
                                    "csr_colblock", "csr_sym"])
def test_64_bit_indices(kernel):
    ck = built(kernel, index_bits=64)
    assert ck.index_dtype == np.int64
    for f in FAMILIES:
        check(ck, FAMILIES[f](), 2)


@pytest.mark.parametrize("shape", [(1, 2), (1, 3), (1, 8), (2, 2), (3, 3), (4, 2)])
def test_block_shapes(shape):
    for kernel in ("bcsr", "bcsr_vi"):
        ck = built(kernel, shape=shape)
        assert all(check(ck, FAMILIES[f](), 2) for f in FAMILIES)


def test_small_column_blocks_and_prefetch_distances():
    ck = built("csr_colblock_prefetch", block_columns=7, distance=3)
    assert ck.emitted.defines["SPMV_BLOCK_COLS"] == 7
    assert all(check(ck, FAMILIES[f](), 2) for f in FAMILIES)
    for kernel in ("csr_prefetch", "csr_split_prefetch", "csr_vi_prefetch"):
        ck = built(kernel, distance=1)
        assert all(check(ck, FAMILIES[f](), 2) for f in FAMILIES)


def test_value_codes_that_do_not_fit_are_refused():
    ck = built("csr_vi", value_bytes=1)
    assert ck.emitted.defines["SPMV_CODE"] == "uint8_t"
    A = sp.random_array((50, 50), density=0.5, random_state=0, format="csr")
    with pytest.raises(ValueError, match="too many distinct values"):
        ck.prepare(A)
    B = sp.csr_array(np.round(A.toarray() * 10))        # 21 distinct values
    assert check(ck, B, 2)


def test_symmetric_kernel_refuses_a_general_matrix_and_handles_skew():
    ck = built("csr_sym")
    with pytest.raises(ValueError, match="neither symmetric, skew-symmetric nor hermitian"):
        ck.prepare(sp.csr_array(np.array([[1.0, 2.0], [3.0, 4.0]])))
    with pytest.raises(ValueError, match="square"):
        ck.prepare(sp.csr_array(np.ones((2, 3))))
    R = sp.random_array((40, 40), density=0.2, random_state=1, format="csr")
    assert check(ck, sp.csr_array(R - R.T), 2) and check(ck, sp.csr_array(R + R.T), 2)


def test_emit_command_writes_a_source_a_c_program_can_use(tmp_path):
    cc = find_compiler()
    out = tmp_path / "lap.c"
    r = CliRunner().invoke(main, ["emit", str(BUNDLED / "laplace2d_40.mtx"), "-o", str(out),
                                  "--header", "--kernel", "csr_vi", "--prefix", "lap",
                                  "--threads", "2"])
    assert r.exit_code == 0, r.output
    src = out.read_text()
    for fact in ("Fingerprint: ", "Bottlenecks: ", "GFLOP/s", "lap_prepare(n_rows", "7840 nonzeros"):
        assert fact in src
    assert "lap_run" in (tmp_path / "lap.h").read_text()
    main_c = tmp_path / "main.c"
    main_c.write_text(r'''
#include <stdio.h>
#include "lap.h"
int main(void) {
    /* [[2 -1 0] [-1 2 -1] [0 -1 2]] */
    int32_t indptr[] = {0, 2, 5, 7}, indices[] = {0, 1, 0, 1, 2, 1, 2};
    double data[] = {2, -1, -1, 2, -1, -1, 2}, x[] = {1, 2, 3}, y[3];
    lap_plan *plan = lap_prepare(3, 3, indptr, indices, data, 2);
    if (!plan) { fprintf(stderr, "%s\n", lap_last_error()); return 1; }
    lap_run(plan, x, y);
    printf("%g %g %g\n", y[0], y[1], y[2]);
    lap_free(plan);
    return 0;
}
''')
    exe = tmp_path / "demo"
    subprocess.run([cc, "-std=c99", "-O2", "-fopenmp", str(main_c), str(out), "-o", str(exe)],
                   check=True, capture_output=True, cwd=tmp_path)
    res = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["0", "0", "4"]


def test_emit_selects_when_no_kernel_is_given(tmp_path):
    out = tmp_path / "k.c"
    r = CliRunner().invoke(main, ["emit", str(BUNDLED / "fem_blocks_900.mtx.gz"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    chosen = r.output.split()[0]
    assert chosen in templated_kernels() and f"spmvtune kernel {chosen}" in out.read_text()
    ck = CKernel(Emitted(chosen, f"spmvtune_{chosen}", out.read_text(), "",
                         {"SPMV_INDEX": "int32_t"}))
    A = spmvtune.load(BUNDLED / "fem_blocks_900.mtx.gz")
    assert check(ck, A, 2)


def test_emit_list_and_errors(tmp_path):
    r = CliRunner().invoke(main, ["emit", "--list"])
    assert r.exit_code == 0
    assert all(name in r.output for name in spmvtune.kernel_names())
    r = CliRunner().invoke(main, ["emit"])
    assert r.exit_code == 2 and "--list" in r.output
    r = CliRunner().invoke(main, ["emit", str(BUNDLED / "laplace2d_40.mtx"), "--kernel", "nope"])
    assert r.exit_code == 2 and "unknown kernel" in r.output
    bad = tmp_path / "bad.mtx"
    bad.write_text("%%MatrixMarket matrix coordinate real general\n2 2 1\n3 3 1\n")
    r = CliRunner().invoke(main, ["emit", str(bad)])
    assert r.exit_code == 1 and f"{bad}:3" in r.output


@pytest.mark.parametrize("kernel", templated_kernels())
def test_emitted_source_compiles_without_warnings(kernel, tmp_path):
    src = tmp_path / f"{kernel}.c"
    cases = [({}, None), ({"shape": (1, 3)}, None), ({"value_bytes": 1}, None)]
    cases += [({"shape": (2, 2), "value_bytes": 1}, d) for d in c_types(kernel)]
    for info, dtype in cases:
        src.write_text(render(kernel, op=types.SimpleNamespace(info=info), dtype=dtype).source)
        res = subprocess.run([find_compiler(), "-std=c99", "-fopenmp", "-Wall", "-Wextra",
                              "-Werror", "-fsyntax-only", str(src)], capture_output=True, text=True)
        assert res.returncode == 0, (dtype, res.stderr)


def c_types(kernel):
    """The value types the kernel's C template runs."""
    spec = get_kernel(kernel)
    return spec.c_dtypes or spec.dtypes


EMIT_FAMILIES = ["empty_0x5", "empty_rows", "one_dense_row", "wide", "symmetric",
                 "skew_symmetric", "blocks", "stencil"]
#: complex64 differs from complex128 only by the C type (and conjf): built for a few
#: kernels here; every kernel x type is compiled with -Werror above.
COMPLEX64_BUILT = ("csr_balanced", "csr_split", "csr_vi", "bcsr_vi", "csr_sym")
TYPED = [(k, d) for k in templated_kernels() for d in c_types(k)
         if d in ("float32", "complex128") or (d == "complex64" and k in COMPLEX64_BUILT)]


@pytest.mark.parametrize("kernel,dtype", TYPED, ids=[f"{k}-{d}" for k, d in TYPED])
def test_emitted_kernel_in_every_type_it_claims(kernel, dtype):
    """float32 / complex templates (SPMV_VALUE) against SciPy's product of the same type."""
    ck = built(kernel, dtype=dtype)
    assert ck.dtype == dtype and ck.emitted.defines["SPMV_VALUE"] in VALUE_TYPES[dtype]
    mats = [typed(family_matrix(f), dtype, f) for f in EMIT_FAMILIES]
    if np.dtype(dtype).kind == "c":
        mats.append(sp.csr_array(hermitian().astype(dtype)))
    used = sum(check(ck, A, 2) for A in mats)
    assert used == len(mats) or (kernel == "csr_sym" and used >= 3)


def test_a_type_the_kernel_does_not_claim_is_refused(monkeypatch):
    import dataclasses
    from spmvtune.pool import registry
    only64 = dataclasses.replace(get_kernel("csr_balanced"), name="only_f64", dtypes=("float64",))
    monkeypatch.setitem(registry._REGISTRY, "only_f64", only64)
    with pytest.raises(ValueError, match="only_f64 runs float64 values, not float32"):
        render("only_f64", dtype=np.float32)
    assert "SPMV_VALUE double" in render("only_f64").source


MANY = tuple(k for k in templated_kernels() if spmvtune.pool.get_kernel(k).max_vectors > 1)


@pytest.mark.parametrize("kernel", MANY)
@pytest.mark.parametrize("threads", [1, 2])
def test_emitted_many_vector_kernel_matches_scipy(kernel, threads):
    """<prefix>_matmat: Y = A X for row-major X, every family, k around the panel widths."""
    infos = [{}] + ([{"shape": (2, 1)}, {"shape": (3, 1)}] if "bcsr" in kernel else [])
    for info in infos:
        ck = built(kernel, **info)
        for f in FAMILIES:
            A = FAMILIES[f]()
            plan = ck.prepare(A, threads)
            for k in (1, 5, 16, 21):
                X = np.random.default_rng(k).uniform(-1, 1, (A.shape[1], k))
                Y = plan.matmat(X, np.full((A.shape[0], k), np.nan))
                for j in range(k):
                    assert_matches(Y[:, j], A, X[:, j], f"{kernel} {info} {f} k={k}")
