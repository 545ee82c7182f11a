"""spmvtune.linalg against scipy.sparse.linalg: same info, iterations, solutions.

Small systems (quick); one system above the vector kernels' serial threshold so
that the threaded kernels run too.  Speed is in benchmarks/solvers.py.
"""
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla

import spmvtune
from spmvtune import generate
from spmvtune.linalg import _fused, _vector, bicgstab, cg, gmres, tune

SOLVERS = {"cg": (cg, sla.cg), "bicgstab": (bicgstab, sla.bicgstab),
           "gmres": (gmres, sla.gmres)}


def convdiff(m, alpha=5.0, beta=5.0):
    """Implicit convection-diffusion step on an m x m grid (nonsymmetric)."""
    e = np.ones(m)
    T = sp.diags_array([-e[1:], 2 * e, -e[1:]], offsets=[-1, 0, 1])
    U = sp.diags_array([-e[1:], e], offsets=[-1, 0])
    I = sp.eye_array(m)
    A = (sp.eye_array(m * m) + alpha * (sp.kron(I, T) + sp.kron(T, I))
         + beta * (sp.kron(I, U) + 0.5 * sp.kron(U, I)))
    return sp.csr_array(A)


def spd(m=20):
    """2-D Laplacian with a varying diagonal (Jacobi helps), SPD."""
    A = generate.laplacian_2d(m)
    d = np.linspace(1.0, 30.0, A.shape[0])
    return sp.csr_array(A + sp.diags_array(d))


SYSTEMS = {"spd": spd, "nonsym": lambda: convdiff(18)}
CASES = [("cg", "spd"), ("bicgstab", "spd"), ("bicgstab", "nonsym"),
         ("gmres", "spd"), ("gmres", "nonsym")]


def rhs(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n)


def run_both(name, A, b, ref_M=None, **kw):
    """(ours, scipy): each (x, info, callback count).  ref_M: SciPy's M when
    it differs from ours (``"jacobi"``)."""
    ours_fn, ref_fn = SOLVERS[name]
    if name == "gmres":
        kw.setdefault("callback_type", "pr_norm")
    out = []
    for fn in (ours_fn, ref_fn):
        count = [0]

        def cb(_):
            count[0] += 1
        args = dict(kw, M=ref_M) if fn is ref_fn and ref_M is not None else kw
        x, info = fn(A, b, callback=cb, **args)
        out.append((x, info, count[0]))
    return out


def assert_same(name, A, b, ours, ref, rtol=1e-5, exact=True):
    (x, info, it), (x_ref, info_ref, it_ref) = ours, ref
    assert info == info_ref
    assert x.shape == (A.shape[0],) and x.dtype == np.float64
    if exact:      # rounding apart, the same arithmetic: same count, same iterates
        assert it == it_ref
        assert np.linalg.norm(x - x_ref) <= 1e-8 * np.linalg.norm(x_ref)
    else:          # BiCGSTAB amplifies rounding: counts within 5%, same accuracy
        assert abs(it - it_ref) <= max(2, 0.05 * it_ref)
        assert np.linalg.norm(x - x_ref) <= 100 * rtol * np.linalg.norm(x_ref)
    if info == 0:
        res = np.linalg.norm(b.ravel() - A @ x)
        res_ref = np.linalg.norm(b.ravel() - A @ x_ref)
        assert res <= max(2 * res_ref, 1.1 * rtol * np.linalg.norm(b))


@pytest.mark.parametrize("name,system", CASES)
@pytest.mark.parametrize("M", [None, "jacobi", "matrix", "operator"])
def test_matches_scipy(name, system, M):
    A = SYSTEMS[system]()
    b = rhs(A.shape[0])
    dinv = sp.diags_array(1.0 / A.diagonal())
    M_ours = {"matrix": dinv, "operator": sla.aslinearoperator(dinv)}.get(M, M)
    M_ref = None if M is None else dinv
    ours, ref = run_both(name, A, b, M=M_ours, ref_M=M_ref)
    assert_same(name, A, b, ours, ref, exact=name != "bicgstab")


@pytest.mark.parametrize("name,system", CASES)
def test_x0_column_b_and_tolerances(name, system):
    A = SYSTEMS[system]()
    n = A.shape[0]
    b = rhs(n, 1).reshape(n, 1)
    x0 = rhs(n, 2).reshape(n, 1)
    ours, ref = run_both(name, A, b, x0=x0, rtol=1e-7, atol=1e-9)
    assert_same(name, A, b, ours, ref, rtol=1e-7, exact=name != "bicgstab")
    assert x0[0, 0] == rhs(n, 2)[0]           # x0 is not modified
    ours, ref = run_both(name, A, b, x0="Mb", M=sp.diags_array(1.0 / A.diagonal()))
    assert_same(name, A, b, ours, ref, exact=name != "bicgstab")


@pytest.mark.parametrize("name,system", CASES)
def test_maxiter_stops_with_info(name, system):
    A = SYSTEMS[system]()
    b = rhs(A.shape[0])
    extra = {"restart": 4} if name == "gmres" else {}
    ours, ref = run_both(name, A, b, maxiter=3, rtol=1e-12, **extra)
    assert ours[1] == ref[1] == 3
    assert ours[2] == ref[2]
    assert np.linalg.norm(ours[0] - ref[0]) <= 1e-10 * np.linalg.norm(ref[0])


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_zero_rhs_and_converged_start(name):
    A = spd(6)
    ours, _ = SOLVERS[name]
    x, info = ours(A, np.zeros(36))
    assert info == 0 and not x.any()
    b = rhs(36)
    x_exact = sp.linalg.spsolve(sp.csc_array(A), b)
    x, info = ours(A, b, x0=x_exact)
    assert info == 0 and np.allclose(x, x_exact)


def breakdown_case():
    """SciPy's test matrix "sym-nonpd": BiCGSTAB breaks down, CG diverges."""
    A = np.zeros((11, 11))
    A[:5, 5] = [1, 2, 2, 2, 1]
    A[5, :5] = [1, 2, 2, 2, 1]
    A[6:, 6:] = -np.eye(5)
    A[:5, 6:] = -np.eye(5)
    A[6:, :5] = -np.eye(5)
    b = np.zeros(11)
    b[5] = 1.0
    return A, b


@pytest.mark.parametrize("as_sparse", [False, True])
def test_breakdown_cases(as_sparse):
    A, b = breakdown_case()
    A = sp.csr_array(A) if as_sparse else A
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # CG divides by zero, as SciPy does
        for name in ("bicgstab", "cg", "gmres"):
            ours, ref = run_both(name, A, b)
            assert ours[1] == ref[1] and ours[2] == ref[2], name
            both_nan = np.isnan(ours[0]) & np.isnan(ref[0])
            assert np.allclose(ours[0][~both_nan], ref[0][~both_nan]), name
    assert bicgstab(A, b)[1] == -11


def test_gmres_defective_cases_like_scipy():
    M = np.eye(3)
    M[2, 2] = 0
    b = np.array([0, 1, 1.0])
    A = sp.csr_array(np.diag([2, 3, 4.0]))
    ours = gmres(A, b, x0=np.array([1, 0, 0.0]), M=M, rtol=1e-15, atol=0)
    ref = sla.gmres(A, b, x0=np.array([1, 0, 0.0]), M=M, rtol=1e-15, atol=0)
    assert ours[1] == ref[1] and np.allclose(ours[0], ref[0])
    A = sp.csr_array(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0.0]]))
    ours, ref = gmres(A, np.array([1, 0, 1.0]), rtol=1e-8), sla.gmres(A, np.array([1, 0, 1.0]), rtol=1e-8)
    assert ours[1] == ref[1] and np.allclose(ours[0], ref[0])


@pytest.mark.parametrize("callback_type", ["x", "pr_norm", "legacy"])
def test_gmres_callback_types(callback_type):
    A = convdiff(12)
    b = rhs(A.shape[0])
    for kw in ({"maxiter": 4}, {}):
        got = []
        ref = []
        x, info = gmres(A, b, restart=5, callback=got.append, callback_type=callback_type, **kw)
        x_ref, info_ref = sla.gmres(A, b, restart=5, callback=ref.append,
                                    callback_type=callback_type, **kw)
        assert info == info_ref and len(got) == len(ref)
        if callback_type == "x":
            assert all(isinstance(g, np.ndarray) for g in got)
        else:
            assert np.allclose(got, ref, rtol=1e-8)
        assert np.allclose(x, x_ref, rtol=1e-10)


def test_gmres_warns_and_checks_callback_type():
    A = spd(5)
    b = rhs(25)
    with pytest.warns(DeprecationWarning, match="callback_type"):
        gmres(A, b, callback=lambda r: None)
    with pytest.raises(ValueError, match="Unknown callback_type"):
        gmres(A, b, callback=lambda r: None, callback_type="nope")


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_other_kinds_of_A(name):
    A = spd(8)
    n = A.shape[0]
    b = rhs(n)
    ours, ref = SOLVERS[name]
    kw = {"rtol": 1e-9}
    x_ref, info_ref = ref(A, b, **kw)
    for kind in (A.toarray(), sla.aslinearoperator(A), spmvtune.select_kernel(A),
                 sp.coo_array(A), sp.csr_matrix(A)):
        x, info = ours(kind, b, **kw)
        assert info == info_ref
        assert np.allclose(x, x_ref, rtol=1e-9, atol=1e-12), type(kind).__name__


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_complex_and_single_precision_go_to_scipy(name):
    A = spd(6)
    b = rhs(36) + 1j * rhs(36, 5)
    ours, ref = SOLVERS[name]
    x, info = ours(A.astype(np.complex128), b)
    x_ref, info_ref = ref(A.astype(np.complex128), b)
    assert x.dtype == x_ref.dtype == np.complex128 and info == info_ref
    assert np.allclose(x, x_ref)
    A32, b32 = A.astype(np.float32), rhs(36).astype(np.float32)
    x, info = ours(A32, b32)
    x_ref, info_ref = ref(A32, b32)
    assert x.dtype == np.float32 and np.array_equal(x, x_ref)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_errors_like_scipy(name):
    A = spd(5)
    ours, ref = SOLVERS[name]
    for bad in ({"b": np.ones(7)}, {"b": np.ones(25), "x0": np.ones(3)},
                {"b": np.ones(25), "atol": -1.0}, {"b": np.ones(25), "atol": None}):
        kw = dict(bad)
        b = kw.pop("b")
        with pytest.raises(ValueError) as ours_err:
            ours(A, b, **kw)
        with pytest.raises(ValueError):
            ref(A, b, **kw)
        assert str(ours_err.value)
    with pytest.raises(ValueError, match="square"):
        ours(sp.csr_array(np.ones((3, 4))), np.ones(3))
    with pytest.raises(ValueError, match="jacobi"):
        ours(A, np.ones(25), M="jacobi2")
    with pytest.raises(ValueError, match=r"A\[2, 2\] is 0"):
        Z = A.tolil()
        Z[2, 2] = 0
        ours(sp.csr_array(Z), np.ones(25), M="jacobi")
    with pytest.raises(ValueError, match="needs A as a scipy.sparse"):
        ours(sla.aslinearoperator(A), np.ones(25), M="jacobi")


@pytest.mark.parametrize("name,system", CASES)
def test_threaded_vector_kernels(name, system):
    """Above the serial threshold the threaded kernels run: same results."""
    m = 260 if system == "spd" else 258
    A = spd(m) if system == "spd" else convdiff(m)
    assert A.shape[0] >= _vector.SERIAL_BELOW
    b = rhs(A.shape[0])
    ours, ref = run_both(name, A, b, maxiter=25 if name != "gmres" else 2, rtol=1e-10)
    assert ours[1] == ref[1] and ours[2] == ref[2]
    assert np.linalg.norm(ours[0] - ref[0]) <= 1e-6 * np.linalg.norm(ref[0])


def test_fused_twins_match_the_kernels():
    from families import FAMILIES
    for fam in ("diagonal", "banded", "random", "power_law", "stencil", "laplacian", "empty_rows"):
        A = FAMILIES[fam]()
        n = A.shape[0]
        x = rhs(n, 3)
        z = rhs(n, 4)
        for kernel in ("csr_serial", "csr_balanced", "csr_unroll4", "csr_vi", "csr_prefetch"):
            for threads in (1, 2):
                op = spmvtune.select_kernel(A, kernel=kernel, threads=threads)
                twin = _fused.fused_for(op._run)
                assert twin is not None, kernel
                y = np.full(n, np.nan)
                zy, yy = twin(*op._args, x, y, z, np.zeros((3, 2)))
                ref = A @ x
                assert np.allclose(y, ref, rtol=1e-12, atol=1e-12), (fam, kernel)
                assert np.isclose(zy, z @ ref, rtol=1e-10, atol=1e-10)
                assert np.isclose(yy, ref @ ref, rtol=1e-10, atol=1e-10)


def test_unrolled_sibling_is_csr_unroll4():
    """The race's contestant shares csr_balanced's arrays: the same layout
    csr_unroll4 prepares, so it is that kernel."""
    A = generate.random_scatter(3000, 7, seed=1)
    for threads in (1, 2):
        base = spmvtune.select_kernel(A, kernel="csr_balanced", threads=threads)
        real = spmvtune.select_kernel(A, kernel="csr_unroll4", threads=threads)
        sib = _fused.unrolled_sibling(base)
        assert sib.kernel == "csr_unroll4" and sib._run is real._run
        assert all(np.array_equal(a, b) for a, b in zip(sib._args, real._args))
        x = rhs(3000)
        assert np.allclose(sib(x), A @ x) and base._run is not sib._run
    assert _fused.unrolled_sibling(real) is None


def test_unfused_kernels_still_give_the_dots():
    A = generate.symmetric(generate.random_scatter(600, 4, seed=6))
    b = rhs(600)
    op = spmvtune.select_kernel(A, kernel="csr_sym")
    assert _fused.fused_for(op._run) is None
    x, info = bicgstab(op, b, rtol=1e-10)
    x_ref, info_ref = sla.bicgstab(A, b, rtol=1e-10)
    assert info == info_ref
    assert np.linalg.norm(A @ x - b) <= 1e-9 * np.linalg.norm(b)


def test_vector_kernels_against_numpy():
    rng = np.random.default_rng(7)
    for n in (0, 1, 5, 1000):
        for parts in (1, 2, 3):
            bounds = _vector.even_rows(n, parts)
            red = np.zeros((4, 2))
            v = [rng.standard_normal(n) for _ in range(6)]
            dinv = rng.uniform(0.5, 2.0, n)
            for suffix in ("_par", "_ser") if parts > 1 else ("_ser",):
                k = {name: getattr(_vector, name + suffix) for name in
                     ("cg_residual", "cg_direction", "bicg_step", "mgs_pair", "combine")}
                x, p, r, q = (a.copy() for a in v[:4])
                rr, rz = k["cg_residual"](bounds, red, 0.3, x, p, r, q, dinv)
                r_ref = v[2] - 0.3 * v[3]
                assert np.allclose(x, v[0] + 0.3 * v[1]) and np.allclose(r, r_ref)
                assert np.isclose(rr, r_ref @ r_ref) and np.isclose(rz, r_ref @ (dinv * r_ref))
                x, p, z = (a.copy() for a in v[:3])
                k["cg_direction"](bounds, 0.5, None, p, z, None, 2.0)
                assert np.array_equal(x, v[0]) and np.allclose(p, 2.0 * v[1] + v[2])
                x, ph, sh, r, t, rt = (a.copy() for a in v)
                rr, rho = k["bicg_step"](bounds, red, 0.2, 0.7, x, ph, sh, r, t, rt)
                r_ref = v[3] - 0.7 * v[4]
                assert np.allclose(x, (v[0] + 0.2 * v[1]) + 0.7 * v[2])
                assert np.isclose(rr, r_ref @ r_ref) and np.isclose(rho, v[5] @ r_ref)
                red4 = np.zeros((4, 4))
                w = v[0].copy()
                ww, c, d, g = k["mgs_pair"](bounds, red4, 0.4, v[1], -0.3, v[2], w, v[3], v[4])
                w_ref = (v[0] - 0.4 * v[1]) - -0.3 * v[2]
                assert np.allclose(w, w_ref) and np.isclose(ww, w_ref @ w_ref)
                assert np.isclose(c, v[3] @ w_ref) and np.isclose(d, v[4] @ w_ref)
                assert np.isclose(g, v[4] @ v[3])
                w = v[0].copy()
                ww, c, d, g = k["mgs_pair"](bounds, red4, 0.4, v[1], 0.0, None, w, None, None)
                w_ref = v[0] - 0.4 * v[1]
                assert np.allclose(w, w_ref) and np.isclose(ww, w_ref @ w_ref) and c == d == g == 0
                V = np.array(v[:4]) if n else np.zeros((4, 0))
                x = v[5].copy()
                y = np.array([0.5, -1.0, 2.0])
                k["combine"](bounds, x, y, V)
                assert np.allclose(x, v[5] + y @ V[:3])


@pytest.mark.parametrize("col", [0, 1, 2, 5, 8])
def test_gram_schmidt_two_steps_per_pass_is_mgs(col):
    """Two basis vectors per pass over w: the coefficients and w of modified
    Gram-Schmidt, one step per pass (SciPy's), to rounding -- also for an
    ill-conditioned w nearly in the span of the basis."""
    gmres_mod = sys.modules["spmvtune.linalg.gmres"]
    rng = np.random.default_rng(col)
    n = 500
    V, _ = np.linalg.qr(rng.standard_normal((n, col + 2)))
    V = np.ascontiguousarray(V.T)
    for w0 in (rng.standard_normal(n), V[: col + 1].T @ rng.standard_normal(col + 1)
               + 1e-9 * rng.standard_normal(n)):
        out = {}
        for pairs in (True, False):
            h = np.zeros((col + 1, col + 2))
            w = w0.copy()
            h[col, 0] = V[0] @ w
            bounds = _vector.even_rows(n, 1)
            ww = gmres_mod._orthogonalize(_vector.mgs_pair_ser, bounds, np.zeros((2, 4)), h, V,
                                          w, col, pairs=pairs)
            out[pairs] = (h[col, :col + 1].copy(), w, ww)
        scale = np.linalg.norm(w0)
        assert np.allclose(out[True][0], out[False][0], rtol=0, atol=1e-13 * scale)
        assert np.allclose(out[True][1], out[False][1], rtol=0, atol=1e-13 * scale)
        assert abs(V[: col + 1] @ out[True][1]).max() <= 1e-12 * scale


def test_remaining_products_estimate():
    h = tune.History()
    for calls in range(0, 101):           # residual 10^(-calls/10), then a target of 1e-14
        h.record(calls, 10.0 ** (-calls / 10))
    assert len(h.calls) < 40                                    # log-spaced
    assert h.remaining(1e-14) == pytest.approx(40.0, rel=1e-6)
    assert h.remaining(1e-9) == 0
    h = tune.History()
    for calls in range(0, 101):           # slow at first, fast lately: the recent rate counts
        h.record(calls, 1.0 if calls < 50 else 10.0 ** (-(calls - 50) / 10))
    assert h.remaining(1e-10) == pytest.approx(50.0, rel=0.05)
    h = tune.History()
    for calls in range(0, 50):
        h.record(calls, 1.0 + calls)                            # growing: no estimate
    assert h.remaining(1e-8) is None
    assert tune.worth_tuning(0.0) == np.inf
    assert tune.selection_seconds(1e-3) > tune.selection_seconds(1e-4) > 0
    # cheap products need more of them to outweigh selection's fixed part
    assert tune.worth_tuning(1e-6) > tune.worth_tuning(1e-4) >= tune.MIN_TUNE_PRODUCTS
    assert tune.worth_tuning(1e-2) == tune.MIN_TUNE_PRODUCTS


def test_tuning_inside_a_long_solve(monkeypatch):
    """With the threshold lowered, a solve selects a kernel, times it in the
    solve and keeps whichever is faster; the result stays SciPy's."""
    monkeypatch.setattr(tune, "worth_tuning", lambda t: 1)
    monkeypatch.setattr(tune, "selection_seconds", lambda t: 0.0)
    A = spd(40)
    b = rhs(A.shape[0])
    cg_mod = sys.modules["spmvtune.linalg.cg"]
    details = {}
    x, info, iterations = cg_mod._solve(A, b, rtol=1e-10, details=details)
    x_ref, info_ref = sla.cg(A, b, rtol=1e-10)
    assert info == info_ref == 0
    assert np.linalg.norm(x - x_ref) <= 1e-8 * np.linalg.norm(x_ref)
    assert details["tuning"][0].startswith("raced csr_balanced")
    assert any(e.startswith("selected") for e in details["tuning"])
    # maxiter too small to repay anything: never tunes
    monkeypatch.setattr(tune, "worth_tuning", lambda t: 30)
    details = {}
    cg_mod._solve(A, b, rtol=1e-10, maxiter=25, details=details)
    assert not any(e.startswith("selected") for e in details["tuning"])
    assert details["kernel"] in ("csr_balanced", "csr_unroll4")


# ---------------------------------------------------------------- CLI

def _cli(args):
    from click.testing import CliRunner
    from spmvtune.cli import main
    return CliRunner().invoke(main, ["solve", *args])


def _write(tmp_path, A, name="A.mtx"):
    import scipy.io
    path = tmp_path / name
    scipy.io.mmwrite(str(path), A)
    return str(path)


def test_cli_solve_compare_json(tmp_path):
    import json
    path = _write(tmp_path, spd(12))
    r = _cli([path, "--compare", "--json", "--rtol", "1e-9"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["info"] == 0 and doc["status"] == "converged"
    assert doc["iterations"] == doc["scipy"]["iterations"] > 0
    assert doc["residual"] < 1e-9 and doc["speedup"] > 0
    # the solve races the baseline against its unrolled sibling: either may win
    assert doc["kernel"] in ("csr_balanced", "csr_unroll4")


def test_cli_solve_writes_x_and_shows_progress(tmp_path, monkeypatch):
    from spmvtune.linalg import _cli as solve_cli
    monkeypatch.setattr(solve_cli, "PROGRESS_EVERY", 0.0)
    A = convdiff(15)
    path = _write(tmp_path, A)
    out = tmp_path / "x.npy"
    r = _cli([path, "--method", "gmres", "--restart", "10", "--rhs", "random", "--precond",
              "jacobi", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "converged" in r.stdout and "gmres iteration" in r.stderr
    x = np.load(out)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    assert np.linalg.norm(b - A @ x) <= 1.01e-5 * np.linalg.norm(b)


def test_cli_solve_rhs_file_and_errors(tmp_path):
    A = spd(6)
    path = _write(tmp_path, A)
    rhs = tmp_path / "b.txt"
    np.savetxt(rhs, np.arange(36.0))
    r = _cli([path, "--rhs", str(rhs), "--method", "bicgstab"])
    assert r.exit_code == 0, r.output
    np.savetxt(rhs, np.arange(35.0))
    r = _cli([path, "--rhs", str(rhs)])
    assert r.exit_code == 1 and "35 values, but the matrix has 36 rows" in r.output
    r = _cli([path, "--rhs", "nothing-here"])
    assert r.exit_code == 1 and "not 'ones', 'random' or a readable file" in r.output
    rect = _write(tmp_path, sp.csr_array(np.ones((3, 4))), "rect.mtx")
    r = _cli([rect])
    assert r.exit_code == 1 and "3 x 4" in r.output and "square" in r.output
    bad = tmp_path / "bad.mtx"
    bad.write_text("%%MatrixMarket matrix coordinate real general\n2 2 1\n1 x 1.0\n")
    r = _cli([str(bad)])
    assert r.exit_code == 1 and "bad.mtx:3" in r.output
    r = _cli([path, "--maxiter", "2", "--rtol", "1e-12"])
    assert r.exit_code == 1 and "not converged" in r.output


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_degenerate_systems_like_scipy(name):
    ours, ref = SOLVERS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")              # 0/0 in CG, as in SciPy
        for A, b, kw in ((sp.csr_array((0, 0)), np.zeros(0), {}),
                         (sp.csr_array(np.array([[4.0]])), np.array([2.0]), {}),
                         (sp.csr_array((3, 3)), np.ones(3), {"maxiter": 5})):
            x, info = ours(A, b, **kw)
            x_ref, info_ref = ref(A, b, **kw)
            assert info == info_ref and np.array_equal(x, x_ref, equal_nan=True)
