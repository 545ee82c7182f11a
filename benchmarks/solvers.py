"""spmvtune.linalg's solvers end to end against SciPy's, on this machine.

1. Solves: CG on the 3-D Poisson matrix (100^3 unknowns, 7-point), BiCGSTAB and
   GMRES(30) on an implicit step of 2-D convection-diffusion (1000^2
   unknowns, upwind), rtol 1e-8.  Each solve of spmvtune starts from the
   scipy.sparse matrix, so kernel selection and setup are included (the tuning
   cache is off: every selection is cold).  SciPy runs inside
   ``spmvtune.single_threaded_blas()``, its faster configuration here.  The two
   alternate, in shuffled order, for ``--rounds`` rounds; reported: median
   times, the median of the per-round ratios, iterations, and the final true
   residual ||b - A x|| / ||b|| of each.
2. ``--kernels``: why the fused kernels are built the way they are: the
   product with the dot folded in against the product and a separate dot pass,
   modified Gram-Schmidt one and two steps per pass against NumPy's, and the
   vector kernels threaded against serial by length.

3. ``--shared DIR``: fidelity on real matrices: info, callback counts and
   iterates against SciPy's, next to how far SciPy moves from itself when it
   sums each row in another order.

    python benchmarks/solvers.py [--rounds 3] [--only cg,bicgstab,gmres] [--kernels]
                                 [--shared ../shared/matrices/suitesparse]

Writes benchmarks/results/solvers.txt (and prints as it goes).
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

import spmvtune
from spmvtune.linalg import tune

OUT = Path(__file__).resolve().parent / "results" / "solvers.txt"


def poisson3d(m):
    """7-point Laplacian on an m^3 grid (Dirichlet): SPD, 7 m^3 nonzeros."""
    e = np.ones(m)
    T = sp.diags_array([-e[1:], 2 * e, -e[1:]], offsets=[-1, 0, 1])
    I = sp.eye_array(m)
    A = sp.kron(sp.kron(T, I), I) + sp.kron(sp.kron(I, T), I) + sp.kron(sp.kron(I, I), T)
    A = sp.csr_array(A)
    A.sum_duplicates()
    return A


def convdiff2d(m, alpha=25.0, beta=10.0):
    """One implicit Euler step of 2-D convection-diffusion on an m^2 grid:
    I + alpha (5-point Laplacian) + beta (upwind x-derivative + half the
    y-derivative); alpha = dt nu / h^2, beta = dt |v| / h (cell Peclet 0.4,
    CFL 10).
    Nonsymmetric, 5 m^2 nonzeros."""
    e = np.ones(m)
    T = sp.diags_array([-e[1:], 2 * e, -e[1:]], offsets=[-1, 0, 1])
    U = sp.diags_array([-e[1:], e], offsets=[-1, 0])
    I = sp.eye_array(m)
    A = (sp.eye_array(m * m) + alpha * (sp.kron(I, T) + sp.kron(T, I))
         + beta * (sp.kron(I, U) + 0.5 * sp.kron(U, I)))
    A = sp.csr_array(A)
    A.sum_duplicates()
    return A


def _solvers():
    import importlib
    mods = {k: importlib.import_module(f"spmvtune.linalg.{k}") for k in ("cg", "bicgstab", "gmres")}
    return mods


PROBLEMS = {
    "cg": ("CG, 3-D Poisson 100^3 (10^6 unknowns, 6.9M nonzeros)",
           lambda small: poisson3d(20 if small else 100), {"rtol": 1e-8}),
    "bicgstab": ("BiCGSTAB, 2-D convection-diffusion step 1000^2 (10^6 unknowns, 5.0M nonzeros)",
                 lambda small: convdiff2d(100 if small else 1000), {"rtol": 1e-8}),
    "gmres": ("GMRES(30), the same convection-diffusion matrix",
              lambda small: convdiff2d(100 if small else 1000), {"rtol": 1e-8, "restart": 30}),
}


def scipy_solve(method, A, b, kw):
    count = [0]

    def cb(_):
        count[0] += 1
    extra = {"callback_type": "pr_norm"} if method == "gmres" else {}
    fn = getattr(sla, method)
    with spmvtune.single_threaded_blas():
        t0 = time.perf_counter()
        x, info = fn(A, b, callback=cb, **kw, **extra)
        t = time.perf_counter() - t0
    return {"seconds": t, "info": info, "iterations": count[0], "x": x}


def ours_solve(method, A, b, kw):
    mod = _solvers()[method]
    details = {}
    t0 = time.perf_counter()
    x, info, iterations = mod._solve(A, b, details=details, **kw)
    t = time.perf_counter() - t0
    return {"seconds": t, "info": info, "iterations": iterations, "x": x, "details": details}


def rel_residual(A, b, x):
    return float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))


def run_problem(method, rounds, small, log):
    title, make, kw = PROBLEMS[method]
    A = make(small)
    b = np.ones(A.shape[0])
    # compile / load every Numba function outside the timing: a small solve,
    # then one untimed round on this matrix (the kernels the in-solve selection
    # picks here are loaded from Numba's cache on first use; benchmarks/overhead.py
    # reports that first-call latency)
    ours_solve(method, make(True) if not small else A, np.ones(make(True).shape[0]), kw)
    ours_solve(method, A, np.ones(A.shape[0]), kw)
    rng = np.random.default_rng(1)
    runs = {"scipy": [], "ours": []}
    for rnd in range(rounds):
        for who in rng.permutation(["scipy", "ours"]):
            res = (scipy_solve if who == "scipy" else ours_solve)(method, A, b, kw)
            runs[who].append(res)
            extra = ""
            if who == "ours":
                d = res["details"]
                extra = f"  kernel {d['kernel']} ({d['threads']} threads)" + (
                    f"; {'; '.join(d['tuning'])}" if d["tuning"] else "")
            log(f"    round {rnd + 1}: {who:5s} {res['seconds']:7.2f} s, "
                f"{res['iterations']} iterations, info {res['info']}{extra}")
    t_s = np.array([r["seconds"] for r in runs["scipy"]])
    t_o = np.array([r["seconds"] for r in runs["ours"]])
    it_s = int(np.median([r["iterations"] for r in runs["scipy"]]))
    it_o = int(np.median([r["iterations"] for r in runs["ours"]]))
    res_s = rel_residual(A, b, runs["scipy"][-1]["x"])
    res_o = rel_residual(A, b, runs["ours"][-1]["x"])
    d = runs["ours"][-1]["details"]
    ratio = float(np.median(t_s / t_o))
    log(f"  {title}, rtol {kw['rtol']:g}:\n"
        f"    SciPy    {np.median(t_s):7.2f} s  {it_s:5d} iterations  residual {res_s:.2e}  "
        f"info {runs['scipy'][-1]['info']}\n"
        f"    spmvtune {np.median(t_o):7.2f} s  {it_o:5d} iterations  residual {res_o:.2e}  "
        f"info {runs['ours'][-1]['info']}  ({d['kernel']}, {d['threads']} threads, "
        f"products {d['product_seconds']:.2f} s of it)\n"
        f"    -> {ratio:.2f}x end to end (median of {rounds} per-round ratios: "
        f"{', '.join(f'{r:.2f}' for r in t_s / t_o)}); iterations {it_o / it_s - 1:+.1%}")
    return ratio


def run_short(method, rounds, small, log):
    """A solve cut short (25 iterations; GMRES one cycle of 30): all setup, no
    time to tune.  Must not be slower than SciPy's."""
    title, make, kw = PROBLEMS[method]
    A = make(small)
    b = np.ones(A.shape[0])
    kw = dict(kw, maxiter=1 if method == "gmres" else 25)
    ours_solve(method, A, b, kw)                   # loaded (part 1 usually did it)
    rng = np.random.default_rng(2)
    t = {"scipy": [], "ours": []}
    for _ in range(rounds):
        for who in rng.permutation(["scipy", "ours"]):
            t[who].append((scipy_solve if who == "scipy" else ours_solve)(method, A, b,
                                                                          kw)["seconds"])
    ratio = float(np.median(np.array(t["scipy"]) / np.array(t["ours"])))
    log(f"  {title.split(',')[0]}, {kw['maxiter']} {'cycle' if method == 'gmres' else 'iterations'}"
        f": SciPy {np.median(t['scipy']) * 1e3:.0f} ms, spmvtune {np.median(t['ours']) * 1e3:.0f} ms"
        f" -> {ratio:.2f}x (median of {rounds} per-round ratios)")
    return ratio


def kernels_part(log):
    import importlib
    from spmvtune.linalg import _vector as vec
    from spmvtune.linalg._fused import fused_for
    from spmvtune.timing import interleaved_medians
    log("\n2a. The product with p.Ap folded in, against the product and a dot pass "
        "(3-D Poisson 100^3, 2 threads)")
    A = poisson3d(100)
    n = A.shape[0]
    p = np.random.default_rng(0).standard_normal(n)
    q = np.empty(n)
    red = np.zeros((4, 2))
    bounds = vec.vector_bounds(n, 2)
    for name in ("csr_balanced", "csr_unroll4", "csr_vi"):
        op = spmvtune.select_kernel(A, kernel=name, threads=2)
        twin = fused_for(op._run)
        med = interleaved_medians({
            "product only": lambda: op._run(*op._args, p, q),
            "product + dot pass": lambda: (op._run(*op._args, p, q),
                                           vec.dot2_par(bounds, red, p, q, q, q)),
            "fused": lambda: twin(*op._args, p, q, p, red)}, repeats=15)
        log(f"  {name:13s} product {med['product only'] * 1e3:.2f} ms, + dot pass "
            f"{med['product + dot pass'] * 1e3:.2f} ms, fused {med['fused'] * 1e3:.2f} ms "
            f"(saves {1 - med['fused'] / med['product + dot pass']:.0%})")

    log("\n2b. Modified Gram-Schmidt of w against 16 basis vectors of 10^6 (per basis vector)")
    gm = importlib.import_module("spmvtune.linalg.gmres")
    k = 16
    V = np.random.default_rng(2).standard_normal((k + 2, n))
    V /= np.linalg.norm(V, axis=1)[:, None]
    w0 = np.random.default_rng(3).standard_normal(n)
    w = w0.copy()
    h = np.zeros((k, k + 1))
    red4 = np.zeros((4, 4))

    def numpy_mgs():
        w[:] = w0
        for j in range(k):
            t = np.dot(V[j], w)
            w.__isub__(t * V[j])

    def ours(pairs):
        w[:] = w0
        h[k - 1, 0] = V[0] @ w
        gm._orthogonalize(vec.mgs_pair_par, bounds, red4, h, V, w, k - 1, pairs=pairs)
    med = interleaved_medians({"copy": lambda: w.__setitem__(slice(None), w0),
                               "SciPy's (NumPy dot + axpy)": numpy_mgs,
                               "one step per pass": lambda: ours(False),
                               "two steps per pass": lambda: ours(True)}, repeats=15)
    for name, t in med.items():
        if name != "copy":
            log(f"  {name:28s} {(t - med['copy']) / k * 1e3:.3f} ms")

    log("\n2c. A CG update pass (x += a p, r -= a q, r.r) threaded against serial, by length")
    for n in (4096, 16384, 65536, 262144, 1 << 20):
        x, pp, r, qq = (np.random.default_rng(1).standard_normal(n) for _ in range(4))
        b1 = vec.even_rows(n, 1)
        b2 = vec.even_rows(n, 2)
        med = interleaved_medians({
            "serial": lambda: vec.cg_residual_ser(b1, red, 1e-9, x, pp, r, qq, None),
            "threaded": lambda: vec.cg_residual_par(b2, red, 1e-9, x, pp, r, qq, None),
            "numpy": lambda: (x.__iadd__(1e-9 * pp), r.__isub__(1e-9 * qq), np.dot(r, r))},
            repeats=15)
        log(f"  n {n:8d}: serial {med['serial'] * 1e6:8.1f} us, threaded "
            f"{med['threaded'] * 1e6:8.1f} us, NumPy (3 calls) {med['numpy'] * 1e6:8.1f} us")


def fidelity_part(shared, log):
    """Every square real matrix of ``shared`` (at most 400k nonzeros): GMRES(20)
    for 3 cycles, BiCGSTAB for 40 iterations, CG for 60 on the symmetric ones,
    b random, against SciPy and against SciPy summing each row in reverse
    order (how far rounding alone moves SciPy's own iterates)."""
    import warnings
    from spmvtune.linalg import bicgstab, cg, gmres
    log(f"\n3. Fidelity on the real matrices of {shared}: info and callback counts "
        "against SciPy's; iterates against SciPy's, next to SciPy's own spread when it "
        "sums each row in reverse order")
    files = sorted(p for p in Path(shared).iterdir() if p.name.endswith((".mtx", ".mtx.gz")))
    counts = {"cases": 0, "same info and count": 0, "x within 1e-6": 0,
              "x apart, as far as SciPy from itself": 0, "x apart, further": 0}
    mismatches = []
    for path in files:
        try:
            A = spmvtune.load(path)
        except (ValueError, MemoryError):
            continue
        if A.shape[0] != A.shape[1] or A.nnz > 400_000 or A.shape[0] < 2:
            continue
        b = np.random.default_rng(0).standard_normal(A.shape[0])
        rev = (np.concatenate([np.arange(A.indptr[i + 1] - 1, A.indptr[i] - 1, -1)
                               for i in range(A.shape[0])]) if A.nnz else np.zeros(0, int))
        Ar = sp.csr_array((A.data[rev], A.indices[rev], A.indptr.copy()), shape=A.shape)
        Ar.has_sorted_indices = False
        Lr = sla.LinearOperator(A.shape, matvec=lambda v, Ar=Ar: Ar @ v, dtype=float)
        sym = getattr(getattr(A, "info", None), "symmetry", "") == "symmetric"
        for name, ours, ref, kw in (
                ("gmres", gmres, sla.gmres, {"restart": 20, "maxiter": 3, "callback_type": "pr_norm"}),
                ("bicgstab", bicgstab, sla.bicgstab, {"maxiter": 40}),
                ("cg", cg, sla.cg, {"maxiter": 60})):
            if name == "cg" and not sym:
                continue
            counts["cases"] += 1
            runs = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for fn, M in ((ref, A), (ours, A), (ref, Lr)):
                    calls = []
                    x, info = fn(M, b, callback=calls.append, **kw)
                    runs.append((x, info, len(calls)))
            (x1, i1, c1), (x2, i2, c2), (x3, i3, c3) = runs
            if (i1, c1) != (i2, c2):
                mismatches.append(f"{path.name} {name}: info {i1}/{i2}, count {c1}/{c2} (SciPy "
                                  f"reversed: {i3}/{c3})")
                continue
            counts["same info and count"] += 1
            nx = max(float(np.linalg.norm(x1)), 1e-300)
            d12 = np.linalg.norm(x1 - x2) / nx
            d13 = np.linalg.norm(x1 - x3) / nx
            key = ("x within 1e-6" if d12 <= 1e-6 else "x apart, as far as SciPy from itself"
                   if d13 >= d12 / 100 else "x apart, further")
            counts[key] += 1
    for k, v in counts.items():
        log(f"  {k:40s} {v}")
    for m in mismatches:
        log(f"  mismatch: {m}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="cg,bicgstab,gmres",
                    help="solvers of part 1, comma-separated ('' for none)")
    ap.add_argument("--kernels", action="store_true", help="also part 2 (kernel choices)")
    ap.add_argument("--small", action="store_true", help="small problems (a smoke test)")
    ap.add_argument("--shared", default=None, metavar="DIR",
                    help="also part 3: fidelity against SciPy on every matrix of DIR")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    tune.USE_CACHE = False
    lines = []

    def log(s):
        print(s, flush=True)
        lines.append(s)
    import numba
    log(f"spmvtune {spmvtune.__version__}, SciPy {sp.__name__ and __import__('scipy').__version__}, "
        f"Numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads), "
        f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.2f}")
    ratios = {}
    methods = [m.strip() for m in args.only.split(",") if m.strip()]
    if methods:
        log("1. End-to-end solves from the scipy.sparse matrix (selection included, tuning "
            "cache off), b = ones")
    for method in methods:
        ratios[method] = run_problem(method, args.rounds, args.small, log)
    if methods:
        log("\n1b. The same solves cut short (selection cannot pay: the setup alone, "
            "7 rounds, interleaved)")
    for method in methods:
        ratios[method + "_short"] = run_short(method, 7, args.small, log)
    if args.kernels:
        with spmvtune.single_threaded_blas():     # NumPy's contestants as SciPy runs here
            kernels_part(log)
    if args.shared:
        fidelity_part(args.shared, log)
    log(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    if not args.small:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return ratios


if __name__ == "__main__":
    main()
